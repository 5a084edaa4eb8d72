"""Input rules of the wire contract (PROTOCOL.md section 4); violations raise InvalidArgument."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from opsfleet.common.errors import InvalidArgument

NODE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
METRIC_TYPE_RE = re.compile(r"[a-z0-9_.]{1,32}")
AGENT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 255
MAX_METRICS_PER_REQUEST = 1000
MAX_VALUES_PER_METRIC = 256
MAX_VALUE_KEY = 128
MAX_HOSTNAME = 255
MAX_SHORT_FIELD = 64
MAX_AGENTS_PER_SYNC = 1000
MAX_FUTURE_SECONDS = 300
SAMPLE_ERROR_RE = re.compile(r"\bmetrics\[(\d+)\]\.")


# Characters no stored string may hold: C0 controls (NUL, newline, ...), DEL, C1 controls,
# the Unicode line and paragraph separators (they split log lines too) and lone surrogates
# (not encodable as UTF-8). PostgreSQL rejects NUL outright; the rest would forge log lines.
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Stored string columns (manager/store/schema.py) and the field names callers see.
MAX_IP = 64
MAX_DAEMON_ADDRESS = 255
MAX_AGENT_STATUS = 32
REGISTRATION_LIMITS: dict[str, int] = {
    "hostname": MAX_HOSTNAME,
    "ip": MAX_IP,
    "os": MAX_SHORT_FIELD,
    "arch": MAX_SHORT_FIELD,
    "daemon_version": MAX_SHORT_FIELD,
    "agent_version": MAX_SHORT_FIELD,
    "daemon_address": MAX_DAEMON_ADDRESS,
}
_DOT_NAMES = frozenset({".", ".."})


def check_text(field: str, value: str, max_length: int) -> str:
    """``value`` unless it is longer than ``max_length`` or holds a control character."""
    if len(value) > max_length:
        raise InvalidArgument(f"{field} longer than {max_length} characters")
    _check_chars(field, value)
    return value


def _check_chars(field: str, value: str) -> None:
    bad = _FORBIDDEN_CHARS.search(value)
    if bad is not None:
        raise InvalidArgument(f"{field} contains a control character ({bad.group()!r} at {bad.start()})")


def printable(text: str, max_length: int) -> str:
    """Free text from a peer made safe to store and log: controls escaped, cut to ``max_length``."""
    escaped = _FORBIDDEN_CHARS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return escaped[:max_length]


def check_node_id(node_id: str) -> str:
    if not node_id:
        raise InvalidArgument("node_id is required")
    if not NODE_ID_RE.fullmatch(node_id) or node_id in _DOT_NAMES:
        raise InvalidArgument("node_id must be 1-128 characters of [A-Za-z0-9._:-], not '.' or '..'")
    return node_id


def check_agent_id(agent_id: str, field: str = "agent_id") -> str:
    if not agent_id:
        raise InvalidArgument(f"{field} is required")
    if not AGENT_ID_RE.fullmatch(agent_id) or agent_id in _DOT_NAMES:
        raise InvalidArgument(f"{field} must be 1-128 characters of [A-Za-z0-9._:-], not '.' or '..'")
    return agent_id


def check_registration_fields(hostname: str, fields: Mapping[str, str], labels: Mapping[str, str]) -> None:
    """Hostname, the short fields (named as in REGISTRATION_LIMITS) and labels of a registration."""
    if not hostname.strip():
        raise InvalidArgument("hostname is required")
    check_text("hostname", hostname, MAX_HOSTNAME)
    for name, value in fields.items():
        check_text(name, value, REGISTRATION_LIMITS.get(name, MAX_SHORT_FIELD))
    check_labels(labels)


def check_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"too many labels: {len(labels)} > {MAX_LABELS}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            raise InvalidArgument(f"label key {key[:80]!r} must be 1-{MAX_LABEL_KEY} characters")
        check_text(f"label key {key!r}", key, MAX_LABEL_KEY)
        check_text(f"label {key!r} value", value, MAX_LABEL_VALUE)


def check_agent_fields(index: int, agent_id: str, type_: str, version: str, status: str) -> None:
    """One reported agent state (``states[index]``): id rules and the stored column sizes."""
    check_agent_id(agent_id, f"states[{index}].agent_id")
    check_text(f"states[{index}].type", type_, MAX_SHORT_FIELD)
    check_text(f"states[{index}].version", version, MAX_SHORT_FIELD)
    check_text(f"states[{index}].status", status, MAX_AGENT_STATUS)


def check_value_keys(field: str, values: Mapping[str, object]) -> None:
    """No control character in any value key of one metric; ``field`` names it (``metrics[3].values``)."""
    if values and _FORBIDDEN_CHARS.search("".join(values)) is not None:
        for key in values:
            _check_chars(f"{field}: key {key[:40]!r}", key)


def check_metric_type(type_: str) -> str:
    if not METRIC_TYPE_RE.fullmatch(type_):
        raise InvalidArgument(f"metric type {type_[:40]!r} must match [a-z0-9_.]{{1,32}}")
    return type_


def clean_values(type_: str, values: Mapping[str, object]) -> tuple[dict[str, float], int]:
    """Finite values kept, non-finite ones counted; InvalidArgument for bad keys or non-numbers."""
    if type(values) is not dict and not isinstance(values, Mapping):  # the ABC check costs more
        raise InvalidArgument(f"metric {type_!r} values must be a map of key -> number")
    if len(values) > MAX_VALUES_PER_METRIC:
        raise InvalidArgument(f"metric {type_!r} has {len(values)} values > {MAX_VALUES_PER_METRIC}")
    fast = _all_finite_floats(values)
    if fast is not None:
        return fast, 0
    kept: dict[str, float] = {}
    dropped = 0
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > MAX_VALUE_KEY:
            raise InvalidArgument(
                f"metric {type_!r} value key {str(key)[:40]!r} must be 1-{MAX_VALUE_KEY} characters"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(f"metric {type_!r} value {key!r} is not a number")
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range counts as non-finite
            number = math.inf
        if math.isfinite(number):
            kept[key] = number
        else:
            dropped += 1
    return kept, dropped


V = TypeVar("V")


def values_dict(values: Mapping[str, V]) -> dict[str, V]:
    """A dict copy of any mapping; for a protobuf map twice as fast as ``dict(values)``, which
    goes through the Mapping ABC's ``keys()`` view in Python."""
    return {key: values[key] for key in values}


def _all_finite_floats(values: Mapping[str, object]) -> dict[str, float] | None:
    """The common case (protobuf doubles, sane keys, all finite) checked with C-level loops."""
    if not values:
        return {}
    copy = dict(values) if type(values) is dict else values_dict(values)
    if set(map(type, copy.values())) != {float} or set(map(type, copy)) != {str}:
        return None
    lengths = set(map(len, copy))
    if min(lengths) < 1 or max(lengths) > MAX_VALUE_KEY:
        return None
    floats: dict[str, float] = copy  # type: ignore[assignment]
    # Not math.fsum: it raises ValueError on a map holding both +inf and -inf.
    if not all(map(math.isfinite, floats.values())):
        return None
    return floats


@dataclass(frozen=True)
class CheckedSample:
    """A metric sample that passed :func:`check_sample`: finite values only."""

    type: str
    timestamp: int
    values: dict[str, float]
    dropped_values: int


def sample_error(index: int, field: str, reason: str) -> InvalidArgument:
    """The one error format of a bad sample: ``metrics[<index>].<field>: <reason>``."""
    return InvalidArgument(f"metrics[{index}].{field}: {reason}")


def parse_sample_error_index(message: str) -> int | None:
    """The ``<index>`` of a message made by :func:`sample_error`, or None if it names none."""
    match = SAMPLE_ERROR_RE.search(message)
    return int(match.group(1)) if match else None


def check_sample(
    index: int,
    type_: object,
    timestamp: object,
    values: object,
    *,
    now: float,
    max_age_seconds: float | None = None,
) -> CheckedSample:
    """Validate one metric sample (PROTOCOL.md sections 3-4); the Manager and the daemon share it.

    ``index`` is the sample's position in its request, named in the error. Non-finite values are
    dropped and counted, not rejected. The timestamp must be an integer of unix seconds, at
    most ``MAX_FUTURE_SECONDS`` ahead of ``now`` and, when ``max_age_seconds`` is given (the
    Manager's retention), not older than that. Raises :class:`InvalidArgument` with the message
    ``metrics[<index>].<field>: <reason>``.
    """
    if not isinstance(type_, str) or not METRIC_TYPE_RE.fullmatch(type_):
        shown = type_[:40] if isinstance(type_, str) else type(type_).__name__
        raise sample_error(index, "type", f"{shown!r} must match [a-z0-9_.]{{1,32}}")
    if timestamp is None:
        raise sample_error(index, "timestamp", "missing")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise sample_error(index, "timestamp", "must be an integer of unix seconds")
    if timestamp <= 0:
        raise sample_error(index, "timestamp", f"{timestamp} is not a positive unix time")
    if timestamp > now + MAX_FUTURE_SECONDS:
        raise sample_error(
            index, "timestamp", f"{timestamp} is more than {MAX_FUTURE_SECONDS} s in the future"
        )
    if max_age_seconds is not None and timestamp < now - max_age_seconds:
        raise sample_error(
            index, "timestamp", f"{timestamp} is older than the retention ({max_age_seconds:.0f} s)"
        )
    if not isinstance(values, Mapping):
        raise sample_error(index, "values", "must be a map of key -> number")
    try:
        kept, dropped = clean_values(type_, values)
    except InvalidArgument as exc:
        raise sample_error(index, "values", str(exc)) from None
    return CheckedSample(type_, timestamp, kept, dropped)
