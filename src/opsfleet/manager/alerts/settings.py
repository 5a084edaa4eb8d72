"""The ``alerts:`` section of manager.yaml: the built-in rules and where notifications go."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from opsfleet.common.config import Duration, Section

Severity = Literal["info", "warning", "critical"]


class RuleSettings(Section):
    """A rule fires once its condition held for ``for`` (seconds, ``5m``, ...)."""

    enabled: bool = True
    severity: Severity = "warning"
    for_: Duration = Field(default=0.0, ge=0, alias="for")


class NodeOfflineRule(RuleSettings):
    severity: Severity = "critical"


class AgentFailedRule(RuleSettings):
    severity: Severity = "critical"


class AgentFlappingRule(RuleSettings):
    """``restarts`` starts of an agent (a new process id) within ``window``."""

    restarts: int = Field(default=5, ge=2)
    window: Duration = Field(default=600.0, gt=0)


class UsageRule(RuleSettings):
    """``usage_percent`` of the metric type above ``threshold`` for ``for``."""

    threshold: float = Field(default=90.0, gt=0, le=100)
    for_: Duration = Field(default=300.0, ge=0, alias="for")


class RulesSection(Section):
    node_offline: NodeOfflineRule = NodeOfflineRule()
    agent_failed: AgentFailedRule = AgentFailedRule()
    agent_flapping: AgentFlappingRule = AgentFlappingRule()
    cpu_high: UsageRule = UsageRule()
    memory_high: UsageRule = UsageRule()
    disk_high: UsageRule = UsageRule()
    config_apply_failed: RuleSettings = RuleSettings()
    update_rolled_back: RuleSettings = RuleSettings()


def _http_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


class AlertmanagerSection(Section):
    """Prometheus Alertmanager (API v2). Firing alerts are sent again every ``resend_interval``
    with ``endsAt`` = now + 4 x ``resend_interval``, so Alertmanager expires them if the
    Manager goes away; a resolved alert is sent once with its end time."""

    url: str = ""
    resend_interval: Duration = Field(default=60.0, gt=0)
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class WebhookSection(Section):
    """A JSON POST per transition, signed with HMAC-SHA256 of the body when ``secret`` is set."""

    url: str
    secret: str = Field(default="", repr=False)
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class AlertsSection(Section):
    """Alert rules and notifications (docs/alerting.md)."""

    enabled: bool = True
    evaluation_interval: Duration = Field(default=5.0, gt=0)
    external_url: str = ""
    rules: RulesSection = RulesSection()
    alertmanager: AlertmanagerSection = AlertmanagerSection()
    webhooks: list[WebhookSection] = Field(default_factory=list)
    max_attempts: int = Field(default=5, ge=1, le=50)
    retry_base: Duration = Field(default=1.0, gt=0)
    retry_max: Duration = Field(default=60.0, gt=0)
    queue_size: int = Field(default=10_000, ge=10)
