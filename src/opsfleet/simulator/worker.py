"""A worker process: its share of the nodes on its own asyncio loop and gRPC channels.

Protocol with the parent (``runner.py``), all messages ``(kind, worker_id, payload)`` on
the shared queue: ``ready`` once started; then the parent sends ``(START, t0)`` on the
worker's control pipe; the worker sends ``progress`` (:class:`Progress`) every second,
runs until ``t0 + duration`` or until the parent sends ``STOP``, lets the calls in flight
finish (at most DRAIN_TIMEOUT), and ends with ``final``
(:class:`WorkerReport`) or ``failed`` (a traceback). Nothing runs after ``final``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from opsfleet.common.lifecycle import run_server_loop
from opsfleet.simulator.calls import Caller, GrpcCaller
from opsfleet.simulator.config import Mode, SimConfig, shard
from opsfleet.simulator.node import Drained, InFlight, SimNode, pick
from opsfleet.simulator.payloads import identity_for
from opsfleet.simulator.stats import Recorder, WorkerReport

log = logging.getLogger(__name__)

START = "start"
STOP = "stop"
MSG_READY = "ready"
MSG_PROGRESS = "progress"
MSG_FINAL = "final"
MSG_FAILED = "failed"
PROGRESS_EVERY = 1.0
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 5.0
_POLL = 0.1


class Outbox(Protocol):
    """Where a worker puts its messages (a ``multiprocessing`` queue, or a list in tests)."""

    def put(self, obj: Any) -> None: ...


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: int
    config: SimConfig
    inflight: int
    """This worker's share of the saturate-mode in-flight bound."""


class Worker:
    """Runs one worker's nodes from ``t0`` until ``t0 + duration`` or a STOP on ``control``.

    ``run()`` may be called once; it closes the caller before it returns.
    """

    def __init__(
        self, spec: WorkerSpec, caller: Caller, *, t0: float, control: Connection, outbox: Outbox
    ) -> None:
        self._spec = spec
        self._cfg = spec.config
        self._caller = caller
        self._t0 = t0
        self._control = control
        self._outbox = outbox
        seed = self._cfg.seed
        self._rand = random.Random(None if seed is None else seed * 1009 + spec.worker_id)
        self._draining = asyncio.Event()
        self._inflight = InFlight()
        self.recorder = Recorder(t0)
        self.nodes: list[SimNode] = []

    def registered_nodes(self) -> int:
        return sum(1 for node in self.nodes if node.registered)

    async def run(self) -> WorkerReport:
        cfg = self._cfg
        await self._caller.start()
        try:
            self.nodes = [
                SimNode(
                    identity_for(cfg.node_id(i), i, self._rand),
                    caller=self._caller,
                    recorder=self.recorder,
                    config=cfg,
                    rand=self._rand,
                    draining=self._draining,
                    inflight=self._inflight,
                )
                for i in shard(cfg.nodes, cfg.effective_workers, self._spec.worker_id)
            ]
            await asyncio.sleep(max(0.0, self._t0 - time.time()))
            async with asyncio.TaskGroup() as group:
                work = group.create_task(self._work(), name=f"worker-{self._spec.worker_id}")
                await self._until_done()
                self.recorder.end_window()
                await self._drain()
                work.cancel()
        finally:
            await self._caller.close()
        failing = sum(1 for node in self.nodes if node.failing)
        return self.recorder.report(self._spec.worker_id, len(self.nodes), self.registered_nodes(), failing)

    async def _until_done(self) -> None:
        deadline = self._t0 + self._cfg.duration
        next_progress = time.time()
        while (now := time.time()) < deadline:
            if self._control.poll() and self._control.recv() == STOP:
                return
            if now >= next_progress:
                self._outbox.put((MSG_PROGRESS, self._spec.worker_id, self._progress()))
                next_progress = now + PROGRESS_EVERY
            await asyncio.sleep(min(_POLL, deadline - now))

    async def _drain(self) -> None:
        """Start no new calls; give the ones in flight up to DRAIN_TIMEOUT to be answered.

        Cancelling calls mid-flight is left for the timeout case, so that a normal end
        of a run does not look like a crowd of daemons dying mid-call.
        """
        self._draining.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._inflight.wait_idle(), min(DRAIN_TIMEOUT, self._cfg.timeout))

    def _progress(self) -> object:
        return self.recorder.progress(self._spec.worker_id, self.registered_nodes(), self._caller.enrolled())

    async def _work(self) -> None:
        if self._cfg.mode is Mode.FLEET:
            async with asyncio.TaskGroup() as group:
                for node in self.nodes:
                    group.create_task(node.run_fleet(), name=node.identity.node_id)
            return
        await self._saturate()

    async def _saturate(self) -> None:
        """Register every node (``inflight`` at a time), then measure back-to-back calls."""
        lanes = max(1, min(self._spec.inflight, len(self.nodes)))
        pending = iter(self.nodes)

        async def register_lane() -> None:
            with contextlib.suppress(Drained):
                for node in pending:
                    await node.register()

        async with asyncio.TaskGroup() as group:
            for _ in range(lanes):
                group.create_task(register_lane())
        self.recorder.start_window()
        weights = self._cfg.call_weights()
        turn = itertools.count()
        rand = self._rand.random

        async def mix_lane() -> None:
            with contextlib.suppress(Drained):
                while True:
                    node = self.nodes[next(turn) % len(self.nodes)]
                    await node.actions()[pick(weights, rand())]()

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, self._spec.inflight)):
                group.create_task(mix_lane())


def worker_main(spec: WorkerSpec, control: Connection, outbox: Outbox) -> None:
    """Entry point of a worker process. Ctrl-C is left to the parent, which sends STOP;
    SIGTERM (the parent giving up on it) ends the worker at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wid = spec.worker_id
    try:
        outbox.put((MSG_READY, wid, None))
        if not control.poll(START_TIMEOUT):
            outbox.put((MSG_FAILED, wid, "no start message from the parent"))
            return
        message = control.recv()
        if not (isinstance(message, tuple) and message[0] == START):
            outbox.put((MSG_FAILED, wid, f"unexpected control message {message!r}"))
            return
        t0 = float(message[1])
        cfg = spec.config
        caller = _grpc_caller(cfg)
        report = run_server_loop(Worker(spec, caller, t0=t0, control=control, outbox=outbox).run())
        outbox.put((MSG_FINAL, wid, report))
    except BaseException:
        outbox.put((MSG_FAILED, wid, traceback.format_exc()))


def _grpc_caller(cfg: SimConfig) -> Caller:
    if cfg.enroll is not None:
        from opsfleet.simulator.enrolled import EnrolledCaller

        return EnrolledCaller(cfg.target, enroll=cfg.enroll, timeout=cfg.timeout)
    return GrpcCaller(cfg.target, channels=cfg.channels, timeout=cfg.timeout, tls=cfg.tls)
