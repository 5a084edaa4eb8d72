"""Property-based fuzzing of every request the Manager serves: never UNKNOWN, INTERNAL or 5xx.

A real Manager (SQLite, gRPC and HTTP on port 0) runs in a thread with its own event loop;
Hypothesis drives it through blocking clients with a fixed budget of examples per request
type, derandomized so a CI run is reproducible.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsfleet.manager.app import ManagerApp
from opsfleet.manager.config import load_manager_config
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

ADMIN_PASSWORD = "fleet-fuzzer-7351"
BAD_GRPC = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
EXAMPLES = 60

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Protobuf strings are valid Unicode: anything but lone surrogates, controls included.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
short_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
node_ids = st.one_of(
    st.sampled_from(["fz-1", "fz-2", "", ".", "..", "a" * 128, "a" * 129, "fz-1\x00"]),
    st.from_regex(r"[A-Za-z0-9._:-]{1,130}", fullmatch=True),
    short_text,
)
labels = st.dictionaries(st.one_of(short_text, st.sampled_from(["env", "a" * 64])), any_text, max_size=8)
numbers = st.floats(allow_nan=True, allow_infinity=True)
# Integers beside doubles' range and nesting beside the recursion limit, mixed with anything.
huge_ints = st.one_of(st.sampled_from([10**400, -(10**400), 2**1024, 2**63]), st.integers())
depths = st.one_of(st.sampled_from([1, 999, 1001, 5000, 20_000]), st.integers(1, 20_000))
value_keys = st.one_of(st.sampled_from(["usage_percent", "cores", "idle", "a\x00b", "\n"]), short_text)
int64 = st.integers(-(2**63), 2**63 - 1)
metric_types = st.one_of(st.sampled_from(["cpu", "memory", "disk", "network", "x" * 33]), short_text)
timestamps = st.one_of(st.integers(1_600_000_000, 2_000_000_000), int64)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**400), 10**400)
    | short_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)


class ManagerThread:
    """A ManagerApp running on its own event loop in a thread, for blocking test clients."""

    def __init__(self, data_dir: Path) -> None:
        self._config = load_manager_config(
            None,
            {},
            {
                "grpc.host": "127.0.0.1",
                "grpc.port": 0,
                "server.host": "127.0.0.1",
                "server.port": 0,
                "data_dir": str(data_dir),
                "grpc.shutdown_grace": 1.0,
                "grpc.tls.mode": "off",  # fuzzing the inputs; tests/integration/security covers mTLS
                "database.url": f"sqlite:///{data_dir / 'fuzz.db'}",
                "auth.admin_password": ADMIN_PASSWORD,
            },
        )
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="fuzz-manager")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.app: ManagerApp | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = ManagerApp(self._config)
        try:
            await app.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise
        self.app = app
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await app.stop()

    def start(self) -> ManagerApp:
        self._thread.start()
        assert self._ready.wait(30), "manager did not start"
        if self._failure is not None or self.app is None:
            raise AssertionError(f"manager failed to start: {self._failure!r}")
        return self.app

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class Clients:
    def __init__(self, app: ManagerApp) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        self.manager = manager_pb2_grpc.ManagerServiceStub(self.channel)
        self.daemon = daemon_pb2_grpc.DaemonServiceStub(self.channel)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{app.http_port}", timeout=10.0)
        token = self.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert token.status_code == 200, token.text
        self.admin = {"Authorization": f"Bearer {token.json()['data']['token']}"}

    def close(self) -> None:
        self.http.close()
        self.channel.close()


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    runner = ManagerThread(tmp_path_factory.mktemp("fuzz"))
    app = runner.start()
    c = Clients(app)
    try:
        for node_id in ("fz-1", "fz-2"):
            c.manager.RegisterNode(
                manager_pb2.RegisterNodeRequest(node_id=node_id, hostname=node_id, ip="10.9.9.9")
            )
        yield c
    finally:
        c.close()
        runner.stop()


def rpc_ok(call: Callable[[], Any]) -> None:
    """The call may succeed or fail, but never with UNKNOWN or INTERNAL."""
    try:
        call()
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        assert code not in BAD_GRPC, (code, exc.details())  # type: ignore[attr-defined]


def rest_ok(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["code"] is not None


# ---- ManagerService ----------------------------------------------------------------------


@fuzz
@given(
    node_id=node_ids,
    hostname=any_text,
    ip=any_text,
    os=any_text,
    arch=short_text,
    lbls=labels,
    versions=st.tuples(any_text, short_text),
    address=any_text,
)
def test_register_node(
    clients: Clients,
    node_id: str,
    hostname: str,
    ip: str,
    os: str,
    arch: str,
    lbls: dict[str, str],
    versions: tuple[str, str],
    address: str,
) -> None:
    request = manager_pb2.RegisterNodeRequest(
        node_id=node_id,
        hostname=hostname,
        ip=ip,
        os=os,
        arch=arch,
        labels=lbls,
        daemon_version=versions[0],
        agent_version=versions[1],
        daemon_address=address,
    )
    rpc_ok(lambda: clients.manager.RegisterNode(request))


@fuzz
@given(node_id=node_ids, timestamp=int64)
def test_heartbeat(clients: Clients, node_id: str, timestamp: int) -> None:
    rpc_ok(
        lambda: clients.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id=node_id, timestamp=timestamp))
    )


metric_data = st.builds(
    manager_pb2.MetricData,
    type=metric_types,
    timestamp=timestamps,
    values=st.dictionaries(value_keys, numbers, max_size=12),
)


@fuzz
@given(node_id=st.one_of(st.just("fz-1"), node_ids), metrics=st.lists(metric_data, max_size=6))
def test_report_metrics(clients: Clients, node_id: str, metrics: list[manager_pb2.MetricData]) -> None:
    request = manager_pb2.ReportMetricsRequest(node_id=node_id, metrics=metrics)
    rpc_ok(lambda: clients.manager.ReportMetrics(request))


# ---- DaemonService (the manager's side) ---------------------------------------------------


@fuzz
@given(
    hostname=any_text,
    ip=short_text,
    os=any_text,
    arch=any_text,
    lbls=labels,
    versions=st.tuples(any_text, any_text),
)
def test_daemon_register(
    clients: Clients,
    hostname: str,
    ip: str,
    os: str,
    arch: str,
    lbls: dict[str, str],
    versions: tuple[str, str],
) -> None:
    request = daemon_pb2.RegisterRequest(
        hostname=hostname,
        ip=ip,
        os=os,
        arch=arch,
        labels=lbls,
        daemon_version=versions[0],
        agent_version=versions[1],
    )
    rpc_ok(lambda: clients.daemon.Register(request))


@fuzz
@given(node_id=node_ids, timestamp=int64, status=any_text)
def test_daemon_heartbeat(clients: Clients, node_id: str, timestamp: int, status: str) -> None:
    request = daemon_pb2.HeartbeatRequest(node_id=node_id, timestamp=timestamp, status=status)
    rpc_ok(lambda: clients.daemon.Heartbeat(request))


documents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(metric_types, json_values, max_size=4).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["cpu", "memory", "disk"]),
        st.dictionaries(value_keys, st.one_of(numbers, huge_ints), max_size=6),
        max_size=3,
    ).map(lambda v: json.dumps(v).encode()),
    depths.map(lambda depth: b'{"cpu": ' + b"[" * depth + b"]" * depth + b"}"),
    depths.map(lambda depth: b'{"cpu": ' + b'{"a": ' * depth + b"1" + b"}" * (depth + 1)),
)


@fuzz
@given(node_id=st.one_of(st.just("fz-1"), node_ids), timestamp=int64, data=documents)
def test_daemon_report_metrics(clients: Clients, node_id: str, timestamp: int, data: bytes) -> None:
    request = daemon_pb2.MetricsRequest(node_id=node_id, timestamp=timestamp, data=data)
    rpc_ok(lambda: clients.daemon.ReportMetrics(request))


@fuzz
@given(
    node_id=st.one_of(st.just("fz-1"), node_ids),
    config_type=st.one_of(st.sampled_from(["", "daemon", "agent"]), any_text),
)
def test_daemon_get_config(clients: Clients, node_id: str, config_type: str) -> None:
    request = daemon_pb2.ConfigRequest(node_id=node_id, config_type=config_type)
    rpc_ok(lambda: clients.daemon.GetConfig(request))


agent_states = st.builds(
    daemon_pb2.AgentState,
    agent_id=st.one_of(st.sampled_from(["a1", "a2", "..", ""]), short_text),
    status=st.one_of(st.sampled_from(["running", "stopped"]), any_text),
    pid=st.integers(-(2**31), 2**31 - 1),
    last_heartbeat=int64,
    type=any_text,
    version=any_text,
)


@fuzz
@given(node_id=st.one_of(st.just("fz-2"), node_ids), states=st.lists(agent_states, max_size=5))
def test_daemon_sync_agent_states(
    clients: Clients, node_id: str, states: list[daemon_pb2.AgentState]
) -> None:
    request = daemon_pb2.SyncAgentStatesRequest(node_id=node_id, states=states)
    rpc_ok(lambda: clients.daemon.SyncAgentStates(request))


# ---- REST --------------------------------------------------------------------------------

json_bodies = st.one_of(
    st.fixed_dictionaries({"username": any_text, "password": any_text}),
    st.dictionaries(short_text, json_values, max_size=4),
    json_values,
)


@settings(fuzz, max_examples=20)  # every sign-in costs one scrypt, known user or not
@given(body=json_bodies)
def test_rest_login(clients: Clients, body: Any) -> None:
    rest_ok(clients.http.post("/api/v1/auth/login", json=body))


@fuzz
@given(
    body=st.one_of(
        st.fixed_dictionaries(
            {
                "username": any_text,
                "password": any_text,
                "role": st.one_of(st.sampled_from(["viewer", "admin"]), any_text),
            }
        ),
        json_bodies,
    ),
    user_id=st.one_of(st.integers(-5, 2**64), any_text),
    role=json_values,
)
def test_rest_users(clients: Clients, body: Any, user_id: Any, role: Any) -> None:
    rest_ok(clients.http.post("/api/v1/admin/users", json=body, headers=clients.admin))
    path = quote(str(user_id), safe="")
    rest_ok(clients.http.put(f"/api/v1/admin/users/{path}/role", json={"role": role}, headers=clients.admin))
    rest_ok(clients.http.post(f"/api/v1/admin/users/{path}/disable", headers=clients.admin))


query_values = st.one_of(
    any_text, st.integers(-(2**70), 2**70).map(str), st.sampled_from(["1", "0", "-1", "online"])
)


@fuzz
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "page": query_values,
            "page_size": query_values,
            "status": query_values,
            "label": st.lists(any_text, max_size=3),
            "q": any_text,
        },
    ),
    node_id=st.one_of(st.just("fz-1"), node_ids),
    limit=query_values,
)
def test_rest_nodes(clients: Clients, params: dict[str, Any], node_id: str, limit: str) -> None:
    rest_ok(clients.http.get("/api/v1/nodes", params=params, headers=clients.admin))
    path = quote(node_id, safe="")
    rest_ok(clients.http.get(f"/api/v1/nodes/{path}", headers=clients.admin))
    rest_ok(clients.http.get(f"/api/v1/nodes/{path}/events", params={"limit": limit}, headers=clients.admin))


@fuzz
@given(
    node_id=st.one_of(st.just("fz-2"), node_ids),
    agent_id=st.one_of(st.just("a1"), any_text),
    limit=query_values,
    operation=json_values,
)
def test_rest_agents_and_operations(
    clients: Clients, node_id: str, agent_id: str, limit: str, operation: Any
) -> None:
    node = quote(node_id, safe="")
    agent = quote(agent_id, safe="") or "x"
    base = f"/api/v1/nodes/{node}/agents"
    rest_ok(clients.http.get(base, headers=clients.admin))
    params = {"agent_id": agent_id, "limit": limit}
    rest_ok(clients.http.get(f"{base}/operations", params=params, headers=clients.admin))
    # fz-2 has no daemon address: an operation ends as a recorded failure, never a 5xx.
    rest_ok(
        clients.http.post(f"{base}/{agent}/operate", json={"operation": operation}, headers=clients.admin)
    )


@fuzz
@given(
    node_id=st.one_of(st.just("fz-1"), node_ids),
    metric_type=st.one_of(metric_types, st.just("..")),
    duration=query_values,
    start=st.one_of(query_values, st.datetimes().map(lambda d: d.isoformat() + "Z")),
    end=query_values,
)
def test_rest_metrics(
    clients: Clients, node_id: str, metric_type: str, duration: str, start: str, end: str
) -> None:
    node = quote(node_id, safe="")
    kind = quote(metric_type, safe="") or "cpu"
    rest_ok(clients.http.get(f"/api/v1/metrics/nodes/{node}/latest", headers=clients.admin))
    rest_ok(
        clients.http.get(
            f"/api/v1/metrics/nodes/{node}/summary", params={"duration": duration}, headers=clients.admin
        )
    )
    params = {"start_time": start, "end_time": end}
    rest_ok(
        clients.http.get(f"/api/v1/metrics/nodes/{node}/{kind}/history", params=params, headers=clients.admin)
    )
