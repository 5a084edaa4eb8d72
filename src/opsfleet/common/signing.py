"""Ed25519 signatures of update packages (Manager, CLI and daemon share this module).

The signed message is the UTF-8 string ``"<component>\\n<version>\\n<sha256 hex>"``, so a
signature made for one component or version cannot be replayed for another. Signatures
travel base64-encoded; public keys are the raw 32 bytes, base64-encoded (what
``update.trusted_keys`` lists); private keys are PEM (PKCS#8, unencrypted) files.

``cryptography`` is imported only when a key is made, loaded for signing or a signature is
checked: checking that a configured public key is well-formed needs none (a daemon's
config names trusted keys, and a daemon at steady state keeps ``cryptography`` unloaded).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from opsfleet.common.errors import InvalidArgument, PermissionDenied

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHUNK = 1024 * 1024
SHA256_RE = re.compile(r"[0-9a-f]{64}")
COMPONENT_RE = re.compile(r"daemon|agent:[A-Za-z0-9._:-]{1,128}")
VERSION_RE = re.compile(r"[A-Za-z0-9._+-]{1,64}")
PUBLIC_KEY_BYTES = 32


def signed_message(component: str, version: str, sha256_hex: str) -> bytes:
    return f"{component}\n{version}\n{sha256_hex.lower()}".encode()


def check_target(component: str, version: str) -> None:
    """InvalidArgument unless ``component`` is ``daemon``/``agent:<id>`` and ``version`` is sane."""
    if not COMPONENT_RE.fullmatch(component):
        raise InvalidArgument(f"component must be 'daemon' or 'agent:<id>', got {component[:140]!r}")
    if not VERSION_RE.fullmatch(version):
        raise InvalidArgument(f"version must be 1-64 characters of [A-Za-z0-9._+-], got {version[:80]!r}")


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """The hex SHA-256 and the size of everything left in ``stream`` (read in chunks)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as stream:
        return sha256_stream(stream)


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_b64: str


def create_key_pair() -> KeyPair:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return KeyPair(private_pem=_private_pem(key), public_b64=_public_b64(key.public_key()))


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_b64(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument("the signing key is not an Ed25519 key")
    return key


def public_key_of(pem: bytes) -> str:
    return _public_b64(load_private_key(pem).public_key())


def check_public_key(b64: str) -> bytes:
    """The raw key of a base64 Ed25519 public key; InvalidArgument when it is not one.

    Any 32 bytes are an Ed25519 public key to ``cryptography`` (OpenSSL checks nothing
    more when it loads one), so this accepts exactly what :func:`load_public_key` does.
    """
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"not a base64 Ed25519 public key: {b64[:60]!r}") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise InvalidArgument(f"not a base64 Ed25519 public key: {b64[:60]!r}")
    return raw


def load_public_key(b64: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = check_public_key(b64)
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidArgument(f"not a base64 Ed25519 public key: {b64[:60]!r}") from exc


def sign(private_pem: bytes, component: str, version: str, sha256_hex: str) -> str:
    """The base64 signature of ``component``/``version``/``sha256_hex``."""
    key = load_private_key(private_pem)
    return base64.b64encode(key.sign(signed_message(component, version, sha256_hex))).decode()


class Verifier:
    """Checks signatures against a fixed set of trusted public keys (base64)."""

    def __init__(self, trusted_keys: Iterable[str]) -> None:
        self._keys: Sequence[Ed25519PublicKey] = [load_public_key(key) for key in trusted_keys]

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    def verify(self, component: str, version: str, sha256_hex: str, signature_b64: str) -> None:
        """PermissionDenied unless one trusted key signed exactly this component/version/hash."""
        if not self._keys:
            raise PermissionDenied(
                "no trusted update key is configured (update.trusted_keys) nor handed over at "
                "enrollment: updates are refused"
            )
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except binascii.Error as exc:
            raise InvalidArgument("signature is not base64") from exc
        if len(signature) != 64:
            raise InvalidArgument(f"signature must be 64 bytes (Ed25519), got {len(signature)}")
        from cryptography.exceptions import InvalidSignature

        message = signed_message(component, version, sha256_hex)
        for key in self._keys:
            try:
                key.verify(signature, message)
                return
            except InvalidSignature:
                continue
        raise PermissionDenied(
            f"signature does not match {component} {version} with any trusted key "
            "(wrong key, or signed for another component, version or package)"
        )
