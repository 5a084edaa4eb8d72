"""The ``opsfleet`` command: one entry point, a subcommand per component.

Only this module (and the per-component ``cli`` modules it dispatches to) exits the
process; everything below raises OpsfleetError.

Each component's commands are registered from its own ``cli`` module, imported only when
needed: ``opsfleet daemon ...`` imports the daemon's alone, so a node loads nothing of the
Manager, the client or the simulator (and may have installed nothing but ``opsfleet``'s
base dependencies). A component whose optional dependencies are not installed (the
``manager`` or ``cli`` extra, see ``pyproject.toml``) still has its commands listed; they
fail with :class:`MissingExtraError`, which names the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsfleet import __version__
from opsfleet.common.errors import ConfigError, OpsfleetError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3


class MissingExtraError(OpsfleetError):
    """A command needs a library of an extra (``opsfleet[manager]``, ``opsfleet[cli]``) not installed."""

    def __init__(self, command: str, extra: str, module: str) -> None:
        super().__init__(
            f"`opsfleet {command}` needs the optional dependencies of opsfleet[{extra}] "
            f"(module {module!r} is not installed): pip install 'opsfleet[{extra}]' "
            "(or 'opsfleet[all]' for every component)"
        )
        self.extra = extra
        self.module = module


@dataclass(frozen=True)
class Component:
    """A component's commands: registered by ``module.register(sub)``; its libraries come with ``extra``."""

    module: str
    register: str
    commands: tuple[str, ...]
    extra: str
    """The extra that installs its libraries ("" = the base dependencies)."""


COMPONENTS = (
    Component("opsfleet.demo", "add_parser", ("demo",), "manager"),
    Component("opsfleet.manager.cli", "add_parser", ("manager",), "manager"),
    Component("opsfleet.manager.ca_cli", "add_parser", ("ca",), "manager"),
    Component("opsfleet.daemon.cli", "add_parser", ("daemon",), ""),
    Component("opsfleet.simulator.cli", "add_parser", ("simulate",), ""),
    Component("opsfleet.sample_agent", "add_parser", ("sample-agent",), ""),
    Component(
        "opsfleet.client.cli",
        "add_parsers",
        (
            "login",
            "logout",
            "nodes",
            "agents",
            "events",
            "metrics",
            "policies",
            "users",
            "tokens",
            "keys",
            "artifacts",
            "rollouts",
            "alerts",
        ),
        "cli",
    ),
)


def missing_module(exc: ModuleNotFoundError) -> str | None:
    """The third-party module ``exc`` is about (None: a module of opsfleet itself is missing)."""
    top = (exc.name or "").split(".")[0]
    return None if top in ("", "opsfleet") else top


def component_of(command: str | None) -> Component | None:
    return next((c for c in COMPONENTS if command in c.commands), None)


def _register(component: Component, sub: Any) -> None:
    try:
        register = getattr(importlib.import_module(component.module), component.register)
    except ModuleNotFoundError as exc:
        module = missing_module(exc)
        if module is None:
            raise
        for command in component.commands:
            _add_stub(sub, command, MissingExtraError(command, component.extra or "all", module))
        return
    register(sub)


def _add_stub(sub: Any, command: str, error: MissingExtraError) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        command, help=f"(not installed: pip install 'opsfleet[{error.extra}]')", add_help=False
    )
    p.add_argument("args", nargs=argparse.REMAINDER)

    def fail(_: argparse.Namespace) -> int:
        raise error

    p.set_defaults(handler=fail, missing_extra=True)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every component's commands, or only ``command``'s component's."""
    parser = argparse.ArgumentParser(
        prog="opsfleet",
        description="opsfleet: a central Manager and a Daemon on every node that supervises local agents.",
    )
    parser.add_argument("--version", action="version", version=f"opsfleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    only = component_of(command)
    for component in COMPONENTS:
        if only is None or component is only:
            _register(component, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list else None
    component = component_of(command)
    parser = build_parser(command)
    # A command whose extra is missing takes any arguments: it only says what to install.
    args, unknown = parser.parse_known_args(args_list)
    if unknown and not getattr(args, "missing_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code: int = args.handler(args)
    except ModuleNotFoundError as exc:
        module = missing_module(exc)
        if module is None or component is None:
            raise
        error = MissingExtraError(args.command, component.extra or "all", module)
        print(f"opsfleet: {error.message}", file=sys.stderr)
        return EXIT_ERROR
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
