"""Samples the daemon will never send: counted, and logged once per reason (not per sample)."""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# "metrics[12].timestamp: 99 is ..." -> "timestamp: 99 is ...": the reason without the position.
_INDEX_RE = re.compile(r"^metrics\[\d+\]\.")
_DIGITS_RE = re.compile(r"\d+")


class Quarantine:
    """Counts samples dropped for good, per reason.

    A reason is logged (WARNING) the first time it is seen, with the sample count so far of all
    reasons; later samples with the same reason only count. Reasons are grouped by their text
    with digits blanked, so "timestamp 1700000000 is ..." and "timestamp 1700000001 is ..."
    are one reason. Not thread-safe: used from the event loop only.
    """

    MAX_REASONS = 256  # distinct reasons remembered for the log-once rule

    def __init__(self) -> None:
        self.total = 0
        self.by_reason: dict[str, int] = {}

    def add(self, where: str, reason: str, count: int = 1) -> None:
        """``count`` samples quarantined at ``where`` (e.g. "spool", "manager") for ``reason``."""
        self.total += count
        key = where + ": " + _DIGITS_RE.sub("N", _INDEX_RE.sub("", reason))
        if key in self.by_reason:
            self.by_reason[key] += count
            return
        if len(self.by_reason) < self.MAX_REASONS:
            self.by_reason[key] = count
        log.warning(
            "quarantined %d sample(s) (%s): %s; further samples with this reason are only counted"
            " (%d quarantined in all)",
            count,
            where,
            reason,
            self.total,
        )
