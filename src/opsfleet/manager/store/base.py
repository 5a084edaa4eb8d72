"""The Store protocol the services depend on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from opsfleet.manager.domain import (
    Agent,
    AgentState,
    AuditEntry,
    EnrollmentToken,
    MetricBucket,
    MetricSample,
    Node,
    NodeConfigState,
    NodeEvent,
    NodeFilter,
    NodeIdentity,
    NodeRegistration,
    OperationRecord,
    PolicyRevision,
    PolicyRow,
    Role,
    UsageStats,
    User,
)


class Store(Protocol):
    """Durable fleet state. Every method is a complete transaction."""

    async def start(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def ping(self) -> None:
        """Raise Unavailable when the database cannot be reached."""

    async def check_writable(self) -> None:
        """Raise Unavailable unless writes work now (recent outcomes, else a bounded probe write)."""

    async def upsert_nodes(self, regs: Sequence[NodeRegistration], now: float) -> list[bool]:
        """Insert or update nodes (status online) in one transaction, recording an event each.

        One flag per registration: True when that registration created the node."""

    async def get_node(self, node_id: str) -> Node | None: ...

    async def find_node_id(self, hostname: str, ip: str) -> str | None:
        """The id of a node registered with this hostname and ip, if any."""

    async def list_nodes(self) -> list[Node]: ...

    async def touch_nodes(self, seen: Mapping[str, float]) -> tuple[list[str], list[str]]:
        """Set last_seen_at; nodes that were offline become online (with an event).

        Returns the ids that came back online and the ids that no longer exist (deleted,
        possibly by another Manager replica)."""

    async def mark_offline(self, cutoff: float, now: float) -> list[str]:
        """Online nodes last seen before ``cutoff`` become offline (with an event); their ids."""

    async def list_events(self, node_id: str, limit: int = 100) -> list[NodeEvent]: ...

    async def insert_metrics(self, samples: Sequence[MetricSample]) -> None:
        """Store samples; a sample with an existing (node, type, timestamp) is kept once."""

    async def query_metrics(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        """Samples of one node and type with start <= timestamp <= end, oldest first."""

    async def count_metrics(self, node_id: str | None = None) -> int: ...

    async def delete_metrics_before(
        self, resolution: int, timestamp: int, after: int, max_nodes: int
    ) -> tuple[int, int | None]:
        """Delete samples (``resolution`` 0) or rollups of ``resolution`` seconds older than
        ``timestamp`` for the next ``max_nodes`` nodes after cursor ``after`` (start with 0), in
        one transaction. How many were deleted, and the next cursor (None: all nodes swept)."""

    async def sync_agents(
        self, node_id: str, states: Sequence[AgentState], now: float, events: Sequence[NodeEvent] = ()
    ) -> None:
        """Upsert the node's agents from a full snapshot; agents missing from it are marked
        removed; ``events`` (the timeline's, derived from the snapshot) in the same transaction."""

    async def list_agents(self, node_id: str) -> list[Agent]: ...

    async def record_operation(self, record: OperationRecord) -> int:
        """Append an agent operation to the history; its id."""

    async def list_operations(
        self, node_id: str, agent_id: str | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        """Newest first."""


class UserStore(Protocol):
    """REST API users and small shared settings. Every method is a complete transaction."""

    async def insert_user(self, username: str, password_hash: str, role: Role, now: float) -> User | None:
        """The new user; None when the username is taken."""

    async def get_user(self, user_id: int) -> User | None: ...

    async def get_credentials(self, username: str) -> tuple[User, str] | None:
        """The user and its password hash."""

    async def list_users(self, offset: int, limit: int) -> tuple[list[User], int]:
        """One page ordered by id, and the total count."""

    async def update_user(
        self,
        user_id: int,
        now: float,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        revoke_tokens: bool = False,
    ) -> User | None:
        """Change the given fields (``revoke_tokens`` bumps token_version); None when no such user."""

    async def note_login(self, user_id: int, now: float) -> None: ...

    async def setting(self, key: str, default: str) -> str:
        """The stored value of ``key``; stores ``default`` first when absent (first writer wins)."""

    async def get_setting(self, key: str) -> str | None:
        """The stored value of ``key``, or None; stores nothing."""

    async def delete_setting(self, key: str) -> bool:
        """Remove ``key``; False when it was absent."""

    async def revoke_token(self, jti: str, user_id: int, expires_at: float, now: float) -> None:
        """Record token ``jti`` as revoked until ``expires_at`` (idempotent); revocations that
        expired by ``now`` are pruned on the way."""

    async def token_revoked(self, jti: str) -> bool: ...

    async def prune_revocations(self, now: float) -> int:
        """Delete revocations of tokens expired by ``now``; how many."""


class AuditStore(Protocol):
    async def add_audit(self, entry: AuditEntry) -> int:
        """Append an entry; its id."""

    async def list_audit(
        self, offset: int, limit: int, *, username: str = "", action: str = ""
    ) -> tuple[list[AuditEntry], int]:
        """One page, newest first, and the total count."""


class FleetQueries(Protocol):
    """Read-side queries of the REST API, plus node deletion."""

    async def page_nodes(self, flt: NodeFilter, offset: int, limit: int) -> tuple[list[Node], int]:
        """One page of matching nodes ordered by node_id, and the total count."""

    async def count_nodes_by_status(self) -> dict[str, int]: ...

    async def delete_node(self, node_id: str) -> bool:
        """Delete the node, its agents, events and metric samples; False when it did not exist."""

    async def latest_sample(self, node_id: str, type_: str) -> MetricSample | None: ...

    async def bucketed_metrics(
        self, node_id: str, type_: str, start: int, end: int, bucket_seconds: int
    ) -> list[MetricBucket]:
        """Averages of every value key per bucket ``start + k * bucket_seconds``, oldest first."""

    async def usage_stats(self, node_id: str, types: Sequence[str], start: int, end: int) -> list[UsageStats]:
        """min/max/avg of usage_percent per type over [start, end] (types without samples left out)."""

    async def latest_usage(self, types: Sequence[str], since: int) -> list[tuple[str, str, int, float]]:
        """(node_id, type, timestamp, usage_percent) of every node's newest sample since ``since``."""


class PolicyStore(Protocol):
    """Policies, their immutable revisions and the config state nodes reported."""

    async def load_policies(self) -> list[PolicyRow]:
        """Every policy (deleted ones too) with its current revision's document."""

    async def list_revisions(self, name: str) -> list[PolicyRevision]:
        """Oldest first; [] for an unknown policy."""

    async def add_revision(self, name: str, document: str, hash_: str, author: str, now: float) -> int:
        """Store a new revision, make it current (and the policy not deleted); its number."""

    async def set_current(self, name: str, revision: int, now: float) -> None: ...

    async def mark_deleted(self, name: str, now: float) -> bool:
        """False when there is no such (undeleted) policy."""

    async def set_paused(self, name: str, paused: bool, now: float) -> None: ...

    async def save_config_state(self, state: NodeConfigState) -> None: ...

    async def load_config_states(self) -> list[NodeConfigState]: ...


@dataclass(frozen=True)
class EnrollRequest:
    """One enrollment for :meth:`EnrollmentStore.enroll_many`: the presented token (hashed)
    and the identity to record (``identity.key_sha256`` set, ``token_id`` filled in by the store)."""

    secret_hash: str
    identity: NodeIdentity


EnrollRefusal = Literal["", "unknown", "revoked", "expired", "used-up", "exists"]


@dataclass(frozen=True)
class EnrollOutcome:
    """What became of one :class:`EnrollRequest`.

    ``refused`` is empty when the identity was stored; otherwise the token's state or
    ``exists`` (the node has an active identity with another key or token). ``token`` is
    the presented token when it is known. ``reissued``: the node already had an active
    identity with this key and token, the certificate was recorded without counting a use."""

    refused: EnrollRefusal
    token: EnrollmentToken | None = None
    reissued: bool = False


class EnrollmentStore(Protocol):
    """Enrollment tokens and node identities. Every method is a complete transaction."""

    async def insert_token(self, token: EnrollmentToken, secret_hash: str) -> None: ...

    async def list_tokens(self) -> list[EnrollmentToken]:
        """Newest first."""

    async def find_token(self, secret_hash: str) -> EnrollmentToken | None: ...

    async def revoke_token(self, token_id: str, now: float) -> EnrollmentToken | None:
        """Mark revoked (idempotent); None when there is no such token."""

    async def enroll_many(self, requests: Sequence[EnrollRequest], now: float) -> list[EnrollOutcome]:
        """One outcome per request, in order, all in one transaction (all-or-nothing: an
        exception means nothing was stored). Taken in order, each request:

        - for a node with an active identity: recorded again without counting a use when
          that identity has the same key and token (``reissued``), else refused ``exists``;
        - else counts one use of the token (refused when it is unknown, revoked, expired or
          used up; concurrent calls, in one batch or not, never exceed ``max_uses``).

        Every recorded identity gets an ``enrolled`` node event in the same transaction. A
        refused request writes nothing and does not affect the others."""

    async def add_identity(self, identity: NodeIdentity) -> None:
        """Store a renewed certificate of a node."""

    async def active_identities(self, now: float, node_id: str | None = None) -> list[NodeIdentity]:
        """Unrevoked identities with ``not_after > now`` (of one node, or all)."""

    async def token_labels(self, token_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The labels of the given tokens."""

    async def revoke_identities(self, node_id: str, now: float) -> int:
        """Revoke every identity of the node; how many were active."""

    async def add_node_event(self, node_id: str, kind: str, detail: str, at: float) -> None: ...
