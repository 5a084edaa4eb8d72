"""The stored form of an agent's log line: ``<RFC3339 UTC with ms> <stream> <text>``.

The daemon writes every captured line so (stream: ``stdout`` or ``stderr``); GetAgentLogs
keeps answering plain strings (wire compatible), and the Manager splits them back into
entries. Lines written before this format existed parse as text with no time or stream.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

Stream = Literal["stdout", "stderr"]
_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (stdout|stderr) (.*)", re.DOTALL)


@dataclass(frozen=True)
class LogEntry:
    time: str  # RFC3339 UTC with milliseconds, "" when unknown
    stream: str  # "stdout", "stderr" or "" when unknown
    text: str


def stamp(at: float) -> str:
    """``at`` (epoch seconds) as ``2026-01-31T12:00:00.123Z``."""
    whole = int(at)
    millis = min(round((at - whole) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def format_prefix(at: float, stream: Stream) -> bytes:
    return f"{stamp(at)} {stream} ".encode()


def parse_line(line: str) -> LogEntry:
    match = _LINE.fullmatch(line)
    if match is None:
        return LogEntry("", "", line)
    return LogEntry(match.group(1), match.group(2), match.group(3))
