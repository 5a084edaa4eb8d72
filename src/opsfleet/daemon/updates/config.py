"""The ``update:`` section of daemon.yaml (trusted keys, versions kept, watch period, limits)."""

from __future__ import annotations

from pydantic import Field, field_validator

from opsfleet.common.config import Duration, Section
from opsfleet.common.signing import load_public_key

DEFAULT_KEEP_VERSIONS = 3
DEFAULT_GRACE_PERIOD = 10.0
DEFAULT_MAX_PACKAGE_BYTES = 512 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = 300.0
DEFAULT_ROLLBACK_TIMEOUT = 60.0
DEFAULT_DAEMON_GRACE_PERIOD = 60.0


class UpdateSection(Section):
    """How this daemon accepts updates. No ``trusted_keys``: every update is refused."""

    enabled: bool = True
    trusted_keys: list[str] = Field(default_factory=list)
    keep_versions: int = Field(default=DEFAULT_KEEP_VERSIONS, ge=2)
    grace_period: Duration = Field(default=DEFAULT_GRACE_PERIOD, gt=0)
    self_update: bool = True
    daemon_grace_period: Duration = Field(default=DEFAULT_DAEMON_GRACE_PERIOD, gt=0)
    rollback_timeout: Duration = Field(default=DEFAULT_ROLLBACK_TIMEOUT, gt=0)
    max_package_bytes: int = Field(default=DEFAULT_MAX_PACKAGE_BYTES, ge=1024)
    download_timeout: Duration = Field(default=DEFAULT_DOWNLOAD_TIMEOUT, gt=0)

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            load_public_key(key)  # InvalidArgument -> a validation error naming the key
        return value
