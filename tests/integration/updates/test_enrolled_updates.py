"""Updates on an enrolled daemon: the fleet key handed over at enrollment, packages over mTLS.

A real Manager with the fleet CA (``grpc.tls.mode: auto``) and a Manager-held signing key;
nodes enroll like ``opsfleet daemon enroll``; a real DaemonApp with an empty
``update.trusted_keys`` is updated through the Manager's own DaemonService client (mTLS).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.common.errors import PermissionDenied, Unavailable
from opsfleet.common.pki import MANAGER_DNS_NAME
from opsfleet.common.signing import create_key_pair, sign
from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from opsfleet.daemon.rpc.artifact_fetch import ManagerArtifacts
from opsfleet.daemon.updates import fleet_keys, package
from opsfleet.daemon.updates.package import Piece
from opsfleet.manager.app import ManagerApp
from opsfleet.manager.services.artifacts import FETCH_CHUNK
from opsfleet.proto import artifacts_pb2, artifacts_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.daemon.conftest import FAST_DAEMON
from tests.integration.security.support import ADMIN_PASSWORD, Fleet
from tests.integration.updates.support import agent_package, agent_spec

MANAGER_KEY = create_key_pair()
OTHER_KEY = create_key_pair()
BIG = os.urandom(2 * FETCH_CHUNK + 1234)  # three pieces


@pytest.fixture
async def start_fleet(
    tmp_path: Path, manager_config: Callable[..., Any]
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Fleet] = []

    async def start(*, signing_key: bool = True) -> Fleet:
        overrides: dict[str, Any] = {"auth__admin_password": ADMIN_PASSWORD, "grpc__tls__mode": "auto"}
        if signing_key:
            key_file = tmp_path / "signing.key"
            key_file.write_bytes(MANAGER_KEY.private_pem)
            overrides["artifacts__signing_key_file"] = str(key_file)
        n = len(started)
        app = ManagerApp(manager_config(f"sqlite:///{tmp_path / f'm{n}.db'}", **overrides))
        await app.start()
        fleet = Fleet(app, tmp_path / f"nodes{n}")
        started.append(fleet)
        return fleet

    yield start
    for fleet in reversed(started):
        await fleet.close()
        await fleet.app.stop()


async def upload(fleet: Fleet, component: str, version: str, data: bytes) -> dict[str, Any]:
    r = await fleet.http.post(
        "/api/v1/artifacts",
        params={"component": component, "version": version},
        content=data,
        headers=await fleet.admin(),
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["data"]
    return result


@pytest.fixture
async def daemons(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    running: list[DaemonApp] = []

    async def start(fleet: Fleet, node_id: str) -> DaemonApp:
        markers = tmp_path / f"markers-{node_id}"
        markers.mkdir(exist_ok=True)
        settings = {
            **FAST_DAEMON,
            "manager.address": f"127.0.0.1:{fleet.app.grpc_port}",
            "daemon.work_dir": str(fleet.root / node_id),
            "daemon.id": node_id,
            "collectors.cpu.enabled": False,
            "collectors.memory.enabled": False,
            "collectors.disk.enabled": False,
            "collectors.network.enabled": False,
            "agents": [agent_spec("web", markers)],
            "update.trusted_keys": [],
            "update.grace_period": 1.0,
        }
        app = DaemonApp(load_daemon_config(None, {}, settings))
        await app.start()
        running.append(app)
        assert app.link is not None
        link = app.link
        await assert_eventually(lambda: link.registered, timeout=10)
        return app

    yield start
    for app in reversed(running):
        await app.stop()


async def test_enrolled_daemon_trusts_the_fleet_key_and_fetches_over_mtls(
    start_fleet: Callable[..., Any], daemons: Callable[..., Any]
) -> None:
    fleet: Fleet = await start_fleet()
    await fleet.enroll("n1", await fleet.token())
    stored = json.loads(fleet_keys.keys_path(fleet.root / "n1").read_text())
    assert stored == {"keys": [MANAGER_KEY.public_b64]}
    one = await upload(fleet, "agent:web", "1", agent_package("1"))
    two = await upload(fleet, "agent:web", "2", agent_package("2"))
    daemon: DaemonApp = await daemons(fleet, "n1")
    client = fleet.app.daemon_clients.client("n1", daemon.daemon_address())

    # Signed by the Manager's key on upload; no download URL: the package comes over mTLS.
    reply = await client.push_update(
        component="agent:web", version="1", download_url="", sha256=one["sha256"], signature=one["signature"]
    )
    assert reply.startswith("accepted"), reply

    async def outcome() -> Any:
        status = await client.update_status("agent:web")
        return status if status is not None and status.finished_at else None

    done = await assert_eventually(outcome, timeout=20, interval=0.1)
    assert (done.version, done.state) == ("1", "done"), done.message
    assert ("/artifacts.ArtifactService/FetchArtifact", "OK") in fleet.app.telemetry._rpc_children

    # The same package signed by a key neither configured nor handed over: refused, nothing changes.
    forged = sign(OTHER_KEY.private_pem, "agent:web", "2", two["sha256"])
    with pytest.raises(PermissionDenied, match="signature does not match"):
        await client.push_update(
            component="agent:web", version="2", download_url="", sha256=two["sha256"], signature=forged
        )
    assert daemon.supervisor is not None and daemon.supervisor.agent("web").version == "1"

    # Each certificate renewal hands the keys over again (and replaces what is stored).
    keys_file = fleet_keys.keys_path(fleet.root / "n1")
    keys_file.unlink()
    assert daemon.renewer is not None
    await daemon.renewer.renew_once()
    assert json.loads(keys_file.read_text()) == {"keys": [MANAGER_KEY.public_b64]}


async def test_no_signing_key_hands_over_nothing_and_updates_stay_refused(
    start_fleet: Callable[..., Any], daemons: Callable[..., Any]
) -> None:
    fleet: Fleet = await start_fleet(signing_key=False)
    result = await fleet.enroll("n2", await fleet.token())
    assert result.update_keys == ()
    assert not fleet_keys.keys_path(fleet.root / "n2").exists()
    daemon: DaemonApp = await daemons(fleet, "n2")
    client = fleet.app.daemon_clients.client("n2", daemon.daemon_address())
    data = agent_package("1")
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(PermissionDenied, match="no trusted update key"):
        await client.push_update(
            component="agent:web",
            version="1",
            download_url="",
            sha256=digest,
            signature=sign(OTHER_KEY.private_pem, "agent:web", "1", digest),
        )


async def test_fetch_artifact_is_bound_to_the_node_certificate(start_fleet: Callable[..., Any]) -> None:
    fleet: Fleet = await start_fleet()
    art = await upload(fleet, "agent:web", "9", BIG)
    mine = await fleet.enrolled("a1")
    await fleet.enrolled("b1")

    def request(node_id: str, offset: int = 0) -> artifacts_pb2.FetchArtifactRequest:
        return artifacts_pb2.FetchArtifactRequest(
            node_id=node_id, component="agent:web", version="9", sha256=art["sha256"], offset=offset
        )

    stub = artifacts_pb2_grpc.ArtifactServiceStub(mine.channel)
    chunks = [c async for c in stub.FetchArtifact(request("a1"), timeout=10)]
    assert b"".join(c.data for c in chunks) == BIG and {c.size for c in chunks} == {len(BIG)}
    rest = [c async for c in stub.FetchArtifact(request("a1", offset=FETCH_CHUNK + 7), timeout=10)]
    assert rest[0].offset == FETCH_CHUNK + 7 and b"".join(c.data for c in rest) == BIG[FETCH_CHUNK + 7 :]

    with pytest.raises(grpc.aio.AioRpcError) as other:
        _ = [c async for c in stub.FetchArtifact(request("b1"), timeout=10)]
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED

    wrong = artifacts_pb2.FetchArtifactRequest(
        node_id="a1", component="agent:web", version="9", sha256="0" * 64
    )
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        _ = [c async for c in stub.FetchArtifact(wrong, timeout=10)]
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    # No client certificate: the main port's TLS handshake refuses the caller.
    anonymous = artifacts_pb2_grpc.ArtifactServiceStub(fleet.stubs(None).channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        _ = [c async for c in anonymous.FetchArtifact(request("a1"), timeout=5)]
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # The enrollment port (no client certificates) does not serve it at all.
    enroll_channel = grpc.aio.secure_channel(
        fleet.enroll_address,
        grpc.ssl_channel_credentials(root_certificates=fleet.material("a1").ca_pem),
        options=[("grpc.ssl_target_name_override", MANAGER_DNS_NAME)],
    )
    fleet.channels.append(enroll_channel)
    with pytest.raises(grpc.aio.AioRpcError) as unserved:
        _ = [
            c
            async for c in artifacts_pb2_grpc.ArtifactServiceStub(enroll_channel).FetchArtifact(
                request("a1"), timeout=5
            )
        ]
    assert unserved.value.code() == grpc.StatusCode.UNIMPLEMENTED


class BreakOnce:
    """The real source, cut after its first piece on the first call; records each call's offset."""

    def __init__(self, inner: ManagerArtifacts) -> None:
        self.inner = inner
        self.offsets: list[int] = []

    async def pieces(
        self, component: str, version: str, sha256: str, offset: int
    ) -> AsyncGenerator[Piece, None]:
        self.offsets.append(offset)
        first_call = len(self.offsets) == 1
        async for piece in self.inner.pieces(component, version, sha256, offset):
            yield piece
            if first_call:
                raise Unavailable("connection reset by the test")


async def test_interrupted_fetch_resumes_from_the_offset(
    start_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    fleet: Fleet = await start_fleet()
    art = await upload(fleet, "agent:web", "9", BIG)
    stubs = await fleet.enrolled("r1")
    source = BreakOnce(ManagerArtifacts(lambda: stubs.channel, "r1"))
    dest = tmp_path / "incoming" / "pkg"
    await package.fetch(
        source, dest, component="agent:web", version="9", sha256=art["sha256"], max_bytes=10**7, timeout=10
    )
    assert source.offsets == [0, FETCH_CHUNK]
    assert dest.read_bytes() == BIG and not dest.with_name("pkg.part").exists()

    # A part file already holding everything: one empty piece tells the size, nothing is re-sent.
    dest.rename(dest.with_name("pkg.part"))
    again = BreakOnce(ManagerArtifacts(lambda: stubs.channel, "r1"))
    again.offsets.append(-1)  # not the first call: no break
    await package.fetch(
        again, dest, component="agent:web", version="9", sha256=art["sha256"], max_bytes=10**7, timeout=10
    )
    assert again.offsets == [-1, len(BIG)] and dest.read_bytes() == BIG


@pytest.fixture
def package_server() -> Iterator[Callable[[bytes], str]]:
    """A plain HTTP server handing out one package (what a download_url elsewhere points at)."""
    served: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(data: bytes) -> str:
        served["/pkg"] = data
        return f"http://127.0.0.1:{server.server_address[1]}/pkg"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_package_the_manager_does_not_hold_comes_from_the_download_url(
    start_fleet: Callable[..., Any], daemons: Callable[..., Any], package_server: Callable[[bytes], str]
) -> None:
    fleet: Fleet = await start_fleet()
    await fleet.enroll("f1", await fleet.token())
    daemon: DaemonApp = await daemons(fleet, "f1")
    data = agent_package("5")
    digest = hashlib.sha256(data).hexdigest()
    client = fleet.app.daemon_clients.client("f1", daemon.daemon_address())
    reply = await client.push_update(
        component="agent:web",
        version="5",
        download_url=package_server(data),
        sha256=digest,
        signature=sign(MANAGER_KEY.private_pem, "agent:web", "5", digest),
    )
    assert reply.startswith("accepted"), reply

    async def outcome() -> Any:
        status = await client.update_status("agent:web")
        return status if status is not None and status.finished_at else None

    done = await assert_eventually(outcome, timeout=20, interval=0.1)
    assert (done.version, done.state) == ("5", "done"), done.message
    assert ("/artifacts.ArtifactService/FetchArtifact", "NOT_FOUND") in fleet.app.telemetry._rpc_children
