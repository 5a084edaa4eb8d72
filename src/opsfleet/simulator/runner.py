"""The parent process of a simulation: starts the workers, shows progress, merges the results.

Workers are forked (the parent creates no gRPC object before that, so forking is safe,
and unlike spawning it does not re-run the ``opsfleet`` entry point in every child).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from typing import Any, TextIO

from opsfleet.common.errors import OpsfleetError
from opsfleet.simulator.config import SimConfig, split_evenly
from opsfleet.simulator.procstats import ProcessSampler
from opsfleet.simulator.report import Report, build_report
from opsfleet.simulator.stats import Progress, WorkerReport, merge_reports
from opsfleet.simulator.worker import (
    MSG_FAILED,
    MSG_FINAL,
    MSG_PROGRESS,
    MSG_READY,
    START,
    STOP,
    WorkerSpec,
    worker_main,
)

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
START_DELAY = 0.3
SHUTDOWN_GRACE = 15.0
JOIN_TIMEOUT = 5.0
SAMPLE_EVERY = 1.0
_MIB = 1024 * 1024


class Simulation:
    """One run. ``run()`` blocks until the duration is over or :meth:`request_stop` is called
    (a second call terminates the workers at once); it may be called once.

    ``request_stop`` only sets flags, so a signal handler may call it.
    """

    def __init__(self, config: SimConfig, *, progress_out: TextIO | None = None) -> None:
        self._cfg = config
        self._out = progress_out if progress_out is not None else sys.stderr
        self._stop_requested = False
        self._force = False
        self._ctx = multiprocessing.get_context("fork")
        self._procs: dict[int, ForkProcess] = {}
        self._controls: dict[int, Connection] = {}
        self._queue: Any = self._ctx.Queue()
        self._progress: dict[int, Progress] = {}
        self._enrolled_at = (0.0, 0)  # (elapsed, enrolled) at the previous progress line
        self._finals: dict[int, WorkerReport] = {}
        self._failures: dict[int, str] = {}
        self._died_at: dict[int, float] = {}
        self._client = ProcessSampler([])
        self._manager: ProcessSampler | None = None

    def request_stop(self) -> None:
        if self._stop_requested:
            self._force = True
        self._stop_requested = True

    def run(self) -> Report:
        cfg = self._cfg
        workers = cfg.effective_workers
        log.info(
            "simulating %d nodes (%s mode) against %s with %d worker processes for %.0fs",
            cfg.nodes,
            cfg.mode.value,
            cfg.target,
            workers,
            cfg.duration,
        )
        t0 = time.time() + START_DELAY
        try:
            self._start_workers(workers)
            t0 = time.time() + START_DELAY
            for control in self._controls.values():
                control.send((START, t0))
            self._supervise(t0)
        finally:
            self._reap()
        return build_report(
            cfg,
            merge_reports(self._finals[w] for w in sorted(self._finals)),
            started_at=t0,
            elapsed=min(time.time() - t0, cfg.duration),
            manager_samples=self._manager.samples if self._manager else (),
            client_samples=self._client.samples,
            failures=[self._failures[w] for w in sorted(self._failures)],
        )

    def _start_workers(self, workers: int) -> None:
        for wid in range(workers):
            parent_end, child_end = self._ctx.Pipe()
            spec = WorkerSpec(wid, self._cfg, max(1, split_evenly(self._cfg.inflight, workers, wid)))
            proc = self._ctx.Process(
                target=worker_main,
                args=(spec, child_end, self._queue),
                name=f"opsfleet-sim-{wid}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            self._procs[wid] = proc
            self._controls[wid] = parent_end
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT
        while len(ready) < workers:
            if time.monotonic() > deadline or self._force:
                raise OpsfleetError(f"only {len(ready)} of {workers} simulator workers started")
            try:
                kind, wid, payload = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == MSG_READY:
                ready.add(wid)
            elif kind == MSG_FAILED:
                raise OpsfleetError(f"simulator worker {wid} failed to start: {payload}")
        self._client = ProcessSampler([p.pid for p in self._procs.values() if p.pid is not None])
        self._manager = ProcessSampler([self._cfg.manager_pid]) if self._cfg.manager_pid else None

    def _supervise(self, t0: float) -> None:
        cfg = self._cfg
        hard_deadline = t0 + cfg.duration + SHUTDOWN_GRACE
        next_sample = t0
        next_progress = t0 + cfg.progress_interval
        last_calls, last_at = 0, t0
        stop_sent = False
        while len(self._finals) + len(self._failures) < len(self._procs):
            now = time.time()
            if self._force or now > hard_deadline:
                log.warning("terminating simulator workers that did not finish in time")
                return
            if self._stop_requested and not stop_sent:
                stop_sent = True
                for control in self._controls.values():
                    control.send(STOP)
            self._receive(timeout=0.2)
            self._notice_deaths(now)
            if now >= next_sample:
                next_sample += SAMPLE_EVERY
                self._client.sample(now - t0)
                if self._manager is not None:
                    self._manager.sample(now - t0)
            if now >= next_progress and now < t0 + cfg.duration:
                next_progress += cfg.progress_interval
                calls = sum(p.calls for p in self._progress.values())
                rate = (calls - last_calls) / max(1e-6, now - last_at)
                last_calls, last_at = calls, now
                self._print_progress(now - t0, rate, calls)

    def _receive(self, timeout: float) -> None:
        try:
            kind, wid, payload = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        if kind == MSG_PROGRESS:
            self._progress[wid] = payload
        elif kind == MSG_FINAL:
            self._finals[wid] = payload
        elif kind == MSG_FAILED:
            log.error("simulator worker %d failed:\n%s", wid, payload)
            self._failures[wid] = str(payload)

    def _notice_deaths(self, now: float) -> None:
        for wid, proc in self._procs.items():
            if wid in self._finals or wid in self._failures or proc.exitcode is None:
                continue
            died = self._died_at.setdefault(wid, now)
            if now - died > 2.0:  # its last message would have arrived by now
                self._failures[wid] = f"worker {wid} exited with code {proc.exitcode} without a report"

    def _print_progress(self, elapsed: float, rate: float, calls: int) -> None:
        errors = sum(p.errors for p in self._progress.values())
        registered = sum(p.registered_nodes for p in self._progress.values())
        line = (
            f"[simulate] {elapsed:6.1f}s  calls/s {rate:8.1f}  calls {calls:9d}  errors {errors:6d}  "
            f"registered {registered}/{self._cfg.nodes}"
        )
        enrolled = sum(p.enrolled_nodes for p in self._progress.values())
        if enrolled or self._cfg.enroll is not None:
            interval = max(elapsed - self._enrolled_at[0], 1e-9)
            line += f"  enrolled {enrolled} ({(enrolled - self._enrolled_at[1]) / interval:.0f}/s)"
            self._enrolled_at = (elapsed, enrolled)
        if self._manager is not None and self._manager.samples:
            last = self._manager.samples[-1]
            line += f"  manager cpu {last.cpu_percent:.0f}% rss {last.rss_bytes / _MIB:.0f} MiB"
        print(line, file=self._out, flush=True)

    def _reap(self) -> None:
        for control in self._controls.values():
            control.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for proc in self._procs.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=JOIN_TIMEOUT)
        self._queue.close()
        self._queue.join_thread()
