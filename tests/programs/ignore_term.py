"""Ignores SIGTERM (so only SIGKILL stops it) and prints "ready"."""

from __future__ import annotations

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
