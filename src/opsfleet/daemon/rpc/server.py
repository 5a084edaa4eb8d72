"""The daemon's gRPC server for :class:`~opsfleet.daemon.rpc.servicer.DaemonServicer`.

Three ways to serve, chosen by :func:`server_tls`:

- an enrolled identity (``work_dir/tls``): mutual TLS with the node certificate; clients
  need a certificate from the fleet CA carrying the Manager identity;
- explicit files (``daemon.tls.*``): mutual TLS with ``daemon.tls.ca_file`` (required);
  the Manager identity is required too unless ``daemon.tls.require_manager_identity`` is
  false (certificates not issued by the fleet CA);
- neither: plaintext, as the seed daemon does, with a warning at every start.

With TLS the certificate files are re-read when they change (by inode, size and mtime), at
the next handshake: a renewed certificate is served without a restart, and connections
already open keep working.

Lifecycle: ``start()`` binds (port 0 picks a free one) and returns the bound port;
``stop(grace)`` stops accepting calls, lets running ones finish for ``grace`` seconds,
then cancels them. ``stop()`` is idempotent and safe before ``start()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc

from opsfleet.common.certs import (
    NODE_CA_FILE,
    NODE_CERT_FILE,
    NODE_KEY_FILE,
    load_node_material,
    node_tls_dir,
)
from opsfleet.common.errors import ConfigError
from opsfleet.common.rpc import DEFAULT_MAX_MESSAGE_BYTES, bind, server_options
from opsfleet.common.tls_reload import ReloadingCertificates, ServerFiles, reloading_server_credentials
from opsfleet.daemon.rpc.auth import Interceptor, ManagerOnly
from opsfleet.proto import daemon_pb2_grpc

log = logging.getLogger(__name__)

ENROLLED = "enrolled identity"


@dataclass(frozen=True)
class ServerTLS:
    """Server certificate and key, and the CA whose certificates clients must present.

    ``ca_file`` is required (a TLS server that serves any client authenticates nobody).
    With ``require_manager_identity`` only a certificate carrying the Manager identity is
    served. ``source`` is ``"daemon.tls"`` (the config keys) or :data:`ENROLLED`.
    """

    cert_file: str
    key_file: str
    ca_file: str = ""
    require_manager_identity: bool = True
    source: str = "daemon.tls"


class TLSSettings(Protocol):
    """The ``daemon.tls`` config section."""

    @property
    def cert_file(self) -> str: ...
    @property
    def key_file(self) -> str: ...
    @property
    def ca_file(self) -> str: ...
    @property
    def require_manager_identity(self) -> bool: ...


def server_tls(settings: TLSSettings, work_dir: Path) -> ServerTLS | None:
    """How to serve: the enrolled identity, else the ``daemon.tls`` files, else None (plaintext)."""
    if load_node_material(work_dir) is not None:
        folder = node_tls_dir(work_dir)
        if settings.cert_file:
            log.warning("daemon.tls.cert_file/key_file/ca_file are ignored: the enrolled identity is used")
        return ServerTLS(
            str(folder / NODE_CERT_FILE),
            str(folder / NODE_KEY_FILE),
            str(folder / NODE_CA_FILE),
            source=ENROLLED,
        )
    if settings.cert_file:
        return ServerTLS(
            settings.cert_file,
            settings.key_file,
            settings.ca_file,
            require_manager_identity=settings.require_manager_identity,
        )
    return None


def _server_files(tls: ServerTLS, tls_key: str) -> ServerFiles:
    if tls.source == ENROLLED:
        folder = str(Path(tls.cert_file).parent)
        return ServerFiles(
            tls.cert_file, tls.key_file, tls.ca_file, f"the {ENROLLED} in {folder}", "daemon.work_dir"
        )
    if not tls.cert_file or not tls.key_file:
        raise ConfigError(f"config key '{tls_key}.cert_file': TLS is enabled but cert_file/key_file is empty")
    if not tls.ca_file:
        raise ConfigError(
            f"config key '{tls_key}.ca_file': TLS without a CA would serve any client; "
            "set the CA that issued the Manager's client certificate"
        )
    return ServerFiles(tls.cert_file, tls.key_file, tls.ca_file, tls_key, f"{tls_key}.cert_file")


class DaemonRpcServer:
    def __init__(
        self,
        servicer: daemon_pb2_grpc.DaemonServiceServicer,
        *,
        host: str,
        port: int,
        tls: ServerTLS | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        min_ping_interval: float = 10.0,
        port_key: str = "daemon.grpc_port",
        tls_key: str = "daemon.tls",
    ) -> None:
        """``port_key``/``tls_key`` name the config keys that ConfigErrors point at."""
        self._servicer = servicer
        self._host = host
        self._port = port
        self._tls = tls
        self._max_message_bytes = max_message_bytes
        self._min_ping_interval = min_ping_interval
        self._port_key = port_key
        self._tls_key = tls_key
        self._server: grpc.aio.Server | None = None
        self.certificates: ReloadingCertificates | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; the bound port. ConfigError (naming the key) when that fails."""
        if self._server is not None:
            return self.port
        credentials = None
        interceptors: list[Interceptor] = []
        if self._tls is not None:
            files = _server_files(self._tls, self._tls_key)
            credentials, self.certificates = reloading_server_credentials(files, require_client_auth=True)
            if self._tls.require_manager_identity:
                interceptors.append(ManagerOnly())
        server = grpc.aio.server(
            options=server_options(self._max_message_bytes, self._min_ping_interval),
            interceptors=interceptors,
        )
        daemon_pb2_grpc.add_DaemonServiceServicer_to_server(self._servicer, server)
        try:
            self.port = bind(server, self._host, self._port, credentials, key=self._port_key)
        except BaseException:
            await server.stop(None)
            raise
        await server.start()
        self._server = server
        self._log_mode()
        return self.port

    def _log_mode(self) -> None:
        tls = self._tls
        if tls is None:
            log.warning(
                "daemon gRPC listening on %s:%d in PLAINTEXT without authentication: anyone who can "
                "reach this port can start, stop and restart agents and read their logs; enroll this "
                "daemon (opsfleet daemon enroll) or set daemon.tls.*, or listen on 127.0.0.1 only",
                self._host,
                self.port,
            )
            return
        who = "the Manager identity" if tls.require_manager_identity else "any certificate from the CA"
        log.info(
            "daemon gRPC listening on %s:%d (mTLS with the %s; clients need %s)",
            self._host,
            self.port,
            ENROLLED if tls.source == ENROLLED else f"{self._tls_key} files",
            who,
        )
        if not tls.require_manager_identity:
            log.warning(
                "%s.require_manager_identity is false: any holder of a certificate from %s "
                "can operate agents",
                self._tls_key,
                tls.ca_file,
            )

    async def stop(self, grace: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        log.info("daemon gRPC server stopped")
