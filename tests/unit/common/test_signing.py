from __future__ import annotations

import base64
import hashlib
import io

import pytest

from opsfleet.common import signing
from opsfleet.common.errors import InvalidArgument, PermissionDenied
from opsfleet.common.signing import (
    Verifier,
    check_target,
    create_key_pair,
    public_key_of,
    sha256_stream,
    sign,
    signed_message,
)

DIGEST = hashlib.sha256(b"package").hexdigest()


def test_the_signed_message_names_component_version_and_hash() -> None:
    assert signed_message("agent:fb", "8.12", DIGEST.upper()) == f"agent:fb\n8.12\n{DIGEST}".encode()


def test_a_signature_verifies_only_for_what_was_signed() -> None:
    keys = create_key_pair()
    assert public_key_of(keys.private_pem) == keys.public_b64
    signature = sign(keys.private_pem, "agent:fb", "8.12", DIGEST)
    verifier = Verifier([create_key_pair().public_b64, keys.public_b64])
    verifier.verify("agent:fb", "8.12", DIGEST, signature)
    for component, version, digest in (
        ("agent:other", "8.12", DIGEST),
        ("agent:fb", "8.13", DIGEST),
        ("daemon", "8.12", DIGEST),
        ("agent:fb", "8.12", "0" * 64),
    ):
        with pytest.raises(PermissionDenied):
            verifier.verify(component, version, digest, signature)


def test_no_trusted_key_refuses_everything_and_garbage_is_invalid() -> None:
    keys = create_key_pair()
    signature = sign(keys.private_pem, "daemon", "1", DIGEST)
    with pytest.raises(PermissionDenied, match="no trusted update key"):
        Verifier([]).verify("daemon", "1", DIGEST, signature)
    with pytest.raises(InvalidArgument):
        Verifier([keys.public_b64]).verify("daemon", "1", DIGEST, "not base64!")
    with pytest.raises(InvalidArgument):
        Verifier([keys.public_b64]).verify("daemon", "1", DIGEST, "AAAA")
    with pytest.raises(InvalidArgument):
        Verifier(["bm90IGEga2V5"])


@pytest.mark.parametrize(
    ("component", "version"),
    [("agent", "1"), ("agent:", "1"), ("agent:a/b", "1"), ("daemon", ""), ("daemon", "1 2")],
)
def test_targets_are_checked(component: str, version: str) -> None:
    with pytest.raises(InvalidArgument):
        check_target(component, version)


def test_sha256_stream_reads_in_chunks() -> None:
    data = b"x" * (3 * 1024 * 1024 + 7)
    assert sha256_stream(io.BytesIO(data)) == (hashlib.sha256(data).hexdigest(), len(data))


def test_checking_a_public_key_accepts_exactly_what_cryptography_loads() -> None:
    good = [
        create_key_pair().public_b64,
        base64.b64encode(bytes(32)).decode(),
        base64.b64encode(b"\xff" * 32).decode(),
    ]
    for key in good:
        assert signing.check_public_key(key) == base64.b64decode(key)
        signing.load_public_key(key)
    for bad in ["", "!!", base64.b64encode(bytes(31)).decode(), base64.b64encode(bytes(33)).decode()]:
        with pytest.raises(InvalidArgument, match="not a base64 Ed25519 public key"):
            signing.check_public_key(bad)
        with pytest.raises(InvalidArgument, match="not a base64 Ed25519 public key"):
            signing.load_public_key(bad)
