"""Daemon self-update: the installed version chosen at start, the trial of a new version, rollback.

Layout: ``work_dir/versions/daemon/<version>/`` holds a package with the ``opsfleet`` Python
package at its root (a ``.tar.gz``/``.zip`` of the source tree, or a zipapp installed as
``<version>/daemon``), run by the same interpreter with the same installed dependencies;
``current`` points at the version to run; ``trial.json`` exists while a new version is on
trial.

Hand-over (:func:`exec_launcher`): the running daemon stops gracefully and replaces itself
(``execve``, same pid: a service manager sees one process) with the *base* installation's
``opsfleet daemon``, the launcher. The launcher (:func:`boot`) runs before anything else:

- a trial marked ``booted`` means the trial version already started once and the launcher
  runs again: it died (or was stopped by the watchdog) before registering -> roll back;
- otherwise the trial is marked ``booted``;
- then it ``execve``s the current version (``PYTHONPATH`` = its directory).

The new version confirms the trial once it has registered with the Manager
(:func:`confirm`). A watchdog process started before the hand-over, from the base
installation (:mod:`opsfleet.daemon.updates.watchdog`), rolls back when the trial is still
unconfirmed after the grace period: it stops the daemon, switches back and, unless a
service manager restarts the daemon (systemd: ``INVOCATION_ID`` is set), starts it again
itself.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from opsfleet import __version__
from opsfleet.daemon.updates.status import StatusBook
from opsfleet.daemon.updates.versions import VersionStore

log = logging.getLogger(__name__)

COMPONENT = "daemon"
ENV_ACTIVE = "OF_DAEMON_ACTIVE_VERSION"
ENV_BASE_PYTHONPATH = "OF_DAEMON_BASE_PYTHONPATH"
SINGLE_FILE = "daemon"


@dataclass(frozen=True)
class Trial:
    version: str
    previous: str | None
    deadline: float
    booted: bool = False


def _versions(work_dir: Path) -> VersionStore:
    return VersionStore(work_dir / "versions")


def trial_path(work_dir: Path) -> Path:
    return _versions(work_dir).component_dir(COMPONENT) / "trial.json"


def status_book(work_dir: Path) -> StatusBook:
    return StatusBook(work_dir / "updates" / "status.json")


def read_trial(work_dir: Path) -> Trial | None:
    try:
        return Trial(**json.loads(trial_path(work_dir).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring an unreadable %s: %s", trial_path(work_dir), exc)
        return None


def write_trial(work_dir: Path, trial: Trial) -> None:
    path = trial_path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("trial.json.tmp")
    tmp.write_text(json.dumps(asdict(trial)))
    os.replace(tmp, path)


def running_version() -> str:
    """The version of the code running now (an installed one, else the base installation's)."""
    return os.environ.get(ENV_ACTIVE) or __version__


def roll_back(work_dir: Path, trial: Trial, reason: str) -> None:
    """Make the previous version current again, end the trial, record ``rolled_back``."""
    _versions(work_dir).switch(COMPONENT, trial.previous)
    trial_path(work_dir).unlink(missing_ok=True)
    book = status_book(work_dir)
    latest = book.get(COMPONENT)
    if latest is not None and latest.version == trial.version:
        back = trial.previous or "the base installation"
        book.put(
            replace(
                latest,
                state="rolled_back",
                message=f"{reason}; rolled back to {back}",
                finished_at=int(time.time()),
            )
        )
    log.warning("daemon %s rolled back (%s)", trial.version, reason)


def confirm(work_dir: Path, keep: int) -> bool:
    """Called by a daemon that registered: end its trial as ``done``. False when it is not on trial."""
    trial = read_trial(work_dir)
    if trial is None or trial.version != os.environ.get(ENV_ACTIVE):
        return False
    trial_path(work_dir).unlink(missing_ok=True)
    book = status_book(work_dir)
    latest = book.get(COMPONENT)
    if latest is not None and latest.version == trial.version:
        book.put(
            replace(
                latest,
                state="done",
                message=f"daemon {trial.version} registered",
                finished_at=int(time.time()),
            )
        )
    _versions(work_dir).prune(COMPONENT, keep)
    log.info("daemon %s confirmed: registered with the manager", trial.version)
    return True


def boot(work_dir: Path) -> None:
    """The launcher: settle a trial, then exec the current version (returns to run the base code)."""
    if ENV_ACTIVE in os.environ:
        return
    trial = read_trial(work_dir)
    if trial is not None:
        if trial.booted:
            roll_back(work_dir, trial, f"daemon {trial.version} stopped before registering")
        else:
            write_trial(work_dir, replace(trial, booted=True))
    current = _versions(work_dir).current(COMPONENT)
    if current is None:
        return
    directory = _versions(work_dir).version_dir(COMPONENT, current)
    env = dict(os.environ)
    base = env.get("PYTHONPATH", "")
    env[ENV_BASE_PYTHONPATH] = base
    env[ENV_ACTIVE] = current
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), str(directory / SINGLE_FILE), base) if p)
    log.info("starting installed daemon version %s from %s", current, directory)
    os.execve(sys.executable, [sys.executable, "-m", "opsfleet", *sys.argv[1:]], env)


def base_env() -> dict[str, str]:
    """The environment of the base installation (what the launcher and the watchdog run with)."""
    env = dict(os.environ)
    env.pop(ENV_ACTIVE, None)
    base = env.pop(ENV_BASE_PYTHONPATH, None)
    if base is not None:
        if base:
            env["PYTHONPATH"] = base
        else:
            env.pop("PYTHONPATH", None)
    return env


def start_watchdog(work_dir: Path) -> None:
    """A detached watchdog process of the base installation for the trial in ``work_dir``."""
    log_file = work_dir / "updates" / "watchdog.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "opsfleet.daemon.updates.watchdog", str(work_dir), str(os.getpid())]
    with log_file.open("ab") as out:
        subprocess.Popen(
            [*argv, "--", *sys.argv[1:]],
            env=base_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )


def exec_launcher() -> None:
    """Replace this process with the base installation's ``opsfleet daemon`` (same arguments)."""
    logging.shutdown()
    os.execve(sys.executable, [sys.executable, "-m", "opsfleet", *sys.argv[1:]], base_env())
