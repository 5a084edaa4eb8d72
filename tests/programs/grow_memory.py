"""Grows its memory by ``--step`` MiB every ``--interval`` seconds, up to ``--max`` MiB."""

from __future__ import annotations

import argparse
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
parser = argparse.ArgumentParser()
parser.add_argument("--step", type=int, default=20)
parser.add_argument("--interval", type=float, default=0.05)
parser.add_argument("--max", type=int, default=200)
args = parser.parse_args()

chunks: list[bytearray] = []
while True:
    if len(chunks) * args.step < args.max:
        chunks.append(bytearray(b"\x01") * (args.step * 1024 * 1024))  # written, so resident
        print(f"holding {len(chunks) * args.step} MiB", flush=True)
    time.sleep(args.interval)
