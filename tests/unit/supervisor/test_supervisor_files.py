"""What the supervisor keeps on disk: rotated agent logs, metadata, resource history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsfleet.daemon.supervisor.logs import AgentLog, LineSplitter
from opsfleet.daemon.supervisor.metadata import AgentMetadata, MetadataStore
from opsfleet.daemon.supervisor.resources import ResourceHistory, ResourcePoint


def lines(n: int, start: int = 0) -> list[bytes]:
    return [f"line {i:05d} {'x' * 40}".encode() for i in range(start, start + n)]


def all_lines_in_order(log: AgentLog) -> list[str]:
    out: list[str] = []
    for path in reversed(log.files()):
        if path.exists():
            out.extend(path.read_text().splitlines())
    return out


def test_line_splitter_keeps_partial_lines_and_cuts_long_ones() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\n\nf") == [b"abc", b"de", b""]
    assert splitter.feed(b"0123456789012") == [b"f012345678"]
    assert splitter.feed(b"\n") == [b"9012"]
    assert splitter.feed(b"tail") == []
    assert splitter.flush() == [b"tail"]
    assert splitter.flush() == []


def test_rotation_loses_no_lines_and_keeps_files_under_the_limit(tmp_path: Path) -> None:
    log = AgentLog(tmp_path, "a", max_bytes=1000, backups=50)
    written = lines(500)
    for start in range(0, 500, 7):  # batches of different sizes, like pipe reads
        log.write_lines(written[start : start + 7])
    log.close()
    assert all_lines_in_order(log) == [raw.decode() for raw in written]
    sizes = [p.stat().st_size for p in log.files() if p.exists()]
    assert len(sizes) > 10
    assert max(sizes) <= 1000


def test_oldest_backup_is_dropped_beyond_the_limit(tmp_path: Path) -> None:
    log = AgentLog(tmp_path, "a", max_bytes=200, backups=2)
    log.write_lines(lines(40))
    existing = sorted(p.name for p in tmp_path.iterdir())
    assert existing == ["a.log", "a.log.1", "a.log.2"]
    # What is kept is the newest, contiguous, ending with the last line written.
    kept = all_lines_in_order(log)
    assert kept == [raw.decode() for raw in lines(40)][-len(kept) :]


def test_tail_spans_rotated_files_and_filters(tmp_path: Path) -> None:
    log = AgentLog(tmp_path, "a", max_bytes=500, backups=20)
    log.write_lines(lines(100))
    expected = [raw.decode() for raw in lines(100)]
    assert log.tail(3) == expected[-3:]
    assert log.tail(60) == expected[-60:]  # needs several files
    assert log.tail(1000) == expected
    assert log.tail(2, filter="line 0001") == [expected[18], expected[19]]
    assert log.tail(5, filter="line 00042") == [expected[42]]
    assert log.tail(5, filter="absent") == []
    assert log.tail(0) == []


def test_tail_of_an_agent_without_output_is_empty(tmp_path: Path) -> None:
    assert AgentLog(tmp_path, "quiet", max_bytes=100, backups=1).tail(10) == []


def test_log_reopens_in_append_mode(tmp_path: Path) -> None:
    first = AgentLog(tmp_path, "a", max_bytes=10_000, backups=1)
    first.write_lines([b"one", b"two"])
    first.close()
    second = AgentLog(tmp_path, "a", max_bytes=10_000, backups=1)
    second.write_lines([b"three", "vier \u00fc".encode()])
    assert second.tail(10) == ["one", "two", "three", "vier \u00fc"]
    second.close()


def test_metadata_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "agents" / "a.json")
    assert store.load() == AgentMetadata()
    meta = AgentMetadata(last_exit_reason="exit code 3", manually_stopped=True)
    meta.record_restart(1000.0, "exit code 3")
    meta.record_restart(1001.0, "heartbeat timeout")
    store.save(meta)
    assert store.load() == meta
    assert store.load().restart_count == 2
    assert [p.name for p in (tmp_path / "agents").iterdir()] == ["a.json"]  # no temp file left


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"restarts": [{"time": 1}]}'])
def test_corrupt_metadata_starts_from_zero(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(content)
    assert MetadataStore(path).load() == AgentMetadata()


def point(t: float, rss: int = 100) -> ResourcePoint:
    return ResourcePoint(t, 1.5, rss, 2 * rss, 10, 20, 3)


def test_history_persists_and_drops_expired_samples(tmp_path: Path) -> None:
    path = tmp_path / "a.metrics.jsonl"
    history = ResourceHistory(path, retention=100.0)
    for t in range(0, 150, 10):
        history.append(point(1000.0 + t))
    assert history.since(0)[0].timestamp == 1040.0  # older than 100 s before the newest are gone
    assert history.since(1130.0) == [point(1130.0), point(1140.0)]
    history.close()

    reloaded = ResourceHistory(path, retention=100.0)
    reloaded.load(now=1160.0)
    assert [p.timestamp for p in reloaded.since(0)] == [1060.0 + 10 * i for i in range(9)]
    assert len(path.read_text().splitlines()) == 9  # compacted on load
    assert reloaded.latest() == point(1140.0)


def test_history_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "a.metrics.jsonl"
    history = ResourceHistory(path)
    history.append(point(1000.0))
    history.append(point(1001.0))
    history.close()
    with path.open("a") as fh:
        fh.write('{"timestamp": 1002.0, "cpu"')  # the daemon died mid-write
    reloaded = ResourceHistory(path)
    reloaded.load(now=1003.0)
    reloaded.append(point(1003.0))
    reloaded.close()
    assert [json.loads(line)["timestamp"] for line in path.read_text().splitlines()] == [
        1000.0,
        1001.0,
        1003.0,
    ]


def test_history_file_is_compacted_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "a.metrics.jsonl"
    history = ResourceHistory(path, retention=10.0, compact_slack=5)
    for t in range(200):
        history.append(point(float(t)))
    history.close()
    kept = len(history.since(0))
    assert kept == 11
    assert len(path.read_text().splitlines()) <= 2 * kept + 5
