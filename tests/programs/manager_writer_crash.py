"""``opsfleet manager`` whose metrics writer crashes after committing its first batch.

Usage: ``manager_writer_crash.py <opsfleet manager flags>``. Flags, config, the ManagerApp
and the exit-code path are those of ``opsfleet manager``; the one difference is a seam: the
app's batch observer (telemetry, called inside the writer task) raises, as a bug would.
"""

from __future__ import annotations

import sys

from opsfleet.cli import build_parser
from opsfleet.common.logs import configure_logging
from opsfleet.manager import cli as manager_cli
from opsfleet.manager.app import ManagerApp


def observe(rows: int, seconds: float) -> None:
    raise RuntimeError(f"telemetry bug after a batch of {rows} rows")


def main() -> int:
    args = build_parser().parse_args(["manager", *sys.argv[1:]])
    config = manager_cli.config_from_args(args)
    configure_logging(config.log.level)
    app = ManagerApp(config)
    app.metrics.batch_observer = observe
    return manager_cli.serve(app)


if __name__ == "__main__":
    sys.exit(main())
