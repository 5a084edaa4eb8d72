"""A bare grpc.aio server with empty handlers: the ceiling the Manager is compared with.

It serves the methods the simulator calls (manager.ManagerService RegisterNode, Heartbeat,
ReportMetrics and proto.DaemonService/SyncAgentStates), answering ``success=True`` without
doing anything, with the Manager's server options and the Manager's collector settings
(``gc.freeze()`` and the same thresholds). What the Manager adds on top of this
(validation, services, the database) is what the benchmark ratio measures.

    python benchmarks/baseline_server.py --listen 127.0.0.1:0
    python benchmarks/baseline_server.py --tls-cert C --tls-key K --client-ca CA   # mTLS

With ``--client-ca`` it serves mutual TLS and requires a client certificate signed by
that CA, like the Manager with its fleet CA.

Logs ``gRPC listening on HOST:PORT`` to stderr like the Manager; SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import ConfigError, OpsfleetError
from opsfleet.common.lifecycle import install_signal_handlers, run_server_loop, tune_server_gc
from opsfleet.common.logs import configure_logging
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

log = logging.getLogger("baseline")

SHUTDOWN_GRACE = 2.0
Ctx = grpc.aio.ServicerContext[Any, Any]


class EmptyManager(manager_pb2_grpc.ManagerServiceServicer):
    async def RegisterNode(
        self, request: manager_pb2.RegisterNodeRequest, context: Ctx
    ) -> manager_pb2.RegisterNodeResponse:
        return manager_pb2.RegisterNodeResponse(success=True, message="ok")

    async def Heartbeat(
        self, request: manager_pb2.HeartbeatRequest, context: Ctx
    ) -> manager_pb2.HeartbeatResponse:
        return manager_pb2.HeartbeatResponse(success=True, message="ok")

    async def ReportMetrics(
        self, request: manager_pb2.ReportMetricsRequest, context: Ctx
    ) -> manager_pb2.ReportMetricsResponse:
        return manager_pb2.ReportMetricsResponse(success=True, message="ok", accepted=len(request.metrics))


class EmptyDaemonService(daemon_pb2_grpc.DaemonServiceServicer):
    async def SyncAgentStates(
        self, request: daemon_pb2.SyncAgentStatesRequest, context: Ctx
    ) -> daemon_pb2.SyncAgentStatesResponse:
        return daemon_pb2.SyncAgentStatesResponse(success=True, message="ok")


async def serve(
    host: str, port: int, stop: asyncio.Event, credentials: grpc.ServerCredentials | None = None
) -> None:
    server = grpc.aio.server(options=rpc_opts.server_options(rpc_opts.DEFAULT_MAX_MESSAGE_BYTES))
    manager_pb2_grpc.add_ManagerServiceServicer_to_server(EmptyManager(), server)
    # The other DaemonService RPCs answer UNIMPLEMENTED (grpc's default), as the Manager's do.
    daemon_pb2_grpc.add_DaemonServiceServicer_to_server(EmptyDaemonService(), server)  # type: ignore[abstract]
    bound = rpc_opts.bind(server, host, port, credentials, key="--listen")
    await server.start()
    log.info(
        "gRPC listening on %s:%d (baseline, empty handlers, %s, pid %d)",
        host,
        bound,
        "plaintext" if credentials is None else "mTLS",
        os.getpid(),
    )
    try:
        await stop.wait()
    finally:
        await server.stop(SHUTDOWN_GRACE)
        log.info("stopped")


def _credentials(
    cert: Path | None, key: Path | None, client_ca: Path | None
) -> grpc.ServerCredentials | None:
    if cert is None and key is None and client_ca is None:
        return None
    if cert is None or key is None or client_ca is None:
        raise ConfigError("--tls-cert, --tls-key and --client-ca go together")
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes(),
        require_client_auth=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="port 0 picks a free port"
    )
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM); with --tls-key")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--client-ca", type=Path, help="CA (PEM) client certificates must be signed by")
    args = parser.parse_args(argv)
    configure_logging("info")
    try:
        host, port = split_host_port(args.listen, key="--listen")
        credentials = _credentials(args.tls_cert, args.tls_key, args.client_ca)
    except (OpsfleetError, OSError) as exc:
        print(f"baseline_server: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    # The Manager's collector settings, so the comparison is like with like.
    tune_server_gc()

    async def _main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop, on_force=lambda: os._exit(130))
        await serve(host, port, stop, credentials)

    try:
        run_server_loop(_main())
    except OpsfleetError as exc:
        print(f"baseline_server: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
