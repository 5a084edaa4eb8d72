"""What receivers get: Alertmanager API v2 alert objects and the webhook JSON body."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from opsfleet.manager.alerts.model import Alert

SIGNATURE_HEADER = "X-Opsfleet-Signature"
WEBHOOK_VERSION = "1"


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def alert_url(base: str, alert: Alert) -> str:
    return f"{base.rstrip('/')}/#/alerts?id={alert.id}" if base else ""


def alert_annotations(alert: Alert) -> dict[str, str]:
    notes = {"summary": alert.summary, "fingerprint": alert.fingerprint, "alert_id": str(alert.id)}
    if alert.acked_by:
        notes["acknowledged_by"] = alert.acked_by
    return notes


def alertmanager_alert(alert: Alert, *, now: float, resend_interval: float, base_url: str) -> dict[str, Any]:
    """A firing alert ends 4 resend intervals from now unless sent again; a resolved one at its end."""
    ends = alert.ends_at if not alert.firing else now + 4 * resend_interval
    body: dict[str, Any] = {
        "labels": alert.all_labels(),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(ends),
    }
    url = alert_url(base_url, alert)
    if url:
        body["generatorURL"] = url
    return body


def alert_fields(alert: Alert) -> dict[str, Any]:
    """What every JSON form of an alert carries (the REST API and webhooks)."""
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "rule": alert.key.rule,
        "severity": alert.severity,
        "state": alert.state.value,
        "summary": alert.summary,
        "node_id": alert.key.node_id,
        "hostname": alert.hostname,
        "subject": alert.key.subject,
        "labels": alert.all_labels(),
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": rfc3339(alert.ends_at) if alert.ends_at else None,
    }


def webhook_body(alert: Alert, *, base_url: str) -> dict[str, Any]:
    return {
        "version": WEBHOOK_VERSION,
        "status": alert.state.value,
        "alert": {
            **alert_fields(alert),
            "acknowledged_by": alert.acked_by or None,
            "url": alert_url(base_url, alert) or None,
        },
    }


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)
