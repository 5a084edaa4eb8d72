"""TLS material for gRPC servers and channels, read from files named in config."""

from __future__ import annotations

from pathlib import Path

import grpc

from opsfleet.common.errors import ConfigError


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"config key '{key}': cannot read {path}: {exc.strerror or exc}") from exc


def server_credentials(
    *, cert_file: str, key_file: str, ca_file: str, key_prefix: str
) -> grpc.ServerCredentials:
    """Server TLS; with ``ca_file`` set, clients must present a certificate signed by that CA."""
    if not cert_file or not key_file:
        raise ConfigError(
            f"config key '{key_prefix}.cert_file': TLS is enabled but cert_file/key_file is empty"
        )
    cert = _read(cert_file, f"{key_prefix}.cert_file")
    key = _read(key_file, f"{key_prefix}.key_file")
    if ca_file:
        ca = _read(ca_file, f"{key_prefix}.ca_file")
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
    return grpc.ssl_server_credentials([(key, cert)])


def channel_credentials(
    *, ca_file: str, cert_file: str, key_file: str, key_prefix: str
) -> grpc.ChannelCredentials:
    """Client TLS trusting ``ca_file`` (system roots when empty), with a client certificate for mTLS."""
    ca = _read(ca_file, f"{key_prefix}.ca_file") if ca_file else None
    if bool(cert_file) != bool(key_file):
        raise ConfigError(f"config key '{key_prefix}.cert_file': cert_file and key_file must be set together")
    cert = _read(cert_file, f"{key_prefix}.cert_file") if cert_file else None
    key = _read(key_file, f"{key_prefix}.key_file") if key_file else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
