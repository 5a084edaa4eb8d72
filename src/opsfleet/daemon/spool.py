"""On-disk spool of metric samples that could not be delivered yet ("nothing lost").

Layout of the spool directory::

    0000000000000001.seg ...   segments, oldest first; one framed record per line
    state.json                 read position {"segment", "offset"} and the ``dropped`` counter
    spool.lock                 flock()ed while a Spool has the directory open

A frame is ``LLLLLLLL CCCCCCCC <json>\\n``: the payload length and its CRC-32 in hex, then the
compact JSON of the record. ``json.dumps`` never emits a raw newline, so a newline always ends a
frame; a frame whose length or CRC does not match is corrupt.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsfleet.common.errors import ConfigError, Conflict, InvalidArgument, Unavailable

logger = logging.getLogger(__name__)

Record = dict[str, Any]

_SUFFIX = ".seg"
_STATE = "state.json"
_LOCK = "spool.lock"
_HEADER = 18  # "LLLLLLLL CCCCCCCC "


@dataclass(frozen=True)
class Cursor:
    """Opaque position returned by :meth:`Spool.peek`; pass it back to :meth:`Spool.ack`."""

    segment: int
    offset: int
    index: int  # valid records in ``segment`` before ``offset``


@dataclass
class _Segment:
    size: int
    count: int


def _encode(record: Record) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return b"%08x %08x " % (len(payload), zlib.crc32(payload)) + payload + b"\n"


def _frames(data: bytes, base: int) -> Iterator[tuple[int, int, bytes | None]]:
    """(start, end, payload or None if corrupt) for each line of ``data``; offsets are ``base``-relative.

    A trailing piece without a newline is yielded as corrupt with ``end = base + len(data)``.
    """
    pos = 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline + 1
        line = data[pos:end]
        payload: bytes | None = None
        if newline >= 0 and len(line) > _HEADER and line[8:9] == b" " and line[17:18] == b" ":
            try:
                length, crc = int(line[:8], 16), int(line[9:17], 16)
            except ValueError:
                length, crc = -1, -1
            body = line[_HEADER:-1]
            if length == len(body) and crc == zlib.crc32(body):
                payload = body
        yield base + pos, base + end, payload
        pos = end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A durable FIFO of JSON records split into segment files.

    Contract:

    * ``append`` returns once the records are fsync'ed; ``peek`` returns the oldest
      unacknowledged records and a cursor without removing them (peeking twice returns the same
      records); only ``ack(cursor)`` removes records. The read position is persisted atomically,
      so a new ``Spool`` on the same directory continues at the last acked record and records
      peeked but not acked are delivered again (at-least-once).
    * When the segments would exceed ``max_bytes``, whole oldest segments are deleted even if
      partly unread; their unread records are added to ``dropped`` (persisted) and a WARNING is
      logged. A cursor into a dropped segment acks nothing. A record larger than ``max_bytes``
      is rejected with ``InvalidArgument`` before anything of the batch is written.
    * A state file that does not parse, or points outside the existing segments (a segment
      that does not exist, an offset past the end), is ignored with a WARNING naming it and
      delivery starts at the oldest record: unread records are only ever deleted by the size
      bound, and then counted.
    * A torn last write (process killed mid-append) is truncated away at reopen with a warning;
      earlier records are kept. A corrupt frame elsewhere is skipped with a warning.
    * Not thread-safe: use it from one thread or task at a time (the daemon calls it from one
      asyncio task, possibly through ``asyncio.to_thread``). One ``Spool`` per directory: a
      second one, even in another process, gets ``Conflict``. I/O errors propagate as
      ``OSError``; a half-written frame is cut off again. After ``close()`` every call raises
      ``Unavailable``; ``close()`` itself is idempotent.
    """

    def __init__(
        self, directory: Path, *, max_bytes: int = 64 * 1024 * 1024, segment_bytes: int = 1024 * 1024
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0 or segment_bytes > max_bytes:
            raise ConfigError(f"spool: need 0 < segment_bytes ({segment_bytes}) <= max_bytes ({max_bytes})")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = os.open(self._dir / _LOCK, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise Conflict(f"spool: {self._dir} is already open by another Spool") from exc
        self.dropped = 0
        self._segments: dict[int, _Segment] = {}
        self._read = Cursor(0, 0, 0)
        try:
            self._open_existing()
            self._write_seq = max(self._segments)
            self._fd: int | None = self._open_segment(self._write_seq)
        except BaseException:
            os.close(self._lock_fd)
            raise
        logger.info("spool opened at %s: %d pending records", self._dir, self.pending())

    # -- public API ---------------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> None:
        """Append ``records`` in order and fsync them; may roll segments and drop the oldest ones."""
        self._require_open()
        frames = [_encode(record) for record in records]
        for frame in frames:
            if len(frame) > self._max_bytes:
                raise InvalidArgument(f"spool: a record of {len(frame)} bytes exceeds max_bytes")
        for frame in frames:
            current = self._segments[self._write_seq]
            if current.size > 0 and current.size + len(frame) > self._segment_bytes:
                self._roll()
            self._make_room(len(frame))
            fd = self._require_open()
            current = self._segments[self._write_seq]
            try:
                _write_all(fd, frame)
            except BaseException:
                os.ftruncate(fd, current.size)
                raise
            current.size += len(frame)
            current.count += 1
        os.fsync(self._require_open())

    def peek(self, max_records: int) -> tuple[list[Record], Cursor]:
        """At most ``max_records`` oldest unacknowledged records, and the cursor just past them."""
        self._require_open()
        records: list[Record] = []
        cursor = self._read
        for seq in sorted(self._segments):
            if len(records) >= max_records:
                break
            start, index = (self._read.offset, self._read.index) if seq == self._read.segment else (0, 0)
            with open(self._path(seq), "rb") as segment_file:
                segment_file.seek(start)
                data = segment_file.read(self._segments[seq].size - start)
            for _, end, payload in _frames(data, start):
                if len(records) >= max_records:
                    break
                if payload is None:
                    logger.warning("spool: skipping a corrupt record in segment %d", seq)
                    continue
                try:
                    records.append(json.loads(payload))
                except ValueError:
                    records.append({})  # framed but not JSON: the reader quarantines it
                index += 1
                cursor = Cursor(seq, end, index)
        return records, cursor

    def ack(self, cursor: Cursor) -> None:
        """Mark everything up to ``cursor`` delivered; a cursor at or behind the read position is a no-op."""
        self._require_open()
        if (cursor.segment, cursor.offset) <= (self._read.segment, self._read.offset):
            return  # already acked, or its records were dropped meanwhile
        segment = self._segments.get(cursor.segment)
        if segment is None or cursor.offset > segment.size or cursor.index > segment.count:
            raise InvalidArgument(f"spool: invalid cursor {cursor!r}")
        self._read = cursor
        self._advance_read()
        self._persist_and_delete([s for s in self._segments if s < self._read.segment])

    def pending(self) -> int:
        """Records appended and not yet acknowledged (dropped ones excluded)."""
        return sum(seg.count for seg in self._segments.values()) - self._read.index

    def size_bytes(self) -> int:
        """Bytes of all segment files."""
        return sum(seg.size for seg in self._segments.values())

    def close(self) -> None:
        """Close the files and release the directory lock; idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:016d}{_SUFFIX}"

    def _open_segment(self, seq: int) -> int:
        return os.open(self._path(seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _require_open(self) -> int:
        if self._fd is None:
            raise Unavailable("spool is closed")
        return self._fd

    def _open_existing(self) -> None:
        state_seq, state_offset = self._load_state()
        seqs = sorted(int(p.stem) for p in self._dir.glob("*" + _SUFFIX) if p.stem.isdigit())
        if seqs and state_seq >= seqs[0] and not self._state_points_inside(state_seq, state_offset, seqs):
            # A read position the spool never writes: trusting it would delete unsent records.
            logger.warning(
                "spool: %s points outside the segments (segment %d, offset %d; segments %d..%d);"
                " delivering from the oldest record",
                self._dir / _STATE,
                state_seq,
                state_offset,
                seqs[0],
                seqs[-1],
            )
            state_seq, state_offset = seqs[0], 0
        for seq in seqs:
            if seq < state_seq:
                self._path(seq).unlink()  # fully read; the deletion after the ack was interrupted
            else:
                self._segments[seq] = self._scan(seq, last=seq == seqs[-1])
        if not self._segments:
            seq = max([state_seq, *seqs]) + 1
            os.close(self._open_segment(seq))
            _fsync_dir(self._dir)
            self._segments[seq] = _Segment(0, 0)
        first = min(self._segments)
        if first != state_seq:
            self._read = Cursor(first, 0, 0)  # the acked segment was deleted: start the next one
            return
        index = offset = 0
        with open(self._path(first), "rb") as segment_file:
            data = segment_file.read(state_offset)
        for _, end, payload in _frames(data, 0):
            if end > state_offset or data[end - 1 : end] != b"\n":
                break
            offset = end
            index += payload is not None
        self._read = Cursor(first, offset, index)

    def _state_points_inside(self, seq: int, offset: int, seqs: Sequence[int]) -> bool:
        return seq in seqs and 0 <= offset <= self._path(seq).stat().st_size

    def _load_state(self) -> tuple[int, int]:
        try:
            state = json.loads((self._dir / _STATE).read_text())
            self.dropped = int(state["dropped"])
            return int(state["segment"]), int(state["offset"])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "spool: unreadable %s (%s); delivering from the oldest segment", self._dir / _STATE, exc
            )
            return 0, 0

    def _scan(self, seq: int, *, last: bool) -> _Segment:
        """Count the valid records of segment ``seq``; in the last one truncate a torn tail."""
        path = self._path(seq)
        data = path.read_bytes()
        count = good_end = bad = bad_tail = 0
        for _, end, payload in _frames(data, 0):
            if payload is None:
                bad_tail += 1
            else:
                count, good_end, bad, bad_tail = count + 1, end, bad + bad_tail, 0
        if bad or (bad_tail and not last):
            logger.warning("spool: skipping corrupt records in %s", path.name)
        if last and good_end < len(data):
            logger.warning(
                "spool: truncating %d torn bytes at the end of %s", len(data) - good_end, path.name
            )
            os.truncate(path, good_end)
            return _Segment(good_end, count)
        return _Segment(len(data), count)

    def _persist_and_delete(self, doomed: Sequence[int]) -> None:
        """Persist the read position and ``dropped`` atomically, then delete the ``doomed`` segments."""
        tmp = self._dir / (_STATE + ".tmp")
        state = {"segment": self._read.segment, "offset": self._read.offset, "dropped": self.dropped}
        with open(tmp, "w") as state_file:
            json.dump(state, state_file)
            state_file.flush()
            os.fsync(state_file.fileno())
        os.replace(tmp, self._dir / _STATE)
        _fsync_dir(self._dir)
        for seq in doomed:
            del self._segments[seq]
            self._path(seq).unlink(missing_ok=True)

    def _advance_read(self) -> None:
        """Move the read position off fully-read segments other than the one being written."""
        while self._read.segment != self._write_seq:
            if self._read.offset < self._segments[self._read.segment].size:
                return
            self._read = Cursor(min(s for s in self._segments if s > self._read.segment), 0, 0)

    def _roll(self) -> None:
        fd = self._require_open()
        os.fsync(fd)
        os.close(fd)
        self._fd = None
        self._write_seq += 1
        self._fd = self._open_segment(self._write_seq)
        _fsync_dir(self._dir)
        self._segments[self._write_seq] = _Segment(0, 0)
        before = self._read
        self._advance_read()
        if self._read != before:
            self._persist_and_delete([s for s in self._segments if s < self._read.segment])

    def _make_room(self, needed: int) -> None:
        """Delete the oldest segments until ``needed`` more bytes fit under ``max_bytes``."""
        lost = 0
        while self.size_bytes() + needed > self._max_bytes:
            oldest = min(self._segments)
            if oldest == self._write_seq:
                self._roll()  # never delete the open segment; may itself delete it if fully read
                continue
            unread = self._segments[oldest].count
            if oldest == self._read.segment:
                unread -= self._read.index
                self._read = Cursor(min(s for s in self._segments if s > oldest), 0, 0)
            lost += unread
            self.dropped += unread
            self._persist_and_delete([oldest])
        if lost:
            logger.warning("spool full (max_bytes=%d): dropped %d unsent records", self._max_bytes, lost)
