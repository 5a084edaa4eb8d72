"""The rollup watermark's rules and the rollup job's loop (leader only, woken by an election,
clean stop) with a fake store; samples too old for the raw retention are refused."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.services.metrics import RAW_SLACK, MetricService, RawMetric, Retention
from opsfleet.manager.store.metric_rollup_mark import RollupMark, RollupStep, closed_before, is_late
from opsfleet.manager.store.metric_rollups_sql import _window_end
from tests.helpers import assert_eventually

T = 1_800_000_000 - 1_800_000_000 % 3600


def test_mark_round_trip_and_what_is_final() -> None:
    mark = RollupMark(T, T + 3600, 7)
    assert RollupMark.decode(mark.encode()) == mark
    assert mark.stored_until(7) == T + 3600 and mark.stored_until(8) == T
    assert mark.final(7, T + 3300) and not mark.final(8, T)
    assert RollupMark(T, T, 0).stored_until(0) == T  # no window open: no node is ahead


def test_a_sample_is_late_once_its_bucket_may_be_final() -> None:
    grace = 120.0
    now = T + 950.0
    assert closed_before(now, grace) == T + 600  # buckets ending by now - grace
    fresh = RollupMark(T + 600, T + 600, 0)
    assert not is_late(int(now) - 10, now, grace, fresh)  # the open bucket
    assert not is_late(T + 899, now, grace, fresh)  # its bucket ended 50 s ago: less than grace / 2
    assert is_late(T + 599, now, grace, fresh)  # ended 350 s ago
    # A stale cached mark changes nothing: the clock bounds where the job can be ...
    assert is_late(T + 599, now, grace, RollupMark())
    # ... and a cached mark ahead of this clock (another replica's clock runs ahead) counts too.
    assert is_late(T + 899, now, grace, RollupMark(T + 900, T + 900, 0))


def test_windows_end_on_an_hour_and_before_the_limit() -> None:
    assert _window_end(T - 300, T + 86400) == T
    assert _window_end(T, T + 86400) == T + 3600
    assert _window_end(T, T + 600) == T + 600


class FakeSteps:
    def __init__(self, due: int) -> None:
        self.due = due
        self.steps = 0
        self.refreshes = 0

    async def step(self, now: float) -> RollupStep:
        await asyncio.sleep(0)
        if self.due == 0:
            return RollupStep("idle", RollupMark())
        self.due -= 1
        self.steps += 1
        return RollupStep("window", RollupMark(), points=10, samples=40, buckets=4)

    async def refresh_mark(self) -> RollupMark:
        self.refreshes += 1
        return RollupMark()


async def test_the_job_steps_until_idle_only_while_leader_and_wakes_when_elected() -> None:
    steps = FakeSteps(due=5)
    leader = False
    job = RollupJob(steps, interval=3600, is_leader=lambda: leader)
    await job.start()
    try:
        await assert_eventually(lambda: steps.refreshes == 1)
        assert steps.steps == 0 and job.passes == 0  # a follower only refreshes its mark
        leader = True
        job.leadership_changed(True)  # elected: a pass now, not in an hour
        await assert_eventually(lambda: job.passes == 1)
        assert steps.steps == 5 and steps.due == 0
        result = await job.run_pass()
        assert (result.steps, job.passes) == (0, 2)
    finally:
        await job.stop()
    await job.stop()  # idempotent
    assert steps.refreshes == 1


async def test_a_pass_ends_when_leadership_is_lost() -> None:
    steps = FakeSteps(due=100)
    lost_after = 3

    def is_leader() -> bool:
        return steps.steps < lost_after

    result = await RollupJob(steps, is_leader=is_leader).run_pass()
    assert (result.steps, result.samples, steps.due) == (3, 120, 97)


def test_samples_older_than_the_raw_retention_less_a_slack_are_refused() -> None:
    service = MetricService(
        cast(Any, None), cast(Any, None), retention_days=30, retention=Retention(raw=86400), clock=lambda: T
    )
    ok = T - 86400 + RAW_SLACK + 1
    samples, _ = service.validate("n1", [RawMetric("cpu", ok, {"usage_percent": 1.0})])
    assert [s.timestamp for s in samples] == [ok]
    with pytest.raises(InvalidArgument, match=r"metrics\[0\]\.timestamp"):
        service.validate("n1", [RawMetric("cpu", ok - 2, {"usage_percent": 1.0})])
