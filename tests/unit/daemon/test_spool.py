"""Spool: order, peek/ack, restart, overflow accounting and torn-write recovery on a real directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import ConfigError, Conflict, InvalidArgument, Unavailable
from opsfleet.daemon.spool import Spool


def rec(i: int) -> dict[str, Any]:
    """Records of identical encoded size (the timestamp always has 7 digits)."""
    return {"type": "cpu", "timestamp": 1_000_000 + i, "values": {"usage_percent": 12.5}}


def recs(start: int, stop: int) -> list[dict[str, Any]]:
    return [rec(i) for i in range(start, stop)]


@pytest.fixture
def frame(tmp_path_factory: pytest.TempPathFactory) -> int:
    """On-disk bytes of one record."""
    with Spool(tmp_path_factory.mktemp("probe")) as probe:
        probe.append([rec(0)])
        return probe.size_bytes()


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def drain(spool: Spool) -> list[dict[str, Any]]:
    records, cursor = spool.peek(10_000)
    spool.ack(cursor)
    return records


def test_peek_returns_oldest_in_order_and_only_ack_removes(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 3))
        spool.append(recs(3, 5))
        assert spool.pending() == 5
        first, cursor = spool.peek(3)
        again, _ = spool.peek(3)
        assert first == again == recs(0, 3)
        assert spool.pending() == 5
        spool.ack(cursor)
        assert spool.pending() == 2
        spool.ack(cursor)  # acking the same cursor twice is harmless
        assert drain(spool) == recs(3, 5)
        assert spool.pending() == 0
        records, _ = spool.peek(10)
        assert records == []


def test_peek_spans_segments_and_ack_deletes_read_segments(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=3 * frame, max_bytes=100 * frame) as spool:
        spool.append(recs(0, 10))
        assert len(segments(tmp_path)) == 4
        assert spool.size_bytes() == 10 * frame
        records, cursor = spool.peek(7)
        assert records == recs(0, 7)
        spool.ack(cursor)
        assert len(segments(tmp_path)) == 2
        assert spool.size_bytes() == 4 * frame
        assert drain(spool) == recs(7, 10)
        assert len(segments(tmp_path)) == 1  # the segment being written stays
        spool.append(recs(10, 12))
        assert drain(spool) == recs(10, 12)


def test_restart_continues_at_acked_position(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=4 * frame) as spool:
        spool.append(recs(0, 10))
        _, cursor = spool.peek(6)
        spool.ack(cursor)
    with Spool(tmp_path, segment_bytes=4 * frame) as spool:
        assert spool.pending() == 4
        spool.append(recs(10, 12))
        assert spool.pending() == 6
        assert drain(spool) == recs(6, 12)
    with Spool(tmp_path, segment_bytes=4 * frame) as spool:
        assert spool.pending() == 0
        assert spool.peek(5)[0] == []


def test_unacked_records_are_redelivered_after_restart(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 4))
        _, cursor = spool.peek(1)
        spool.ack(cursor)
        assert spool.peek(2)[0] == recs(1, 3)  # peeked, never acked
    with Spool(tmp_path) as spool:
        assert spool.pending() == 3
        assert spool.peek(2)[0] == recs(1, 3)


def test_full_spool_drops_oldest_segments_and_counts(
    tmp_path: Path, frame: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path, segment_bytes=3 * frame, max_bytes=9 * frame) as spool:
        spool.append(recs(0, 9))  # exactly full: segments [0-2] [3-5] [6-8]
        assert spool.dropped == 0
        _, cursor = spool.peek(2)
        spool.ack(cursor)  # segment [0-2] is partly read: one unread record left in it
        with caplog.at_level(logging.WARNING):
            spool.append([rec(9)])
        assert spool.dropped == 1
        assert "dropped 1 unsent records" in caplog.text
        assert spool.size_bytes() <= 9 * frame
        assert spool.pending() == 7
        with caplog.at_level(logging.WARNING):
            spool.append(recs(10, 14))  # fills [9-11], rolls to [12-13] and drops [3-5]
        assert spool.dropped == 4
        assert "dropped 3 unsent records" in caplog.text
        assert spool.pending() == 8
        assert drain(spool) == recs(6, 14)
    with Spool(tmp_path, segment_bytes=3 * frame, max_bytes=9 * frame) as spool:
        assert spool.dropped == 4  # persisted
        assert spool.pending() == 0


def test_cursor_into_a_dropped_segment_acks_nothing(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=2 * frame, max_bytes=4 * frame) as spool:
        spool.append(recs(0, 4))
        _, stale = spool.peek(1)
        spool.append(recs(4, 6))  # drops [0-1]
        assert spool.dropped == 2
        spool.ack(stale)
        assert spool.pending() == 4
        assert drain(spool) == recs(2, 6)


def test_tiny_max_bytes_drops_even_the_segment_being_written(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=2 * frame, max_bytes=2 * frame) as spool:
        spool.append(recs(0, 5))
        assert spool.dropped == 4
        assert spool.size_bytes() == frame
        assert drain(spool) == [rec(4)]


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(lambda full: full[: len(full) // 2], id="half-frame"),
        pytest.param(lambda full: full[:-1], id="missing-newline"),
        pytest.param(lambda full: b"\0" * len(full), id="zero-filled"),
        pytest.param(lambda full: full[:-3] + b"X}\n", id="bad-crc"),
    ],
)
def test_torn_tail_write_is_truncated_at_reopen(
    tmp_path: Path, torn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 2))
        _, cursor = spool.peek(1)
        spool.ack(cursor)
        spool.append([rec(2)])
    (segment,) = segments(tmp_path)
    data = segment.read_bytes()
    full_frame = data[data.rindex(b"\n", 0, len(data) - 1) + 1 :]
    with segment.open("ab") as killed_mid_append:
        killed_mid_append.write(torn(full_frame))
    with caplog.at_level(logging.WARNING), Spool(tmp_path) as spool:
        assert "torn" in caplog.text
        assert segment.read_bytes() == data
        assert spool.pending() == 2
        spool.append([rec(3)])
        assert spool.peek(10)[0] == recs(1, 4)
    with Spool(tmp_path) as spool:
        assert drain(spool) == recs(1, 4)


def test_corrupt_record_in_an_older_segment_is_skipped(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=3 * frame) as spool:
        spool.append(recs(0, 6))
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[frame + 30] ^= 0xFF  # flip a byte inside the second record's payload
    first.write_bytes(bytes(data))
    with Spool(tmp_path, segment_bytes=3 * frame) as spool:
        assert spool.pending() == 5
        assert drain(spool) == [rec(0), *recs(2, 6)]


def test_unreadable_state_redelivers_from_the_oldest_record(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 3))
        _, cursor = spool.peek(1)
        spool.ack(cursor)
    (tmp_path / "state.json").write_text("{not json")
    with Spool(tmp_path) as spool:
        assert spool.peek(10)[0] == recs(0, 3)


def test_oversized_record_is_rejected_before_writing(tmp_path: Path, frame: int) -> None:
    with Spool(tmp_path, segment_bytes=frame, max_bytes=frame) as spool:
        big = {"type": "cpu", "timestamp": 1, "values": {f"k{i}": 1.0 for i in range(50)}}
        with pytest.raises(InvalidArgument):
            spool.append([rec(0), big])
        assert spool.pending() == 0
        assert spool.size_bytes() == 0


def test_unserialisable_record_writes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        with pytest.raises(TypeError):
            spool.append([rec(0), {"values": object()}])
        assert spool.pending() == 0


def test_directory_is_locked_and_close_is_final(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(Conflict):
        Spool(tmp_path)
    spool.close()
    spool.close()
    with pytest.raises(Unavailable):
        spool.append([rec(0)])
    with pytest.raises(Unavailable):
        spool.peek(1)
    Spool(tmp_path).close()  # the lock is released


@pytest.mark.parametrize(("max_bytes", "segment_bytes"), [(0, 1), (10, 0), (10, 11)])
def test_invalid_sizes_are_config_errors(tmp_path: Path, max_bytes: int, segment_bytes: int) -> None:
    with pytest.raises(ConfigError):
        Spool(tmp_path, max_bytes=max_bytes, segment_bytes=segment_bytes)


@pytest.mark.parametrize(
    "state",
    [
        {"segment": 999999, "offset": 0, "dropped": 0},
        {"segment": 1, "offset": 10**9, "dropped": 0},
        {"segment": 1, "offset": -5, "dropped": 0},
    ],
)
def test_state_pointing_outside_the_segments_is_clamped_to_the_oldest_record(
    tmp_path: Path, state: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 5))
    first = segments(tmp_path)[0]
    state = {**state, "segment": int(first.stem) if state["segment"] == 1 else state["segment"]}
    (tmp_path / "state.json").write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="opsfleet.daemon.spool"), Spool(tmp_path) as spool:
        assert spool.pending() == 5
        assert drain(spool) == recs(0, 5)
        assert spool.dropped == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(tmp_path / "state.json") in w for w in warnings), warnings


def test_valid_state_still_skips_acked_records(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 5))
        _, cursor = spool.peek(2)
        spool.ack(cursor)
    with Spool(tmp_path) as spool:
        assert spool.peek(10)[0] == recs(2, 5)


def test_framed_record_that_is_not_json_is_handed_over_as_empty(tmp_path: Path) -> None:
    import zlib

    payload = b"{not json"
    with Spool(tmp_path) as spool:
        spool.append(recs(0, 1))
    with open(segments(tmp_path)[-1], "ab") as seg:
        seg.write(b"%08x %08x " % (len(payload), zlib.crc32(payload)) + payload + b"\n")
    with Spool(tmp_path) as spool:
        spool.append(recs(1, 2))
        assert drain(spool) == [rec(0), {}, rec(1)]
