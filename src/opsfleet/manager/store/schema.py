"""Table definitions (SQLAlchemy Core). Changes here need an Alembic migration."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("node_id", sa.String(128), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False, server_default=""),
    sa.Column("os", sa.String(64), nullable=False, server_default=""),
    sa.Column("arch", sa.String(64), nullable=False, server_default=""),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("daemon_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("agent_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("daemon_address", sa.String(255), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Index("ix_nodes_status_last_seen", "status", "last_seen_at"),
    sa.Index("ix_nodes_hostname_ip", "hostname", "ip"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("node_id", sa.String(128), primary_key=True),
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False, server_default=""),
    sa.Column("version", sa.String(64), nullable=False, server_default=""),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_heartbeat", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_sync_at", sa.Float, nullable=False),
    sa.Column("restart_count", sa.Integer, nullable=False, server_default="0"),
)

BlobType = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")
SmallKey = sa.SmallInteger

# Metrics (store/metrics_sql.py, store/metric_codec.py). Nodes, metric types and key tuples
# get small integer keys; samples are stored one row per node and timestamp (every type of a
# report together) in a compact binary encoding, clustered on (node_key, ts), until the rollup
# job folds a final 5-minute bucket's rows of a node into one metric_blocks row. On PostgreSQL
# the migrations give metric_latest a fillfactor (rows rewritten in place), metric_blocks
# fillfactor 100 and metric_points an autovacuum that reuses the space of folded rows soon.
node_keys = sa.Table(
    "node_keys",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String(128), nullable=False, unique=True),
)

metric_types = sa.Table(
    "metric_types",
    metadata,
    sa.Column("type_key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
)

metric_keysets = sa.Table(
    "metric_keysets",
    metadata,
    sa.Column("keyset", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("keys", sa.Text, nullable=False),
)

metric_points = sa.Table(
    "metric_points",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.SmallInteger, nullable=False),  # samples in the row (before ts: no padding)
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("data", BlobType, nullable=False),
    sqlite_with_rowid=False,
)

metric_blocks = sa.Table(
    "metric_blocks",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.SmallInteger, nullable=False),  # samples in the block
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("data", BlobType, nullable=False),
    sqlite_with_rowid=False,
)
"""The points of one node in one final 5-minute bucket, folded by the rollup job
(metric_raw.py); reads take the union with ``metric_points``."""

metric_rollups = sa.Table(
    "metric_rollups",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type_key", SmallKey, primary_key=True, autoincrement=False),
    sa.Column("res", SmallKey, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("data", BlobType, nullable=False),
    sqlite_with_rowid=False,
)

metric_rollup_dirty = sa.Table(
    "metric_rollup_dirty",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)
"""5-minute buckets whose final rollups a late sample changed; the rollup job recomputes
them from the raw samples (metric_rollup_mark.py)."""

metric_latest = sa.Table(
    "metric_latest",
    metadata,
    sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type_key", SmallKey, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("data", BlobType, nullable=False),
    sqlite_with_rowid=False,
)

node_events = sa.Table(
    "node_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("detail", sa.String(255), nullable=False, server_default=""),
    sa.Index("ix_node_events_node_at", "node_id", "at"),
    sa.Index("ix_node_events_at", "at"),
)

agent_operations = sa.Table(
    "agent_operations",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("username", sa.String(64), nullable=False, server_default=""),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("error", sa.String(1024), nullable=False, server_default=""),
    sa.Index("ix_agent_operations_node_at", "node_id", "requested_at"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float, nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("username", sa.String(64), nullable=False, server_default=""),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255), nullable=False, server_default=""),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("source_ip", sa.String(64), nullable=False, server_default=""),
    sa.Column("detail", sa.String(1024), nullable=False, server_default=""),
    sa.Index("ix_audit_log_at", "at"),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

token_revocations = sa.Table(
    "token_revocations",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=False),
    sa.Index("ix_token_revocations_expires_at", "expires_at"),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("current_revision", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("rollout_paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.Float, nullable=False),
)

policy_revisions = sa.Table(
    "policy_revisions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("author", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)

node_config_states = sa.Table(
    "node_config_states",
    metadata,
    sa.Column("node_id", sa.String(128), primary_key=True),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.String(1024), nullable=False, server_default=""),
    sa.Column("updated_at", sa.Float, nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("component", sa.String(160), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("signed_by_manager", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.UniqueConstraint("component", "version", name="uq_artifacts_component_version"),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("component", sa.String(160), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("artifact_id", sa.BigInteger, nullable=False),
    sa.Column("selector", sa.Text, nullable=False),
    sa.Column("max_parallel", sa.String(16), nullable=False),
    sa.Column("canary", sa.Integer, nullable=False),
    sa.Column("pause_on_failure", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

rollout_nodes = sa.Table(
    "rollout_nodes",
    metadata,
    sa.Column("rollout_id", sa.BigInteger, primary_key=True),
    sa.Column("node_id", sa.String(128), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("canary", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
)

enrollment_tokens = sa.Table(
    "enrollment_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

node_identities = sa.Table(
    "node_identities",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("serial", sa.String(64), nullable=False, unique=True),
    sa.Column("not_after", sa.Float, nullable=False),
    sa.Column("enrolled_at", sa.Float, nullable=False),
    sa.Column("token_id", sa.String(32), nullable=False, server_default=""),
    sa.Column("hostname", sa.String(255), nullable=False, server_default=""),
    sa.Column("boot_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("key_sha256", sa.String(64), nullable=True),  # of the SubjectPublicKeyInfo (DER)
    sa.Index("ix_node_identities_node", "node_id"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(160), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("node_labels", JSONType, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("acked_by", sa.String(64), nullable=False),
    sa.Column("acked_at", sa.Float, nullable=False),
    sa.Column("silenced_by", sa.String(64), nullable=False),
    sa.Column("silenced_until", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_alerts_state_starts", "state", "starts_at"),
    sa.Index("ix_alerts_node", "node_id"),
    sa.Index("ix_alerts_fingerprint", "fingerprint"),
)
