"""Support code for Manager integration tests."""

from __future__ import annotations

import grpc

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2_grpc, manager_pb2_grpc


class Running:
    """A started ManagerApp plus stubs on a plaintext channel to it."""

    def __init__(self, app: ManagerApp, channel: grpc.aio.Channel) -> None:
        self.app = app
        self.channel = channel
        self.manager = manager_pb2_grpc.ManagerServiceStub(channel)
        self.daemon = daemon_pb2_grpc.DaemonServiceStub(channel)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"
