"""Prints a line, then exits with ``--code`` (default 3) after ``--after`` seconds (default 0.1).

With ``--unless-exists PATH`` it runs until stopped instead when PATH exists (a fixed agent)."""

from __future__ import annotations

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--after", type=float, default=0.1)
parser.add_argument("--code", type=int, default=3)
parser.add_argument("--unless-exists", default="")
args = parser.parse_args()
if args.unless_exists and os.path.exists(args.unless_exists):
    print("fixed: running", flush=True)
    while True:
        time.sleep(0.2)
print("crashing soon", flush=True)
time.sleep(args.after)
print(f"exiting with {args.code}", file=sys.stderr, flush=True)
sys.exit(args.code)
