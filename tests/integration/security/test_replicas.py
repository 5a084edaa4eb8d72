"""Two Manager replicas on one database and one CA: identities enrolled through one are
honoured by the other, and a deletion through one is refused by the other."""

from __future__ import annotations

from typing import Any

import grpc

from tests.helpers import assert_eventually
from tests.integration.security.support import Fleet, Stubs, node_channel


async def test_replicas_share_identities_and_revocations(database_url: str, start_fleet: Any) -> None:
    a: Fleet = await start_fleet(database_url)
    ca_dir = a.app.config.data_dir + "/ca"
    b: Fleet = await start_fleet(
        database_url, enrollment__ca_cert_file=f"{ca_dir}/ca.pem", enrollment__ca_key_file=f"{ca_dir}/ca.key"
    )
    assert a.fingerprint == b.fingerprint

    await a.enroll("roamer", await a.token())
    material = a.material("roamer")
    via_b = Stubs(node_channel(b.app, material))
    b.channels.append(via_b.channel)
    assert (await via_b.register("roamer")).success  # B looks the certificate up once
    assert (await via_b.heartbeat("roamer")).success

    r = await a.http.delete("/api/v1/admin/nodes/roamer", headers=await a.admin())
    assert r.status_code == 200, r.text

    async def refused() -> bool:
        try:
            await via_b.heartbeat("roamer")
        except grpc.aio.AioRpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await assert_eventually(refused, timeout=15, interval=0.3)
