"""The self-update watchdog: ``python -m opsfleet.daemon.updates.watchdog WORK_DIR PID -- DAEMON_ARGS``.

Started detached, from the base installation, just before a daemon hands over to a new
version. It waits until the trial's deadline; a trial still there then was never confirmed
(the new version did not register): the daemon (PID) is stopped, the previous version made
current again, and - unless systemd restarts the daemon (``INVOCATION_ID``) - this process
becomes the daemon again (``execve`` of ``opsfleet daemon DAEMON_ARGS``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from opsfleet.daemon.updates.selfupdate import read_trial, roll_back

log = logging.getLogger("opsfleet.daemon.updates.watchdog")

STOP_WAIT = 15.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our parent's child not reaped yet) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _stop(pid: int) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s watchdog %(levelname)s %(message)s")
    work_dir, pid = Path(argv[0]), int(argv[1])
    daemon_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    trial = read_trial(work_dir)
    if trial is None:
        return 0
    while time.time() < trial.deadline:
        time.sleep(0.2)
        current = read_trial(work_dir)
        if current is None or current.version != trial.version:
            log.info("daemon %s confirmed; watchdog done", trial.version)
            return 0
    log.warning("daemon %s did not register within the grace period: rolling back", trial.version)
    _stop(pid)
    current = read_trial(work_dir)
    if current is None or current.version != trial.version:
        return 0
    roll_back(work_dir, current, f"daemon {trial.version} did not register within the grace period")
    if "INVOCATION_ID" in os.environ:  # systemd restarts the unit (Restart=always)
        return 0
    os.execv(sys.executable, [sys.executable, "-m", "opsfleet", *daemon_args])
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
