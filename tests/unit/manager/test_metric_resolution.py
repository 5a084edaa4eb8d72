"""History picks raw samples, 5-minute or 1-hour rollups from the span; charts stay near 2,000 points."""

from __future__ import annotations

import pytest

from opsfleet.manager.services.metric_queries import MAX_POINTS, bucket_seconds, resolution

HOUR = 3600
DAY = 86400


@pytest.mark.parametrize(
    ("span", "res", "bucket"),
    [
        (60, 0, 0),
        (6 * HOUR, 0, 0),
        (6 * HOUR + 1, 300, 300),
        (2 * DAY, 300, 300),
        (7 * DAY, 300, 300),  # 2,016 points
        (7 * DAY + 1, 3600, 3600),
        (30 * DAY, 3600, 3600),  # 720 points
        (365 * DAY, 3600, 5 * HOUR),  # 1,752 points
        (730 * DAY, 3600, 9 * HOUR),
    ],
)
def test_resolution_and_bucket_by_span(span: int, res: int, bucket: int) -> None:
    assert resolution(span) == res
    assert bucket_seconds(span) == bucket


@pytest.mark.parametrize(
    "span", [6 * HOUR + 1, DAY, 3 * DAY, 7 * DAY, 8 * DAY, 90 * DAY, 365 * DAY, 730 * DAY]
)
def test_buckets_are_whole_rollups_and_charts_stay_small(span: int) -> None:
    bucket = bucket_seconds(span)
    assert bucket % resolution(span) == 0
    assert span // bucket + 1 <= MAX_POINTS + 1


def test_short_spans_older_than_the_raw_retention_read_rollups() -> None:
    assert bucket_seconds(HOUR, raw_available=False) == 300
    assert bucket_seconds(HOUR) == 0
