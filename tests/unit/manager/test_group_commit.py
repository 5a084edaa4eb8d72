"""GroupCommitter: a batch failing for a data reason is retried member by member."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from opsfleet.common.errors import DatabaseUnavailable, InvalidArgument, Unavailable
from opsfleet.manager.services.batching import GroupCommitter


class Table:
    """A commit function over an in-memory table: all-or-nothing, rejects items starting with 'bad'."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.calls: list[int] = []
        self.down = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = False

    async def commit(self, items: Sequence[str]) -> list[int]:
        self.waiting = True
        await self.gate.wait()
        self.calls.append(len(items))
        if self.down:
            raise DatabaseUnavailable("database error (ConnectionDoesNotExistError)", retry_after=2.0)
        if any(item.startswith("bad") for item in items):
            raise InvalidArgument("the database rejected a value of this request (DataError)")
        self.rows.extend(items)
        return [len(item) for item in items]


async def _run(table: Table, items: list[str]) -> list[int | BaseException]:
    committer: GroupCommitter[str, int] = GroupCommitter("test", table.commit, max_batch=100, max_queued=1000)
    await committer.start()
    try:
        # Hold the writer on a first item so that all of ``items`` queue up for one batch.
        table.gate.clear()
        blocker = asyncio.create_task(committer.submit("first"))
        while not table.waiting:
            await asyncio.sleep(0.001)
        calls = [asyncio.create_task(committer.submit(item)) for item in items]
        while committer.queued < len(items):
            await asyncio.sleep(0.001)
        table.gate.set()
        await asyncio.gather(blocker, return_exceptions=True)
        table.calls.pop(0)
        return list(await asyncio.gather(*calls, return_exceptions=True))
    finally:
        await committer.stop()


async def test_one_bad_item_fails_alone_and_the_rest_commit() -> None:
    table = Table()
    items = ["a1", "bad-1", "a22", "a333", "bad-2", "a4444"]
    results = await _run(table, items)
    assert [isinstance(r, InvalidArgument) for r in results] == [False, True, False, False, True, False]
    assert [r for r in results if isinstance(r, int)] == [2, 3, 4, 5]
    assert sorted(table.rows) == ["a1", "a22", "a333", "a4444", "first"]
    assert len(table.rows) == len(set(table.rows))  # no item committed twice
    assert table.calls[0] == len(items)  # one shared batch first, then one by one
    assert table.calls[1:] == [1] * len(items)


async def test_unavailability_fails_everyone_with_a_retry_delay() -> None:
    table = Table()
    table.down = True
    results = await _run(table, ["a", "b", "bad"])
    assert all(isinstance(r, Unavailable) for r in results), results
    assert all(isinstance(r, Unavailable) and r.retry_after for r in results)
    assert table.calls == [3]  # no per-member retries against a dead database


async def test_foreign_exception_text_is_not_passed_on() -> None:
    async def broken(items: Sequence[str]) -> list[int]:
        raise RuntimeError("INSERT INTO nodes VALUES ('secret')")

    committer: GroupCommitter[str, int] = GroupCommitter("test", broken, max_batch=10, max_queued=10)
    await committer.start()
    try:
        with pytest.raises(Unavailable) as info:
            await committer.submit("x")
    finally:
        await committer.stop()
    assert "INSERT" not in info.value.message and "secret" not in info.value.message
    assert info.value.retry_after is not None
