"""Enrollment tokens and the certificates nodes get for them.

A token is ``oft_`` + 32 random bytes (URL-safe base64); only its SHA-256 is stored, and
the plaintext is returned once, by :meth:`EnrollmentService.create_token`. Enrolling counts
one use atomically in the store, so concurrent enrollments never exceed ``max_uses``.

Enrollments are group-committed (services/batching.py): the identity, the counted token
use and the ``enrolled`` node event of each go into one transaction per batch. A repeated
enrollment of a node with the same key and token (its first reply was lost) gets a new
certificate without counting another use. Signing a CSR costs about half a millisecond
(ECDSA P-256) and runs on the event loop; requests beyond ``max_queued`` are shed with
ResourceExhausted before they are signed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from opsfleet.common.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from opsfleet.common.pki import CertificateAuthority
from opsfleet.common.validation import MAX_HOSTNAME, check_labels, check_node_id
from opsfleet.manager.changes import IDENTITY_REVOKED, TOKEN_REVOKED, Publish, publish_nowhere
from opsfleet.manager.domain import EnrollmentToken, NodeIdentity
from opsfleet.manager.services.batching import GroupCommitter
from opsfleet.manager.services.identities import IdentityRegistry
from opsfleet.manager.store.base import EnrollmentStore, EnrollOutcome, EnrollRequest

log = logging.getLogger(__name__)

TOKEN_PREFIX = "oft_"
DEFAULT_MAX_BATCH = 200
DEFAULT_MAX_QUEUED = 5_000
TOKEN_CACHE_TTL = 2.0  # seconds
TOKEN_CACHE_SIZE = 1_024
MAX_TOKEN_USES = 1_000_000
MIN_TOKEN_LIFETIME = 60.0

_REFUSALS = {
    "unknown": "enrollment token is not valid",
    "revoked": "enrollment token was revoked",
    "expired": "enrollment token has expired",
    "used-up": "enrollment token has been used up (max_uses reached)",
}


class TokenNotFound(NotFound):
    """No enrollment token with that id."""


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    token: EnrollmentToken
    secret: str  # shown once


@dataclass(frozen=True)
class Enrolled:
    node_id: str
    cert_pem: bytes
    ca_pem: bytes
    not_after: int
    labels: dict[str, str]


class EnrollmentService:
    """Create, list and revoke tokens; enroll nodes; renew their certificates."""

    def __init__(
        self,
        store: EnrollmentStore,
        registry: IdentityRegistry,
        ca: CertificateAuthority,
        *,
        cert_lifetime: float,
        max_token_lifetime: float,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queued: int = DEFAULT_MAX_QUEUED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._max_queued = max_queued
        self._token_cache: dict[str, tuple[EnrollmentToken, float]] = {}  # secret hash -> (token, read at)
        self.publish: Publish = publish_nowhere
        """Tells the other Manager replicas (opsfleet.manager.changes); set by the app."""
        self._committer: GroupCommitter[EnrollRequest, EnrollOutcome] = GroupCommitter(
            "enrollments", self._commit, max_batch=max_batch, max_queued=max_queued
        )
        self._registry = registry
        self._ca = ca
        self._lifetime = dt.timedelta(seconds=cert_lifetime)
        self._max_token_lifetime = max_token_lifetime
        self._clock = clock

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem

    # -- tokens --------------------------------------------------------------------------

    async def create_token(
        self, *, max_uses: int, expires_in: float, labels: Mapping[str, str], created_by: str
    ) -> CreatedToken:
        if not 1 <= max_uses <= MAX_TOKEN_USES:
            raise InvalidArgument(f"max_uses must be between 1 and {MAX_TOKEN_USES}")
        if not MIN_TOKEN_LIFETIME <= expires_in <= self._max_token_lifetime:
            raise InvalidArgument(
                f"expires_in must be between {MIN_TOKEN_LIFETIME:g} and {self._max_token_lifetime:g} seconds"
            )
        check_labels(labels)
        now = self._clock()
        token = EnrollmentToken(
            id=uuid.uuid4().hex[:16],
            created_by=created_by,
            created_at=now,
            expires_at=now + expires_in,
            max_uses=max_uses,
            uses=0,
            labels=dict(labels),
        )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self._store.insert_token(token, hash_secret(secret))
        log.info("enrollment token %s created by %s (max_uses=%d)", token.id, created_by, max_uses)
        return CreatedToken(token, secret)

    async def list_tokens(self) -> list[EnrollmentToken]:
        return await self._store.list_tokens()

    async def revoke_token(self, token_id: str) -> EnrollmentToken:
        token = await self._store.revoke_token(token_id[:32], self._clock())
        self._token_cache.clear()
        if token is None:
            raise TokenNotFound(f"enrollment token {token_id} does not exist")
        await self.publish(TOKEN_REVOKED, token.id)
        log.info("enrollment token %s revoked", token_id)
        return token

    def token_state(self, token: EnrollmentToken) -> str:
        return token.state(self._clock())

    # -- certificates --------------------------------------------------------------------

    async def start(self) -> None:
        await self._committer.start()

    async def stop(self) -> None:
        """Refuse new enrollments, commit the queued ones; idempotent, safe before start()."""
        await self._committer.stop()

    @property
    def committer(self) -> GroupCommitter[EnrollRequest, EnrollOutcome]:
        return self._committer

    async def enroll(
        self, *, token: str, csr_pem: bytes, node_id: str, hostname: str = "", boot_id: str = ""
    ) -> Enrolled:
        """A certificate for ``node_id`` (a new id when empty) in exchange for one token use.

        Idempotent for a retry: when the node already has an active identity issued with
        this token for the CSR's public key, a new certificate is issued for it and no use
        is counted. PermissionDenied for a bad, revoked, expired or used-up token; Conflict
        when the node has an active identity with another key or token; InvalidArgument for
        a malformed request; ResourceExhausted or Unavailable (retry later) under overload.

        Concurrent calls are group-committed: one transaction per batch, each member
        decided on its own (a refused member does not fail the others)."""
        if not token:
            raise Unauthenticated("an enrollment token is required")
        node_id = node_id or str(uuid.uuid4())
        check_node_id(node_id)
        if len(hostname) > MAX_HOSTNAME or len(boot_id) > 64:
            raise InvalidArgument("hostname or boot_id is too long")
        secret_hash = hash_secret(token)
        # Cheap refusals before any signing; the transaction decides for good. A used-up or
        # expired token may still re-issue a certificate for a retry, so only these two:
        found = await self._known_token(secret_hash)
        state = "unknown" if found is None else found.state(self._clock())
        if state in ("unknown", "revoked"):
            log.warning("enrollment of node %s refused: token %s", node_id, state)
            raise PermissionDenied(_REFUSALS[state])
        if self._committer.queued >= self._max_queued:
            # Shed before spending CPU on a signature that could not be committed.
            raise ResourceExhausted("too many enrollments queued", retry_after=random.uniform(1.0, 3.0))
        issued = self._ca.sign_node_csr(csr_pem, node_id, self._lifetime)
        now = self._clock()
        identity = NodeIdentity(
            node_id=node_id,
            serial=str(issued.serial),
            not_after=float(issued.not_after),
            enrolled_at=now,
            hostname=hostname,
            boot_id=boot_id,
            key_sha256=issued.key_sha256,
        )
        outcome = await self._committer.submit(EnrollRequest(secret_hash, identity))
        if outcome.refused == "exists":
            raise Conflict(
                f"node {node_id} already has an active identity for another key or token; "
                "delete the node first to enroll it again"
            )
        if outcome.refused or outcome.token is None:
            log.warning("enrollment of node %s refused: token %s", node_id, outcome.refused)
            raise PermissionDenied(_REFUSALS.get(outcome.refused, "enrollment token refused"))
        return Enrolled(
            node_id, issued.cert_pem, self._ca.cert_pem, issued.not_after, dict(outcome.token.labels)
        )

    async def _known_token(self, secret_hash: str) -> EnrollmentToken | None:
        """The token for the pre-check, from a cache kept ``TOKEN_CACHE_TTL`` seconds: a burst
        of enrollments with one token reads it once. Only the pre-check uses it (the
        transaction reads the token again), so a stale entry costs at most one signature."""
        now = time.monotonic()
        cached = self._token_cache.get(secret_hash)
        if cached is not None and now - cached[1] < TOKEN_CACHE_TTL:
            return cached[0]
        found = await self._store.find_token(secret_hash)
        if found is not None:
            if len(self._token_cache) >= TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            self._token_cache[secret_hash] = (found, now)
        return found

    async def _commit(self, requests: Sequence[EnrollRequest]) -> list[EnrollOutcome]:
        """One batch; the registry learns each stored certificate here, not in ``enroll``,
        so that one whose caller gave up (deadline) is known and logged all the same."""
        outcomes = await self._store.enroll_many(requests, self._clock())
        for request, outcome in zip(requests, outcomes, strict=True):
            if outcome.refused or outcome.token is None:
                continue
            token = outcome.token
            identity = replace(request.identity, token_id=token.id)
            self._registry.add(identity, token.labels)
            serial = int(identity.serial)
            if outcome.reissued:
                log.info(
                    "node %s: enrollment repeated with the same key, certificate re-issued (serial %x)",
                    identity.node_id,
                    serial,
                )
            else:
                log.info(
                    "node %s enrolled with token %s (certificate serial %x)",
                    identity.node_id,
                    token.id,
                    serial,
                )
        return outcomes

    async def renew(self, *, caller_node: str, caller_serial: str, node_id: str, csr_pem: bytes) -> Enrolled:
        """A new certificate for the caller, which must be ``node_id`` with a current certificate.

        The old certificate stays valid until it expires."""
        if caller_node != node_id:
            raise PermissionDenied(f"certificate of node {caller_node} may not renew node {node_id!r}")
        await self._registry.check(node_id, caller_serial)
        issued = self._ca.sign_node_csr(csr_pem, node_id, self._lifetime)
        identity = NodeIdentity(
            node_id=node_id,
            serial=str(issued.serial),
            not_after=float(issued.not_after),
            enrolled_at=self._clock(),
            token_id=self._registry.token_of(node_id),
            key_sha256=issued.key_sha256,
        )
        await self._store.add_identity(identity)
        self._registry.add(identity)
        log.info("node %s renewed its certificate (serial %x)", node_id, issued.serial)
        return Enrolled(node_id, issued.cert_pem, self._ca.cert_pem, issued.not_after, {})

    def token_revoked_elsewhere(self) -> None:
        """Another replica revoked a token: read tokens again from the database."""
        self._token_cache.clear()

    async def revoke_node(self, node_id: str) -> int:
        """Revoke every certificate of the node at once (its calls are refused from now on)."""
        count = await self._store.revoke_identities(node_id, self._clock())
        self._registry.revoke(node_id)
        await self.publish(IDENTITY_REVOKED, node_id)
        if count:
            log.info("node %s: %d certificates revoked", node_id, count)
        return count
