"""PushUpdate against a real daemon: signed agent packages, refusals that change nothing, rollback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.daemon.app import DaemonApp
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.updates.support import Signer, agent_package

Stub = daemon_pb2_grpc.DaemonServiceStub


async def agent_info(stub: Stub, agent_id: str = "web") -> daemon_pb2.AgentInfo:
    reply = await stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5)
    return next(a for a in reply.agents if a.id == agent_id)


async def status_of(stub: Stub, component: str = "agent:web") -> daemon_pb2.UpdateStatus | None:
    reply = await stub.GetUpdateStatus(daemon_pb2.UpdateStatusRequest(component=component), timeout=5)
    return reply.updates[0] if reply.updates else None


async def finished(stub: Stub) -> daemon_pb2.UpdateStatus:
    async def done() -> daemon_pb2.UpdateStatus | None:
        status = await status_of(stub)
        return status if status is not None and status.finished_at else None

    result: daemon_pb2.UpdateStatus = await assert_eventually(done, timeout=20)
    return result


def running_code(marker_dir: Path, pid: int) -> str:
    """The version the process ``pid`` wrote into its marker (what code it runs)."""
    return (marker_dir / str(pid)).read_text()


def written_versions(marker_dir: Path) -> set[str]:
    return {p.read_text() for p in marker_dir.iterdir()}


async def install(stub: Stub, signer: Signer, version: str, **package: Any) -> daemon_pb2.UpdateStatus:
    reply = await stub.PushUpdate(
        signer.request("agent:web", version, agent_package(version, **package)), timeout=5
    )
    assert reply.success, reply.message
    assert "accepted" in reply.message
    return await finished(stub)


def node_snapshot(work_dir: Path) -> dict[str, Any]:
    versions = work_dir / "versions"
    files = sorted(str(p.relative_to(versions)) for p in versions.rglob("*")) if versions.exists() else []
    link = versions / "agent:web" / "current"
    return {"files": files, "current": os.readlink(link) if link.is_symlink() else None}


async def test_signed_update_from_1_to_2_runs_the_new_code(
    daemon_factory: Callable[..., Any],
    stub_for: Callable[[DaemonApp], Stub],
    signer: Signer,
    marker_dir: Path,
) -> None:
    app = await daemon_factory()
    stub = stub_for(app)
    status = await install(stub, signer, "1")
    assert status.state == "done", status.message
    info = await agent_info(stub)
    assert (info.version, info.status) == ("1", "running")
    assert running_code(marker_dir, info.pid) == "1"

    status = await install(stub, signer, "2")
    assert (status.state, status.version, status.previous_version) == ("done", "2", "1"), status.message
    info = await agent_info(stub)
    assert (info.version, info.status) == ("2", "running")
    assert running_code(marker_dir, info.pid) == "2"
    package_dir = app.work_dir / "versions" / "agent:web" / "2"
    assert (package_dir / "bin" / "agent.py").is_file()
    assert os.readlink(app.work_dir / "versions" / "agent:web" / "current") == "2"


async def test_version_survives_a_daemon_restart(
    daemon_factory: Callable[..., Any],
    stub_for: Callable[[DaemonApp], Stub],
    signer: Signer,
    marker_dir: Path,
) -> None:
    app = await daemon_factory()
    assert (await install(stub_for(app), signer, "2")).state == "done"
    await app.stop()
    again = await daemon_factory()
    stub = stub_for(again)

    async def running() -> daemon_pb2.AgentInfo | None:
        info = await agent_info(stub)
        return info if info.status == "running" else None

    info = await assert_eventually(running, timeout=10)
    assert info.version == "2"
    assert running_code(marker_dir, info.pid) == "2"
    assert (await status_of(stub)).state == "done"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tamper", "code", "reason"),
    [
        ({"hash_override": "0" * 64}, grpc.StatusCode.PERMISSION_DENIED, "signature does not match"),
        ({"data": b"other bytes"}, grpc.StatusCode.INVALID_ARGUMENT, "hash mismatch"),
        ({"signed_component": "agent:db"}, grpc.StatusCode.PERMISSION_DENIED, "signature does not match"),
        ({"signed_version": "9"}, grpc.StatusCode.PERMISSION_DENIED, "signature does not match"),
        ({"other_key": True}, grpc.StatusCode.PERMISSION_DENIED, "signature does not match"),
    ],
    ids=["wrong-hash", "data-not-matching-hash", "other-component", "other-version", "untrusted-key"],
)
async def test_bad_packages_are_refused_and_nothing_changes(
    daemon_factory: Callable[..., Any],
    stub_for: Callable[[DaemonApp], Stub],
    signer: Signer,
    tamper: dict[str, Any],
    code: grpc.StatusCode,
    reason: str,
) -> None:
    app = await daemon_factory()
    stub = stub_for(app)
    assert (await install(stub, signer, "1")).state == "done"
    before_info = await agent_info(stub)
    before_node = node_snapshot(app.work_dir)
    before_status = await status_of(stub)

    good = agent_package("2")
    request = signer.request(
        "agent:web",
        "2",
        good,
        signed_component=tamper.get("signed_component"),
        signed_version=tamper.get("signed_version"),
        hash_override=tamper.get("hash_override"),
    )
    if "data" in tamper:
        request.update_data = tamper["data"]
    if "other_key" in tamper:
        request.signature = Signer.new().request("agent:web", "2", good).signature
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PushUpdate(request, timeout=5)
    assert caught.value.code() == code
    assert reason in (caught.value.details() or "")

    after_info = await agent_info(stub)
    assert (after_info.version, after_info.pid, after_info.status) == (
        before_info.version,
        before_info.pid,
        before_info.status,
    )
    assert node_snapshot(app.work_dir) == before_node
    assert await status_of(stub) == before_status


async def test_daemon_without_trusted_keys_refuses_every_update(
    daemon_factory: Callable[..., Any], stub_for: Callable[[DaemonApp], Stub], signer: Signer
) -> None:
    app = await daemon_factory(**{"update.trusted_keys": []})
    stub = stub_for(app)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PushUpdate(signer.request("agent:web", "1", agent_package("1")), timeout=5)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "no trusted update key" in (caught.value.details() or "")
    assert not (app.work_dir / "versions").exists()


async def test_a_version_that_exits_at_once_is_rolled_back(
    daemon_factory: Callable[..., Any],
    stub_for: Callable[[DaemonApp], Stub],
    signer: Signer,
    marker_dir: Path,
) -> None:
    app = await daemon_factory()
    stub = stub_for(app)
    assert (await install(stub, signer, "2")).state == "done"

    status = await install(stub, signer, "3", exit_at_once=True)
    assert (status.state, status.version, status.previous_version) == ("rolled_back", "3", "2")
    assert "did not stay up" in status.message and "exit code 3" in status.message
    assert "2 running again" in status.message

    async def back_on_2() -> daemon_pb2.AgentInfo | None:
        info = await agent_info(stub)
        return info if info.status == "running" and info.version == "2" else None

    info = await assert_eventually(back_on_2, timeout=10)
    assert running_code(marker_dir, info.pid) == "2"
    assert os.readlink(app.work_dir / "versions" / "agent:web" / "current") == "2"
    # version 3 did run (and exited) before the rollback
    assert "3" in written_versions(marker_dir)


async def test_second_update_while_one_runs_is_refused(
    daemon_factory: Callable[..., Any], stub_for: Callable[[DaemonApp], Stub], signer: Signer
) -> None:
    app = await daemon_factory(**{"update.grace_period": 3.0})
    stub = stub_for(app)
    first = await stub.PushUpdate(signer.request("agent:web", "1", agent_package("1")), timeout=5)
    assert first.success
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PushUpdate(signer.request("agent:web", "2", agent_package("2")), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "in progress" in (caught.value.details() or "")
    assert (await finished(stub)).version == "1"


async def test_old_versions_are_pruned(
    daemon_factory: Callable[..., Any], stub_for: Callable[[DaemonApp], Stub], signer: Signer
) -> None:
    app = await daemon_factory(**{"update.keep_versions": 2, "update.grace_period": 0.5})
    stub = stub_for(app)
    for version in ("1", "2", "3"):
        assert (await install(stub, signer, version)).state == "done"
    kept = sorted(p.name for p in (app.work_dir / "versions" / "agent:web").iterdir() if not p.is_symlink())
    assert kept == ["2", "3"]
