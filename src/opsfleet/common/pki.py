"""The fleet's public-key infrastructure: one CA, SPIFFE-style identities, CSRs, fingerprints.

Identities are URI SANs: ``spiffe://opsfleet/node/<node_id>`` for nodes and
``spiffe://opsfleet/manager`` for Manager replicas. Besides the URI, every certificate
carries one DNS SAN that gRPC's hostname check can pin:

- a Manager certificate has :data:`MANAGER_DNS_NAME` (daemons dial with
  ``grpc.ssl_target_name_override`` set to it, so a node certificate from the same CA is
  never accepted as the Manager), plus the Manager's configured names and addresses;
- a node certificate has :func:`node_dns_name` of its node id (the Manager dials a daemon
  with that name as the target override, so it reaches the node it means to call).

Keys are ECDSA P-256: small, fast to sign and to verify in TLS handshakes.
This module does no I/O except :class:`CertificateAuthority.load_or_create` and
:func:`fetch_server_chain`; it imports no gRPC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opsfleet.common.errors import ConfigError, InvalidArgument, Unauthenticated

SPIFFE_PREFIX = "spiffe://opsfleet/"
NODE_URI_PREFIX = SPIFFE_PREFIX + "node/"
MANAGER_URI = SPIFFE_PREFIX + "manager"
MANAGER_DNS_NAME = "manager.opsfleet.internal"
NODE_DNS_SUFFIX = ".node.opsfleet.internal"
CA_LIFETIME = dt.timedelta(days=3650)
MANAGER_CERT_LIFETIME = dt.timedelta(days=365)
BACKDATE = dt.timedelta(minutes=5)  # not_valid_before is set this far back for clock skew
RENEW_AT = 2 / 3  # of a certificate's lifetime
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"

IdentityKind = Literal["node", "manager"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def node_uri(node_id: str) -> str:
    return NODE_URI_PREFIX + node_id


def node_dns_name(node_id: str) -> str:
    """The DNS SAN of a node's certificate: valid DNS whatever characters the node id has."""
    digest = hashlib.sha256(node_id.encode()).hexdigest()[:32]
    return f"n{digest}{NODE_DNS_SUFFIX}"


def fingerprint(cert_pem: bytes) -> str:
    """``sha256:<64 hex>`` of the certificate's DER encoding."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_der(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


def normalize_fingerprint(value: str) -> str:
    """Accept ``sha256:HEX``, bare hex, upper case or ``AA:BB:..``; InvalidArgument otherwise."""
    text = value.strip().lower()
    text = text.removeprefix("sha256:").replace(":", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidArgument("CA fingerprint must be sha256:<64 hex digits>")
    return "sha256:" + text


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


def identity_of_cert(cert: x509.Certificate) -> Identity | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    not_after = int(cert.not_valid_after_utc.timestamp())
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri == MANAGER_URI:
            return Identity("manager", "", cert.serial_number, not_after)
        if uri.startswith(NODE_URI_PREFIX) and len(uri) > len(NODE_URI_PREFIX):
            return Identity("node", uri[len(NODE_URI_PREFIX) :], cert.serial_number, not_after)
    return None


@lru_cache(maxsize=65536)
def identity_of_pem(cert_pem: bytes) -> Identity | None:
    """The identity in a PEM certificate (cached: TLS peers present the same bytes each call)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    return identity_of_cert(cert)


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> Identity | None:
    """The identity of a gRPC peer from ``context.auth_context()`` (None without a client cert).

    gRPC has already verified the chain against the server's trusted CA when it hands over
    ``x509_pem_cert``; this only reads the SAN.
    """
    pems = list(auth_context.get("x509_pem_cert", ()))
    if not pems:
        return None
    return identity_of_pem(bytes(pems[0]))


def public_key_sha256(key: PublicKeyTypes) -> str:
    """Hex SHA-256 of the key's SubjectPublicKeyInfo (DER): the same key gives the same value."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A PKCS#10 request; the CA ignores its names and sets the identity itself."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "opsfleet")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


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
class IssuedCertificate:
    cert_pem: bytes
    serial: int
    not_after: int
    key_sha256: str = ""  # of the certified public key's SubjectPublicKeyInfo (DER), hex


class CertificateAuthority:
    """The fleet CA: signs node certificates from CSRs and the Manager's own certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cert = cert
        self._key = key
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)

    @classmethod
    def create(cls, common_name: str = "opsfleet fleet CA") -> CertificateAuthority:
        key = new_private_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, *, key_prefix: str = "enrollment") -> CertificateAuthority:
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            key = load_key_pem(key_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config key '{key_prefix}.ca_cert_file': cannot load the CA: {exc}") from exc
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path) -> tuple[CertificateAuthority, bool]:
        """The CA kept in ``directory`` (ca.pem, ca.key 0600); created on first use. (ca, created)."""
        cert_file, key_file = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        if cert_file.exists() and key_file.exists():
            return cls.load(cert_file, key_file), False
        ca = cls.create()
        write_private(key_file, key_to_pem(ca._key))
        write_public(cert_file, ca.cert_pem)
        return ca, True

    def _sign(
        self,
        public_key: ec.EllipticCurvePublicKey | object,
        *,
        common_name: str,
        uri: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        lifetime: dt.timedelta,
        server: bool,
        client: bool,
    ) -> IssuedCertificate:
        now = _now()
        not_after = min(now + lifetime, self._cert.not_valid_after_utc)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        sans += [x509.DNSName(d) for d in dict.fromkeys(dns_names) if d]
        for ip in dict.fromkeys(ip_addresses):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError:
                continue
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
            .issuer_name(self._cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCertificate(
            cert.public_bytes(serialization.Encoding.PEM),
            serial,
            int(not_after.timestamp()),
            public_key_sha256(cert.public_key()),
        )

    def sign_node_csr(self, csr_pem: bytes, node_id: str, lifetime: dt.timedelta) -> IssuedCertificate:
        """A node certificate (server and client use) for the key in ``csr_pem``.

        Only the CSR's public key is used; names come from ``node_id``. InvalidArgument
        for a malformed CSR or a bad signature.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise InvalidArgument(f"csr_pem is not a PEM certificate request: {exc}") from exc
        if not csr.is_signature_valid:
            raise InvalidArgument("csr_pem signature does not verify")
        return self._sign(
            csr.public_key(),
            common_name=f"node {node_id}",
            uri=node_uri(node_id),
            dns_names=[node_dns_name(node_id)],
            ip_addresses=(),
            lifetime=lifetime,
            server=True,
            client=True,
        )

    def issue_manager(
        self, names: Sequence[str], lifetime: dt.timedelta = MANAGER_CERT_LIFETIME
    ) -> tuple[bytes, bytes, IssuedCertificate]:
        """A fresh key and certificate for a Manager replica: (cert_pem, key_pem, issued).

        ``names`` are host names and IP addresses the Manager is reached by; the certificate
        also carries :data:`MANAGER_DNS_NAME`, ``localhost`` and 127.0.0.1.
        """
        key = new_private_key()
        dns: list[str] = [MANAGER_DNS_NAME, "localhost"]
        ips: list[str] = ["127.0.0.1", "::1"]
        for name in names:
            try:
                ipaddress.ip_address(name)
                ips.append(name)
            except ValueError:
                if name and name not in ("0.0.0.0", "::"):
                    dns.append(name)
        issued = self._sign(
            key.public_key(),
            common_name="opsfleet manager",
            uri=MANAGER_URI,
            dns_names=dns,
            ip_addresses=ips,
            lifetime=lifetime,
            server=True,
            client=True,
        )
        return issued.cert_pem, key_to_pem(key), issued


def validity(cert_pem: bytes) -> tuple[float, float]:
    """(issued, not_after) in unix seconds; ``issued`` leaves out the clock-skew backdating."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    issued = (cert.not_valid_before_utc + BACKDATE).timestamp()
    return issued, cert.not_valid_after_utc.timestamp()


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


def fetch_server_chain(host: str, port: int, timeout: float = 10.0) -> list[bytes]:
    """The certificate chain a TLS server presents, UNVERIFIED, as PEM (leaf first).

    Used only by enrollment, which then trusts nothing in it but the certificate whose
    fingerprint the operator pinned.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=None) as tls,
    ):
        sslobj = tls._sslobj  # type: ignore[attr-defined]
        getter = getattr(tls, "get_unverified_chain", None) or getattr(sslobj, "get_unverified_chain", None)
        if getter is None:  # pragma: no cover - every supported Python has one of the two
            leaf = tls.getpeercert(binary_form=True)
            return [ssl.DER_cert_to_PEM_cert(leaf).encode()] if leaf else []
        chain = getter() or []
        out: list[bytes] = []
        for cert in chain:
            der = cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            out.append(ssl.DER_cert_to_PEM_cert(der).encode())
        return out


TLS_SUBDIR = "tls"
NODE_KEY_FILE = "node.key"
NODE_CERT_FILE = "node.pem"
NODE_CA_FILE = "ca.pem"


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
