"""The DaemonClient pool: one channel per node, replaced on address change, idle channels closed."""

from __future__ import annotations

from opsfleet.common.pki import CertificateAuthority, TLSMaterial
from opsfleet.manager.rpc.daemon_client import DaemonCallSettings, DaemonClientPool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_channels_per_node_address_change_and_idle() -> None:
    clock = Clock()
    pool = DaemonClientPool(DaemonCallSettings(idle=60), clock=clock)
    await pool.start()
    try:
        pool.client("a", "127.0.0.1:1")
        pool.client("a", "127.0.0.1:1")
        assert pool.open_channels == 1
        pool.client("b", "127.0.0.1:2")
        assert pool.open_channels == 2
        first = pool._entries["a"].channel
        pool.client("a", "127.0.0.1:3")  # the node moved: a new channel
        assert pool._entries["a"].channel is not first and pool.open_channels == 2
        clock.now += 30
        pool.client("b", "127.0.0.1:2")  # b stays busy
        clock.now += 45
        assert await pool.close_idle() == 1
        assert set(pool._entries) == {"b"}
    finally:
        await pool.close()
    assert pool.open_channels == 0


async def test_use_identity_pins_new_channels_and_drops_open_ones() -> None:
    ca = CertificateAuthority.create()
    cert_pem, key_pem, _ = ca.issue_manager([])
    pool = DaemonClientPool(DaemonCallSettings())
    try:
        pool.client("a", "127.0.0.1:1")
        assert not pool.pinned and pool.open_channels == 1
        pool.use_identity(TLSMaterial(ca.cert_pem, cert_pem, key_pem))
        assert pool.pinned and pool.open_channels == 0  # reopened with the identity on next use
        await pool.start()
        pool.client("a", "127.0.0.1:1")
        assert pool.open_channels == 1
        pool.use_identity(None)
        assert not pool.pinned and pool.open_channels == 0
    finally:
        await pool.close()
