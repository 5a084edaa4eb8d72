"""IdentityRegistry: the per-call certificate check and clone detection, over an in-memory store."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from opsfleet.common.errors import PermissionDenied, Unauthenticated
from opsfleet.manager.domain import EnrollmentToken, NodeIdentity
from opsfleet.manager.services.identities import IdentityRegistry, check_bound


class MemoryEnrollmentStore:
    """The parts of EnrollmentStore the registry uses; counts look-ups."""

    def __init__(self) -> None:
        self.identities: list[NodeIdentity] = []
        self.labels: dict[str, dict[str, str]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.lookups = 0

    async def active_identities(self, now: float, node_id: str | None = None) -> list[NodeIdentity]:
        self.lookups += 1
        return [
            i
            for i in self.identities
            if i.revoked_at is None and i.not_after > now and (node_id is None or i.node_id == node_id)
        ]

    async def token_labels(self, token_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {t: self.labels[t] for t in token_ids if t in self.labels}

    async def add_node_event(self, node_id: str, kind: str, detail: str, at: float) -> None:
        self.events.append((node_id, kind, detail))

    async def insert_token(self, token: EnrollmentToken, secret_hash: str) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def identity(node_id: str, serial: str, not_after: float = 2000.0, token_id: str = "") -> NodeIdentity:
    return NodeIdentity(
        node_id=node_id, serial=serial, not_after=not_after, enrolled_at=0.0, token_id=token_id
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_check_uses_the_cache_and_refuses_expired_and_revoked(clock: Clock) -> None:
    store = MemoryEnrollmentStore()
    store.identities = [identity("n1", "11", token_id="t"), identity("n1", "10", not_after=1500.0)]
    store.labels = {"t": {"env": "prod"}}
    registry = IdentityRegistry(store, clock=clock)  # type: ignore[arg-type]
    await registry.start()
    loaded = store.lookups
    for _ in range(100):
        await registry.check("n1", "11")
        await registry.check("n1", "10")
    assert store.lookups == loaded  # never a database read per call
    assert registry.labels("n1") == {"env": "prod"}

    clock.now = 1600.0  # serial 10 expired, 11 still valid
    with pytest.raises(Unauthenticated):
        await registry.check("n1", "10")
    await registry.check("n1", "11")

    registry.revoke("n1")
    with pytest.raises(Unauthenticated):
        await registry.check("n1", "11")


async def test_unknown_serials_are_looked_up_at_most_once_per_refresh(clock: Clock) -> None:
    store = MemoryEnrollmentStore()
    registry = IdentityRegistry(store, refresh_after=5.0, clock=clock)  # type: ignore[arg-type]
    await registry.start()
    store.identities.append(identity("n2", "20"))  # enrolled through another replica
    before = store.lookups
    await registry.check("n2", "20")
    assert store.lookups == before + 1
    for _ in range(10):
        with pytest.raises(Unauthenticated):
            await registry.check("n2", "99")
    assert store.lookups == before + 1  # negative answers are cached too
    clock.now += 6
    with pytest.raises(Unauthenticated):
        await registry.check("n2", "99")
    assert store.lookups == before + 2


def test_binding_to_the_request_node() -> None:
    check_bound("n1", "n1")
    with pytest.raises(PermissionDenied):
        check_bound("n1", "n2")
    with pytest.raises(Unauthenticated):
        check_bound(None, "n1")


async def test_clone_needs_alternating_registrations_within_the_window(clock: Clock) -> None:
    store = MemoryEnrollmentStore()
    registry = IdentityRegistry(store, clone_window=60.0, clock=clock)  # type: ignore[arg-type]
    assert await registry.saw_registration("n", "h1", "b1") is None
    assert await registry.saw_registration("n", "h1", "b1") is None
    assert await registry.saw_registration("n", "h1", "b2") is None  # a reboot
    clock.now += 120
    assert await registry.saw_registration("n", "h1", "b3") is None  # another, much later
    clock.now += 1
    warning = await registry.saw_registration("n", "h1", "b2")  # switching back at once: a clone
    assert warning is not None and "boot b3" in warning.detail and "boot b2" in warning.detail
    assert registry.clone_warnings["n"] is warning
    await registry.saw_registration("n", "h1", "b3")
    assert [kind for _, kind, _ in store.events] == ["clone-suspected"]  # one event per node
