"""The state machine of one agent, run by its single owner task.

Everything that may change an agent's state arrives as an event on one queue: operator
commands (start/stop/restart), the exit of the process, health failures, timers and the
final shutdown. The owner task (:meth:`AgentProcess._main`) handles them one at a time and
changes state only through :meth:`AgentProcess._transition`, which checks the transition
table, logs one INFO line and notifies ``on_change``. Other tasks only read.

What follows an exit is decided in ``restarts.py``. An operator's stop wins: nothing but
an operator's start or restart starts a stopped agent again, and the stop is remembered
across daemon restarts (metadata ``manually_stopped``). Commands other than stop that
arrive while stopping wait until the process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from opsfleet.common.errors import DeadlineExceeded, Unavailable
from opsfleet.common.lifecycle import TaskOwner
from opsfleet.daemon.supervisor.clock import Clock
from opsfleet.daemon.supervisor.config import AgentSpec
from opsfleet.daemon.supervisor.events import (
    Command,
    Event,
    Exited,
    Inbox,
    Operation,
    RunEvent,
    Shutdown,
    Timer,
)
from opsfleet.daemon.supervisor.health import Probe
from opsfleet.daemon.supervisor.heartbeat import Heartbeat
from opsfleet.daemon.supervisor.logs import AgentLog
from opsfleet.daemon.supervisor.metadata import MetadataStore
from opsfleet.daemon.supervisor.orphans import identify
from opsfleet.daemon.supervisor.resources import ProcessSampler, ResourceHistory
from opsfleet.daemon.supervisor.restarts import RestartBudget, decide
from opsfleet.daemon.supervisor.run import AgentRun, RunContext, SamplerFactory
from opsfleet.daemon.supervisor.spawner import Spawner
from opsfleet.daemon.supervisor.states import (
    PROCESS_STATES,
    AgentStatus,
    AgentView,
    check_transition,
    describe_exit,
)
from opsfleet.daemon.supervisor.waiters import Waiters
from opsfleet.daemon.supervisor.workdir import ensure_work_dir

log = logging.getLogger(__name__)

StopIntent = Literal["stop", "restart", "unhealthy", "shutdown"]
KILL_GRACE = 5.0

_S = AgentStatus


class AgentProcess:
    """One supervised agent.

    Lifecycle: ``start()`` launches the owner task (the agent itself stays stopped until a
    ``start`` command); ``shutdown()`` stops the process gracefully, ends the owner task and
    is idempotent. After ``shutdown()`` returns no callback fires and commands raise
    Unavailable. All methods are called from the event loop thread.
    """

    def __init__(
        self,
        spec: AgentSpec,
        *,
        spawner: Spawner,
        agent_log: AgentLog,
        history: ResourceHistory,
        metadata: MetadataStore,
        probes: Sequence[Probe],
        heartbeat_url: str,
        clock: Clock,
        on_change: Callable[[], None],
        on_crash: Callable[[str, BaseException], None],
        base_env: Mapping[str, str],
        rand: Callable[[], float] = random.random,
        sampler_factory: SamplerFactory = ProcessSampler,
    ) -> None:
        self.spec = spec
        self.log = agent_log
        self.history = history
        self._spawner = spawner
        self._store = metadata
        self._meta = metadata.load()
        self._heartbeat_url = heartbeat_url
        self._clock = clock
        self._on_change = on_change
        self._base_env = dict(base_env)
        self._run_context = RunContext(
            spec=spec,
            agent_log=agent_log,
            history=history,
            probes=probes,
            clock=clock,
            post=self._post_run_event,
            is_running=lambda: self._state is _S.RUNNING,
            last_heartbeat=lambda: self._heartbeat_mono,
            on_crash=on_crash,
            sampler_factory=sampler_factory,
        )
        self._budget = RestartBudget(spec.restart, rand)
        self._stable_after = spec.restart.stable_after
        self._state = _S.STOPPED
        self._inbox = Inbox(clock)
        self._waiters = Waiters(spec.id)
        self._run: AgentRun | None = None
        self._runs = 0
        self._stop_intent: StopIntent = "stop"
        self._stop_reason = ""
        self._state_reason = ""
        self._shutdown: asyncio.Future[None] | None = None
        self._tasks = TaskOwner(f"agent:{spec.id}", on_crash)
        self._owner: asyncio.Task[None] | None = None
        self._finished = False
        self._heartbeat_wall = 0.0
        self._heartbeat_mono: float | None = None

    # -- read side (any task) -------------------------------------------------------------

    @property
    def state(self) -> AgentStatus:
        return self._state

    @property
    def manually_stopped(self) -> bool:
        return self._meta.manually_stopped

    def view(self) -> AgentView:
        run = self._run if self._state in PROCESS_STATES else None
        return AgentView(
            id=self.spec.id,
            type=self.spec.type,
            name=self.spec.name or self.spec.id,
            version=self.spec.version,
            state=self._state,
            pid=run.child.pid if run is not None else 0,
            start_time=int(run.started_wall) if run is not None else 0,
            restart_count=self._meta.restart_count,
            last_heartbeat=int(self._heartbeat_wall),
            last_exit_reason=self._meta.last_exit_reason,
            reason=self._state_reason,
        )

    def restart_reasons(self) -> list[str]:
        return [record.reason for record in self._meta.restarts]

    def record_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Note a heartbeat (timestamps only: the health monitor reads them)."""
        self._heartbeat_wall = self._clock.time()
        self._heartbeat_mono = self._clock.monotonic()

    # -- lifecycle and commands -----------------------------------------------------------

    def start(self) -> None:
        if self._owner is None and not self._finished:
            self._owner = self._tasks.spawn("state-machine", self._main())

    async def submit(self, op: Operation) -> None:
        """Hand ``op`` to the state machine; returns once it acted on it (not when it finished)."""
        accepted = asyncio.get_running_loop().create_future()
        self._post_command(Command(op, accepted, None))
        await accepted

    async def operate(self, op: Operation, timeout: float) -> None:
        """Run ``op`` and wait until it finished: running for start/restart, stopped for stop.

        DeadlineExceeded after ``timeout`` (the operation itself goes on); Unavailable when
        the agent cannot reach running (failed, stopped meanwhile) or is being shut down.
        """
        if timeout <= 0:
            raise DeadlineExceeded(f"no time left to {op} agent {self.spec.id}")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._post_command(Command(op, loop.create_future(), done))
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"{op} of agent {self.spec.id} did not finish within {timeout:g}s (now {self._state.value})"
            ) from exc

    async def shutdown(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after stop_timeout) and end the owner task."""
        owner = self._owner
        if owner is None:
            self._finished = True
            self._close_files()
            return
        if self._shutdown is None and not owner.done():
            self._shutdown = asyncio.get_running_loop().create_future()
            self._inbox.post(Shutdown(self._shutdown))
        await asyncio.wait([owner])  # the owner's own errors went to on_crash

    def _post_command(self, command: Command) -> None:
        if self._owner is None or self._finished or self._shutdown is not None:
            raise Unavailable(f"agent {self.spec.id} is not supervised (daemon starting or stopping)")
        self._inbox.post(command)

    def _post_run_event(self, event: RunEvent) -> None:
        if not self._finished:
            self._inbox.post(event)

    # -- the owner task -------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            while not self._finished:
                event = await self._inbox.next(replay_deferred=self._state is not _S.STOPPING)
                await self._dispatch(event)
                if self._shutdown is not None and self._state is not _S.STOPPING:
                    self._finished = True
        finally:
            self._finished = True
            run, self._run = self._run, None
            if run is not None:  # only after a crash or cancellation: leave no orphans
                run.child.signal_group(signal.SIGKILL)
                await run.end()
                self._meta.process = None
                self._store.save(self._meta)
            self._drop_pending(Unavailable(f"agent {self.spec.id} is no longer supervised"), drain=True)
            self._close_files()
            if self._shutdown is not None and not self._shutdown.done():
                self._shutdown.set_result(None)

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Command):
            if self._state is _S.STOPPING and event.op != "stop":
                self._inbox.defer(event)
            else:
                await self._on_command(event)
                if not event.accepted.done():
                    event.accepted.set_result(None)
        elif isinstance(event, Shutdown):
            self._on_shutdown()
        elif isinstance(event, Timer):
            await self._on_timer(event)
        elif self._run is None or event.run_id != self._run.id:
            return  # from a run that is over
        elif isinstance(event, Exited):
            await self._on_exit(event.returncode)
        elif self._state is _S.RUNNING:
            self._begin_stop("unhealthy", event.reason)

    def _transition(self, new: AgentStatus, reason: str) -> None:
        old = self._state
        check_transition(old, new)
        self._state = new
        self._state_reason = reason
        self._inbox.clear_timer()
        log.info("agent %s: %s -> %s (%s)", self.spec.id, old.value, new.value, reason)
        self._waiters.settle(new, reason)
        try:
            self._on_change()
        except Exception:
            log.exception("agent %s: on_change callback failed", self.spec.id)

    # -- commands -------------------------------------------------------------------------

    async def _on_command(self, command: Command) -> None:
        state = self._state
        if command.op == "stop":
            self._set_manually_stopped(True)
            if command.done is not None:
                self._waiters.add("down", command.done, state)
            if state is _S.STOPPING:
                self._stop_intent, self._stop_reason = "stop", "stop requested"
            elif state in (_S.STARTING, _S.RUNNING):
                self._begin_stop("stop", "stop requested")
            elif state in (_S.BACKOFF, _S.FAILED):
                self._transition(_S.STOPPED, "stop requested")
            return
        self._set_manually_stopped(False)
        if command.op == "restart" and state in (_S.STARTING, _S.RUNNING):
            self._begin_stop("restart", "restart requested")
        if command.done is not None:  # after begin_stop: a restart waits for the *next* running
            self._waiters.add("up", command.done, self._state)
        if state not in (_S.STARTING, _S.RUNNING):  # stopped, failed, backoff: with a fresh budget
            self._budget.reset()
            await self._spawn(f"{command.op} requested")

    def _on_shutdown(self) -> None:
        self._drop_pending(Unavailable(f"agent {self.spec.id}: the daemon is stopping"))
        if self._state in (_S.STARTING, _S.RUNNING):
            self._begin_stop("shutdown", "daemon stopping")
        elif self._state is _S.STOPPING:
            self._stop_intent, self._stop_reason = "shutdown", "daemon stopping"
        elif self._state is _S.BACKOFF:
            self._transition(_S.STOPPED, "daemon stopping")

    def _drop_pending(self, error: Exception, *, drain: bool = False) -> None:
        """Fail every waiting operate() call, including commands put aside while stopping."""
        self._waiters.fail_all(error)
        for command in self._inbox.take_deferred(drain=drain):
            if not command.accepted.done():
                command.accepted.set_result(None)
            if command.done is not None and not command.done.done():
                command.done.set_exception(error)

    def _set_manually_stopped(self, value: bool) -> None:
        if self._meta.manually_stopped != value:
            self._meta.manually_stopped = value
            self._store.save(self._meta)

    # -- process events -------------------------------------------------------------------

    async def _spawn(self, reason: str) -> None:
        argv = self.spec.command()
        env = {**self._base_env, **self.spec.env}
        env["OPSFLEET_AGENT_ID"] = self.spec.id
        env["OPSFLEET_HEARTBEAT_URL"] = self._heartbeat_url
        problem = ensure_work_dir(self.spec.work_dir)
        if problem is not None:  # a configuration problem: restarting would fail the same way
            self._meta.last_exit_reason, self._meta.last_exit_time = problem, self._clock.time()
            self._store.save(self._meta)
            self._transition(_S.STARTING, reason)
            self._transition(_S.FAILED, problem)
            return
        try:
            child = await self._spawner.spawn(argv, env=env, cwd=self.spec.work_dir or None)
        except (OSError, ValueError) as exc:
            detail = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            if isinstance(exc, OSError) and exc.filename and exc.filename != argv[0]:
                detail += f": {exc.filename}"  # e.g. a work_dir it may not enter
            self._transition(_S.STARTING, reason)
            self._after_exit(f"cannot execute {argv[0]}: {detail}", failure=True)
            return
        self._runs += 1
        run = AgentRun(self._runs, child, self._run_context)
        self._run = run
        self._meta.last_start_time = run.started_wall
        self._meta.process = identify(child.pid)
        self._store.save(self._meta)
        self._transition(_S.STARTING, f"{reason}; pid {child.pid}")
        run.begin()
        self._inbox.arm("started", self.spec.start_seconds)

    async def _on_timer(self, timer: Timer) -> None:
        if timer.kind == "started" and self._run is not None:
            self._transition(_S.RUNNING, f"up for {self.spec.start_seconds:g}s")
            self._run.start_health()
            self._inbox.arm("stable", self.spec.restart.stable_after - self.spec.start_seconds)
        elif timer.kind == "stable":
            if self._budget.used:
                log.info("agent %s: stable for %gs; restart budget reset", self.spec.id, self._stable_after)
            self._budget.reset()
        elif timer.kind == "kill" and self._run is not None:
            log.warning("agent %s: still running after SIGTERM; sending SIGKILL", self.spec.id)
            self._run.child.signal_group(signal.SIGKILL)
            self._inbox.arm("abandon", KILL_GRACE)
        elif timer.kind == "abandon" and self._run is not None:
            pid = self._run.child.pid
            log.error("agent %s: pid %d did not exit after SIGKILL; abandoning it", self.spec.id, pid)
            await self._on_exit(None)
        elif timer.kind == "retry":
            await self._spawn("backoff over")

    def _begin_stop(self, intent: StopIntent, reason: str) -> None:
        if self._run is None:
            raise RuntimeError(f"agent {self.spec.id}: stop without a process")
        self._stop_intent, self._stop_reason = intent, reason
        self._transition(_S.STOPPING, reason)
        self._run.child.signal_group(signal.SIGTERM)
        self._inbox.arm("kill", self.spec.stop_timeout)

    async def _on_exit(self, returncode: int | None) -> None:
        run, self._run = self._run, None
        self._meta.process = None  # saved by every branch below
        if run is not None:
            await run.end()
        how = describe_exit(returncode) if returncode is not None else "did not exit after SIGKILL"
        self._meta.last_exit_time = self._clock.time()
        if self._state is not _S.STOPPING:
            self._after_exit(how, failure=returncode != 0)
        elif self._stop_intent == "restart":
            self._meta.last_exit_reason = f"restart requested ({how})"
            self._meta.record_restart(self._clock.time(), "restart requested")
            self._store.save(self._meta)
            await self._spawn("restart requested")
        elif self._stop_intent == "unhealthy":
            self._after_exit(self._stop_reason, failure=True)
        else:
            self._meta.last_exit_reason = f"{self._stop_reason} ({how})"
            self._store.save(self._meta)
            self._transition(_S.STOPPED, how)

    def _after_exit(self, reason: str, *, failure: bool) -> None:
        """An exit or failed check while not stopping on request: backoff, stopped or failed."""
        now = self._clock.monotonic()
        decision = decide(self.spec.restart, self._budget, reason, failure=failure, now=now)
        self._meta.last_exit_reason = decision.reason
        if decision.outcome == "backoff":
            self._meta.record_restart(self._clock.time(), reason)
        self._store.save(self._meta)
        if decision.outcome == "backoff":
            self._transition(_S.BACKOFF, f"{reason}; restart {self._budget.used} in {decision.delay:.2f}s")
            self._inbox.arm("retry", decision.delay)
        else:
            self._transition(_S.FAILED if decision.outcome == "failed" else _S.STOPPED, decision.reason)

    def _close_files(self) -> None:
        self.log.close()
        self.history.close()
