"""Rate limits on mutating routes, per caller and for the whole server, shared by every
server process through the database.

pyrate-limiter does the limiting (`Limiter`, `Rate`, `Duration`, a `BucketFactory`); the
buckets are our own `DatabaseBucket`: one sliding log per key in the `rate_limit_hits` table
of the app's database. The library's own stores do not fit:

- `PostgresBucket` counts and then inserts in two statements without any lock, so two
  processes can both see the last free slot and both take it (over-admission). It also counts
  a whole table, so a per-caller limit would need one table per caller, created at run time.
- `SQLiteBucket` with its file lock is correct across processes on one host, but it too needs
  a table per caller, and it exists for SQLite only.

`DatabaseBucket.put` counts and inserts in one transaction holding the bucket's lock: on
PostgreSQL a transaction-scoped advisory lock on the bucket's key, on SQLite the database's
write lock taken up front (BEGIN IMMEDIATE), which every process honours. Processes sharing
one database therefore admit exactly the configured number between them.

Where the hits live: on PostgreSQL in the app's database (the table comes with the
migrations), through a small connection pool of the limiter's own, so that a request holding
a session connection never waits on the app's pool for a second one. On SQLite in a file of
their own next to the database (`botwarden.ratelimit.db` beside `botwarden.db`), created on
start-up: SQLite has one writer lock per file, and a mutation already holds the database's
when the guard charges the limiter, so a limiter write there would wait on its own request.

Fail closed: when the store errors, the request is refused (503 RATE_LIMIT_UNAVAILABLE) and
the error logged; a request is never let through unchecked.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import cast

import sqlalchemy as sa
from pyrate_limiter import (
    AbstractBucket,
    AbstractClock,
    BucketFactory,
    BucketFullException,
    Duration,
    Limiter,
    Rate,
    RateItem,
    TimeClock,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from botwarden.api.errors import ApiError
from botwarden.api.metrics import RATE_LIMITED
from botwarden.config import Settings
from botwarden.logging import get_logger
from botwarden.store.db import make_engine, normalise_url
from botwarden.store.models import RateLimitHit

log = get_logger("botwarden.ratelimit")

HITS = cast(sa.Table, RateLimitHit.__table__)
CALLER, GLOBAL = "caller", "global"  # bucket scopes: `caller:<user id or address>`, `global`
SWEEP_EVERY_MS = 60_000


def _now_ms(clock: AbstractClock) -> int:
    now = clock.now()
    assert isinstance(now, int), "the limiter's clock is synchronous"
    return now


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


def open_store(database_url: str) -> Engine:
    """The engine the limiter keeps its hits in, for the app's `database_url`."""
    if not normalise_url(database_url).startswith("sqlite"):
        return make_engine(database_url, pool_size=4, max_overflow=8)
    url = sa.engine.make_url(database_url)
    if not url.database or url.database == ":memory:":  # one process only: keep it in memory
        store = sa.create_engine("sqlite://", poolclass=StaticPool,
                                 connect_args={"check_same_thread": False})
    else:
        path = Path(url.database)
        store = make_engine(f"sqlite:///{path.with_name(path.stem + '.ratelimit.db')}")
    with store.begin() as conn:  # idempotent, so processes starting together do not clash
        conn.execute(CreateTable(HITS, if_not_exists=True))
        for index in HITS.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))
    return store


# One round trip each, prepared once. A hit counts while it is less than `interval` ms old
# (at exactly `interval` it has expired, which is when `waiting` says the next one fits).
# The insert happens only if the window has room, so counting and taking are one statement;
# on PostgreSQL the expired rows go in the same statement (a data-modifying CTE; the rows it
# deletes are outside the window the count looks at).
_ROOM = ("SELECT :bucket, :now WHERE (SELECT count(*) FROM rate_limit_hits "
         "WHERE bucket = :bucket AND hit_at_ms > :window_start) + :weight <= :limit")
_EXPIRE = "DELETE FROM rate_limit_hits WHERE bucket = :bucket AND hit_at_ms <= :window_start"
_TAKE = sa.text(f"INSERT INTO rate_limit_hits (bucket, hit_at_ms) {_ROOM}")
_EXPIRE_AND_TAKE = sa.text(f"WITH expired AS ({_EXPIRE}) "
                           f"INSERT INTO rate_limit_hits (bucket, hit_at_ms) {_ROOM}")
_EXPIRE_ONLY = sa.text(_EXPIRE)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")


@contextmanager
def _bucket_transaction(engine: Engine, name: str) -> Iterator[Connection]:
    """A transaction that holds `name`'s lock until it ends, in every process."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"  # see store.db: the begin hook
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(_LOCK, {"key": _advisory_key(name)})
            yield conn


class DatabaseBucket(AbstractBucket):
    """pyrate-limiter's bucket interface over the `rate_limit_hits` rows of one key.

    A bucket object is a handle: it keeps no hits itself, so one is made per request and
    handles never share state between threads. Each has exactly one rate."""

    def __init__(self, engine: Engine, name: str, rate: Rate) -> None:
        self.engine = engine
        self.name = name
        self.rate = rate
        self.rates = [rate]
        self.failing_rate = None

    def _mine(self) -> sa.ColumnElement[bool]:
        return HITS.c.bucket == self.name

    def put(self, item: RateItem) -> bool:
        values = {"bucket": self.name, "now": item.timestamp, "weight": item.weight,
                  "window_start": item.timestamp - self.rate.interval, "limit": self.rate.limit}
        with _bucket_transaction(self.engine, self.name) as conn:
            if self.engine.dialect.name == "postgresql":
                taken = conn.execute(_EXPIRE_AND_TAKE, values).rowcount
            else:  # SQLite has no DELETE in a WITH clause; no network to save either
                conn.execute(_EXPIRE_ONLY, values)
                taken = conn.execute(_TAKE, values).rowcount
            if taken != 1:
                self.failing_rate = self.rate
                return False
            if item.weight > 1:  # room for all of it was checked above
                conn.execute(sa.insert(HITS), [{"bucket": self.name,
                                                "hit_at_ms": item.timestamp}] * (item.weight - 1))
        self.failing_rate = None
        return True

    def leak(self, current_timestamp: int | None = None) -> int:
        assert current_timestamp is not None, "leak needs the current time"
        with _bucket_transaction(self.engine, self.name) as conn:
            gone = conn.execute(sa.delete(HITS).where(
                self._mine(), HITS.c.hit_at_ms <= current_timestamp - self.rate.interval))
        return gone.rowcount or 0

    def flush(self) -> None:
        with _bucket_transaction(self.engine, self.name) as conn:
            conn.execute(sa.delete(HITS).where(self._mine()))
        self.failing_rate = None

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(HITS)
                                    .where(self._mine())).scalar_one())

    def peek(self, index: int) -> RateItem | None:
        """The hit `index` places from the newest (0 = newest), as the interface defines."""
        with self.engine.connect() as conn:
            at = conn.execute(sa.select(HITS.c.hit_at_ms).where(self._mine())
                              .order_by(HITS.c.hit_at_ms.desc()).limit(1).offset(index)).scalar()
        return None if at is None else RateItem(self.name, int(at))

    def waiting(self, item: RateItem) -> int:
        """Milliseconds until `item` would fit. The base class reads `failing_rate`, which only
        the handle whose put failed carries; with one rate per bucket any handle can answer."""
        if item.weight > self.rate.limit:
            return -1
        bound = self.peek(self.rate.limit - item.weight)
        if bound is None:
            return 0
        return max(0, bound.timestamp + self.rate.interval - item.timestamp)


class DatabaseBucketFactory(BucketFactory):
    """Routes `caller:<key>` items to that caller's bucket and `global` to the server's."""

    def __init__(self, engine: Engine, per_caller: Rate, server: Rate,
                 clock: AbstractClock) -> None:
        self.engine = engine
        self.rates = {CALLER: per_caller, GLOBAL: server}
        self.clock = clock

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, _now_ms(self.clock), weight)

    def get(self, item: RateItem) -> DatabaseBucket:
        scope = item.name.split(":", 1)[0]
        return DatabaseBucket(self.engine, item.name, self.rates[scope])

    def sweep(self, now_ms: int) -> int:
        """Delete the expired hits of every bucket, including callers who went quiet (a live
        bucket trims itself on each put)."""
        horizon = max(rate.interval for rate in self.rates.values())
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(HITS).where(HITS.c.hit_at_ms <= now_ms - horizon))
        return gone.rowcount or 0


class RateLimiter:
    """What the guard calls: `hit(key)` admits one rate-limited request of `key` (a user id,
    or the client address for public actions) or raises 429 RATE_LIMITED with Retry-After.

    The caller's bucket is charged first, so a caller over their own limit never uses the
    server's capacity; a request refused by the server-wide limit still counts for its
    caller."""

    def __init__(self, store: Engine, per_caller: Rate, server: Rate,
                 clock: AbstractClock | None = None) -> None:
        self.factory = DatabaseBucketFactory(store, per_caller, server, clock or TimeClock())
        # max_delay=None: never wait for room, refuse at once (BucketFullException).
        self.limiter = Limiter(self.factory, raise_when_fail=True)
        if store.dialect.name == "postgresql":
            # Each bucket is locked in the database, so the Limiter's process-wide lock would
            # only queue unrelated callers' round trips behind each other. (On SQLite it stays:
            # there it keeps this process's threads out of SQLite's polling busy handler.)
            self.limiter.lock = nullcontext()  # type: ignore[assignment]
        self._last_sweep_ms = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(open_store(settings.database_url),
                   Rate(settings.rate_limit_user_per_minute, Duration.MINUTE),
                   Rate(settings.rate_limit_global_per_minute, Duration.MINUTE))

    def close(self) -> None:
        self.factory.engine.dispose()

    def hit(self, key: str) -> None:
        for scope, name in ((CALLER, f"{CALLER}:{key}"), (GLOBAL, GLOBAL)):
            try:
                self.limiter.try_acquire(name)
            except BucketFullException as full:
                RATE_LIMITED.labels(scope).inc()
                raise self._refusal(scope, full) from None
            except sa.exc.SQLAlchemyError as exc:
                RATE_LIMITED.labels("store_error").inc()
                log.error("rate_limit_store_error", bucket=name, error=repr(exc))
                raise ApiError(503, "RATE_LIMIT_UNAVAILABLE",
                               "the rate limiter cannot reach its store; request refused",
                               "Retry shortly; if it persists, check the database.",
                               headers={"Retry-After": "1"}) from exc
        self._sweep_if_due()

    def _refusal(self, scope: str, full: BucketFullException) -> ApiError:
        try:
            wait_ms = self.factory.get(full.item).waiting(full.item)
        except sa.exc.SQLAlchemyError:
            wait_ms = full.rate.interval  # the longest it can take
        retry_after = max(1, math.ceil(wait_ms / 1000))
        who = "your" if scope == CALLER else "the server's"
        return ApiError(429, "RATE_LIMITED",
                        f"{who} limit of {full.rate.limit} mutating requests per "
                        f"{full.rate.interval // 1000} s is used up",
                        f"Wait {retry_after} s (Retry-After), then retry.",
                        headers={"Retry-After": str(retry_after)},
                        limit=full.rate.limit, scope=scope)

    def _sweep_if_due(self) -> None:
        now_ms = _now_ms(self.factory.clock)
        if now_ms - self._last_sweep_ms < SWEEP_EVERY_MS:
            return
        self._last_sweep_ms = now_ms
        try:
            self.factory.sweep(now_ms)
        except sa.exc.SQLAlchemyError as exc:  # housekeeping only; the next sweep retries
            log.warning("rate_limit_sweep_failed", error=repr(exc))
