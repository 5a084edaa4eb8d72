"""Which certificates may act as which node: an in-memory cache of valid serials per node.

Loaded at start and updated on enroll, renew and node deletion, so the per-call check of
the gRPC edge never reads the database. A serial this replica does not know (a node that
enrolled through another replica) is looked up once; the node's entry is then reused for
``refresh_after`` seconds before another look-up is allowed.

Clone detection: each registration of a node carries its hostname and boot id. When one
identity registers alternately from two (hostname, boot id) pairs within ``clone_window``
(A, B, A: a reboot changes the pair once, two live copies keep switching), the node is
flagged, a ``clone-suspected`` node event is stored and a WARNING is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsfleet.common.errors import PermissionDenied, Unauthenticated
from opsfleet.manager.domain import EventKind, NodeIdentity
from opsfleet.manager.store.base import EnrollmentStore

log = logging.getLogger(__name__)

DEFAULT_REFRESH_AFTER = 5.0


@dataclass
class _NodeEntry:
    serials: dict[str, float] = field(default_factory=dict)  # serial (decimal text) -> not_after
    labels: dict[str, str] = field(default_factory=dict)
    token_id: str = ""
    loaded_at: float = 0.0


@dataclass(frozen=True)
class CloneWarning:
    """Two daemons seem to present one identity."""

    at: float
    detail: str


@dataclass
class _Sightings:
    last: tuple[str, str] = ("", "")
    switches: list[float] = field(default_factory=list)


class IdentityRegistry:
    """Valid certificate serials and token labels per node, plus clone detection."""

    def __init__(
        self,
        store: EnrollmentStore,
        *,
        clone_window: float = 600.0,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clone_window = clone_window
        self._refresh_after = refresh_after
        self._clock = clock
        self._nodes: dict[str, _NodeEntry] = {}
        self._sightings: dict[str, _Sightings] = {}
        self.clone_warnings: dict[str, CloneWarning] = {}

    async def start(self) -> None:
        now = self._clock()
        identities = await self._store.active_identities(now)
        labels = await self._store.token_labels([i.token_id for i in identities])
        self._nodes = {}
        for identity in identities:
            self._remember(identity, labels.get(identity.token_id, {}), now)
        log.info("identities loaded: %d certificates of %d nodes", len(identities), len(self._nodes))

    def _remember(self, identity: NodeIdentity, labels: dict[str, str], now: float) -> None:
        entry = self._nodes.setdefault(identity.node_id, _NodeEntry(loaded_at=now))
        entry.serials[identity.serial] = identity.not_after
        if identity.token_id:
            entry.token_id = identity.token_id
        if labels:
            entry.labels = dict(labels)

    def add(self, identity: NodeIdentity, labels: dict[str, str] | None = None) -> None:
        """A certificate was just issued to the node (enroll or renew)."""
        self._remember(identity, labels or {}, self._clock())

    def revoke(self, node_id: str) -> None:
        """The node's identities were revoked: refuse its certificates from now on."""
        self._nodes[node_id] = _NodeEntry(loaded_at=self._clock())
        self._sightings.pop(node_id, None)
        self.clone_warnings.pop(node_id, None)

    def forget(self, node_id: str) -> None:
        """Drop the cached entry (the next call of the node looks it up again)."""
        self._nodes.pop(node_id, None)

    def labels(self, node_id: str) -> dict[str, str]:
        """Labels stamped on the node by the token it enrolled with."""
        entry = self._nodes.get(node_id)
        return dict(entry.labels) if entry else {}

    def token_of(self, node_id: str) -> str:
        """The id of the token the node enrolled with ("" when unknown)."""
        entry = self._nodes.get(node_id)
        return entry.token_id if entry else ""

    def knows(self, node_id: str, serial: str) -> bool:
        """True when ``serial`` is a current certificate of ``node_id`` (cache only)."""
        entry = self._nodes.get(node_id)
        if entry is None:
            return False
        not_after = entry.serials.get(serial)
        return not_after is not None and not_after > self._clock()

    async def check(self, node_id: str, serial: str) -> None:
        """Unauthenticated unless ``serial`` is a current certificate of ``node_id``."""
        if self.knows(node_id, serial):
            return
        entry = self._nodes.get(node_id)
        now = self._clock()
        if entry is None or now - entry.loaded_at >= self._refresh_after:
            await self._reload(node_id, now)
            if self.knows(node_id, serial):
                return
        raise Unauthenticated(
            f"the certificate of node {node_id} is revoked, expired or unknown: enroll again with a new token"
        )

    async def _reload(self, node_id: str, now: float) -> None:
        identities = await self._store.active_identities(now, node_id)
        labels = await self._store.token_labels([i.token_id for i in identities])
        entry = _NodeEntry(loaded_at=now)
        for identity in identities:
            entry.serials[identity.serial] = identity.not_after
            if identity.token_id:
                entry.token_id = identity.token_id
                entry.labels = labels.get(identity.token_id, entry.labels)
        self._nodes[node_id] = entry

    # -- clone detection -----------------------------------------------------------------

    async def saw_registration(self, node_id: str, hostname: str, boot_id: str) -> CloneWarning | None:
        """Note one registration; a new warning when the node looks cloned (else None)."""
        now = self._clock()
        pair = (hostname, boot_id)
        seen = self._sightings.setdefault(node_id, _Sightings(last=pair))
        if seen.last == pair:
            return None
        previous, seen.last = seen.last, pair
        seen.switches = [t for t in seen.switches if now - t < self._clone_window] + [now]
        if len(seen.switches) < 2:
            return None  # one change: a reboot, a re-image or a rename
        detail = (f"one identity registers from two daemons: {_describe(previous)} and {_describe(pair)}")[
            :255
        ]
        first = node_id not in self.clone_warnings
        warning = CloneWarning(at=now, detail=detail)
        self.clone_warnings[node_id] = warning
        log.warning("node %s: possible clone: %s", node_id, detail)
        if first:
            await self._store.add_node_event(node_id, EventKind.CLONE_SUSPECTED.value, detail, now)
        return warning


def _describe(pair: tuple[str, str]) -> str:
    hostname, boot_id = pair
    return f"host {hostname or '?'} boot {boot_id[:8] or '?'}"


def check_bound(identity_node: str | None, node_id: str) -> None:
    """PermissionDenied unless the certificate's node is the node the request names."""
    if identity_node is None:
        raise Unauthenticated("a node certificate from the fleet CA is required")
    if identity_node != node_id:
        raise PermissionDenied(f"certificate of node {identity_node} may not act as node {node_id!r}")
