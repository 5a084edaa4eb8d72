"""An agent's stdout/stderr as a size-rotated log file, and reading its tail back.

The daemon owns the agent's pipes; :class:`AgentLog` is their only writer. Lines go to
``<log_dir>/<agent_id>.log``, each stamped with the time it was read and its stream
(:mod:`opsfleet.common.log_lines`); before a line would push the file past ``max_bytes`` the
file is renamed to ``.1`` (``.1`` to ``.2``, ... up to ``.N``; the oldest is dropped) and a
new one is started, so a line is never split or lost by rotation. All methods are called
from the event loop thread; writes are small and synchronous, like the logging module's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
_READ_BLOCK = 64 * 1024


class LineSplitter:
    """Cuts a byte stream into lines (without the newline); overlong lines are cut at ``max_line``."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        *complete, rest = (self._buf + data).split(b"\n")
        out: list[bytes] = []
        for line in complete:
            out.extend(self._cut(line))
        while len(rest) >= self._max:
            out.append(rest[: self._max])
            rest = rest[self._max :]
        self._buf = rest
        return out

    def flush(self) -> list[bytes]:
        """The unterminated last line, if any (at end of stream)."""
        rest, self._buf = self._buf, b""
        return [rest] if rest else []

    def _cut(self, line: bytes) -> Iterable[bytes]:
        if len(line) <= self._max:
            return (line,)
        return (line[i : i + self._max] for i in range(0, len(line), self._max))


def _reverse_lines(path: Path) -> Generator[bytes]:
    """The lines of ``path`` from last to first, reading backwards in blocks."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        if pos == 0:
            return
        carry = b""
        first = True
        while pos > 0:
            step = min(_READ_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + carry
            if first:
                first = False
                if chunk.endswith(b"\n"):
                    chunk = chunk[:-1]
            parts = chunk.split(b"\n")
            carry = parts[0]
            yield from reversed(parts[1:])
        yield carry


class AgentLog:
    """The rotated log file of one agent."""

    def __init__(self, directory: Path, agent_id: str, *, max_bytes: int, backups: int) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError("max_bytes and backups must be at least 1")
        self.path = directory / f"{agent_id}.log"
        self._max_bytes = max_bytes
        self._backups = backups
        self._fh: BinaryIO | None = None
        self._size = 0
        self._failing = False

    def files(self) -> list[Path]:
        """The current file and its backups, newest first."""
        return [self.path, *(self._backup(i) for i in range(1, self._backups + 1))]

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _open(self) -> BinaryIO:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
            self._size = self._fh.tell()
        return self._fh

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for index in range(self._backups - 1, 0, -1):
            if self._backup(index).exists():
                os.replace(self._backup(index), self._backup(index + 1))
        if self.path.exists():
            os.replace(self.path, self._backup(1))

    def write_lines(self, lines: Iterable[bytes], prefix: bytes = b"") -> None:
        """Append ``lines``, each after ``prefix`` (the agent's pipes pass ``<time> <stream> ``,
        see :mod:`opsfleet.common.log_lines`); an unwritable disk is logged (once per failure
        streak), not raised."""
        try:
            for line in lines:
                data = prefix + line + b"\n"
                fh = self._open()
                if self._size > 0 and self._size + len(data) > self._max_bytes:
                    fh.flush()
                    self._rotate()
                    fh = self._open()
                fh.write(data)
                self._size += len(data)
            if self._fh is not None:
                self._fh.flush()
            self._failing = False
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write agent log %s: %s; output is dropped until it works", self.path, exc)
            self._failing = True
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def tail(self, lines: int, filter: str = "") -> list[str]:
        """The last ``lines`` lines (containing ``filter`` when given), oldest first, across rotations."""
        if lines <= 0:
            return []
        if self._fh is not None:
            self._fh.flush()
        needle = filter.encode("utf-8")
        found: list[bytes] = []
        for path in self.files():
            reader = _reverse_lines(path)
            try:
                for raw in reader:
                    if needle in raw:
                        found.append(raw)
                        if len(found) >= lines:
                            break
            finally:
                reader.close()
            if len(found) >= lines:
                break
        found.reverse()
        return [raw.decode("utf-8", errors="replace") for raw in found]
