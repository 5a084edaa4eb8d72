"""EnrollmentService on a real store: one transaction per enrollment (identity, token use and
node event), idempotent retries with the same key, group commit of concurrent enrollments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509

from opsfleet.common.errors import Conflict, OpsfleetError, PermissionDenied
from opsfleet.common.pki import CertificateAuthority, make_csr, new_private_key, public_key_sha256
from opsfleet.manager.services.enrollment import Enrolled, EnrollmentService
from opsfleet.manager.services.identities import IdentityRegistry
from opsfleet.manager.store.enrollment_sql import SqlEnrollmentStore
from opsfleet.manager.store.sql import SqlStore

FAIL_EVENTS = (
    "CREATE TRIGGER fail_events BEFORE INSERT ON node_events "
    "BEGIN SELECT RAISE(ABORT, 'event insert failed (injected)'); END"
)


@dataclass
class Setup:
    store: SqlStore
    enrollment_store: SqlEnrollmentStore
    registry: IdentityRegistry
    service: EnrollmentService

    async def token(self, max_uses: int = 1) -> str:
        created = await self.service.create_token(
            max_uses=max_uses, expires_in=3600, labels={}, created_by="t"
        )
        return created.secret

    async def uses(self) -> int:
        return sum(t.uses for t in await self.service.list_tokens())

    async def sql(self, statement: str) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(sa.text(statement))

    async def enrolled_events(self, node_id: str) -> list[str]:
        return [e.detail for e in await self.store.list_events(node_id) if e.kind.value == "enrolled"]


async def _setup(url: str) -> Setup:
    store = SqlStore(url)
    await store.start()
    enrollment_store = SqlEnrollmentStore(store)
    registry = IdentityRegistry(enrollment_store)
    service = EnrollmentService(
        enrollment_store,
        registry,
        CertificateAuthority.create(),
        cert_lifetime=3600,
        max_token_lifetime=86400,
        max_batch=50,
    )
    await service.start()
    return Setup(store, enrollment_store, registry, service)


@pytest.fixture
async def sqlite(manager_config: Callable[..., Any], tmp_path: Any) -> AsyncIterator[Setup]:
    setup = await _setup(manager_config(f"sqlite:///{tmp_path / 'enroll.db'}").database_url())
    yield setup
    await setup.service.stop()
    await setup.store.close()


@pytest.fixture
async def each_db(manager_config: Callable[..., Any], database_url: str) -> AsyncIterator[Setup]:
    setup = await _setup(manager_config(database_url).database_url())
    yield setup
    await setup.service.stop()
    await setup.store.close()


def key_of(enrolled: Enrolled) -> str:
    return public_key_sha256(x509.load_pem_x509_certificate(enrolled.cert_pem).public_key())


async def test_a_failed_event_insert_stores_nothing_and_the_retry_enrolls(sqlite: Setup) -> None:
    token = await sqlite.token(max_uses=1)
    key = new_private_key()
    csr = make_csr(key, "n1")
    await sqlite.sql(FAIL_EVENTS)
    with pytest.raises(OpsfleetError):
        await sqlite.service.enroll(token=token, csr_pem=csr, node_id="n1")
    # Nothing of the failed enrollment is left: no identity, no counted use.
    assert await sqlite.enrollment_store.active_identities(0.0, "n1") == []
    assert await sqlite.uses() == 0

    await sqlite.sql("DROP TRIGGER fail_events")
    enrolled = await sqlite.service.enroll(token=token, csr_pem=csr, node_id="n1")
    assert key_of(enrolled) == public_key_sha256(key.public_key())
    assert await sqlite.uses() == 1
    assert len(await sqlite.enrolled_events("n1")) == 1
    await sqlite.registry.check("n1", str(x509.load_pem_x509_certificate(enrolled.cert_pem).serial_number))


async def test_a_repeated_enroll_with_the_same_key_is_reissued_without_a_use(sqlite: Setup) -> None:
    token = await sqlite.token(max_uses=1)
    key = new_private_key()
    csr = make_csr(key, "n2")
    first = await sqlite.service.enroll(token=token, csr_pem=csr, node_id="n2")
    # The reply of the first call was lost: the daemon sends the same request again.
    again = await sqlite.service.enroll(token=token, csr_pem=csr, node_id="n2")
    assert key_of(again) == key_of(first) == public_key_sha256(key.public_key())
    serials = [str(x509.load_pem_x509_certificate(e.cert_pem).serial_number) for e in (first, again)]
    assert serials[0] != serials[1]
    assert await sqlite.uses() == 1  # max_uses=1, yet the retry got its certificate
    for serial in serials:  # the first certificate stays valid until it expires
        await sqlite.registry.check("n2", serial)
    identities = await sqlite.enrollment_store.active_identities(0.0, "n2")
    assert sorted(i.serial for i in identities) == sorted(serials)
    assert {i.key_sha256 for i in identities} == {key_of(first)}
    events = await sqlite.enrolled_events("n2")
    assert len(events) == 2 and sum("re-issued" in e for e in events) == 1

    # Another key for a node with an active identity stays a Conflict, with any token.
    with pytest.raises(Conflict, match="another key"):
        await sqlite.service.enroll(token=token, csr_pem=make_csr(new_private_key(), "n2"), node_id="n2")
    other = await sqlite.token(max_uses=5)
    with pytest.raises(Conflict):
        await sqlite.service.enroll(token=other, csr_pem=make_csr(new_private_key(), "n2"), node_id="n2")
    # The same key with another token is not a retry of this enrollment either.
    with pytest.raises(Conflict):
        await sqlite.service.enroll(token=other, csr_pem=csr, node_id="n2")
    assert await sqlite.uses() == 1

    # A revoked token re-issues nothing.
    token_id = identities[0].token_id
    await sqlite.service.revoke_token(token_id)
    with pytest.raises(PermissionDenied, match="revoked"):
        await sqlite.service.enroll(token=token, csr_pem=csr, node_id="n2")


async def test_concurrent_enrollments_are_batched_and_counted_exactly(each_db: Setup) -> None:
    setup = each_db
    token = await setup.token(max_uses=20)
    revoked = await setup.token(max_uses=5)
    await setup.service.revoke_token((await setup.service.list_tokens())[0].id)
    taken = await setup.token(max_uses=5)
    await setup.service.enroll(token=taken, csr_pem=make_csr(new_private_key(), "x"), node_id="taken")
    csr = make_csr(new_private_key(), "fleet")
    calls = [setup.service.enroll(token=token, csr_pem=csr, node_id=f"b{i:02d}") for i in range(30)]
    calls.append(setup.service.enroll(token=revoked, csr_pem=csr, node_id="r1"))
    calls.append(setup.service.enroll(token=token, csr_pem=csr, node_id="taken"))
    batches_before = setup.service.committer.batches
    results = await asyncio.gather(*calls, return_exceptions=True)

    ok = [r for r in results[:30] if isinstance(r, Enrolled)]
    used_up = [r for r in results[:30] if isinstance(r, PermissionDenied) and "used up" in str(r)]
    assert len(ok) == 20 and len(used_up) == 10, results
    assert isinstance(results[30], PermissionDenied) and "revoked" in str(results[30])
    assert isinstance(results[31], Conflict)
    tokens = {t.max_uses: t.uses for t in await setup.service.list_tokens()}
    assert tokens[20] == 20
    # Far fewer transactions than enrollments (they queued while the first batch committed).
    assert setup.service.committer.batches - batches_before < len(calls) // 2
    for result in ok:
        assert len(await setup.enrolled_events(result.node_id)) == 1
