"""Scripted broker faults for the simulated brokers: a lost acknowledgement, a lost request, a
delay, a rejection with a code, a disconnect, by call count, time window or probability.
Seeded: the same plan, seed and call sequence fire the same faults.

What each does to a call (the caller cannot tell it from the real thing):

- DROP_ACK: the broker does the work (the order IS accepted and will fill), the answer is
  lost: BrokerTimeout.
- LOSE_REQUEST: the request is lost on the way: nothing is done, yet the caller sees the same
  BrokerTimeout (so `query_order` must answer None, and reconcile marks it rejected).
- DELAY: the call is answered after `seconds` (through the broker's injectable sleep).
- REJECT: the broker refuses the order with `code` (it is recorded, REJECTED).
- DISCONNECT: nothing reaches the broker: BrokerDisconnected.

The market does not stop for our connection: `on_bar` (the simulated exchange matching
resting orders) is never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from botwarden.clock import Clock, utcnow
from botwarden.data.providers.faults import rule_applies

ORDER_ENTRY = frozenset({"submit"})
EVERY_CALL: frozenset[str] | None = None


class BrokerFaultKind(StrEnum):
    DROP_ACK = "DROP_ACK"
    LOSE_REQUEST = "LOSE_REQUEST"
    DELAY = "DELAY"
    REJECT = "REJECT"
    DISCONNECT = "DISCONNECT"


_DEFAULT_OPERATIONS: dict[BrokerFaultKind, frozenset[str] | None] = {
    BrokerFaultKind.DROP_ACK: ORDER_ENTRY,
    BrokerFaultKind.LOSE_REQUEST: ORDER_ENTRY,
    BrokerFaultKind.REJECT: ORDER_ENTRY,
    BrokerFaultKind.DELAY: EVERY_CALL,
    BrokerFaultKind.DISCONNECT: EVERY_CALL,
}


@dataclass(slots=True)
class BrokerFaultRule:
    kind: BrokerFaultKind
    operations: frozenset[str] | None  # None: every operation
    remaining: int | None = None  # fire this many times, then retire; None: no count limit
    start: datetime | None = None
    end: datetime | None = None
    probability: float = 1.0
    code: str = "INJECTED_REJECT"  # REJECT
    seconds: float = 0.0  # DELAY

    def applies(self, operation: str, now: datetime) -> bool:
        return rule_applies(self.operations, self.remaining, self.start, self.end,
                            operation, now)


class BrokerFaultPlan:
    """An ordered list of rules; the first that applies to a call (and wins its draw) fires."""

    def __init__(self, seed: int = 0, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._rng = random.Random(seed)
        self._rules: list[BrokerFaultRule] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, BrokerFaultKind]] = []  # (operation, kind), in order

    def add(self, kind: BrokerFaultKind, *, calls: int | None = None,
            between: tuple[datetime, datetime] | None = None,
            operations: set[str] | frozenset[str] | None = None, probability: float = 1.0,
            code: str = "INJECTED_REJECT", seconds: float = 0.0) -> BrokerFaultPlan:
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        if calls is None and between is None and probability == 1.0:
            raise ValueError("a certain fault needs a call count or a time window, "
                             "or it never ends")
        start, end = between if between is not None else (None, None)
        ops = frozenset(operations) if operations else _DEFAULT_OPERATIONS[kind]
        with self._lock:
            self._rules.append(BrokerFaultRule(kind, ops, calls, start, end, probability, code,
                                               seconds))
        return self

    def drop_ack(self, calls: int | None = 1, *, probability: float = 1.0,
                 operations: set[str] | None = None) -> BrokerFaultPlan:
        return self.add(BrokerFaultKind.DROP_ACK, calls=calls, probability=probability,
                        operations=operations)

    def lose_request(self, calls: int | None = 1, *, probability: float = 1.0) -> BrokerFaultPlan:
        return self.add(BrokerFaultKind.LOSE_REQUEST, calls=calls, probability=probability)

    def reject(self, code: str, calls: int | None = 1, *,
               probability: float = 1.0) -> BrokerFaultPlan:
        return self.add(BrokerFaultKind.REJECT, calls=calls, probability=probability, code=code)

    def delay(self, seconds: float, calls: int | None = 1, *, probability: float = 1.0,
              operations: set[str] | None = None) -> BrokerFaultPlan:
        return self.add(BrokerFaultKind.DELAY, calls=calls, probability=probability,
                        operations=operations, seconds=seconds)

    def disconnect(self, *, calls: int | None = None,
                   between: tuple[datetime, datetime] | None = None) -> BrokerFaultPlan:
        """Every call fails as disconnected, for `calls` calls or inside a time window."""
        return self.add(BrokerFaultKind.DISCONNECT, calls=calls, between=between)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def draw(self, operation: str) -> BrokerFaultRule | None:
        """The fault due for this call, if any (its count is used up by this call)."""
        if not self._rules:
            return None
        now = self.clock()
        with self._lock:
            for rule in self._rules:
                if not rule.applies(operation, now):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                self.fired.append((operation, rule.kind))
                return rule
        return None
