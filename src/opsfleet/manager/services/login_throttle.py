"""Failed sign-in throttling per username and per client address, with a growing lockout.

Each key (a username, a client address) counts its failures within ``window`` seconds. The
failure that reaches its limit locks the key for ``lockout_base`` seconds; after that, the
next failure while the key still has strikes locks it again at once, each time twice as long,
up to ``lockout_max``. A key's strikes are forgotten after ``lockout_max`` seconds without a
failure, and a successful sign-in forgets its username's state (not its address's: owning
one account must not reset an attacker's count against others).

While either key of an attempt is locked the attempt is refused before the password is
checked, so a brute force cannot learn that it hit the right one.

The state is in memory: each Manager replica keeps its own (a client spreading attempts over
N replicas gets N times the budget). Attempts are counted when their password check ends, so
a burst of concurrent attempts can exceed a limit by the number in flight. It is bounded:
at most ``max_keys`` keys are tracked, idle ones are dropped first. Not thread-safe: call
it from the event loop only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from opsfleet.common.errors import ResourceExhausted

log = logging.getLogger(__name__)

KeyKind = Literal["user", "address"]
MAX_KEYS = 100_000


class LoginThrottled(ResourceExhausted):
    """Too many failed sign-ins for this username or address (REST 429, code 1006, Retry-After)."""


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 10
    max_failures_per_address: int = 30
    window: float = 300.0
    lockout_base: float = 60.0
    lockout_max: float = 3600.0


@dataclass
class _Entry:
    failures: list[float] = field(default_factory=list)
    strikes: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """``check()`` before a sign-in; then ``failed()`` or ``succeeded()``."""

    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._max_keys = max_keys
        self._entries: dict[tuple[KeyKind, str], _Entry] = {}

    @staticmethod
    def _keys(username: str, address: str) -> list[tuple[KeyKind, str]]:
        keys: list[tuple[KeyKind, str]] = [("user", username.lower())]
        if address:
            keys.append(("address", address))
        return keys

    def check(self, username: str, address: str) -> None:
        """LoginThrottled (with ``retry_after``) while the username or the address is locked."""
        now = self._clock()
        wait = 0.0
        for key in self._keys(username, address):
            entry = self._entries.get(key)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        if wait > 0:
            raise LoginThrottled(
                f"too many failed sign-ins; try again in {_seconds(wait)}", retry_after=math.ceil(wait)
            )

    def failed(self, username: str, address: str) -> None:
        """Count a failure; LoginThrottled when it locks the username or the address."""
        now = self._clock()
        wait = 0.0
        for kind, name in self._keys(username, address):
            limit = self.policy.max_failures if kind == "user" else self.policy.max_failures_per_address
            locked = self._fail(self._entry((kind, name), now), now, limit)
            if locked:
                log.warning("sign-in locked for %s %r for %.0fs after repeated failures", kind, name, locked)
                wait = max(wait, locked)
        if wait > 0:
            raise LoginThrottled(
                f"too many failed sign-ins; try again in {_seconds(wait)}", retry_after=math.ceil(wait)
            )

    def succeeded(self, username: str) -> None:
        self._entries.pop(("user", username.lower()), None)

    def _fail(self, entry: _Entry, now: float, limit: int) -> float:
        p = self.policy
        if entry.strikes and entry.locked_until <= now and now - entry.last_failure > p.lockout_max:
            entry.strikes = 0
        entry.failures = [t for t in entry.failures if now - t < p.window]
        entry.failures.append(now)
        entry.last_failure = now
        if len(entry.failures) < limit and not (entry.strikes and entry.locked_until <= now):
            return 0.0
        duration = min(p.lockout_base * 2.0 ** min(entry.strikes, 60), p.lockout_max)
        entry.strikes += 1
        entry.locked_until = now + duration
        entry.failures.clear()
        return duration

    def _entry(self, key: tuple[KeyKind, str], now: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                self._prune(now)
            entry = self._entries[key] = _Entry()
        return entry

    def _idle(self, entry: _Entry, now: float) -> bool:
        p = self.policy
        return entry.locked_until <= now and now - entry.last_failure > max(p.window, p.lockout_max)

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if self._idle(e, now)]:
            del self._entries[key]
        # Still nearly full: forget the oldest keys (insertion order) that are not locked right
        # now, down to 90% so that pruning runs once per many new keys, not on every one.
        excess = len(self._entries) - int(self._max_keys * 0.9)
        if excess > 0:
            unlocked = [k for k, e in self._entries.items() if e.locked_until <= now][:excess]
            for key in unlocked:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def _seconds(wait: float) -> str:
    whole = max(1, math.ceil(wait))
    return f"{whole} second{'s' if whole != 1 else ''}"
