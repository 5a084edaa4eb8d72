"""Server TLS credentials that follow their files: a renewed certificate is served without a restart.

:func:`reloading_server_credentials` builds ``grpc.dynamic_ssl_server_credentials`` whose
fetcher gRPC calls at every new TLS handshake. The fetcher compares the files' (inode,
size, mtime) with what it last loaded and, when they changed, reads them again. The new
certificate is used only when the key matches it and the CA parses: while a renewal is
halfway (the key already replaced, the certificate not yet), the old pair keeps being
served and the next handshake looks again. Established connections keep their session,
so calls in flight are never dropped.

The fetcher runs on a gRPC core thread; it never raises (a failure is logged and the
previous certificate stays).

The checks use the standard library's OpenSSL (:mod:`ssl`) and
:mod:`opsfleet.common.x509_der`, not the ``cryptography`` package: a daemon serving its
DaemonService with its node certificate keeps ``cryptography`` unloaded.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from opsfleet.common import x509_der
from opsfleet.common.errors import ConfigError

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class ServerFiles:
    """The files a TLS server reads: its certificate (chain) and key, and the CA of its clients.

    ``label`` names them in logs; ``config_key`` is the key ConfigErrors point at.
    """

    cert_file: str
    key_file: str
    ca_file: str = ""
    label: str = "tls"
    config_key: str = "tls.cert_file"


@dataclass(frozen=True)
class LoadedFiles:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None
    serial: int
    not_after: str


def _signature(files: ServerFiles) -> Signature:
    paths = [files.cert_file, files.key_file] + ([files.ca_file] if files.ca_file else [])
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _signature_or_none(files: ServerFiles) -> Signature | None:
    try:
        return _signature(files)
    except OSError:
        return None


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted (a server key must be unencrypted)")


def _check_pair(files: ServerFiles) -> None:
    """ValueError unless the key file holds the private key of the certificate file's first certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert_file, files.key_file, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ValueError(
                f"the key in {files.key_file} does not belong to the certificate in {files.cert_file}"
            ) from exc
        raise ValueError(f"OpenSSL cannot load {files.cert_file} with {files.key_file}: {exc}") from exc


def _check_ca(ca_pem: bytes, ca_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise ValueError(f"no usable CA certificate in {ca_file}: {exc}") from exc


def load_files(files: ServerFiles) -> LoadedFiles:
    """Read and check the files: ValueError (or OSError) when they are unreadable or do not match.

    OpenSSL checks the pair from the files themselves; when they change while being read
    (a renewal replacing them), ValueError, and the next handshake reads them again.
    """
    before = _signature(files)
    cert_pem = Path(files.cert_file).read_bytes()
    key_pem = Path(files.key_file).read_bytes()
    ca_pem = Path(files.ca_file).read_bytes() if files.ca_file else None
    fields = x509_der.read_pem(cert_pem)
    _check_pair(files)
    if ca_pem is not None:
        _check_ca(ca_pem, files.ca_file)
    if _signature(files) != before:
        raise ValueError(f"the TLS files of {files.label} changed while they were read")
    not_after = dt.datetime.fromtimestamp(fields.not_after, dt.UTC).isoformat()
    return LoadedFiles(cert_pem, key_pem, ca_pem, fields.serial, not_after)


class ReloadingCertificates:
    """The fetcher behind :func:`reloading_server_credentials` (one per server port)."""

    def __init__(self, files: ServerFiles, *, require_client_auth: bool) -> None:
        self.files = files
        self._require_client_auth = require_client_auth
        self._lock = threading.Lock()
        try:
            self._signature = _signature(files)
            self.current = load_files(files)
        except OSError as exc:
            raise ConfigError(f"config key '{files.config_key}': cannot read the TLS files: {exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"config key '{files.config_key}': unusable TLS files: {exc}") from exc
        self._failed: Signature | None = None
        self.reloads = 0

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.current.key_pem, self.current.cert_pem)], root_certificates=self.current.ca_pem
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(),
            self.fetch,  # type: ignore[arg-type]  # the fetcher returns None for "unchanged"
            require_client_authentication=self._require_client_auth,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC at each handshake: a new configuration when the files changed, else None."""
        with self._lock:
            try:
                signature = _signature(self.files)
                if signature == self._signature:
                    return None
                loaded = load_files(self.files)
            except (OSError, ValueError) as exc:
                seen = _signature_or_none(self.files)
                if seen != self._failed:  # one warning per state of the files, not per handshake
                    self._failed = seen
                    log.warning(
                        "TLS files of %s changed but cannot be used yet (still serving serial %x): %s",
                        self.files.label,
                        self.current.serial,
                        exc,
                    )
                return None
            except Exception:  # never let an exception escape into gRPC's handshake
                log.exception("reloading the TLS files of %s failed", self.files.label)
                return None
            self._signature = signature
            self._failed = None
            self.current = loaded
            self.reloads += 1
            log.info(
                "TLS certificate of %s reloaded from %s (serial %x, valid until %s)",
                self.files.label,
                self.files.cert_file,
                loaded.serial,
                loaded.not_after,
            )
            return self.configuration()


def reloading_server_credentials(
    files: ServerFiles, *, require_client_auth: bool
) -> tuple[grpc.ServerCredentials, ReloadingCertificates]:
    """Server credentials that pick up replaced files at the next handshake, and their fetcher.

    ConfigError (naming ``files.config_key``) when the files cannot be loaded now.
    ``require_client_auth`` needs ``files.ca_file``: clients then must present a
    certificate from that CA.
    """
    if require_client_auth and not files.ca_file:
        raise ConfigError(f"config key '{files.config_key}': client authentication needs a CA file")
    fetcher = ReloadingCertificates(files, require_client_auth=require_client_auth)
    return fetcher.credentials(), fetcher
