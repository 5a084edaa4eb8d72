"""One spawned process of an agent and the tasks that watch it.

An :class:`AgentRun` owns, for the life of one child process: two pipe pumps (stdout and
stderr into the agent's log), a watcher that reports the exit, a resource sampler, and
(once the agent is running) a health monitor. They never change the agent's state: they
post :class:`Exited` / :class:`Unhealthy` events to the agent's state machine, which
decides. ``end()`` stops and awaits them all; nothing is posted after it returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opsfleet.common.lifecycle import TaskOwner
from opsfleet.common.log_lines import Stream, format_prefix
from opsfleet.daemon.supervisor.clock import Clock
from opsfleet.daemon.supervisor.config import AgentSpec
from opsfleet.daemon.supervisor.events import Exited, RunEvent, Unhealthy
from opsfleet.daemon.supervisor.health import Probe, ThresholdTracker, run_probes
from opsfleet.daemon.supervisor.logs import AgentLog, LineSplitter
from opsfleet.daemon.supervisor.resources import ProcessSampler, ResourceHistory, ResourcePoint
from opsfleet.daemon.supervisor.spawner import ByteStream, ChildProcess

log = logging.getLogger(__name__)

PIPE_CHUNK = 64 * 1024
DRAIN_TIMEOUT = 1.0
END_TIMEOUT = 2.0


class Sampler(Protocol):
    """Resource sampling of one process tree (:class:`ProcessSampler` is the real one)."""

    def sample(self, now: float) -> ResourcePoint | None:
        """A sample, or ``None`` once the process is gone."""
        ...


SamplerFactory = Callable[[int], Sampler]


def _threshold_reason(kind: str, limit: str, above: float, current: str) -> str:
    return f"{kind} above threshold {limit} for {above:.1f}s (now {current})"


@dataclass(frozen=True)
class RunContext:
    """What every run of one agent shares: where output and samples go, how to report."""

    spec: AgentSpec
    agent_log: AgentLog
    history: ResourceHistory
    probes: Sequence[Probe]
    clock: Clock
    post: Callable[[RunEvent], None]
    is_running: Callable[[], bool]
    last_heartbeat: Callable[[], float | None]
    on_crash: Callable[[str, BaseException], None]
    sampler_factory: SamplerFactory = ProcessSampler


class AgentRun:
    def __init__(self, run_id: int, child: ChildProcess, ctx: RunContext) -> None:
        self.id = run_id
        self.child = child
        self.started_wall = ctx.clock.time()
        self._ctx = ctx
        self._spec = ctx.spec
        self._stop = asyncio.Event()
        self._tasks = TaskOwner(f"agent:{ctx.spec.id}:run{run_id}", ctx.on_crash)
        self._pumps: list[asyncio.Task[None]] = []

    def begin(self) -> None:
        """Start pumping output, watching for the exit, and sampling resources."""
        self._pumps = [
            self._tasks.spawn("stdout", self._pump(self.child.stdout, "stdout")),
            self._tasks.spawn("stderr", self._pump(self.child.stderr, "stderr")),
        ]
        self._tasks.spawn("watch", self._watch())
        self._tasks.spawn("sample", self._sample_loop())

    def start_health(self) -> None:
        """Start the health monitor (called when the agent reaches running)."""
        hc = self._spec.health_check
        if self._ctx.probes or hc.heartbeat_timeout > 0:
            self._tasks.spawn("health", self._health_loop())

    async def end(self) -> None:
        """Stop every task of this run and wait for them (cancelling stragglers)."""
        self._stop.set()
        await self._tasks.stop(END_TIMEOUT)

    async def _pump(self, stream: ByteStream, name: Stream) -> None:
        splitter = LineSplitter()
        log = self._ctx.agent_log
        while chunk := await stream.read(PIPE_CHUNK):
            log.write_lines(splitter.feed(chunk), format_prefix(self._ctx.clock.time(), name))
        log.write_lines(splitter.flush(), format_prefix(self._ctx.clock.time(), name))

    async def _watch(self) -> None:
        returncode = await self.child.wait()
        # Helpers the agent left behind in its group would hold its pipes and ports.
        self.child.signal_group(signal.SIGKILL)
        await asyncio.wait(self._pumps, timeout=DRAIN_TIMEOUT)
        if not self._stop.is_set():
            self._ctx.post(Exited(self.id, returncode))

    async def _sample_loop(self) -> None:
        hc = self._spec.health_check
        sampler = self._ctx.sampler_factory(self.child.pid)
        cpu = ThresholdTracker(hc.cpu_threshold, hc.threshold_duration)
        memory = ThresholdTracker(float(hc.memory_threshold), hc.threshold_duration)
        while not self._stop.is_set():
            point = sampler.sample(self._ctx.clock.time())
            if point is None:
                return
            self._ctx.history.append(point)
            if self._ctx.is_running():
                now = self._ctx.clock.monotonic()
                above = cpu.observe(point.cpu, now)
                if above is not None:
                    self._report(_threshold_reason("cpu", f"{hc.cpu_threshold:g}%", above, f"{point.cpu:g}%"))
                above = memory.observe(point.memory_rss, now)
                if above is not None:
                    self._report(
                        _threshold_reason(
                            "memory", f"{hc.memory_threshold} bytes", above, f"rss {point.memory_rss} bytes"
                        )
                    )
            else:
                cpu.reset()
                memory.reset()
            if await self._ctx.clock.wait(self._stop, self._spec.metrics_interval):
                return

    async def _health_loop(self) -> None:
        hc = self._spec.health_check
        started = self._ctx.clock.monotonic()
        failures = 0
        while not await self._ctx.clock.wait(self._stop, hc.interval):
            if hc.heartbeat_timeout > 0:
                last = self._ctx.last_heartbeat()
                since = started if last is None else max(started, last)
                silent = self._ctx.clock.monotonic() - since
                if silent > hc.heartbeat_timeout:
                    self._report(
                        f"heartbeat timeout: none for {silent:.1f}s (limit {hc.heartbeat_timeout:g}s)"
                    )
                    return
            if not self._ctx.probes:
                continue
            failure = await run_probes(self._ctx.probes)
            if failure is None:
                failures = 0
                continue
            failures += 1
            log.debug(
                "agent %s: probe failed (%d/%d): %s", self._spec.id, failures, hc.failure_threshold, failure
            )
            if failures >= hc.failure_threshold:
                suffix = f" ({failures} times in a row)" if failures > 1 else ""
                self._report(f"failed probe: {failure}{suffix}")
                return

    def _report(self, reason: str) -> None:
        if not self._stop.is_set():
            self._ctx.post(Unhealthy(self.id, reason))
