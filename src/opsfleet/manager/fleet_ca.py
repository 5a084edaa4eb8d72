"""The Manager's fleet CA and its own certificate (``grpc.tls.mode: auto``).

The CA lives in ``<data_dir>/ca/`` (``ca.pem``, ``ca.key`` 0600, created on first start) or
in the files named by ``enrollment.ca_cert_file`` / ``enrollment.ca_key_file`` (several
replicas point at the same files). Each start issues the replica a fresh server and client
certificate with the URI SAN ``spiffe://opsfleet/manager`` covering its configured names
and listen addresses.
"""

from __future__ import annotations

from pathlib import Path

from opsfleet.common.errors import ConfigError
from opsfleet.common.pki import CA_CERT_FILE, CertificateAuthority, TLSMaterial, fingerprint
from opsfleet.manager.config import ManagerConfig

CA_SUBDIR = "ca"


def ca_dir(config: ManagerConfig) -> Path:
    return Path(config.data_dir) / CA_SUBDIR


def ca_cert_path(config: ManagerConfig) -> Path:
    """Where the CA certificate of this Manager's configuration is (or will be)."""
    if config.enrollment.ca_cert_file:
        return Path(config.enrollment.ca_cert_file)
    return ca_dir(config) / CA_CERT_FILE


def load_fleet_ca(config: ManagerConfig) -> tuple[CertificateAuthority, bool]:
    """The configured CA, created in the data dir on first use: (ca, created)."""
    e = config.enrollment
    if e.ca_cert_file:
        return CertificateAuthority.load(Path(e.ca_cert_file), Path(e.ca_key_file)), False
    return CertificateAuthority.load_or_create(ca_dir(config))


def ca_fingerprint(config: ManagerConfig) -> str:
    """``sha256:<hex>`` of the CA certificate; ConfigError when there is none yet."""
    path = ca_cert_path(config)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config key 'enrollment.ca_cert_file': no fleet CA at {path} "
            f"({exc.strerror or exc}); the Manager creates it on its first start"
        ) from exc
    try:
        return fingerprint(data)
    except ValueError as exc:
        raise ConfigError(f"config key 'enrollment.ca_cert_file': {path} is not a PEM certificate") from exc


def manager_names(config: ManagerConfig) -> list[str]:
    """Names and addresses the Manager is reached by (wildcard listen addresses left out)."""
    names = [*config.enrollment.server_names, config.grpc.host, config.enrollment_host()]
    return [n for n in dict.fromkeys(names) if n and n not in ("0.0.0.0", "::")]


def manager_material(ca: CertificateAuthority, config: ManagerConfig) -> TLSMaterial:
    cert_pem, key_pem, _ = ca.issue_manager(manager_names(config))
    return TLSMaterial(ca_pem=ca.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
