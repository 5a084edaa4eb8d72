"""``opsfleet daemon``: parse flags, load the config, run the DaemonApp until a signal."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from opsfleet.common.config_sources import split_host_port
from opsfleet.common.daemon_schema import manager_addresses
from opsfleet.common.lifecycle import install_signal_handlers, watch_children_without_threads
from opsfleet.common.logs import configure_logging
from opsfleet.daemon.config import DaemonConfig, load_daemon_config

HELP = """\
Run the Daemon on this node: register with the Manager, send heartbeats and host
metrics (cpu, memory, disk, network), supervise the configured agents and serve the
DaemonService the Manager calls to operate them.

Samples that cannot be delivered wait in an on-disk spool under the work directory
and are sent, in order and exactly once, when the Manager is reachable again.

Configuration precedence: built-in defaults < --config FILE < OPSFLEET_* environment
variables (key path upper-cased, sections joined by '__', e.g.
OPSFLEET_MANAGER__ADDRESS=10.0.0.1:9090) < command-line flags.

Security: `opsfleet daemon enroll --manager HOST:9092 --token TOKEN --ca-fingerprint
sha256:HEX` gives this node its identity once (see `opsfleet daemon enroll --help`); the
daemon then speaks mutual TLS to the Manager and renews its certificate by itself. Without
an identity and without manager.tls settings it speaks plaintext (with a warning), which
only a Manager started with --insecure accepts.

Signals: SIGTERM / Ctrl-C stop gracefully (a second one forces exit); SIGHUP re-reads the
config file and applies intervals, collectors and labels. If a background task (sampler,
manager link, agent supervision) crashes, the daemon stops its agents as usual and exits
with code 70, so a supervisor (systemd Restart=on-failure) restarts it.
"""


ENROLL_HELP = """\
Enroll this node: fetch the Manager's CA from HOST:PORT and accept it only if its SHA-256
fingerprint equals --ca-fingerprint, make a private key here (it never leaves the node),
exchange a certificate request and the token for this node's certificate, and store
tls/node.key (0600), tls/node.pem and tls/ca.pem in the work dir. Prints the node id.
An unavailable, overloaded or slow Manager is retried for up to two minutes with the same
key (a retry after a lost reply gets the certificate without using up another token use).
`opsfleet daemon` then speaks mutual TLS to the Manager with that identity and renews it
before it expires. A daemon whose certificate expired while offline enrolls again with a
new token (see docs/security.md).
"""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "daemon",
        help="run the node Daemon",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", "-c", type=Path, metavar="FILE", help="YAML config file (see configs/daemon.yaml)"
    )
    p.add_argument(
        "--manager",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="Manager gRPC address, or several replicas separated by commas (default 127.0.0.1:9090)",
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where this daemon's DaemonService listens (default 0.0.0.0:9091)",
    )
    p.add_argument(
        "--work-dir", metavar="DIR", help="node id, spool, agent logs and state (default ./data/daemon)"
    )
    p.add_argument("--node-id", metavar="ID", help="fixed node id (default: persisted UUID in the work dir)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    p.set_defaults(handler=run)
    actions = p.add_subparsers(dest="daemon_action", metavar="ACTION")
    e: argparse.ArgumentParser = actions.add_parser(
        "enroll",
        help="enroll this node with a token (makes its key and stores its certificate)",
        description=ENROLL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument(
        "--manager", required=True, metavar="HOST:PORT", help="the Manager's enrollment port (9092)"
    )
    e.add_argument("--token", required=True, help="an enrollment token (opsfleet tokens create)")
    e.add_argument(
        "--ca-fingerprint", required=True, metavar="sha256:HEX", help="the fleet CA (opsfleet ca fingerprint)"
    )
    e.add_argument(
        "--config", "-c", type=Path, metavar="FILE", help="YAML config file (daemon.id, daemon.work_dir)"
    )
    e.add_argument("--work-dir", metavar="DIR", help="where the identity is stored (default ./data/daemon)")
    e.add_argument("--node-id", metavar="ID", help="fixed node id (default: persisted UUID in the work dir)")
    e.set_defaults(handler=run_enroll)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "manager.address": args.manager,
        "daemon.work_dir": args.work_dir,
        "daemon.id": args.node_id,
        "daemon.log_level": args.log_level,
    }
    if args.manager:
        manager_addresses(args.manager, key="--manager")
    if args.listen:
        host, port = split_host_port(args.listen, key="--listen")
        overrides |= {"daemon.grpc_host": host, "daemon.grpc_port": port}
    return overrides


def run(args: argparse.Namespace) -> int:
    from opsfleet.daemon.app import DaemonApp
    from opsfleet.daemon.updates import selfupdate

    configure_logging("info")
    overrides = overrides_from_args(args)

    def load() -> DaemonConfig:
        return load_daemon_config(args.config, os.environ, overrides)

    config = load()
    configure_logging(config.daemon.log_level)
    # The launcher: settles a self-update on trial and execs the installed version, if any.
    selfupdate.boot(config.work_dir)
    apps: list[DaemonApp] = []

    async def _main() -> int:
        watch_children_without_threads()
        stop = asyncio.Event()
        app = DaemonApp(config, reload_config=load if args.config else None)
        apps.append(app)
        reloads: list[asyncio.Task[None]] = []

        def on_reload() -> None:
            reloads.append(asyncio.create_task(app.reload(), name="daemon:reload"))

        install_signal_handlers(stop, on_reload=on_reload, on_force=lambda: os._exit(130))
        code = await app.run(stop)
        for task in reloads:
            await task
        return code

    code = asyncio.run(_main())
    if code == 0 and apps and apps[0].handover_requested:
        selfupdate.exec_launcher()
    return code


def run_enroll(args: argparse.Namespace) -> int:
    from opsfleet.daemon.enroll import enroll
    from opsfleet.daemon.identity import load_node_id

    configure_logging("warning")
    split_host_port(args.manager, key="--manager")
    overrides = {"daemon.work_dir": args.work_dir, "daemon.id": args.node_id}
    config = load_daemon_config(args.config, os.environ, overrides)
    node_id = load_node_id(config.daemon.id, config.work_dir)
    result = enroll(
        address=args.manager,
        token=args.token,
        ca_fingerprint=args.ca_fingerprint,
        work_dir=config.work_dir,
        node_id=node_id,
    )
    labels = ",".join(f"{k}={v}" for k, v in sorted(result.labels.items()))
    print(result.node_id)
    print(
        f"enrolled; identity stored in {config.work_dir / 'tls'}" + (f"; labels {labels}" if labels else ""),
        file=sys.stderr,
    )
    return 0
