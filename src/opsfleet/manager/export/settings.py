"""The ``export:`` section of manager.yaml: where stored samples are forwarded."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from opsfleet.common.config import Duration, Section

DEFAULT_BATCH_SIZE = 500
DEFAULT_QUEUE_SIZE = 20_000
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRY_BACKOFF = 0.5
DEFAULT_RETRY_BACKOFF_MAX = 30.0
DEFAULT_MAX_ATTEMPTS = 10

LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RESERVED_LABELS = frozenset({"node_id", "hostname"})


class RemoteWriteSection(Section):
    """Prometheus remote write 1.0 (docs/operations.md). Empty ``url``: nothing is exported.

    ``batch_size`` and ``queue_size`` count stored samples (one report entry of a node, e.g. the
    ``cpu`` sample with all its values); each value becomes one Prometheus sample.
    """

    url: str = ""
    username: str = ""
    password: str = Field(default="", repr=False)
    bearer_token: str = Field(default="", repr=False)
    labels: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=50_000)
    queue_size: int = Field(default=DEFAULT_QUEUE_SIZE, ge=1, le=10_000_000)
    timeout: Duration = Field(default=DEFAULT_TIMEOUT, gt=0, le=600)
    retry_backoff: Duration = Field(default=DEFAULT_RETRY_BACKOFF, gt=0)
    retry_backoff_max: Duration = Field(default=DEFAULT_RETRY_BACKOFF_MAX, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, label_value in value.items():
            if not LABEL_NAME_RE.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
                )
            if name in RESERVED_LABELS:
                raise ValueError(f"label name {name!r} is set by opsfleet for every series")
            if not label_value:
                raise ValueError(f"label {name!r} has an empty value")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> RemoteWriteSection:
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password must be set together (basic auth)")
        if self.bearer_token and self.username:
            raise ValueError("set either username/password or bearer_token, not both")
        if self.retry_backoff_max < self.retry_backoff:
            raise ValueError("retry_backoff_max must be at least retry_backoff")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class ExportSection(Section):
    remote_write: RemoteWriteSection = RemoteWriteSection()
