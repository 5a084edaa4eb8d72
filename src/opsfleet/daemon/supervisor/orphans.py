"""Agents left running by a daemon that died without stopping them (kill -9, OOM killer).

Such a process was reparented to PID 1 (or a subreaper) and keeps running: its ports, files
and locks would make a second copy fail (``Address already in use``) or, worse, run twice.

When an agent process starts, its state machine records the pid, the process group and the
process start time (psutil ``create_time``) in the agent's metadata file; the end of the run
clears the record. A record still present when the daemon starts names a process the
previous daemon left behind, and :func:`stop_leftover` stops it (SIGTERM to its process
group, SIGKILL after the agent's ``stop_timeout``) before any agent is started.

Stopping is chosen over adopting: the new daemon cannot re-attach to the old process's
stdout/stderr (those pipes died with the old daemon, so its output is lost and its next
write fails with EPIPE), and it cannot ``waitpid()`` a process that is not its child, so it
would learn of an exit only by polling and never its exit status. A fresh start gives logs,
exit codes and health checks exactly as for any other run.

A process is signalled only while it is provably the recorded one: the pid exists, its
start time equals the recorded one and its process group is the recorded one. A pid that
was reused by an unrelated process fails that check and is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import psutil

from opsfleet.daemon.supervisor.clock import Clock
from opsfleet.daemon.supervisor.metadata import ProcessRecord

log = logging.getLogger(__name__)

# create_time is derived from boot time + start ticks: equal for the same process, but
# rounding may differ in the last digits between psutil versions.
CREATE_TIME_TOLERANCE = 0.05
POLL_INTERVAL = 0.05
KILL_WAIT = 5.0


def identify(pid: int) -> ProcessRecord | None:
    """The record of the running process ``pid`` (None when it is gone or unreadable)."""
    try:
        create_time = psutil.Process(pid).create_time()
        pgid = os.getpgid(pid)
    except (psutil.Error, OSError):
        return None
    return ProcessRecord(pid=pid, pgid=pgid, create_time=create_time)


def is_recorded_process(record: ProcessRecord) -> bool:
    """True while the process described by ``record`` still runs (zombies count as gone)."""
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_TOLERANCE:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return os.getpgid(record.pid) == record.pgid
    except (psutil.Error, OSError):
        return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_gone(record: ProcessRecord, timeout: float, clock: Clock) -> bool:
    never = asyncio.Event()
    deadline = clock.monotonic() + timeout
    while is_recorded_process(record):
        left = deadline - clock.monotonic()
        if left <= 0:
            return False
        await clock.wait(never, min(POLL_INTERVAL, left))
    return True


async def stop_leftover(agent_id: str, record: ProcessRecord, stop_timeout: float, clock: Clock) -> bool:
    """Stop the process a previous daemon left running for ``agent_id``; False if it would not die.

    Returns True at once, signalling nothing, when the recorded process is gone or its pid
    now belongs to another process.
    """
    if not is_recorded_process(record):
        log.info(
            "agent %s: pid %d recorded by a previous daemon is gone or belongs to another process; "
            "left alone",
            agent_id,
            record.pid,
        )
        return True
    log.warning(
        "agent %s: pid %d (process group %d) was left running by a previous daemon; stopping it "
        "(SIGTERM, SIGKILL after %gs) before starting the agent",
        agent_id,
        record.pid,
        record.pgid,
        stop_timeout,
    )
    _signal_group(record.pgid, signal.SIGTERM)
    if await _wait_gone(record, stop_timeout, clock):
        # Helpers the agent forked into its group would keep its ports; the group id cannot be
        # reused while any of them is alive.
        _signal_group(record.pgid, signal.SIGKILL)
        log.info("agent %s: leftover pid %d stopped", agent_id, record.pid)
        return True
    log.warning(
        "agent %s: leftover pid %d still running after SIGTERM; sending SIGKILL", agent_id, record.pid
    )
    if is_recorded_process(record):
        _signal_group(record.pgid, signal.SIGKILL)
    if await _wait_gone(record, KILL_WAIT, clock):
        log.info("agent %s: leftover pid %d killed", agent_id, record.pid)
        return True
    log.error("agent %s: leftover pid %d did not exit after SIGKILL", agent_id, record.pid)
    return False
