"""argparse value types shared by the commands (bad values exit 2 before any request)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from opsfleet.common import labels
from opsfleet.common.durations import parse_duration


def int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    parse.__name__ = "number"
    return parse


def split_label(text: str) -> tuple[str, str]:
    """``key=value`` (or ``key:value``) as (key, value), stripped."""
    key, _sep, value = labels.split_label(text)
    return key.strip(), value.strip()


def label(text: str) -> str:
    """A ``key=value`` label, normalised to ``key=value`` (``key:value`` is accepted too)."""
    key, value = split_label(text)
    if not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return f"{key}={value}"


def duration(text: str) -> int:
    """Whole seconds of ``30m``, ``1h``, ``7d``, ``90`` (at least one second)."""
    try:
        seconds = int(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1s, got {text!r}")
    return seconds
