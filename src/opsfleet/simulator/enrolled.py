"""Simulated nodes with their own identities: each enrolls (EnrollmentService.Enroll with a
token of at least ``--nodes`` uses) before its first registration, then speaks mutual TLS
on its own connection with its own certificate, as real enrolled daemons do (so a run
includes one TLS handshake per node).

All nodes of a worker share one key pair (the CA signs only the public key; generating
thousands of keys would measure the simulator, not the Manager). Each node enrolls over a
connection of its own, closed afterwards, as ``opsfleet daemon enroll`` does (a connection
shared by thousands of enrolling nodes would queue their calls behind each other's HTTP/2
streams, which no real fleet does). At most ``--enroll-concurrency`` enrollments per worker are
in flight; the other nodes wait their turn. A failed Enroll (UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ...) is retried by the node's registration loop with
full-jitter backoff and the same key, so an enrollment whose reply was lost gets its
certificate re-issued. A node id that already has an active identity for another key (a
previous simulator run) is refused (ALREADY_EXISTS): use a fresh ``--node-prefix`` or database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import ConfigError
from opsfleet.common.pki import (
    MANAGER_DNS_NAME,
    fetch_server_chain,
    fingerprint,
    key_to_pem,
    make_csr,
    new_private_key,
    normalize_fingerprint,
)
from opsfleet.proto import enrollment_pb2, enrollment_pb2_grpc
from opsfleet.simulator.calls import GrpcCaller, _Stubs
from opsfleet.simulator.config import EnrollSettings
from opsfleet.simulator.payloads import NodeIdentity
from opsfleet.simulator.stats import OK


class EnrolledCaller(GrpcCaller):
    def __init__(self, target: str, *, enroll: EnrollSettings, timeout: float) -> None:
        super().__init__(target, channels=1, timeout=timeout)
        self._enroll = enroll
        self._ca_pem = b""
        self._key = new_private_key()
        self._key_pem = key_to_pem(self._key)
        self._csr = make_csr(self._key, "simulated node")
        self._enroll_creds: grpc.ChannelCredentials | None = None
        self._enroll_turns = asyncio.Semaphore(enroll.concurrency)
        self._node_channels: dict[str, grpc.aio.Channel] = {}
        self._node_stubs: dict[str, _Stubs] = {}
        self._options: list[tuple[str, Any]] = [
            *rpc_opts.channel_options(),
            *rpc_opts.reconnect_options(),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.ssl_target_name_override", MANAGER_DNS_NAME),
        ]

    async def start(self) -> None:
        host, port = split_host_port(self._enroll.address, key="--enroll")
        want = normalize_fingerprint(self._enroll.ca_fingerprint)
        chain = await asyncio.to_thread(fetch_server_chain, host, port)
        matching = [pem for pem in chain if fingerprint(pem) == want]
        if not matching:
            raise ConfigError(f"--ca-fingerprint: {self._enroll.address} does not present the CA {want}")
        self._ca_pem = matching[0]
        self._enroll_creds = grpc.ssl_channel_credentials(root_certificates=self._ca_pem)

    async def close(self) -> None:
        channels = [*self._node_channels.values()]
        self._node_channels, self._node_stubs = {}, {}
        for channel in channels:
            await channel.close(grace=None)

    def enrolled(self) -> int:
        return len(self._node_stubs)

    def _for(self, node: NodeIdentity) -> _Stubs:
        return self._node_stubs[node.node_id]

    async def _enroll_node(self, node: NodeIdentity) -> str:
        assert self._enroll_creds is not None, "start() first"
        request = enrollment_pb2.EnrollRequest(
            token=self._enroll.token, csr_pem=self._csr, node_id=node.node_id, hostname=node.hostname
        )
        async with (
            self._enroll_turns,
            grpc.aio.secure_channel(
                self._enroll.address, self._enroll_creds, options=self._options
            ) as enroll_channel,
        ):
            stub = enrollment_pb2_grpc.EnrollmentServiceStub(enroll_channel)
            try:
                reply = await stub.Enroll(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                return f"ENROLL_{exc.code().name}"
        creds = grpc.ssl_channel_credentials(
            root_certificates=self._ca_pem,
            private_key=self._key_pem,
            certificate_chain=bytes(reply.certificate_pem),
        )
        channel = grpc.aio.secure_channel(self._target, creds, options=self._options)
        self._node_channels[node.node_id] = channel
        self._node_stubs[node.node_id] = _Stubs(channel)
        return OK

    async def register(self, node: NodeIdentity) -> str:
        if node.node_id not in self._node_stubs:
            code = await self._enroll_node(node)
            if code != OK:
                return code
        return await super().register(node)
