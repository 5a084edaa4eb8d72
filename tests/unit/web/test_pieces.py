"""Pure pieces of the REST API: passwords, paging, filters, buckets, time parsing, error table."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from opsfleet.common.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from opsfleet.manager.domain import NodeStatus
from opsfleet.manager.services.auth import TokenExpired, TokenInvalid
from opsfleet.manager.services.fleet import make_filter, parse_label_filters
from opsfleet.manager.services.metric_queries import MAX_POINTS, RAW_MAX_SPAN, bucket_seconds
from opsfleet.manager.services.nodes import NodeNotFound
from opsfleet.manager.services.paging import Page, page_window
from opsfleet.manager.services.passwords import hash_password, verify_password
from opsfleet.manager.services.users import BadCredentials, UserDisabled, UserExists, UserNotFound
from opsfleet.manager.web.envelope import translate
from opsfleet.manager.web.routes_metrics import parse_time


def test_password_hash_roundtrip() -> None:
    encoded = hash_password("correct horse", n=2**10)
    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert hash_password("correct horse", n=2**10) != encoded  # salted
    for broken in (
        "",
        "scrypt$x",
        "bcrypt$1024$8$1$AA==$AA==",
        "scrypt$3$8$1$AA==$AA==",
        "scrypt$1024$8$1$!$!",
    ):
        assert not verify_password("correct horse", broken)


def test_paging() -> None:
    assert page_window(1, 20) == (0, 20)
    assert page_window(3, 10) == (20, 10)
    for page, size, field in ((0, 10, "page"), (1, 0, "page_size"), (1, 101, "page_size")):
        with pytest.raises(InvalidArgument, match=rf"^{field}"):
            page_window(page, size)
    assert Page([], 1, 20, 0).pages == 0
    assert Page([], 1, 20, 41).pages == 3


def test_label_filters() -> None:
    assert parse_label_filters(["env:prod", "role:web,rack:r1"]) == {
        "env": "prod",
        "role": "web",
        "rack": "r1",
    }
    assert parse_label_filters(["empty:"]) == {"empty": ""}
    assert parse_label_filters(["a/b.c:x:y"]) == {"a/b.c": "x:y"}
    assert parse_label_filters(["env=prod", "url=http://x:1/a=b"]) == {"env": "prod", "url": "http://x:1/a=b"}
    for bad in (["novalue"], [":v"], ['k"ey:v'], [",".join(f"k{i}:v" for i in range(17))]):
        with pytest.raises(InvalidArgument, match=r"^label"):
            parse_label_filters(bad)
    flt = make_filter("offline", [], "  web ")
    assert flt.status is NodeStatus.OFFLINE and flt.text == "web"
    with pytest.raises(InvalidArgument, match=r"^status"):
        make_filter("asleep", [], "")
    with pytest.raises(InvalidArgument, match=r"^q "):
        make_filter(None, [], "x" * 129)


@pytest.mark.parametrize("span", [RAW_MAX_SPAN + 1, 86400, 7 * 86400, 30 * 86400, 12 * 3600 + 7])
def test_buckets_cover_spans_with_at_most_max_points(span: int) -> None:
    size = bucket_seconds(span)
    assert size > 0 and size % 60 == 0
    assert span // size + 1 <= MAX_POINTS


def test_short_spans_are_raw() -> None:
    assert bucket_seconds(60) == 0 and bucket_seconds(RAW_MAX_SPAN) == 0


def test_parse_time() -> None:
    assert parse_time("1970-01-01T00:01:00Z", "start_time") == 60
    assert parse_time("1970-01-01T01:00:00+01:00", "end_time") == 0
    with pytest.raises(InvalidArgument, match=r"^start_time"):
        parse_time("tomorrow", "start_time")
    with pytest.raises(InvalidArgument, match=r"^end_time .*offset"):
        parse_time("2024-05-01T10:00:00", "end_time")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidArgument("x"), 400, 1001),
        (Unauthenticated("x"), 401, 1002),
        (TokenInvalid("x"), 401, 1007),
        (TokenExpired("x"), 401, 1008),
        (BadCredentials("x"), 401, 1009),
        (PermissionDenied("x"), 403, 1003),
        (UserDisabled("x"), 403, 2008),
        (NotFound("x"), 404, 1004),
        (NodeNotFound("x"), 404, 2001),
        (UserNotFound("x"), 404, 2007),
        (UserExists("x"), 409, 2009),
        (ResourceExhausted("x"), 429, 1006),
        (Unavailable("x"), 502, 5004),
        (DeadlineExceeded("x"), 504, 5004),
        (Internal("x"), 500, 5001),
        (RuntimeError("boom"), 500, 5001),
    ],
)
def test_error_table(error: Exception, status: int, code: int) -> None:
    got_status, got_code, _, _ = translate(error)
    assert (got_status, got_code) == (status, code)


def test_validation_errors_name_the_field() -> None:
    exc = RequestValidationError(
        [{"loc": ("query", "page_size"), "msg": "Input should be less than or equal to 100", "type": "x"}]
    )
    status, code, message, data = translate(exc)
    assert (status, code) == (400, 1001)
    assert message == "page_size: Input should be less than or equal to 100"
    assert data["field"] == "page_size"
