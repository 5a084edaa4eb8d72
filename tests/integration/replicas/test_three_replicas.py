"""Three Manager replicas on PostgreSQL (mTLS, one fleet CA shared through its files) with
real enrolled daemons: kill -9 the elected one.

Every node reports again, no stored sample is lost, another replica is elected, and a node
deleted through one replica is refused by the others within the coherence bound."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import grpc
import pytest

from opsfleet.common.pki import MANAGER_DNS_NAME, load_node_material
from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.replicas.fleet import Daemon, Replica, largest_gap, samples

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

DAEMONS = 4  # each starts on a random replica: usually one or more on the leader
REPORTING_BOUND = 30.0
COHERENCE_BOUND = 2.0


def _mtls_channel(address: str, work: Path) -> grpc.aio.Channel:
    """A channel presenting the node identity enrolled in ``work``."""
    material = load_node_material(work)
    assert material is not None
    creds = grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem, private_key=material.key_pem, certificate_chain=material.cert_pem
    )
    options = [("grpc.ssl_target_name_override", MANAGER_DNS_NAME)]
    return grpc.aio.secure_channel(address, creds, options=options)


async def _leaders(replicas: list[Replica]) -> list[Replica]:
    answers = await asyncio.gather(*(r.ready() for r in replicas))
    return [r for r, body in zip(replicas, answers, strict=True) if body.get("leader")]


async def test_kill_the_leader(database_url: str, tmp_path: Path) -> None:
    first = await Replica.start(database_url, tmp_path / "m0", secure=True)
    replicas = [first]
    daemons: list[Daemon] = []
    try:
        for i in (1, 2):
            replicas.append(await Replica.start(database_url, tmp_path / f"m{i}", secure=True, ca=first))
        assert {r.fingerprint for r in replicas} == {first.fingerprint}
        (leader,) = await assert_eventually(lambda: _leaders(replicas), timeout=10)
        token = await first.token(DAEMONS + 1)
        node_ids = []
        for i in range(DAEMONS + 1):  # the last identity is for the node deleted below
            node_ids.append(await replicas[i % 3].enroll(tmp_path / f"d{i}" / "w", token))
        ghost = node_ids.pop()
        for i in range(DAEMONS):
            addresses = [r.address for r in replicas]
            random.shuffle(addresses)
            daemons.append(await Daemon.start(tmp_path / f"d{i}", addresses))
        assert [await d.node_id() for d in daemons] == node_ids
        for daemon in daemons:
            await assert_eventually(daemon.reporting_to, timeout=20)
        for node_id in node_ids:
            await assert_eventually(lambda n=node_id: samples(database_url, n, "memory"), timeout=20)

        # Any replica operates any node's agents: it dials the daemon itself (mTLS).
        async with replicas[(replicas.index(leader) + 1) % 3].admin() as http:
            for node_id in node_ids:
                r = await http.post(f"/api/v1/nodes/{node_id}/agents/sync")
                assert r.status_code == 200, r.text

        sessions = [len(d.reporting_to()) for d in daemons]
        on_leader = [d for d in daemons if d.reporting_to()[-1] == leader.address]
        leader.proc.proc.send_signal(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        await leader.proc.wait()
        survivors = [r for r in replicas if r is not leader]

        (new_leader,) = await assert_eventually(lambda: _leaders(survivors), timeout=10)
        elected = time.monotonic() - killed_at
        assert any("is now the leader" in line for line in new_leader.proc.lines)

        def all_back() -> bool:
            return all(
                len(d.reporting_to()) > n and d.reporting_to()[-1] != leader.address
                for d, n in zip(daemons, sessions, strict=True)
                if d in on_leader
            )

        await assert_eventually(all_back, timeout=REPORTING_BOUND)
        failover = time.monotonic() - killed_at

        async def fresh_samples() -> bool:
            for node_id in node_ids:
                stored = await samples(database_url, node_id, "memory")
                if stored[-1].timestamp < killed_wall + 3:
                    return False
            return True

        await assert_eventually(fresh_samples, timeout=REPORTING_BOUND)
        reporting = time.monotonic() - killed_at
        print(
            f"\nleader killed: re-elected in {elected:.2f}s, {len(on_leader)} daemons failed over "
            f"in {failover:.2f}s, every node's samples stored again in {reporting:.2f}s"
        )

        # A node deleted through one replica is refused by another within the bound.
        one, another = survivors
        async with _mtls_channel(another.address, tmp_path / f"d{DAEMONS}" / "w") as channel:
            stub = manager_pb2_grpc.ManagerServiceStub(channel)
            await stub.RegisterNode(
                manager_pb2.RegisterNodeRequest(node_id=ghost, hostname="g", ip="10.9.9.9")
            )
            assert (await stub.Heartbeat(manager_pb2.HeartbeatRequest(node_id=ghost))).success
            async with one.admin() as http:
                assert (await http.delete(f"/api/v1/admin/nodes/{ghost}")).status_code == 200
            deleted_at = time.monotonic()

            async def refused() -> bool:
                try:
                    await stub.Heartbeat(manager_pb2.HeartbeatRequest(node_id=ghost))
                except grpc.aio.AioRpcError as exc:
                    # Deleted: unknown node, or (identity dropped with it) an unknown certificate.
                    return exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
                return False

            await assert_eventually(refused, timeout=COHERENCE_BOUND, interval=0.02)
            print(f"deleted node refused by another replica after {time.monotonic() - deleted_at:.3f}s")

        # Samples a daemon collected just before its stop stay in its spool for its next start
        # (tests/integration/daemon covers that); what reached a replica has no hole.
        for daemon in daemons:
            assert await daemon.stop() == 0, daemon.proc.output
        for node_id in node_ids:
            stored = await samples(database_url, node_id, "memory")
            assert largest_gap(stored) <= 3, [s.timestamp for s in stored]
    finally:
        for daemon in daemons:
            await daemon.stop()
        for replica in replicas:
            await replica.proc.stop()
