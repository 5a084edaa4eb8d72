"""``opsfleet manager``: parse flags, load the config, run the ManagerApp until a signal."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsfleet.common.config_sources import split_host_port
from opsfleet.common.lifecycle import install_signal_handlers, run_server_loop, tune_server_gc
from opsfleet.common.logs import configure_logging
from opsfleet.manager.config import ManagerConfig, load_manager_config

if TYPE_CHECKING:
    from opsfleet.manager.app import ManagerApp


HELP = """\
Run the Manager: the gRPC services daemons talk to (ManagerService and the manager side
of DaemonService), the fleet database and node liveness.

Configuration precedence: built-in defaults < --config FILE < OPSFLEET_* environment
variables (key path upper-cased, sections joined by '__', e.g. OPSFLEET_GRPC__PORT=9191,
OPSFLEET_DATABASE__URL=postgresql://user@127.0.0.1/opsfleet) < command-line flags.
With no configuration at all the Manager keeps an SQLite database in ./data/opsfleet.db,
creates a fleet CA in ./data/ca/, serves gRPC with mutual TLS on 0.0.0.0:9090 and node
enrollment on 0.0.0.0:9092 (see docs/security.md). --insecure serves plaintext instead,
for the seed's Go daemons only.

SIGTERM or Ctrl-C stops it gracefully (drains in-flight calls, flushes writes);
a second signal forces exit. If a background task (a database writer, the heartbeat
flush, liveness, retention, the HTTP server) crashes, the Manager stops the same way and
exits with code 70, so a supervisor (systemd Restart=on-failure) restarts it.
"""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "manager",
        help="run the central Manager",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", "-c", type=Path, metavar="FILE", help="YAML config file (see configs/manager.yaml)"
    )
    p.add_argument("--grpc-listen", metavar="HOST:PORT", help="gRPC listen address (default 0.0.0.0:9090)")
    p.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help="REST API and dashboard listen address (default 0.0.0.0:8080)",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://user@host:5432/db",
    )
    p.add_argument(
        "--data-dir", metavar="DIR", help="directory for the default SQLite database (default ./data)"
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext, unauthenticated gRPC (grpc.tls.mode off) for the seed's daemons: NOT for production",
    )
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> ManagerConfig:
    overrides: dict[str, Any] = {"database.url": args.database_url, "data_dir": args.data_dir}
    if args.log_level:
        overrides["log.level"] = args.log_level
    if getattr(args, "insecure", False):
        overrides["grpc.tls.mode"] = "off"
    if args.grpc_listen:
        host, port = split_host_port(args.grpc_listen, key="--grpc-listen")
        overrides |= {"grpc.host": host, "grpc.port": port}
    if args.http_listen:
        host, port = split_host_port(args.http_listen, key="--http-listen")
        overrides |= {"server.host": host, "server.port": port}
    return load_manager_config(args.config, os.environ, overrides)


def run(args: argparse.Namespace) -> int:
    from opsfleet.manager.app import INSECURE_WARNING, ManagerApp

    configure_logging("info")
    config = config_from_args(args)
    configure_logging(config.log.level)
    if config.tls_mode == "off":
        print(INSECURE_WARNING, file=sys.stderr, flush=True)

    tune_server_gc()

    return serve(ManagerApp(config))


def serve(app: ManagerApp) -> int:
    """Run ``app`` until SIGTERM/SIGINT or a crashed background task; the process exit code."""

    async def _main() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop, on_force=lambda: os._exit(130))
        return await app.run(stop)

    return run_server_loop(_main())
