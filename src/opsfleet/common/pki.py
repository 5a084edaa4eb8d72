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
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opsfleet.common.certs import (
    BACKDATE_SECONDS,
    MANAGER_DNS_NAME,
    MANAGER_URI,
    NODE_CA_FILE,
    NODE_CERT_FILE,
    NODE_DNS_SUFFIX,
    NODE_KEY_FILE,
    NODE_URI_PREFIX,
    RENEW_AT,
    SPIFFE_PREFIX,
    TLS_SUBDIR,
    Identity,
    IdentityKind,
    TLSMaterial,
    check_identity,
    identity_of_fields,
    identity_of_pem,
    load_node_material,
    node_dns_name,
    node_tls_dir,
    node_uri,
    peer_identity,
    renewal_due,
    save_node_material,
    validity,
    write_private,
    write_public,
)
from opsfleet.common.errors import ConfigError, InvalidArgument

# The names of opsfleet.common.certs are re-exported: this is the Manager's one PKI module.
__all__ = [
    "BACKDATE",
    "BACKDATE_SECONDS",
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CA_LIFETIME",
    "MANAGER_CERT_LIFETIME",
    "MANAGER_DNS_NAME",
    "MANAGER_URI",
    "NODE_CA_FILE",
    "NODE_CERT_FILE",
    "NODE_DNS_SUFFIX",
    "NODE_KEY_FILE",
    "NODE_URI_PREFIX",
    "RENEW_AT",
    "SPIFFE_PREFIX",
    "TLS_SUBDIR",
    "CertificateAuthority",
    "Identity",
    "IdentityKind",
    "IssuedCertificate",
    "TLSMaterial",
    "check_identity",
    "fetch_server_chain",
    "fingerprint",
    "fingerprint_der",
    "identity_of_fields",
    "identity_of_pem",
    "key_to_pem",
    "load_key_pem",
    "load_node_material",
    "make_csr",
    "new_private_key",
    "node_dns_name",
    "node_tls_dir",
    "node_uri",
    "normalize_fingerprint",
    "peer_identity",
    "public_key_sha256",
    "renewal_due",
    "save_node_material",
    "validity",
    "write_private",
    "write_public",
]

CA_LIFETIME = dt.timedelta(days=3650)
MANAGER_CERT_LIFETIME = dt.timedelta(days=365)
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
BACKDATE = dt.timedelta(seconds=BACKDATE_SECONDS)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
