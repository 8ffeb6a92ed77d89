"""Tradovate's request budget, kept on our side: it allows 5,000 requests an hour a user,
and past that answers 429 and stops handling requests for a while (a penalty), orders and
cancels included. So every request this process sends counts; reads stop at `read_share`
of the hour's budget, leaving the rest to orders, cancels and flattens; a request over the
budget is refused here, unsent (RATE_LIMITED). Per process: processes sharing a user divide
Tradovate's budget between them (`BOTWARDEN_TRADOVATE_REQUESTS_PER_HOUR`)."""

from __future__ import annotations

from pyrate_limiter import BucketFullException, Duration, Limiter, Rate
from pyrate_limiter.buckets.in_memory_bucket import InMemoryBucket

RETRY_AFTER_SECONDS = 60.0  # an hour's window frees a request every 0.72 s at 5,000


class BudgetSpent(Exception):
    """A request refused before it was sent (not a provider error: never retried)."""


class RequestBudget:
    def __init__(self, per_hour: int = 5000, read_share: float = 0.8) -> None:
        if per_hour < 1 or not 0 < read_share <= 1:
            raise ValueError("a budget of at least one request, reads a share of it")
        self.per_hour = per_hour
        self.reads_per_hour = max(1, int(per_hour * read_share))
        self._all = Limiter(InMemoryBucket([Rate(per_hour, Duration.HOUR)]))
        self._reads = Limiter(InMemoryBucket([Rate(self.reads_per_hour, Duration.HOUR)]))

    def take(self, *, read: bool) -> None:
        """Count one request about to be sent, or raise BudgetSpent."""
        try:
            if read:
                self._reads.try_acquire("reads")
            self._all.try_acquire("all")
        except BucketFullException:
            kind = f"{self.reads_per_hour} reads" if read else f"{self.per_hour} requests"
            raise BudgetSpent(f"this process has sent its {kind} of the hour to Tradovate; "
                              "nothing was sent") from None
