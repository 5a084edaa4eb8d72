"""The sample agent shipped with opsfleet: ``opsfleet sample-agent [--port N]`` (also
``python -m opsfleet.sample_agent [--port N]``).

It shows what a supervised agent can do: serve ``GET /health`` (200 "ok") on 127.0.0.1
for the daemon's HTTP probe, send a heartbeat JSON with its own CPU and memory to
``$OPSFLEET_HEARTBEAT_URL`` (as ``$OPSFLEET_AGENT_ID``) every few seconds, print a log line
to stdout about every second, and exit cleanly (code 0) on SIGTERM or SIGINT.
Standard library and psutil only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil

DEFAULT_LOG_INTERVAL = 1.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TIMEOUT = 2.0


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/health":
            self.send_error(404)
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the useful lines


DESCRIPTION = "The sample agent shipped with opsfleet (serves GET /health, heartbeats, logs a line a second)."


def add_parser(sub: Any) -> None:
    """``opsfleet sample-agent``: the agent the shipped configs/daemon.yaml supervises."""
    p: argparse.ArgumentParser = sub.add_parser(
        "sample-agent",
        help="run the sample agent (what configs/daemon.yaml supervises)",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(handler=run)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m opsfleet.sample_agent", description=DESCRIPTION)
    add_arguments(parser)
    return parser.parse_args(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=0, help="port of GET /health on 127.0.0.1 (0: any free port)"
    )
    parser.add_argument(
        "--log-interval", type=float, default=DEFAULT_LOG_INTERVAL, help="seconds between log lines"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        help="seconds between heartbeats",
    )


def send_heartbeat(url: str, agent_id: str, proc: psutil.Process) -> None:
    """POST one heartbeat; failures are printed to stderr and otherwise ignored."""
    body = json.dumps(
        {
            "agent_id": agent_id,
            "status": "ok",
            "cpu": proc.cpu_percent(None),
            "memory": proc.memory_info().rss,
        }
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=HEARTBEAT_TIMEOUT) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        print(f"heartbeat to {url} failed: {exc}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parse_args(argv))


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent_id = os.environ.get("OPSFLEET_AGENT_ID", "sample")
    heartbeat_url = os.environ.get("OPSFLEET_HEARTBEAT_URL", "")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _HealthHandler)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    port = server.server_address[1]
    print(f"sample agent {agent_id} started: http://127.0.0.1:{port}/health", flush=True)
    proc = psutil.Process()
    proc.cpu_percent(None)  # the first call only starts the measurement
    ticks = 0
    next_log = next_heartbeat = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_log:
            ticks += 1
            print(f"sample agent {agent_id} tick {ticks}", flush=True)
            next_log = now + args.log_interval
        if heartbeat_url and now >= next_heartbeat:
            send_heartbeat(heartbeat_url, agent_id, proc)
            next_heartbeat = now + args.heartbeat_interval
        wake = min(next_log, next_heartbeat) if heartbeat_url else next_log
        stop.wait(max(0.0, wake - time.monotonic()))
    server.shutdown()
    server.server_close()
    print(f"sample agent {agent_id} stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
