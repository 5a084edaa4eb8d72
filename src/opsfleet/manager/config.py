"""The Manager's one frozen config (file < OPSFLEET_* environment < CLI flags).

The file has the shape of the seed's ``manager.yaml``; see ``configs/manager.yaml`` and
``docs/configuration.md``. Loading does no OS work beyond reading the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, model_validator

from opsfleet.common.config import Duration, Section, load_config
from opsfleet.common.rpc import DEFAULT_MAX_PENDING_CALLS
from opsfleet.manager.alerts.settings import AlertsSection
from opsfleet.manager.artifacts.settings import ArtifactsSection, RolloutsSection
from opsfleet.manager.export.settings import ExportSection

DEFAULT_GRPC_PORT = 9090
DEFAULT_HTTP_PORT = 8080
DEFAULT_OFFLINE_AFTER = 180.0
DEFAULT_RETENTION_DAYS = 30
DEFAULT_RETENTION_RAW = 7 * 86400.0
DEFAULT_RETENTION_5M = 90 * 86400.0
DEFAULT_RETENTION_1H = 730 * 86400.0
DEFAULT_DATA_DIR = "data"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_TOKEN_TTL = 24 * 3600.0
DEFAULT_ENROLLMENT_PORT = 9092
DEFAULT_CERT_LIFETIME = 30 * 86400.0
DEFAULT_MIN_CERT_LIFETIME = 3600.0
DEFAULT_MAX_TOKEN_LIFETIME = 365 * 86400.0
ADMIN_PASSWORD_ENV = "OPSFLEET_ADMIN_PASSWORD"
DEFAULT_LOGIN_MAX_FAILURES = 10
DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS = 30
DEFAULT_LOGIN_WINDOW = 300.0
DEFAULT_LOCKOUT_BASE = 60.0
DEFAULT_LOCKOUT_MAX = 3600.0
JWT_SECRET_FILE = "jwt.secret"

# Keys of the seed's manager.yaml that opsfleet reads but does not use.
SEED_IGNORED_KEYS = (
    "redis",
    "server.mode",
    "server.read_timeout",
    "server.write_timeout",
    "log.file",
    "log.format",
    "log.output",
    "log.max_size",
    "log.max_backups",
    "log.max_age",
    "log.compress",
    "database.max_open_conns",
    "database.max_idle_conns",
    "database.conn_max_lifetime",
    "database.host",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "database.sslmode",
    "grpc.max_connection_idle",
    "cors",
    "rate_limit",
)


class ServerSection(Section):
    host: str = "0.0.0.0"
    port: int = Field(default=DEFAULT_HTTP_PORT, ge=0, le=65535)


TLSMode = Literal["auto", "files", "off"]


class TLSSection(Section):
    """The main gRPC port's TLS.

    ``auto`` (default): mTLS with certificates of the fleet CA (see ``enrollment``);
    ``files``: the certificate, key and (for mTLS) CA files below; ``off``: plaintext, as the
    seed speaks (``opsfleet manager --insecure``). ``enabled: true`` without a ``mode`` is
    the older spelling of ``files``.
    """

    mode: TLSMode = "auto"
    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""

    @model_validator(mode="before")
    @classmethod
    def _legacy_enabled(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("enabled") in (True, "true", "True", 1) and "mode" not in data:
            return {**data, "mode": "files"}
        return data

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TLSSection:
        if self.mode == "files" and not (self.cert_file and self.key_file):
            raise ValueError("tls.mode files (or tls.enabled) needs cert_file and key_file")
        return self


class EnrollmentSection(Section):
    """The fleet CA, the Manager's own certificate and node enrollment (``grpc.tls.mode: auto``)."""

    host: str = ""
    port: int = Field(default=DEFAULT_ENROLLMENT_PORT, ge=0, le=65535)
    ca_cert_file: str = ""
    ca_key_file: str = ""
    server_names: list[str] = Field(default_factory=list)
    cert_lifetime: Duration = DEFAULT_CERT_LIFETIME
    min_cert_lifetime: Duration = Field(default=DEFAULT_MIN_CERT_LIFETIME, ge=1.0)
    max_token_lifetime: Duration = Field(default=DEFAULT_MAX_TOKEN_LIFETIME, ge=60.0)
    clone_window: Duration = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _lifetimes(self) -> EnrollmentSection:
        if self.cert_lifetime < self.min_cert_lifetime:
            raise ValueError(
                f"cert_lifetime must be at least min_cert_lifetime ({self.min_cert_lifetime:g}s)"
            )
        if bool(self.ca_cert_file) != bool(self.ca_key_file):
            raise ValueError("ca_cert_file and ca_key_file must be set together")
        return self


class GrpcSection(Section):
    host: str = "0.0.0.0"
    port: int = Field(default=DEFAULT_GRPC_PORT, ge=0, le=65535)
    tls: TLSSection = TLSSection()
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=64 * 1024, le=256 * 1024 * 1024)
    shutdown_grace: Duration = 5.0
    keepalive_min_ping_interval: Duration = Field(default=10.0, ge=1.0)
    reuse_port: bool = False
    max_pending_calls: int = Field(default=DEFAULT_MAX_PENDING_CALLS, ge=100, le=10_000_000)


class DatabaseSection(Section):
    driver: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str = ""
    url: str = ""
    pool_size: int = Field(default=10, ge=1, le=200)
    lock_timeout: Duration = Field(default=3.0, gt=0, le=600)


class NodeSection(Section):
    offline_after: Duration = Field(default=DEFAULT_OFFLINE_AFTER, gt=0)
    check_interval: Duration = Field(default=5.0, gt=0)


class RetentionSection(Section):
    """How long raw samples and each rollup resolution are kept."""

    raw: Duration = Field(default=DEFAULT_RETENTION_RAW, ge=3600.0)
    rollup_5m: Duration = Field(default=DEFAULT_RETENTION_5M, ge=3600.0)
    rollup_1h: Duration = Field(default=DEFAULT_RETENTION_1H, ge=3600.0)

    @model_validator(mode="after")
    def _coarser_lives_longer(self) -> RetentionSection:
        if self.rollup_5m < self.raw:
            raise ValueError("metrics.retention.rollup_5m must be at least metrics.retention.raw")
        if self.rollup_1h < self.rollup_5m:
            raise ValueError("metrics.retention.rollup_1h must be at least metrics.retention.rollup_5m")
        return self


class MetricsSection(Section):
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=3650)
    retention: RetentionSection = RetentionSection()
    retention_interval: Duration = Field(default=3600.0, gt=0)
    heartbeat_flush_interval: Duration = Field(default=1.0, gt=0, le=1.0)
    rollup_interval: Duration = Field(default=60.0, gt=0, le=300.0)
    rollup_grace: Duration = Field(default=120.0, ge=10.0, le=3600.0)
    max_batch_rows: int = Field(default=5000, ge=1)
    max_queued_rows: int = Field(default=200_000, ge=1000)


class LogSection(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class DaemonTLSSection(Section):
    """Client TLS for calls into daemons (a daemon with TLS serves only certificates of its CA)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""


class AgentsSection(Section):
    tls: DaemonTLSSection = DaemonTLSSection()
    list_timeout: Duration = Field(default=10.0, gt=0)
    operate_timeout: Duration = Field(default=60.0, gt=0)
    metrics_timeout: Duration = Field(default=10.0, gt=0)
    logs_timeout: Duration = Field(default=10.0, gt=0)
    channel_idle: Duration = Field(default=300.0, gt=0)


class JwtSection(Section):
    """REST API tokens, signed with ``secret`` when set (replicas share it), else with the secret
    in ``secret_file`` (default ``<data_dir>/jwt.secret``, created once with mode 0600)."""

    secret: str = Field(default="", repr=False)
    secret_file: str = ""
    expire: Duration = Field(default=DEFAULT_TOKEN_TTL, ge=60.0, le=30 * 86400.0)


class AuthSection(Section):
    """``admin_password`` (or env OPSFLEET_ADMIN_PASSWORD) is the first admin's password on first
    start; the password policy is checked when it is used. The ``login_*``/``lockout_*`` keys
    throttle failed sign-ins per username and per client address."""

    admin_password: str = Field(default="", repr=False, max_length=128)
    login_max_failures: int = Field(default=DEFAULT_LOGIN_MAX_FAILURES, ge=1, le=10_000)
    login_max_failures_per_address: int = Field(default=DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS, ge=1)
    login_window: Duration = Field(default=DEFAULT_LOGIN_WINDOW, gt=0, le=86400.0)
    lockout_base: Duration = Field(default=DEFAULT_LOCKOUT_BASE, gt=0)
    lockout_max: Duration = Field(default=DEFAULT_LOCKOUT_MAX, gt=0, le=30 * 86400.0)

    @model_validator(mode="after")
    def _lockout_bounds(self) -> AuthSection:
        if self.lockout_max < self.lockout_base:
            raise ValueError("auth.lockout_max must be at least auth.lockout_base")
        return self


class ManagerConfig(Section):
    data_dir: str = DEFAULT_DATA_DIR
    server: ServerSection = ServerSection()
    grpc: GrpcSection = GrpcSection()
    database: DatabaseSection = DatabaseSection()
    node: NodeSection = NodeSection()
    metrics: MetricsSection = MetricsSection()
    log: LogSection = LogSection()
    agents: AgentsSection = AgentsSection()
    jwt: JwtSection = JwtSection()
    auth: AuthSection = AuthSection()
    artifacts: ArtifactsSection = ArtifactsSection()
    rollouts: RolloutsSection = RolloutsSection()
    alerts: AlertsSection = AlertsSection()
    export: ExportSection = ExportSection()

    enrollment: EnrollmentSection = EnrollmentSection()

    @property
    def tls_mode(self) -> TLSMode:
        return self.grpc.tls.mode

    def enrollment_host(self) -> str:
        return self.enrollment.host or self.grpc.host

    def jwt_secret_path(self) -> Path:
        """Where the generated JWT secret lives when ``jwt.secret`` is not set."""
        return Path(self.jwt.secret_file) if self.jwt.secret_file else Path(self.data_dir) / JWT_SECRET_FILE

    def database_url(self) -> str:
        """The SQLAlchemy async URL for the configured database."""
        return resolve_database_url(self.database, Path(self.data_dir))


_KV = re.compile(r"(\w+)=('[^']*'|\S*)")


def _postgres_from_dsn(dsn: str) -> str:
    if "://" in dsn:
        return _async_url(dsn)
    parts = {k: v.strip("'") for k, v in _KV.findall(dsn)}
    user = quote(parts.get("user", "postgres"))
    password = parts.get("password")
    auth = f"{user}:{quote(password)}" if password else user
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    dbname = parts.get("dbname", "opsfleet")
    return f"postgresql+asyncpg://{auth}@{host}:{port}/{dbname}"


def _async_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database url {url!r} has no scheme")
    base = scheme.split("+")[0]
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest.split('?')[0]}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r} (use sqlite:// or postgresql://)")


def resolve_database_url(db: DatabaseSection, data_dir: Path) -> str:
    if db.url:
        return _async_url(db.url)
    if db.driver == "postgres":
        if not db.dsn:
            raise ValueError("database.driver is postgres but database.dsn is empty")
        return _postgres_from_dsn(db.dsn)
    path = Path(db.dsn) if db.dsn else data_dir / "opsfleet.db"
    return f"sqlite+aiosqlite:///{path}"


def load_manager_config(
    path: Path | None, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> ManagerConfig:
    from opsfleet.common.errors import ConfigError

    merged = dict(overrides or {})
    if env.get(ADMIN_PASSWORD_ENV) and not merged.get("auth.admin_password"):
        merged["auth.admin_password"] = env[ADMIN_PASSWORD_ENV]
    config = load_config(ManagerConfig, path=path, env=env, overrides=merged, ignored=SEED_IGNORED_KEYS)
    try:
        config.database_url()
    except ValueError as exc:
        key = "database.url" if config.database.url else "database.dsn"
        raise ConfigError(f"config key '{key}': {exc}") from exc
    return config
