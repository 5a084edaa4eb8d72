"""Alerts over REST on both database backends: a metric over its threshold fires an alert,
a real webhook receiver gets it (after two refused deliveries, retried, signed), operators
acknowledge and silence it (audit-logged), and it survives a Manager restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsfleet.manager.alerts.payloads import SIGNATURE_HEADER, verify
from tests.helpers import assert_eventually
from tests.integration.web.support import NOW, Web, expect

SECRET = "webhook-secret-31415"


class Receiver:
    """A local HTTP server that answers 500 to the first ``fail_first`` POSTs, then 200."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.accepted: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.attempts += 1
                    ok = receiver.attempts > receiver.fail_first
                    if ok:
                        receiver.accepted.append((body, dict(self.headers.items())))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def alert_settings(receiver: Receiver) -> dict[str, Any]:
    return {
        "alerts__evaluation_interval": 0.1,
        "alerts__retry_base": 0.05,
        "alerts__retry_max": 0.2,
        "alerts__rules__cpu_high__for": 0,
        "alerts__rules__cpu_high__threshold": 90,
        "alerts__webhooks": [{"url": receiver.url, "secret": SECRET}],
    }


async def firing(web: Web, **params: Any) -> list[dict[str, Any]]:
    data = expect(await web.get("/api/v1/alerts", state="firing", **params), 200, 0)["data"]
    items: list[dict[str, Any]] = data["list"]
    return items


async def test_alert_lifecycle_over_rest(
    database_url: str, start_web: Callable[..., Any], receiver: Receiver
) -> None:
    web: Web = await start_web(database_url, **alert_settings(receiver))
    await web.register("node-a", labels={"env": "prod"})
    await web.report("node-a", "cpu", NOW, usage_percent=97.5)

    alerts = await assert_eventually(lambda: firing(web, rule="cpu_high"), timeout=10)
    alert = alerts[0]
    assert alert["node_id"] == "node-a" and alert["hostname"] == "host-node-a"
    assert alert["labels"]["label_env"] == "prod" and alert["severity"] == "warning"
    assert alert["state"] == "firing" and alert["ends_at"] is None and len(alert["fingerprint"]) == 16

    # The webhook refused twice, then took it: retried, signed over the exact body.
    await assert_eventually(lambda: receiver.accepted, timeout=10)
    assert receiver.attempts == 3
    body, headers = receiver.accepted[0]
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret", body, headers[SIGNATURE_HEADER])
    sent = json.loads(body)
    assert sent["status"] == "firing" and sent["alert"]["id"] == alert["id"]
    assert sent["alert"]["rule"] == "cpu_high" and sent["alert"]["hostname"] == "host-node-a"
    stats = expect(await web.get("/api/v1/alerts/notifications"), 200, 0)["data"]["targets"]
    assert [(s["name"], s["sent"], s["failures"], s["dropped"]) for s in stats] == [("webhook-1", 1, 2, 0)]
    assert "HTTP 500" in stats[0]["last_error"]
    metrics = (await web.http.get("/metrics")).text
    assert 'opsfleet_alert_notifications_total{result="failed",target="webhook-1"} 2.0' in metrics

    # Viewers may not act; operators acknowledge and silence; both are audit-logged.
    viewer = await web.user_headers("viewer")
    r = await web.http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=viewer)
    expect(r, 403, r.json()["code"])
    operator = await web.user_headers("operator", "olga")
    r = await web.http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=operator)
    acked = expect(r, 200, 0)["data"]
    assert acked["acknowledged"] and acked["acked_by"] == "olga"
    r = await web.http.post(
        f"/api/v1/alerts/{alert['id']}/silence", json={"duration": "2h"}, headers=operator
    )
    silenced = expect(r, 200, 0)["data"]
    assert silenced["silenced"] and silenced["silenced_by"] == "olga"
    r = await web.http.post(
        f"/api/v1/alerts/{alert['id']}/silence", json={"duration": "soon"}, headers=operator
    )
    expect(r, 400, r.json()["code"])
    audit = expect(await web.get("/api/v1/admin/audit", action="alerts.ack"), 200, 0)["data"]["list"]
    assert sorted((e["username"], e["result"]) for e in audit) == [
        ("olga", "success"),
        ("viewer-user", "failure"),
    ]
    assert f"alert:{alert['id']}" in [e["target"] for e in audit]
    audit = expect(await web.get("/api/v1/admin/audit", action="alerts.silence"), 200, 0)["data"]["list"]
    assert [e["username"] for e in audit] == ["olga", "olga"]  # the refused duration too

    # A restart keeps the firing alert (with its acknowledgement); the next low sample resolves it.
    await web.close()
    await web.app.stop()
    web = await start_web(database_url, **alert_settings(receiver))
    alerts = await firing(web, node="node-a")
    assert [(a["id"], a["acked_by"], a["silenced"]) for a in alerts] == [(alert["id"], "olga", True)]
    await web.report("node-a", "cpu", NOW + 1, usage_percent=12.0)
    assert await assert_eventually(lambda: _resolved(web, alert["id"]), timeout=10)
    assert await firing(web) == []
    r = await web.http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=await web.admin())
    expect(r, 409, r.json()["code"])
    await assert_eventually(lambda: any(json.loads(b)["status"] == "resolved" for b, _ in receiver.accepted))


async def _resolved(web: Web, alert_id: int) -> bool:
    data = expect(await web.get("/api/v1/alerts", state="resolved"), 200, 0)["data"]
    return any(a["id"] == alert_id and a["ends_at"] for a in data["list"])


async def test_list_filters_are_checked(database_url: str, start_web: Callable[..., Any]) -> None:
    web: Web = await start_web(database_url)
    r = await web.get("/api/v1/alerts", state="sleeping")
    expect(r, 400, r.json()["code"])
    r = await web.get("/api/v1/alerts", rule="nope")
    expect(r, 400, r.json()["code"])
    r = await web.get("/api/v1/alerts/999")
    expect(r, 404, r.json()["code"])
    data = expect(await web.get("/api/v1/alerts"), 200, 0)["data"]
    assert data["list"] == [] and data["page_info"]["total"] == 0 and data["firing"] == 0
