"""A minimal Prometheus remote-write receiver for benchmarks, run as its own process.

``python benchmarks/remote_write_receiver.py [--port N]`` prints ``listening on HOST:PORT``,
then answers ``POST /api/v1/write`` with 204 after decoding the snappy WriteRequest (a body
that does not decode gets 400) and counts series samples; ``GET /count`` returns the count.
It stores nothing: the benchmark measures the sending side.
"""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opsfleet.manager.export import wire


class Counter:
    def __init__(self) -> None:
        self.samples = 0
        self.requests = 0
        self.lock = threading.Lock()


def handler_for(counter: Counter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                samples = sum(len(points) for _, points in wire.decode(body))
            except Exception as exc:
                self._answer(400, f"cannot decode: {exc}".encode())
                return
            with counter.lock:
                counter.samples += samples
                counter.requests += 1
            self._answer(204, b"")

        def do_GET(self) -> None:
            with counter.lock:
                text = f"{counter.samples} {counter.requests}\n".encode()
            self._answer(200, text)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    opts = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), handler_for(Counter()))
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
