"""Runs until SIGTERM, printing numbered lines: ``forever.py [--interval S] [--count N] [--size B]``.

With ``--count`` it prints exactly N lines at once, then "done" on stderr, then idles.
Exits 0 on SIGTERM after printing "bye".
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())

parser = argparse.ArgumentParser()
parser.add_argument("--interval", type=float, default=0.05)
parser.add_argument("--count", type=int, default=0)
parser.add_argument("--size", type=int, default=0, help="pad each line to this many characters")
args = parser.parse_args()


def line(n: int) -> str:
    return f"line {n:06d} ".ljust(args.size, "x")


if args.count:
    for n in range(args.count):
        print(line(n))
    sys.stdout.flush()
    print("done", file=sys.stderr, flush=True)
    while not stop.wait(0.1):
        pass
else:
    n = 0
    while not stop.is_set():
        print(line(n), flush=True)
        n += 1
        stop.wait(args.interval)
print("bye", flush=True)
