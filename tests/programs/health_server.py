"""Serves ``GET /health`` on 127.0.0.1:``--port``: 200 until ``--fail-after`` seconds have
passed or ``--fail-file`` exists, 500 from then on. Exits 0 on SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--fail-after", type=float, default=0.0)
parser.add_argument("--fail-file", default="")
args = parser.parse_args()
started = time.monotonic()


def failing() -> bool:
    if args.fail_after and time.monotonic() - started >= args.fail_after:
        return True
    return bool(args.fail_file) and os.path.exists(args.fail_file)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if failing() else 200
        body = b"failing" if code == 500 else b"ok"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *fmt_args: object) -> None:
        print(f"health {format % fmt_args}", flush=True)


server = HTTPServer(("127.0.0.1", args.port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"serving on {args.port}", flush=True)
server.serve_forever(poll_interval=0.05)
sys.exit(0)
