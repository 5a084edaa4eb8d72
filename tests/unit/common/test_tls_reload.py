"""Server TLS files that are re-read when they change, and only when they make a usable pair."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.common.tls_reload import ReloadingCertificates, ServerFiles, reloading_server_credentials
from tests.fleet_certs import FleetPKI, write_files


def files_of(paths: dict[str, str]) -> ServerFiles:
    return ServerFiles(paths["cert"], paths["key"], paths["ca"], "test tls", "test.tls.cert_file")


def test_unusable_files_are_config_errors(tmp_path: Path) -> None:
    fleet = FleetPKI()
    paths = write_files(fleet.node("a"), tmp_path)
    with pytest.raises(ConfigError, match=r"config key 'test\.tls\.cert_file': client authentication needs"):
        reloading_server_credentials(
            ServerFiles(paths["cert"], paths["key"], "", "x", "test.tls.cert_file"), require_client_auth=True
        )
    Path(paths["key"]).write_bytes(fleet.node("b").key_pem)
    with pytest.raises(
        ConfigError, match=r"'test\.tls\.cert_file': unusable TLS files: the key in .* does not belong"
    ):
        ReloadingCertificates(files_of(paths), require_client_auth=True)
    Path(paths["key"]).unlink()
    with pytest.raises(ConfigError, match=r"'test\.tls\.cert_file': cannot read the TLS files"):
        ReloadingCertificates(files_of(paths), require_client_auth=True)


def test_fetch_follows_the_files_once_they_are_usable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = FleetPKI()
    paths = write_files(fleet.node("a"), tmp_path)
    certificates = ReloadingCertificates(files_of(paths), require_client_auth=True)
    first = certificates.current.serial
    assert certificates.fetch() is None  # unchanged

    caplog.set_level(logging.WARNING, logger="opsfleet.common.tls_reload")
    renewed = fleet.node("a")
    Path(paths["key"]).write_bytes(renewed.key_pem)  # half a renewal
    assert certificates.fetch() is None and certificates.fetch() is None
    Path(paths["cert"]).unlink()
    assert certificates.fetch() is None
    assert certificates.current.serial == first and certificates.reloads == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # once per state of the files, not once per handshake
    assert "does not belong" in warnings[0] and "No such file" in warnings[1]

    Path(paths["cert"]).write_bytes(renewed.cert_pem)
    assert certificates.fetch() is not None
    assert certificates.current.serial != first and certificates.reloads == 1
    assert certificates.current.cert_pem == renewed.cert_pem
    assert certificates.fetch() is None


def test_an_encrypted_key_is_refused_without_prompting(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    fleet = FleetPKI()
    material = fleet.node("a")
    paths = write_files(material, tmp_path)
    key = serialization.load_pem_private_key(material.key_pem, password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    Path(paths["key"]).write_bytes(encrypted)
    with pytest.raises(ConfigError, match=r"unusable TLS files: .*encrypted"):
        ReloadingCertificates(files_of(paths), require_client_auth=True)
    Path(paths["key"]).write_bytes(material.key_pem)
    Path(paths["ca"]).write_bytes(b"no certificate here")
    with pytest.raises(ConfigError, match=r"unusable TLS files: no usable CA certificate"):
        ReloadingCertificates(files_of(paths), require_client_auth=True)
