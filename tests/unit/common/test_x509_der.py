"""The DER certificate reader agrees with ``cryptography`` on every field the daemon reads."""

from __future__ import annotations

import datetime as dt

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from opsfleet.common import certs, x509_der
from tests.fleet_certs import FleetPKI


def reference(cert_pem: bytes) -> x509_der.CertificateFields:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return x509_der.CertificateFields(
        serial=cert.serial_number,
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        uris=uris,
    )


def custom_cert(
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int,
    sans: list[x509.GeneralName] | None,
    critical_san: bool = False,
    rsa_key: bool = False,
) -> bytes:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custom")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=critical_san)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def fleet_certificates() -> list[bytes]:
    fleet = FleetPKI()
    ca = trustme.CA()
    return [
        fleet.ca_pem,
        fleet.manager().cert_pem,
        fleet.node("node-1").cert_pem,
        fleet.node("node_2.with-dots:and:colons").cert_pem,
        fleet.forged(expired=True).cert_pem,
        fleet.forged(uri=None).cert_pem,
        ca.cert_pem.bytes(),
        ca.issue_cert("example.org", "127.0.0.1").cert_chain_pems[0].bytes(),
    ]


def test_fields_match_cryptography_for_fleet_and_foreign_certificates() -> None:
    for pem in fleet_certificates():
        assert x509_der.read_pem(pem) == reference(pem)


def test_generalized_time_critical_san_rsa_and_odd_serials() -> None:
    uri = x509.UniformResourceIdentifier("spiffe://opsfleet/node/n1")
    cases = [
        custom_cert(  # after 2049: GeneralizedTime
            not_before=dt.datetime(1999, 12, 31, 23, 59, 58, tzinfo=dt.UTC),
            not_after=dt.datetime(2071, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            serial=1,
            sans=[x509.DNSName("a.example"), uri, x509.RFC822Name("x@example.org")],
            critical_san=True,
        ),
        custom_cert(
            not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
            serial=(1 << 159) - 1,  # leading 0x00 byte in DER
            sans=[uri, x509.UniformResourceIdentifier("https://second.example/")],
            rsa_key=True,
        ),
        custom_cert(
            not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            serial=0x80,
            sans=None,
        ),
    ]
    for pem in cases:
        assert x509_der.read_pem(pem) == reference(pem)
    first = x509_der.read_pem(cases[0])
    assert first.uris == ("spiffe://opsfleet/node/n1",)
    assert first.not_after == int(dt.datetime(2071, 2, 3, 4, 5, 6, tzinfo=dt.UTC).timestamp())


def test_identity_and_validity_read_without_cryptography_agree() -> None:
    fleet = FleetPKI()
    node = fleet.node("node-7")
    identity = certs.identity_of_pem(node.cert_pem)
    cert = x509.load_pem_x509_certificate(node.cert_pem)
    assert identity == certs.Identity(
        "node", "node-7", cert.serial_number, int(cert.not_valid_after_utc.timestamp())
    )
    manager = certs.identity_of_pem(fleet.manager().cert_pem)
    assert manager is not None and manager.kind == "manager" and manager.uri == certs.MANAGER_URI
    assert certs.identity_of_pem(fleet.forged(uri=None).cert_pem) is None
    issued, not_after = certs.validity(node.cert_pem)
    assert issued == cert.not_valid_before_utc.timestamp() + certs.BACKDATE_SECONDS
    assert not_after == cert.not_valid_after_utc.timestamp()


def test_malformed_input_is_a_value_error_at_every_truncation() -> None:
    pem = FleetPKI().node("node-1").cert_pem
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    for cut in range(len(der)):
        with pytest.raises(ValueError):
            x509_der.read_der(der[:cut])
    with pytest.raises(ValueError):
        x509_der.read_der(der + b"\x00")
    for garbage in (b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"):
        with pytest.raises(ValueError):
            x509_der.read_pem(garbage)
        assert certs.identity_of_pem(garbage) is None
    flipped = bytearray(der)
    flipped[0] = 0x31  # a SET, not a SEQUENCE
    with pytest.raises(ValueError, match="unexpected DER tag"):
        x509_der.read_der(bytes(flipped))
