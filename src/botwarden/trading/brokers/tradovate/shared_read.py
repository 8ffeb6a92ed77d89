"""One REST read shared by the runners of a process for a moment.

Tradovate's lists are the user's whole lists, and every runner of a process on the same
account asks for them at the same time: with 1-minute bars, each at the bar's close. While
the user sync is down every runner's fill poll reads /order/list and /fill/list over REST,
two requests a runner a bar against 5,000 an hour for the user (budget.py). Shared for
`ttl`, a burst of polls costs two requests. A read that failed is shared too, so runners
retrying every second (a blind bar, runner_core) do not each send a request to learn it.
A fill that lands inside the window is in the next poll: each poll reaches back five
minutes (fill_poll)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from botwarden.clock import Clock

T = TypeVar("T")


class SharedRead(Generic[T]):
    def __init__(self, ttl: timedelta, clock: Clock) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._at: datetime | None = None
        self._value: T | None = None
        self._error: Exception | None = None
        self.reads = 0  # reads that went to the broker

    def get(self, read: Callable[[], T]) -> T:
        with self._lock:
            now = self.clock()
            if self._at is None or not self._at <= now < self._at + self.ttl:
                self.reads += 1
                self._at = now
                try:
                    self._value, self._error = read(), None
                except Exception as error:  # shared as it is, then raised to each caller
                    self._value, self._error = None, error
            if self._error is not None:
                raise self._error
            return self._value  # type: ignore[return-value]
