"""The gRPC edges of both processes never answer UNKNOWN and never pass on SQL or stack text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy.exc import DataError, OperationalError

from opsfleet.common.errors import DatabaseUnavailable, InvalidArgument
from opsfleet.common.rpc_errors import INTERNAL_MESSAGE, grpc_errors
from opsfleet.daemon.rpc.servicer import DaemonServicer
from opsfleet.manager.store.shield import translate_db_error
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc
from tests.helpers import assert_eventually, scripted_manager
from tests.integration.manager.support import Running

SECRET = "[SQL: SELECT password_hash FROM users] Traceback"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_manager_answers_internal_for_an_unexpected_error(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(node_id: str) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(running.app.nodes, "heartbeat", broken)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await running.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == INTERNAL_MESSAGE
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert logged and "Heartbeat" in logged[0].getMessage()  # the traceback stays server-side
    await assert_eventually(lambda: 'code="INTERNAL"' in running.app.telemetry.render().decode())
    assert 'code="UNKNOWN"' not in running.app.telemetry.render().decode()


class BrokenAgents:
    def agents(self) -> list[Any]:
        raise KeyError(SECRET)

    async def operate(self, agent_id: str, operation: str, timeout: float) -> None:
        raise InvalidArgument(f"no agent {agent_id!r}")

    def resource_history(self, agent_id: str, duration_seconds: float) -> list[Any]:
        raise ZeroDivisionError(SECRET)

    def tail_logs(self, agent_id: str, lines: int, filter: str = "") -> list[str]:
        return []


@pytest.fixture
async def daemon_stub() -> AsyncIterator[daemon_pb2_grpc.DaemonServiceStub]:
    server = grpc.aio.server()
    daemon_pb2_grpc.add_DaemonServiceServicer_to_server(DaemonServicer(BrokenAgents()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield daemon_pb2_grpc.DaemonServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


async def test_daemon_answers_internal_for_an_unexpected_error(
    daemon_stub: daemon_pb2_grpc.DaemonServiceStub,
) -> None:
    for call in (
        daemon_stub.ListAgents(daemon_pb2.ListAgentsRequest()),
        daemon_stub.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="a1", duration_seconds=60)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert info.value.details() == INTERNAL_MESSAGE
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await daemon_stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="x", operation="start"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # errors of the tree keep their code
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await daemon_stub.Register(daemon_pb2.RegisterRequest())
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


class _DriverError(Exception):
    sqlstate = "08006"  # connection failure


class _DriverDataError(Exception):
    sqlstate = "22021"  # character not in repertoire


def test_database_errors_carry_no_statement_text() -> None:
    lost = OperationalError("SELECT password_hash FROM users WHERE id = ?", (1,), _DriverError("gone"))
    error = translate_db_error(lost, "get_user")
    assert isinstance(error, DatabaseUnavailable) and error.retry_after
    assert "SELECT" not in error.message and "password_hash" not in error.message
    bad = DataError("INSERT INTO nodes VALUES (?)", ("a\x00",), _DriverDataError("0x00"))
    rejected = translate_db_error(bad, "upsert_nodes")
    assert isinstance(rejected, InvalidArgument) and "INSERT" not in rejected.message
    generic = OperationalError("INSERT INTO t VALUES (?)", ("x",), _DriverDataError("0x00"))
    assert isinstance(translate_db_error(generic, "w"), InvalidArgument)  # classified by SQLSTATE


class _Aborting(manager_pb2_grpc.ManagerServiceServicer):
    SERVICE = "manager.ManagerService"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.observe_rpc = lambda method, code, seconds: self.seen.append(code)

    @grpc_errors
    async def Heartbeat(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "handler's own abort")


async def test_a_handlers_own_abort_keeps_its_status() -> None:
    servicer = _Aborting()
    async with scripted_manager(servicer) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await manager_pb2_grpc.ManagerServiceStub(channel).Heartbeat(manager_pb2.HeartbeatRequest())
        # The status can reach the client before the handler's wrapper has recorded the call.
        await assert_eventually(lambda: servicer.seen)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert servicer.seen == ["FAILED_PRECONDITION"]
