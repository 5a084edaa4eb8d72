"""Alerts as plain data: identity, state, labels, operator actions. No I/O."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")


class AlertState(enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertKey:
    """What an alert is about: one rule on one node, about one agent or component ("" for the node)."""

    rule: str
    node_id: str
    subject: str = ""

    def fingerprint(self) -> str:
        text = "\x1f".join((self.rule, self.node_id, self.subject))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    """One firing (or resolved) occurrence of a rule. ``id`` is 0 until the row is stored."""

    key: AlertKey
    severity: str
    summary: str
    starts_at: float
    state: AlertState = AlertState.FIRING
    ends_at: float = 0.0
    hostname: str = ""
    node_labels: dict[str, str] = field(default_factory=dict)
    id: int = 0
    acked_by: str = ""
    acked_at: float = 0.0
    silenced_by: str = ""
    silenced_until: float = 0.0
    updated_at: float = 0.0

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint()

    @property
    def firing(self) -> bool:
        return self.state is AlertState.FIRING

    def silenced(self, now: float) -> bool:
        return self.silenced_until > now

    def all_labels(self) -> dict[str, str]:
        """The labels sent to receivers: node labels first, the alert's own names win."""
        base = {"label_" + _LABEL_CHARS.sub("_", k): v for k, v in self.node_labels.items()}
        own = {
            "alertname": self.key.rule,
            "rule": self.key.rule,
            "severity": self.severity,
            "node_id": self.key.node_id,
            "hostname": self.hostname,
        }
        if self.key.subject:
            own["agent" if self.key.rule.startswith("agent_") else "component"] = self.key.subject
        return {**base, **{k: v for k, v in own.items() if v}}
