"""The few fields of an X.509 certificate a daemon reads, from its DER bytes, without ``cryptography``.

A running daemon needs its own certificate's serial and validity (renewal schedule) and
the URI SANs of its own and of the Manager's certificate (identities). Reading them here
keeps the ``cryptography`` package (about 12 MiB resident) out of a daemon at steady
state; it is imported only to make keys and CSRs (enrollment, renewal) and on the
Manager's side.

This reader does not verify anything: it only walks the DER structure of RFC 5280's
``TBSCertificate`` (strict lengths, no indefinite form) and raises ValueError on anything
malformed. Certificates reaching it were verified by TLS (a peer's chain) or are the
process's own.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from dataclasses import dataclass

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06
_BOOLEAN = 0x01
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_VERSION = 0xA0
_EXPLICIT_EXTENSIONS = 0xA3
_URI_NAME = 0x86  # GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String
_SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17 subjectAltName
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_UTC_RE = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED_RE = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


@dataclass(frozen=True)
class CertificateFields:
    """What :func:`read_pem` returns: times are unix seconds (UTC)."""

    serial: int
    not_before: int
    not_after: int
    uris: tuple[str, ...]
    """The URI SANs, in certificate order (empty without a subjectAltName extension)."""


def read_pem(cert_pem: bytes) -> CertificateFields:
    """The fields of the first certificate in ``cert_pem``; ValueError if there is none or it is malformed."""
    match = _PEM_RE.search(cert_pem)
    if match is None:
        raise ValueError("no PEM certificate found")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the PEM certificate is not base64: {exc}") from exc
    return read_der(der)


def read_der(der: bytes) -> CertificateFields:
    """The fields of one DER certificate; ValueError when it is malformed."""
    cert, rest = _element(der, 0, _SEQUENCE)
    if rest != len(der):
        raise ValueError("trailing bytes after the certificate")
    tbs, _ = _element(der, cert.start, _SEQUENCE)
    pos = tbs.start
    if _tag_at(der, pos, tbs.end) == _EXPLICIT_VERSION:
        pos = _element(der, pos, _EXPLICIT_VERSION, tbs.end)[1]
    serial_el, pos = _element(der, pos, _INTEGER, tbs.end)
    pos = _element(der, pos, _SEQUENCE, tbs.end)[1]  # signature algorithm
    pos = _element(der, pos, _SEQUENCE, tbs.end)[1]  # issuer
    validity_el, pos = _element(der, pos, _SEQUENCE, tbs.end)
    not_before, after_pos = _time(der, validity_el.start, validity_el.end)
    not_after, _ = _time(der, after_pos, validity_el.end)
    pos = _element(der, pos, _SEQUENCE, tbs.end)[1]  # subject
    pos = _element(der, pos, _SEQUENCE, tbs.end)[1]  # subjectPublicKeyInfo
    uris: tuple[str, ...] = ()
    while pos < tbs.end:  # issuerUniqueID [1], subjectUniqueID [2], extensions [3]
        tag = der[pos]
        el, pos = _element(der, pos, tag, tbs.end)
        if tag == _EXPLICIT_EXTENSIONS:
            uris = _san_uris(der, el.start, el.end)
    serial = int.from_bytes(der[serial_el.start : serial_el.end], "big", signed=True)
    return CertificateFields(serial=serial, not_before=not_before, not_after=not_after, uris=uris)


@dataclass(frozen=True)
class _Element:
    start: int  # first content byte
    end: int  # one past the last content byte


def _tag_at(der: bytes, pos: int, end: int) -> int | None:
    return der[pos] if pos < end else None


def _element(der: bytes, pos: int, tag: int, end: int | None = None) -> tuple[_Element, int]:
    """The element of ``tag`` at ``pos`` (within ``end``) and the position after it."""
    end = len(der) if end is None else end
    if pos + 2 > end:
        raise ValueError("truncated certificate")
    if der[pos] != tag:
        raise ValueError(f"unexpected DER tag 0x{der[pos]:02x} at {pos} (wanted 0x{tag:02x})")
    first = der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("unsupported or truncated DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("DER element runs past its container")
    return _Element(pos, pos + length), pos + length


def _time(der: bytes, pos: int, end: int) -> tuple[int, int]:
    tag = _tag_at(der, pos, end)
    if tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise ValueError("validity time is neither UTCTime nor GeneralizedTime")
    el, after = _element(der, pos, tag, end)
    text = der[el.start : el.end].decode("ascii", errors="replace")
    match = (_UTC_RE if tag == _UTC_TIME else _GENERALIZED_RE).fullmatch(text)
    if match is None:
        raise ValueError(f"malformed certificate time {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if tag == _UTC_TIME:
        year += 1900 if year >= 50 else 2000  # RFC 5280 4.1.2.5.1
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"malformed certificate time {text!r}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)), after


def _san_uris(der: bytes, start: int, end: int) -> tuple[str, ...]:
    extensions, _ = _element(der, start, _SEQUENCE, end)
    pos = extensions.start
    while pos < extensions.end:
        ext, pos = _element(der, pos, _SEQUENCE, extensions.end)
        oid, inner = _element(der, ext.start, _OID, ext.end)
        if _tag_at(der, inner, ext.end) == _BOOLEAN:  # critical
            inner = _element(der, inner, _BOOLEAN, ext.end)[1]
        value, _ = _element(der, inner, _OCTET_STRING, ext.end)
        if der[oid.start : oid.end] == _SAN_OID:
            return _uris(der, value.start, value.end)
    return ()


def _uris(der: bytes, start: int, end: int) -> tuple[str, ...]:
    names, _ = _element(der, start, _SEQUENCE, end)
    out: list[str] = []
    pos = names.start
    while pos < names.end:
        tag = der[pos]
        el, pos = _element(der, pos, tag, names.end)
        if tag == _URI_NAME:
            out.append(der[el.start : el.end].decode("ascii"))
    return tuple(out)
