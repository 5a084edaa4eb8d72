"""Manager replicas and daemons as real processes, for the failover tests."""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from opsfleet.manager.domain import MetricSample
from opsfleet.manager.store.sql import SqlStore
from tests.processes import Proc

ADMIN_PASSWORD = "fleet-replica-4711"
JWT_SECRET = "replica-test-secret-0123456789abcdef"  # shared by every replica
HTTP_RE = r"HTTP listening on \S+:(\d+)"

DAEMON_CONFIG = """
manager:
  address: [{addresses}]
  heartbeat_interval: 1s
  reconnect_interval: 200ms
  reconnect_max: 2s
  timeout: 3s
collectors:
  cpu: {{interval: 1s}}
  memory: {{interval: 1s}}
  disk: {{enabled: false}}
  network: {{enabled: false}}
"""


class Replica:
    """One ``opsfleet manager`` process on a shared database.

    ``secure``: the fleet CA's mTLS; the first secure replica creates the CA in its data dir
    and the others are given its files (``ca``), as replicas in production share them."""

    def __init__(self, proc: Proc, grpc_port: int, http_port: int, data_dir: Path) -> None:
        self.proc = proc
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.data_dir = data_dir
        self.enroll_port = 0
        self.fingerprint = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def ca_files(self) -> tuple[Path, Path]:
        return self.data_dir / "ca" / "ca.pem", self.data_dir / "ca" / "ca.key"

    @classmethod
    async def start(
        cls, database_url: str, data_dir: Path, *, secure: bool = False, ca: Replica | None = None
    ) -> Replica:
        env = {"OPSFLEET_JWT__SECRET": JWT_SECRET, "OPSFLEET_ADMIN_PASSWORD": ADMIN_PASSWORD}
        if secure:
            env["OPSFLEET_ENROLLMENT__PORT"] = "0"
        if ca is not None:
            cert, key = ca.ca_files
            env |= {
                "OPSFLEET_ENROLLMENT__CA_CERT_FILE": str(cert),
                "OPSFLEET_ENROLLMENT__CA_KEY_FILE": str(key),
            }
        proc = await Proc.start(
            [
                *("manager", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"),
                *("--database-url", database_url, "--data-dir", str(data_dir)),
                *(() if secure else ("--insecure",)),
            ],
            env=env,
        )
        grpc_port = await proc.grpc_port()
        http = await proc.wait_for_line(HTTP_RE)
        replica = cls(proc, grpc_port, int(http.group(1)), data_dir)
        if secure:
            found = await proc.wait_for_line(r"fleet CA \S+ \(.*\): fingerprint (sha256:[0-9a-f]{64})")
            replica.fingerprint = found.group(1)
            enroll = await proc.wait_for_line(r"enrollment listening on \S+:(\d+)")
            replica.enroll_port = int(enroll.group(1))
        return replica

    async def token(self, uses: int) -> str:
        """A fresh enrollment token for ``uses`` nodes."""
        async with self.admin() as http:
            r = await http.post("/api/v1/enrollment-tokens", json={"max_uses": uses, "expires_in": 600})
            assert r.status_code == 201, r.text
            token: str = r.json()["data"]["token"]
            return token

    async def enroll(self, work: Path, token: str) -> str:
        """``opsfleet daemon enroll`` into ``work``; the node id."""
        proc = await Proc.start(
            [
                *("daemon", "enroll", "--manager", f"127.0.0.1:{self.enroll_port}", "--token", token),
                *("--ca-fingerprint", self.fingerprint, "--work-dir", str(work)),
            ]
        )
        assert await proc.wait(timeout=30) == 0, proc.output
        return _node_id(work)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def ready(self) -> dict[str, Any]:
        """The /ready answer ({} when the replica does not answer)."""
        try:
            async with httpx.AsyncClient(base_url=self.http, timeout=2.0) as client:
                body: dict[str, Any] = (await client.get("/ready")).json()
                return body
        except httpx.HTTPError:
            return {}

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client logged in as the admin."""
        async with httpx.AsyncClient(base_url=self.http, timeout=10.0) as client:
            login = {"username": "admin", "password": ADMIN_PASSWORD}
            r = await client.post("/api/v1/auth/login", json=login)
            r.raise_for_status()
            client.headers["Authorization"] = f"Bearer {r.json()['data']['token']}"
            yield client


class Daemon:
    def __init__(self, proc: Proc) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, work: Path, addresses: list[str]) -> Daemon:
        """A daemon with its work dir in ``work/w`` (enrolled there: mTLS)."""
        cfg = _daemon_config(work, addresses)
        proc = await Proc.start(
            ["daemon", "--config", str(cfg), "--work-dir", str(work / "w"), "--listen", "127.0.0.1:0"]
        )
        return cls(proc)

    async def node_id(self) -> str:
        return (await self.proc.wait_for_line(r"registered with manager \S+ as (\S+)")).group(1)

    def reporting_to(self) -> list[str]:
        """Every Manager address the daemon reported to, in order (one entry per session)."""
        found = []
        for line in self.proc.lines:
            match = re.search(r"reporting to manager (\S+)", line)
            if match:
                found.append(match.group(1))
        return found

    async def stop(self) -> int:
        return await self.proc.stop(signal.SIGTERM)


def _node_id(work: Path) -> str:
    return (work / "node_id").read_text().strip()


def _daemon_config(work: Path, addresses: list[str]) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "daemon.yaml"
    cfg.write_text(DAEMON_CONFIG.format(addresses=", ".join(addresses)))
    return cfg


async def samples(database_url: str, node_id: str, type_: str) -> list[MetricSample]:
    store = SqlStore(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    await store.start()
    try:
        return await store.query_metrics(node_id, type_, 0, 2**40)
    finally:
        await store.close()


def largest_gap(stored: list[MetricSample]) -> int:
    """The largest step between consecutive sample timestamps (seconds)."""
    stamps = [s.timestamp for s in stored]
    return max((b - a for a, b in itertools.pairwise(stamps)), default=0)
