"""The ``artifacts:`` section of manager.yaml (kept apart so other sections merge cleanly)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from opsfleet.common.config import Duration, Section
from opsfleet.common.errors import ConfigError, InvalidArgument
from opsfleet.common.signing import load_private_key

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_TOKEN_TTL = 3600.0


class ArtifactsSection(Section):
    """Where packages live and how they are signed.

    ``dir`` defaults to ``<data_dir>/artifacts``. With ``signing_key_file`` (an Ed25519 PEM
    made by ``opsfleet keys create``) the Manager signs uploads that come without a signature.
    ``download_base_url`` is the REST API's address as daemons reach it (default: the
    listening address, 127.0.0.1 when listening on every interface).
    """

    dir: str = ""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    signing_key_file: str = ""
    download_token_ttl: Duration = Field(default=DEFAULT_TOKEN_TTL, gt=0)
    download_base_url: str = ""

    def directory(self, data_dir: str) -> Path:
        return Path(self.dir) if self.dir else Path(data_dir) / "artifacts"


def read_signing_key(path: str) -> bytes | None:
    """The PEM of ``artifacts.signing_key_file`` (None when not set); ConfigError naming the key."""
    if not path:
        return None
    try:
        pem = Path(path).read_bytes()
        load_private_key(pem)
    except OSError as exc:
        raise ConfigError(f"config key 'artifacts.signing_key_file': cannot read {path}: {exc}") from exc
    except InvalidArgument as exc:
        raise ConfigError(f"config key 'artifacts.signing_key_file': {exc.message}") from exc
    return pem


class RolloutsSection(Section):
    """How rollouts follow each node: GetUpdateStatus every ``poll_interval`` for at most ``node_timeout``."""

    poll_interval: Duration = Field(default=2.0, gt=0)
    node_timeout: Duration = Field(default=900.0, gt=0)
    # Version pins of policies (``update:``): how often they are checked, how many run at once.
    pin_interval: Duration = Field(default=10.0, gt=0)
    pin_max_in_flight: int = Field(default=10, ge=1, le=10_000)
