"""Certificates for security tests: a fleet CA and the good and bad certificates clients present.

The CA is made here with ``cryptography`` (so tests can also sign what the real CA never
would: expired certificates, certificates without an identity) and wrapped in the
project's :class:`~opsfleet.common.pki.CertificateAuthority` for the real ones.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opsfleet.common import pki
from opsfleet.common.pki import TLSMaterial


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class FleetPKI:
    """One fleet CA; ``manager()``/``node(id)`` are what enrollment would issue."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("test fleet CA"))
            .issuer_name(_name("test fleet CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca = pki.CertificateAuthority(self.cert, self.key)
        self.ca_pem = self.ca.cert_pem

    def manager(self) -> TLSMaterial:
        cert_pem, key_pem, _ = self.ca.issue_manager(["127.0.0.1"])
        return TLSMaterial(self.ca_pem, cert_pem, key_pem)

    def node(self, node_id: str) -> TLSMaterial:
        key = pki.new_private_key()
        issued = self.ca.sign_node_csr(pki.make_csr(key, node_id), node_id, dt.timedelta(days=1))
        return TLSMaterial(self.ca_pem, issued.cert_pem, pki.key_to_pem(key))

    def forged(
        self,
        *,
        uri: str | None = pki.MANAGER_URI,
        dns: str = pki.MANAGER_DNS_NAME,
        expired: bool = False,
        self_signed: bool = False,
    ) -> TLSMaterial:
        """A certificate the fleet CA never issues: expired, self-signed or without an identity."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        start, end = (
            (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
            if expired
            else (
                now - dt.timedelta(minutes=5),
                now + dt.timedelta(days=1),
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(dns)]
        if uri is not None:
            sans.append(x509.UniformResourceIdentifier(uri))
        issuer, signer = (_name("forged"), key) if self_signed else (self.cert.subject, self.key)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("forged"))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(signer, hashes.SHA256())
        )
        return TLSMaterial(self.ca_pem, _pem(cert), pki.key_to_pem(key))


def write_files(material: TLSMaterial, folder: Path) -> dict[str, str]:
    """``material`` as cert/key/ca files in ``folder``: {"cert": .., "key": .., "ca": ..}."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"cert": folder / "cert.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
    files["cert"].write_bytes(material.cert_pem)
    files["key"].write_bytes(material.key_pem)
    files["ca"].write_bytes(material.ca_pem)
    return {name: str(path) for name, path in files.items()}


def served_serial(port: int, client: TLSMaterial, folder: Path) -> int:
    """The serial number of the certificate a TLS server on 127.0.0.1:``port`` presents now."""
    files = write_files(client, folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(files["cert"], files["key"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
