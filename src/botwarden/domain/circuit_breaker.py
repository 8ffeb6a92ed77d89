"""The per-bot circuit breaker over runner failures (domain.md, "Jobs"). Pure: no I/O.

The state is derived from two facts, so it cannot drift from them: the failure times still
inside the window, and when the breaker last opened.
- CLOSED: never opened, or half-open long enough that every failure has left the window.
- OPEN: opened less than `half_open_after` ago; no automatic restart.
- HALF_OPEN: past that, while a failure is still in the window; one restart may be tried,
  and a failure now opens the breaker again at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int  # failures within the window that open the breaker
    window: timedelta
    half_open_after: timedelta


@dataclass(frozen=True, slots=True)
class Breaker:
    failures: tuple[datetime, ...] = ()
    opened_at: datetime | None = None

    def recent(self, now: datetime, policy: BreakerPolicy) -> tuple[datetime, ...]:
        return tuple(t for t in self.failures if now - t < policy.window)

    def state(self, now: datetime, policy: BreakerPolicy) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at < policy.half_open_after:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN if self.recent(now, policy) else BreakerState.CLOSED

    def allows_restart(self, now: datetime, policy: BreakerPolicy) -> bool:
        return self.state(now, policy) is not BreakerState.OPEN

    def settle(self, now: datetime, policy: BreakerPolicy) -> Breaker:
        """The same breaker with old failures dropped and a closed breaker's opening
        forgotten: what is worth storing."""
        recent = self.recent(now, policy)
        if self.state(now, policy) is BreakerState.CLOSED:
            return Breaker(recent, None)
        return replace(self, failures=recent)

    def record_failure(self, now: datetime, policy: BreakerPolicy) -> Breaker:
        before = self.state(now, policy)
        settled = self.settle(now, policy)
        failures = (*settled.failures, now)
        if before is BreakerState.HALF_OPEN or (
            before is BreakerState.CLOSED and len(failures) >= policy.threshold
        ):
            return Breaker(failures, now)
        return Breaker(failures, settled.opened_at)


def opened_by(before: Breaker, after: Breaker, now: datetime, policy: BreakerPolicy) -> bool:
    """Did this change open the breaker (from CLOSED or HALF_OPEN)?"""
    return (before.state(now, policy) is not BreakerState.OPEN
            and after.state(now, policy) is BreakerState.OPEN)
