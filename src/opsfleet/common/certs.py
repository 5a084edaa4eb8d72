"""The fleet's identities and a node's TLS files, read without the ``cryptography`` package.

Identities are URI SANs: ``spiffe://opsfleet/node/<node_id>`` for nodes and
``spiffe://opsfleet/manager`` for Manager replicas (see :mod:`opsfleet.common.pki`, which
issues them and re-exports everything here). A running daemon needs only this module:
its own certificate's identity and validity and its peers' identities are read by
:mod:`opsfleet.common.x509_der`, so ``cryptography`` is imported only where keys are made
or certificates are issued (enrollment, renewal, the Manager).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from opsfleet.common import x509_der
from opsfleet.common.errors import Unauthenticated

SPIFFE_PREFIX = "spiffe://opsfleet/"
NODE_URI_PREFIX = SPIFFE_PREFIX + "node/"
MANAGER_URI = SPIFFE_PREFIX + "manager"
MANAGER_DNS_NAME = "manager.opsfleet.internal"
NODE_DNS_SUFFIX = ".node.opsfleet.internal"
BACKDATE_SECONDS = 300
"""A certificate's not_valid_before is set this far back for clock skew."""
RENEW_AT = 2 / 3  # of a certificate's lifetime

TLS_SUBDIR = "tls"
NODE_KEY_FILE = "node.key"
NODE_CERT_FILE = "node.pem"
NODE_CA_FILE = "ca.pem"

IdentityKind = Literal["node", "manager"]


def node_uri(node_id: str) -> str:
    return NODE_URI_PREFIX + node_id


def node_dns_name(node_id: str) -> str:
    """The DNS SAN of a node's certificate: valid DNS whatever characters the node id has."""
    digest = hashlib.sha256(node_id.encode()).hexdigest()[:32]
    return f"n{digest}{NODE_DNS_SUFFIX}"


@dataclass(frozen=True)
class Identity:
    """Who a certificate says its holder is."""

    kind: IdentityKind
    node_id: str  # empty for a manager
    serial: int
    not_after: int  # unix seconds

    @property
    def uri(self) -> str:
        return MANAGER_URI if self.kind == "manager" else node_uri(self.node_id)


def identity_of_fields(fields: x509_der.CertificateFields) -> Identity | None:
    """The first fleet identity among the certificate's URI SANs, if any."""
    for uri in fields.uris:
        if uri == MANAGER_URI:
            return Identity("manager", "", fields.serial, fields.not_after)
        if uri.startswith(NODE_URI_PREFIX) and len(uri) > len(NODE_URI_PREFIX):
            return Identity("node", uri[len(NODE_URI_PREFIX) :], fields.serial, fields.not_after)
    return None


@lru_cache(maxsize=65536)
def identity_of_pem(cert_pem: bytes) -> Identity | None:
    """The identity in a PEM certificate (cached: TLS peers present the same bytes each call)."""
    try:
        fields = x509_der.read_pem(cert_pem)
    except ValueError:
        return None
    return identity_of_fields(fields)


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> Identity | None:
    """The identity of a gRPC peer from ``context.auth_context()`` (None without a client cert).

    gRPC has already verified the chain against the server's trusted CA when it hands over
    ``x509_pem_cert``; this only reads the SAN.
    """
    pems = list(auth_context.get("x509_pem_cert", ()))
    if not pems:
        return None
    return identity_of_pem(bytes(pems[0]))


def validity(cert_pem: bytes) -> tuple[float, float]:
    """(issued, not_after) in unix seconds; ``issued`` leaves out the clock-skew backdating.

    ValueError when ``cert_pem`` holds no readable certificate.
    """
    fields = x509_der.read_pem(cert_pem)
    return float(fields.not_before + BACKDATE_SECONDS), float(fields.not_after)


def renewal_due(cert_pem: bytes, fraction: float = RENEW_AT) -> float:
    """When a certificate should be renewed: ``fraction`` of its lifetime after issue (unix s)."""
    issued, not_after = validity(cert_pem)
    return issued + max(0.0, not_after - issued) * fraction


def check_identity(identity: Identity | None, *, node_id: str) -> Identity:
    """The caller's identity, which must be node ``node_id``; Unauthenticated otherwise.

    (Callers map a wrong-but-valid identity to PermissionDenied themselves when they want
    to tell the two apart.)
    """
    if identity is None:
        raise Unauthenticated("a client certificate from the fleet CA is required")
    if identity.kind != "node" or identity.node_id != node_id:
        raise Unauthenticated(f"certificate identity {identity.uri} may not act as node {node_id!r}")
    return identity


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte on (atomic replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class TLSMaterial:
    """A process's own certificate and key and the fleet CA it trusts (all PEM)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def identity(self) -> Identity | None:
        return identity_of_pem(self.cert_pem)


def node_tls_dir(work_dir: Path) -> Path:
    """Where an enrolled daemon keeps ``node.key`` (0600), ``node.pem`` and ``ca.pem``."""
    return work_dir / TLS_SUBDIR


def load_node_material(work_dir: Path) -> TLSMaterial | None:
    """The enrolled identity in ``work_dir/tls``, or None when the daemon has not enrolled."""
    folder = node_tls_dir(work_dir)
    paths = [folder / NODE_CA_FILE, folder / NODE_CERT_FILE, folder / NODE_KEY_FILE]
    if not all(p.exists() for p in paths):
        return None
    ca, cert, key = (p.read_bytes() for p in paths)
    return TLSMaterial(ca_pem=ca, cert_pem=cert, key_pem=key)


def save_node_material(work_dir: Path, material: TLSMaterial) -> None:
    """Store an identity (key first, 0600; each file replaced atomically)."""
    folder = node_tls_dir(work_dir)
    write_private(folder / NODE_KEY_FILE, material.key_pem)
    write_public(folder / NODE_CERT_FILE, material.cert_pem)
    write_public(folder / NODE_CA_FILE, material.ca_pem)
