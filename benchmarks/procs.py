"""Subprocesses of a benchmark: the baseline server, the Manager and the simulator.

Servers log to a file in the run's work directory (so a chatty Manager can never block on
a full pipe); :meth:`ServerProcess.start` waits for the "gRPC listening on HOST:PORT" line
both servers print. Every process runs in its own session, so Ctrl-C reaches only
``run.py``, which stops them in its ``finally`` blocks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LISTEN_RE = re.compile(r"gRPC listening on (\S+):(\d+)")
HTTP_RE = re.compile(r"HTTP listening on (\S+):(\d+)")
FINGERPRINT_RE = re.compile(r"fleet CA \w+ .*fingerprint (sha256:[0-9a-f]{64})")
BENCH_ADMIN_PASSWORD = "bench-fleet-secret-4242"
BASELINE_SCRIPT = Path(__file__).resolve().parent / "baseline_server.py"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SIMULATOR_GRACE = 60.0


class BenchError(Exception):
    """A benchmark could not run (a server did not start, the simulator failed, ...)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for a server that must keep its port across a restart)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSFLEET_")}


@dataclass
class ServerProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int
    started_in: float
    """Seconds from spawning to the "listening" line."""
    listening_at: float
    """Wall-clock time of the "listening" line (unix seconds)."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        timeout: float = START_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_clean_env(), **(env or {})},
                start_new_session=True,
            )
        offset = 0
        while True:
            text = log_path.read_text(errors="replace")
            match = LISTEN_RE.search(text, offset)
            if match:
                return cls(
                    name, popen, log_path, int(match.group(2)), time.monotonic() - started, time.time()
                )
            offset = max(0, len(text) - 200)
            if popen.poll() is not None:
                raise BenchError(
                    f"{name} exited with code {popen.returncode} before listening:\n{_tail(log_path)}"
                )
            if time.monotonic() - started > timeout:
                popen.kill()
                popen.wait()
                raise BenchError(f"{name} did not listen within {timeout:.0f}s:\n{_tail(log_path)}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM, wait (SIGKILL after ``timeout``); seconds the shutdown took. Idempotent."""
        started = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return time.monotonic() - started


def start_baseline(workdir: Path, port: int = 0, *, ca_dir: Path | None = None) -> ServerProcess:
    """The bare server in plaintext, or with ``ca_dir`` (a fleet CA's ca.pem and ca.key) in mTLS:
    a server certificate issued by that CA, client certificates required from it."""
    argv = [sys.executable, str(BASELINE_SCRIPT), "--listen", f"127.0.0.1:{port}"]
    if ca_dir is not None:
        from opsfleet.common.pki import CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority

        ca = CertificateAuthority.load(ca_dir / CA_CERT_FILE, ca_dir / CA_KEY_FILE)
        cert_pem, key_pem, _ = ca.issue_manager(["127.0.0.1"])
        tls_dir = workdir / "baseline-tls"
        tls_dir.mkdir(parents=True, exist_ok=True)
        (tls_dir / "server.pem").write_bytes(cert_pem)
        (tls_dir / "server.key").write_bytes(key_pem)
        argv += [
            f"--tls-cert={tls_dir / 'server.pem'}",
            f"--tls-key={tls_dir / 'server.key'}",
            f"--client-ca={ca_dir / CA_CERT_FILE}",
        ]
    return ServerProcess.start("baseline", argv, workdir / "baseline.log")


def fleet_ca_dir(workdir: Path) -> Path:
    """Where a Manager started by :func:`start_manager` keeps its fleet CA."""
    return workdir / "data" / "ca"


def start_manager(
    workdir: Path,
    database_url: str,
    port: int = 0,
    label: str = "manager",
    extra: Sequence[str] = (),
    *,
    enroll_port: int | None = None,
) -> ServerProcess:
    """A Manager in plaintext (``--insecure``), or with the fleet CA's mTLS when ``enroll_port`` is given."""
    secure = enroll_port is not None
    env = {}
    if secure:
        env = {
            "OPSFLEET_ENROLLMENT__HOST": "127.0.0.1",
            "OPSFLEET_ENROLLMENT__PORT": str(enroll_port),
            "OPSFLEET_ADMIN_PASSWORD": BENCH_ADMIN_PASSWORD,
        }
    argv = [
        sys.executable,
        "-m",
        "opsfleet",
        "manager",
        *([] if secure else ["--insecure"]),
        "--grpc-listen",
        f"127.0.0.1:{port}",
        "--http-listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
        "--data-dir",
        str(workdir / "data"),
        *extra,
    ]
    return ServerProcess.start(label, argv, workdir / f"{label}.log", env=env)


def enrollment_for(manager: ServerProcess, enroll_port: int, nodes: int) -> tuple[str, str, str]:
    """(enrollment address, token of ``nodes`` uses, CA fingerprint) of a Manager started
    with ``enroll_port``: the token is created through its REST API as the admin."""
    import httpx

    deadline = time.monotonic() + 30.0
    while True:  # the HTTP server starts after the gRPC port the start waited for
        text = manager.log_path.read_text(errors="replace")
        http, fp = HTTP_RE.search(text), FINGERPRINT_RE.search(text)
        if http is not None and fp is not None:
            break
        if time.monotonic() > deadline or manager.popen.poll() is not None:
            raise BenchError(
                f"{manager.name} logged no HTTP port or CA fingerprint:\n{_tail(manager.log_path)}"
            )
        time.sleep(0.1)
    with httpx.Client(base_url=f"http://127.0.0.1:{http.group(2)}/api/v1", timeout=30) as client:
        r = client.post("/auth/login", json={"username": "admin", "password": BENCH_ADMIN_PASSWORD})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['data']['token']}"}
        r = client.post("/enrollment-tokens", json={"max_uses": nodes, "expires_in": 86400}, headers=headers)
        r.raise_for_status()
        token = str(r.json()["data"]["token"])
    return f"127.0.0.1:{enroll_port}", token, fp.group(1)


@dataclass(frozen=True)
class SimulatorArgs:
    """The ``opsfleet simulate`` flags a scenario sets; see ``opsfleet simulate --help``."""

    mode: str
    nodes: int
    duration: float
    workers: int
    channels: int = 4
    inflight: int = 64
    heartbeat_interval: float = 10.0
    metrics_interval: float = 60.0
    sync_interval: float = 300.0
    stagger: float = 10.0
    progress_interval: float = 5.0
    seed: int = 1
    node_prefix: str = "sim-"
    enroll: tuple[str, str, str] | None = None  # (address, token, CA fingerprint): nodes use mTLS

    def argv(self, target: str, json_path: Path, manager_pid: int | None) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "opsfleet",
            "simulate",
            f"--target={target}",
            f"--mode={self.mode}",
            f"--nodes={self.nodes}",
            f"--duration={self.duration}",
            f"--workers={self.workers}",
            f"--channels={self.channels}",
            f"--inflight={self.inflight}",
            f"--heartbeat-interval={self.heartbeat_interval}",
            f"--metrics-interval={self.metrics_interval}",
            f"--sync-interval={self.sync_interval}",
            f"--stagger={self.stagger}",
            f"--progress-interval={self.progress_interval}",
            f"--seed={self.seed}",
            f"--node-prefix={self.node_prefix}",
            f"--json={json_path}",
            "--log-level=warning",
        ]
        if manager_pid is not None:
            argv.append(f"--manager-pid={manager_pid}")
        if self.enroll is not None:
            address, token, fingerprint = self.enroll
            argv += [f"--enroll={address}", f"--token={token}", f"--ca-fingerprint={fingerprint}"]
        return argv


class SimulatorProcess:
    """``opsfleet simulate`` in the background; its table goes to a file, progress to our stderr."""

    def __init__(self, args: SimulatorArgs, target: str, json_path: Path, manager_pid: int | None) -> None:
        self.args = args
        self.json_path = json_path
        self.out_path = json_path.with_suffix(".txt")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("wb") as out:
            self.popen = subprocess.Popen(
                args.argv(target, json_path, manager_pid),
                stdout=out,
                env=_clean_env(),
                start_new_session=True,
            )

    def wait(self) -> dict[str, Any]:
        """Wait for the run to end; its JSON report. BenchError if it failed or wrote none."""
        try:
            code = self.popen.wait(self.args.duration + SIMULATOR_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(
                f"simulator did not finish within {self.args.duration + SIMULATOR_GRACE:.0f}s"
            ) from None
        if not self.json_path.exists():
            raise BenchError(
                f"simulator exited with code {code} and wrote no report:\n{_tail(self.out_path)}"
            )
        report: dict[str, Any] = json.loads(self.json_path.read_text())
        if code != 0 or report.get("failures"):
            raise BenchError(f"simulator failed (exit {code}): {report.get('failures')}")
        return report

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def run_simulator(
    args: SimulatorArgs, target: str, json_path: Path, manager_pid: int | None
) -> dict[str, Any]:
    sim = SimulatorProcess(args, target, json_path, manager_pid)
    try:
        return sim.wait()
    finally:
        sim.kill()
