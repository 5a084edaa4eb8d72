"""The one sample rule set shared by the Manager's ingest and the daemon's spool."""

from __future__ import annotations

import math
from typing import Any

import pytest

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import check_sample, clean_values, parse_sample_error_index

NOW = 1_800_000_000


def test_plus_and_minus_infinity_together_are_dropped_and_counted() -> None:
    checked = check_sample(0, "cpu", NOW, {"a": math.inf, "b": -math.inf, "c": math.nan, "d": 1.5}, now=NOW)
    assert checked.values == {"d": 1.5} and checked.dropped_values == 3


def test_finite_values_pass_unchanged() -> None:
    checked = check_sample(0, "custom.gpu_0", NOW - 10, {"temp": 60.0, "n": 3}, now=NOW)
    assert checked.values == {"temp": 60.0, "n": 3.0} and checked.dropped_values == 0


@pytest.mark.parametrize(
    ("type_", "timestamp", "values", "field"),
    [
        ("CPU!", NOW, {}, "type"),
        (None, NOW, {}, "type"),
        ("cpu", None, {}, "timestamp"),
        ("cpu", "1700000000", {}, "timestamp"),
        ("cpu", 1.7e9, {}, "timestamp"),
        ("cpu", True, {}, "timestamp"),
        ("cpu", -1, {}, "timestamp"),
        ("cpu", NOW + 301, {}, "timestamp"),
        ("cpu", NOW, [1.0], "values"),
        ("cpu", NOW, {"k": "1"}, "values"),
        ("cpu", NOW, {"": 1.0}, "values"),
        ("cpu", NOW, {f"k{i}": 1.0 for i in range(257)}, "values"),
    ],
)
def test_invalid_samples_name_index_and_field(type_: Any, timestamp: Any, values: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_sample(7, type_, timestamp, values, now=NOW)
    message = str(info.value)
    assert message.startswith(f"metrics[7].{field}: "), message
    assert parse_sample_error_index(message) == 7


def test_future_limit_is_five_minutes() -> None:
    assert check_sample(0, "cpu", NOW + 300, {}, now=NOW).timestamp == NOW + 300


def test_age_limit_applies_only_when_given() -> None:
    old = NOW - 31 * 86400
    assert check_sample(0, "cpu", old, {}, now=NOW).timestamp == old
    with pytest.raises(InvalidArgument, match=r"^metrics\[2\]\.timestamp: .*older than the retention"):
        check_sample(2, "cpu", old, {}, now=NOW, max_age_seconds=30 * 86400)


def test_index_parsing() -> None:
    assert parse_sample_error_index("metrics[12].values: bad") == 12
    assert parse_sample_error_index("bad network sample") is None
    assert parse_sample_error_index("too many metrics[x]") is None


def test_clean_values_with_both_infinities_does_not_raise() -> None:
    assert clean_values("cpu", {"a": math.inf, "b": -math.inf, "c": 2.0}) == ({"c": 2.0}, 2)


def test_a_protobuf_map_checks_like_a_dict() -> None:
    """The servicers pass protobuf maps (copied by values_dict, not dict()): same outcome."""
    from opsfleet.proto import manager_pb2

    for values in (
        {"usage_percent": 12.5, "cores": 8.0},
        {"a": math.inf, "b": math.nan, "c": 2.0},
        {},
    ):
        proto = manager_pb2.MetricData(type="cpu", timestamp=NOW, values=values).values
        from_proto = check_sample(0, "cpu", NOW, proto, now=NOW)
        from_dict = check_sample(0, "cpu", NOW, dict(values), now=NOW)
        assert from_proto == from_dict
        assert type(from_proto.values) is dict
    too_long = manager_pb2.MetricData(values={"k" * 200: 1.0}).values
    with pytest.raises(InvalidArgument, match="value key"):
        check_sample(0, "cpu", NOW, too_long, now=NOW)
