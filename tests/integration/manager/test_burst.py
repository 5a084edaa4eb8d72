"""A burst of calls that arrives while the Manager's event loop is busy is served, not dropped.

Regression test: gRPC core holds calls that grpc.aio's serving loop has not taken yet in a
pending queue bounded by default at 1,000 (random drops up to 3,000). Large fleets on their
own connections passed that bound at every burst (a restart, a garbage collection, a long
commit) and the nodes saw CANCELLED heartbeats (the 20,000-node fleets of
docs/performance.md). ``grpc.max_pending_calls`` sets the bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import grpc

from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.integration.manager.support import Running

CALLS = 4_000
CONNECTIONS = 8
LOOP_BUSY = 2.0


def _fire(address: str, node_id: str, firing: threading.Event) -> Counter[str]:
    """CALLS heartbeats over CONNECTIONS connections from this thread; their status codes."""
    channels = [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=10)
        stubs = [manager_pb2_grpc.ManagerServiceStub(channel) for channel in channels]
        request = manager_pb2.HeartbeatRequest(node_id=node_id, timestamp=int(time.time()))
        firing.set()
        futures = [stubs[i % CONNECTIONS].Heartbeat.future(request, timeout=60) for i in range(CALLS)]
        codes: Counter[str] = Counter()
        for future in futures:
            try:
                future.result()
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
        return codes
    finally:
        for channel in channels:
            channel.close()


async def test_burst_while_the_loop_is_busy_is_served(running: Running) -> None:
    await running.manager.RegisterNode(
        manager_pb2.RegisterNodeRequest(node_id="burst", hostname="burst", ip="10.0.0.1"), timeout=10
    )
    firing = threading.Event()
    codes_task = asyncio.create_task(asyncio.to_thread(_fire, running.address, "burst", firing))
    deadline = time.monotonic() + 20
    while not firing.is_set():
        assert time.monotonic() < deadline, "client did not connect"
        await asyncio.sleep(0.01)
    # The Manager runs on this loop: block it while the burst arrives (a stall of the kind a
    # full garbage collection or a long synchronous step causes).
    time.sleep(LOOP_BUSY)
    codes = await codes_task
    assert codes == Counter({"OK": CALLS}), codes
