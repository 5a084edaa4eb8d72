"""``opsfleet demo``: a Manager on SQLite and a local Daemon supervising the sample agent,
in one process, until Ctrl-C.

The demo runs the secure path: the Manager serves mutual TLS with its fleet CA, and the demo
creates an enrollment token and enrolls its local daemon itself (pinning the CA fingerprint)
before starting it, as an operator would with ``opsfleet tokens create`` and
``opsfleet daemon enroll``.

The demo keeps its state in ``--data-dir`` (default ``./demo-data``): the database, the
daemon's work dir and the admin password (``admin-password``, created once, mode 0600), so
a second run shows the history of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import InvalidArgument, Unavailable
from opsfleet.common.lifecycle import install_signal_handlers
from opsfleet.common.logs import configure_logging

if TYPE_CHECKING:  # the apps are imported when the demo runs, keeping `opsfleet --help` fast
    from opsfleet.manager.app import ManagerApp

log = logging.getLogger(__name__)

HELP = """\
Run a complete opsfleet on this machine: a Manager (SQLite database, gRPC, REST API and
dashboard, fleet CA) and a Daemon enrolled and registered with it over mutual TLS that
supervises the sample agent (opsfleet sample-agent). When the node is online the
dashboard URL, the admin credentials and the CA fingerprint are printed. Ctrl-C stops
the agent, the daemon and the manager cleanly.
"""

NODE_ONLINE_TIMEOUT = 60.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run a Manager and a local Daemon with a sample agent", description=HELP
    )
    p.add_argument(
        "--data-dir", type=Path, default=Path("demo-data"), help="state directory (default ./demo-data)"
    )
    p.add_argument(
        "--http-listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="dashboard and REST API"
    )
    p.add_argument("--grpc-listen", default="127.0.0.1:9090", metavar="HOST:PORT", help="Manager gRPC")
    p.add_argument(
        "--enroll-listen", default="127.0.0.1:9092", metavar="HOST:PORT", help="Manager enrollment port"
    )
    p.add_argument(
        "--daemon-listen", default="127.0.0.1:0", metavar="HOST:PORT", help="Daemon gRPC (0: any port)"
    )
    p.add_argument("--interval", default="5s", help="heartbeat and collector interval (default 5s)")
    p.set_defaults(handler=run)


def _random_admin_password() -> str:
    """16 random characters that pass the Manager's password policy (drawn again in the rare
    case that they contain the username "admin")."""
    from opsfleet.manager.services.password_policy import check_password

    while True:
        candidate = secrets.token_urlsafe(12)
        try:
            return check_password(candidate, "admin")
        except InvalidArgument:
            continue


def admin_password(data_dir: Path) -> str:
    """OPSFLEET_ADMIN_PASSWORD, else the demo's own password file (created once)."""
    env = os.environ.get("OPSFLEET_ADMIN_PASSWORD")
    if env:
        return env
    path = data_dir / "admin-password"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    password = _random_admin_password()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_configs(args: argparse.Namespace, password: str) -> tuple[Any, Any]:
    from opsfleet.daemon.config import load_daemon_config
    from opsfleet.manager.config import load_manager_config

    data_dir: Path = args.data_dir.resolve()
    http_host, http_port = split_host_port(args.http_listen, key="--http-listen")
    grpc_host, grpc_port = split_host_port(args.grpc_listen, key="--grpc-listen")
    d_host, d_port = split_host_port(args.daemon_listen, key="--daemon-listen")
    e_host, e_port = split_host_port(args.enroll_listen, key="--enroll-listen")
    manager = load_manager_config(
        None,
        {},
        {
            "data_dir": str(data_dir / "manager"),
            "server.host": http_host,
            "server.port": http_port,
            "grpc.host": grpc_host,
            "grpc.port": grpc_port,
            "grpc.tls.mode": "auto",
            "enrollment.host": e_host,
            "enrollment.port": e_port,
            "auth.admin_password": password,
            "node.offline_after": "1m",
        },
    )
    agent_port = _free_port()
    daemon = load_daemon_config(
        None,
        {},
        {
            "manager.address": f"127.0.0.1:{grpc_port}",
            "manager.heartbeat_interval": args.interval,
            "manager.reconnect_interval": "1s",
            "daemon.work_dir": str(data_dir / "daemon"),
            "daemon.grpc_host": d_host,
            "daemon.grpc_port": d_port,
            "daemon.labels": {"env": "demo", "role": "sample"},
            "collectors.cpu.interval": args.interval,
            "collectors.memory.interval": args.interval,
            "collectors.disk.interval": args.interval,
            "collectors.network.interval": args.interval,
            "agents": [
                {
                    "id": "sample",
                    "type": "custom",
                    "name": "opsfleet sample agent",
                    "version": "1.0",
                    "binary_path": "opsfleet",
                    "args": ["sample-agent", "--port", str(agent_port)],
                    "metrics_interval": args.interval,
                    "health_check": {
                        "interval": "5s",
                        "http_url": f"http://127.0.0.1:{agent_port}/health",
                        "heartbeat_timeout": "30s",
                    },
                }
            ],
        },
    )
    return manager, daemon


async def wait_online(manager: ManagerApp, node_id: str, timeout: float = NODE_ONLINE_TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        node = await manager.store.get_node(node_id)
        if node is not None and node.status.value == "online":
            return
        await asyncio.sleep(0.2)
    raise Unavailable(f"the local node {node_id} did not come online within {timeout:.0f}s")


async def enroll_local_daemon(manager: ManagerApp, work_dir: Path, node_id: str) -> str:
    """Enroll the demo's daemon unless it holds a current identity; what was done, for the log."""
    from opsfleet.common.pki import load_node_material
    from opsfleet.daemon.enroll import enroll
    from opsfleet.daemon.renewal import expired_message

    existing = load_node_material(work_dir)
    if existing is not None and expired_message(existing) is None:
        return "kept its enrolled identity"
    assert manager.enrollment is not None and manager.ca is not None
    token = await manager.enrollment.create_token(
        max_uses=1, expires_in=600, labels={"enrolled-by": "demo"}, created_by="demo"
    )
    await asyncio.to_thread(
        enroll,
        address=f"127.0.0.1:{manager.enrollment_port}",
        token=token.secret,
        ca_fingerprint=manager.ca.fingerprint,
        work_dir=work_dir,
        node_id=node_id,
    )
    return f"enrolled with token {token.token.id}"


def cli_command() -> str:
    """How to run this opsfleet from a shell as written: the ``opsfleet`` executable that is
    running (relative to the working directory when below it, e.g. ``.venv/bin/opsfleet``),
    else ``<python> -m opsfleet``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "opsfleet" or not script.exists():
        python = Path(sys.executable)
        return f"{_shown(python)} -m opsfleet"
    return _shown(script.absolute())


def _shown(path: Path) -> str:
    try:
        relative = path.absolute().relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(relative) if "/" in str(relative) else f"./{relative}"


def banner(manager: ManagerApp, node_id: str, password: str, http_host: str) -> str:
    cli = cli_command()
    host = "127.0.0.1" if http_host in ("0.0.0.0", "") else http_host
    url = f"http://{host}:{manager.http_port}/"
    fingerprint = manager.ca.fingerprint if manager.ca is not None else "(no fleet CA)"
    return "\n".join(
        [
            "",
            "=" * 72,
            f"  opsfleet demo is running. Dashboard: {url}",
            f"  Log in as admin / {password}",
            f"  Node {node_id} is online over mutual TLS, supervising the 'sample' agent.",
            f"  Fleet CA fingerprint: {fingerprint}",
            f"  CLI: {cli} login --server {url.rstrip('/')} --username admin",
            f"  Enroll another node: {cli} daemon enroll --token <token of `{cli} tokens create`> \\",
            f"      --manager <this-host>:{manager.enrollment_port} --ca-fingerprint {fingerprint}",
            "  Press Ctrl-C to stop.",
            "=" * 72,
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    configure_logging("info")
    password = admin_password(args.data_dir)
    manager_cfg, daemon_cfg = build_configs(args, password)

    from opsfleet.daemon.app import DaemonApp
    from opsfleet.daemon.identity import load_node_id
    from opsfleet.manager.app import ManagerApp

    async def _main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop, on_force=lambda: os._exit(130))
        manager = ManagerApp(manager_cfg)
        daemon = DaemonApp(daemon_cfg)
        try:
            await manager.start()
            work_dir = daemon_cfg.work_dir
            node_id = load_node_id(daemon_cfg.daemon.id, work_dir)
            log.info("demo daemon %s", await enroll_local_daemon(manager, work_dir, node_id))
            await daemon.start()
            await wait_online(manager, daemon.node_id)
            print(banner(manager, daemon.node_id, password, manager_cfg.server.host), flush=True)
            await stop.wait()
        finally:
            await daemon.stop()
            await manager.stop()

    asyncio.run(_main())
    return 0
