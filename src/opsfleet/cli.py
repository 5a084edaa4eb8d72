"""The ``opsfleet`` command: one entry point, a subcommand per component.

Only this module (and the per-component ``cli`` modules it dispatches to) exits the
process; everything below raises OpsfleetError.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from opsfleet import __version__
from opsfleet.common.errors import ConfigError, OpsfleetError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3


def build_parser() -> argparse.ArgumentParser:
    from opsfleet import demo, sample_agent
    from opsfleet.client import cli as client_cli
    from opsfleet.daemon import cli as daemon_cli
    from opsfleet.manager import ca_cli
    from opsfleet.manager import cli as manager_cli
    from opsfleet.simulator import cli as simulator_cli

    parser = argparse.ArgumentParser(
        prog="opsfleet",
        description="opsfleet: a central Manager and a Daemon on every node that supervises local agents.",
    )
    parser.add_argument("--version", action="version", version=f"opsfleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(sub)
    manager_cli.add_parser(sub)
    ca_cli.add_parser(sub)
    daemon_cli.add_parser(sub)
    simulator_cli.add_parser(sub)
    sample_agent.add_parser(sub)
    client_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"opsfleet: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except OpsfleetError as exc:
        print(f"opsfleet: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
