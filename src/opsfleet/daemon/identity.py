"""Who this node is: its persistent id and the facts it registers with."""

from __future__ import annotations

import logging
import os
import platform
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from opsfleet.common.errors import ConfigError
from opsfleet.common.validation import NODE_ID_RE

log = logging.getLogger(__name__)

NODE_ID_FILE = "node_id"


def load_node_id(configured: str, work_dir: Path) -> str:
    """``daemon.id`` when set, else ``work_dir/node_id``, else a new UUID persisted there."""
    if configured:
        return configured
    path = work_dir / NODE_ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        if not NODE_ID_RE.fullmatch(existing):
            raise ConfigError(f"config key 'daemon.id': {path} holds an invalid node id {existing[:40]!r}")
        return existing
    node_id = str(uuid.uuid4())
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        fh.write(node_id + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    log.info("created node id %s in %s", node_id, path)
    return node_id


def local_ip_towards(host: str, port: int) -> str:
    """The source address the kernel uses to reach ``host:port`` (no packet is sent)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        log.warning("cannot resolve manager host %s: %s", host, exc)
        return ""
    for family, type_, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, type_, proto) as sock:
                sock.connect(sockaddr)
                return str(sock.getsockname()[0])
        except OSError:
            continue
    return ""


BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id(path: Path = BOOT_ID_FILE) -> str:
    """This boot's random id (Linux); "" where the kernel has none."""
    try:
        return path.read_text().strip()[:64]
    except OSError:
        return ""


def normalized_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class HostFacts:
    hostname: str = field(default_factory=socket.gethostname)
    os: str = field(default_factory=lambda: platform.system().lower())
    arch: str = field(default_factory=normalized_arch)
    boot_id: str = field(default_factory=read_boot_id)
