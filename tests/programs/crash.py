"""Prints a line, then exits with ``--code`` (default 3) after ``--after`` seconds (default 0.1)."""

from __future__ import annotations

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--after", type=float, default=0.1)
parser.add_argument("--code", type=int, default=3)
args = parser.parse_args()
print("crashing soon", flush=True)
time.sleep(args.after)
print(f"exiting with {args.code}", file=sys.stderr, flush=True)
sys.exit(args.code)
