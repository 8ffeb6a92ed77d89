"""Scripted provider faults for tests and the demo: 429 storms, timeouts, 5xx, 403,
disconnects and bad payloads, by call count or by time window.

A fault is raised as the same `ProviderError` a real vendor failure classifies into (an HTTP
status goes through `ProviderError.from_http`), so everything downstream (status machine,
failover, telemetry) cannot tell an injected fault from a real one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from botwarden.clock import Clock, utcnow
from botwarden.data.providers.errors import ErrorCode, ProviderError


def rule_applies(operations: frozenset[str] | None, remaining: int | None,
                 start: datetime | None, end: datetime | None,
                 operation: str, now: datetime) -> bool:
    """Whether a scripted fault rule covers this call: its operation, count and time window.
    Provider faults and broker faults (trading/brokers/faults.py) share this rule."""
    if operations is not None and operation not in operations:
        return False
    if remaining is not None and remaining <= 0:
        return False
    if start is not None and now < start:
        return False
    return end is None or now < end


class FaultKind(StrEnum):
    RATE_LIMIT = "RATE_LIMIT"  # HTTP 429
    TIMEOUT = "TIMEOUT"
    SERVER_ERROR = "SERVER_ERROR"  # HTTP 503
    FORBIDDEN = "FORBIDDEN"  # HTTP 403
    DISCONNECT = "DISCONNECT"  # a live stream drops
    BAD_DATA = "BAD_DATA"  # a payload that fails validation


_HTTP = {FaultKind.RATE_LIMIT: 429, FaultKind.SERVER_ERROR: 503, FaultKind.FORBIDDEN: 403}


@dataclass(slots=True)
class FaultRule:
    kind: FaultKind
    operations: frozenset[str] | None = None  # None: every operation
    remaining: int | None = None  # fire this many times, then retire; None: no count limit
    start: datetime | None = None
    end: datetime | None = None
    retry_after: float | None = None

    def applies(self, operation: str, now: datetime) -> bool:
        return rule_applies(self.operations, self.remaining, self.start, self.end,
                            operation, now)


class FaultPlan:
    """An ordered list of fault rules; the first that applies to a call fires."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.fired = 0

    def add(self, kind: FaultKind, *, calls: int | None = None,
            between: tuple[datetime, datetime] | None = None,
            operations: set[str] | None = None, retry_after: float | None = None) -> FaultPlan:
        if calls is None and between is None:
            raise ValueError("a fault needs a call count or a time window, or it never ends")
        start, end = between if between is not None else (None, None)
        with self._lock:
            self._rules.append(FaultRule(kind, frozenset(operations) if operations else None,
                                         calls, start, end, retry_after))
        return self

    def storm(self, calls: int, *, kind: FaultKind = FaultKind.RATE_LIMIT,
              retry_after: float | None = None) -> FaultPlan:
        """The next `calls` calls of any operation fail (a 429 storm by default)."""
        return self.add(kind, calls=calls, retry_after=retry_after)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def active(self) -> bool:
        """Whether any rule can still fire (now or later)."""
        now = self.clock()
        with self._lock:
            return any((r.remaining is None or r.remaining > 0) and (r.end is None or now < r.end)
                       for r in self._rules)

    def check(self, provider: str, operation: str) -> None:
        """Raise the fault due for this call, if any."""
        if not self._rules:
            return
        now = self.clock()
        with self._lock:
            rule = next((r for r in self._rules if r.applies(operation, now)), None)
            if rule is None:
                return
            if rule.remaining is not None:
                rule.remaining -= 1
            self.fired += 1
        raise fault_error(provider, rule.kind, operation, rule.retry_after)


def fault_error(provider: str, kind: FaultKind, operation: str,
                retry_after: float | None = None) -> ProviderError:
    message = f"injected {kind.value.lower()} on {operation}"
    if kind in _HTTP:
        return ProviderError.from_http(provider, _HTTP[kind], message, retry_after)
    code = {FaultKind.TIMEOUT: ErrorCode.TIMEOUT, FaultKind.DISCONNECT: ErrorCode.DISCONNECTED,
            FaultKind.BAD_DATA: ErrorCode.PROVIDER_BAD_DATA}[kind]
    return ProviderError(provider, code, message)
