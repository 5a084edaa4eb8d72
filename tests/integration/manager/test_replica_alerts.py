"""Alerts with several Manager replicas: the leader alone evaluates, stores and notifies.

A node's data reported to a follower is forwarded to the leader; a new leader adopts the
alerts left firing instead of firing them again; a resolution reported through any replica
resolves the alert (PostgreSQL only: SQLite allows one Manager)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsfleet.proto import daemon_pb2, manager_pb2
from tests.helpers import assert_eventually
from tests.integration.manager.support import Running

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


class Receiver:
    """A local webhook receiver that keeps (status, alert id) of every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with receiver.lock:
                    receiver.deliveries.append((body["status"], body["alert"]["id"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self, status: str) -> int:
        with self.lock:
            return sum(1 for s, _ in self.deliveries if s == status)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def settings(receiver: Receiver) -> dict[str, Any]:
    return {
        "alerts__evaluation_interval": 0.1,
        "alerts__webhooks": [{"url": f"http://127.0.0.1:{receiver.server.server_address[1]}/hook"}],
    }


def agents(status: str) -> daemon_pb2.SyncAgentStatesRequest:
    state = daemon_pb2.AgentState(agent_id="fb", status=status, pid=10, type="filebeat", version="8")
    return daemon_pb2.SyncAgentStatesRequest(node_id="n1", states=[state])


async def test_one_replica_owns_alerts_across_failover(
    database_url: str, start_manager: Callable[..., Any], receiver: Receiver
) -> None:
    a: Running = await start_manager(database_url, **settings(receiver))
    await assert_eventually(lambda: a.app.leadership.is_leader)
    b: Running = await start_manager(database_url, **settings(receiver))
    await b.manager.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h1", ip="10.0.0.1"))

    async def firing() -> list[int]:
        page = await b.app.alerts.search(1, 50, state="firing", rule="agent_failed")
        return [x.id for x in page.items]

    # The failure reaches the follower (B): the leader (A) fires it, once, and notifies once.
    assert (await b.daemon.SyncAgentStates(agents("error"))).success
    await assert_eventually(lambda: receiver.count("firing") == 1, timeout=5)
    (alert_id,) = await firing()
    assert a.app.alerts.firing_count() == 1 and b.app.alerts.firing_count() == 0
    assert await b.app.alerts.count_firing() == 1
    # Reported again through both replicas: still one alert, no new transition.
    received = a.app.changes.received
    assert (await b.daemon.SyncAgentStates(agents("error"))).success
    assert (await a.daemon.SyncAgentStates(agents("error"))).success
    await assert_eventually(lambda: a.app.changes.received > received, timeout=5)
    assert a.app.alerts.transitions == 1 and b.app.alerts.transitions == 0
    assert await firing() == [alert_id]

    # Acknowledged through the follower: stored, and the leader's copy follows.
    acked = await b.app.alerts.acknowledge(alert_id, "olga")
    assert acked.acked_by == "olga"
    await assert_eventually(lambda: a.app.alerts.engine.firing()[0].acked_by == "olga", timeout=5)

    # The leader stops: B is elected and adopts the firing alert (same id, acknowledgement kept);
    # the failure reported again as soon as B leads (before it loaded the firing alerts) does
    # not fire a new one.
    await a.app.stop()
    await assert_eventually(lambda: b.app.leadership.is_leader, timeout=5)
    assert (await b.daemon.SyncAgentStates(agents("error"))).success
    await assert_eventually(lambda: b.app.alerts.firing_count() == 1, timeout=5)
    held = b.app.alerts.engine.firing()[0]
    assert (held.id, held.acked_by) == (alert_id, "olga")
    assert b.app.alerts.transitions == 0 and await firing() == [alert_id]

    # Resolved through a third replica (a follower): the leader (B) resolves it, notified once.
    c: Running = await start_manager(database_url, **settings(receiver))
    assert not c.app.leadership.is_leader
    assert (await c.daemon.SyncAgentStates(agents("running"))).success
    await assert_eventually(lambda: receiver.count("resolved") == 1, timeout=5)
    assert await firing() == []
    resolved = await c.app.alerts.get(alert_id)
    assert resolved.state.value == "resolved" and resolved.acked_by == "olga"
    assert receiver.count("firing") == 1 and b.app.alerts.transitions == 1 and c.app.alerts.transitions == 0
