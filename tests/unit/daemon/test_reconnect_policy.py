"""The daemon's default reconnect policy keeps a daemon's return after an outage of any length
under 30 s: the backoff cap plus gRPC's own reconnect interval plus the return jitter."""

from __future__ import annotations

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.backoff import Backoff
from opsfleet.daemon import link
from opsfleet.daemon.config import ManagerSection
from opsfleet.manager.config import DEFAULT_OFFLINE_AFTER

GRPC_MAX_RECONNECT = 5.0  # grpc.max_reconnect_backoff_ms of the link's channel


def test_default_backoff_never_exceeds_a_cap_that_keeps_the_return_under_30s() -> None:
    section = ManagerSection()
    backoff = Backoff(base=section.reconnect_interval, cap=section.reconnect_max, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(200)]  # an outage of any length
    # Worst case: the whole capped delay, then gRPC's next probe, then the return jitter (<= 1 s).
    assert max(delays) + GRPC_MAX_RECONNECT + 1.0 <= 30.0, max(delays)


def test_manager_start_up_grace_covers_the_worst_return_and_a_heartbeat() -> None:
    section = ManagerSection()
    assert link.READY_JITTER <= 1.0
    worst_return = section.reconnect_max + GRPC_MAX_RECONNECT + link.READY_JITTER
    # The Manager marks nobody offline during its first offline_after seconds.
    assert worst_return + section.heartbeat_interval + section.timeout <= DEFAULT_OFFLINE_AFTER


def test_channel_reconnect_interval_matches_the_policy() -> None:
    options = dict(rpc_opts.reconnect_options())
    assert options["grpc.max_reconnect_backoff_ms"] == GRPC_MAX_RECONNECT * 1000
