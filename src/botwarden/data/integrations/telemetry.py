"""Proof-of-use telemetry: every provider call, aggregated per (provider, operation, minute).

Calls are summed in memory (a dict update per call, cheap enough for a replay stream) and
flushed as upserts on the unique bucket, so the table grows by at most one row per provider,
operation and minute, whatever the call rate; buckets older than the retention are pruned.
Latency percentiles are not storable in that form: `p50_latency_ms` is the median of the
per-minute mean latencies, weighted by calls (exact when latency is steady within a minute).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from botwarden.clock import as_utc
from botwarden.data.providers.base import CallRecord
from botwarden.ids import new_id
from botwarden.store.models import IntegrationTelemetry

BucketKey = tuple[str, str, datetime]


@dataclass(slots=True)
class Aggregate:
    calls: int = 0
    ok_calls: int = 0
    rows: int = 0
    total_latency_ms: float = 0.0
    max_latency_ms: float = 0.0

    def add(self, ok: bool, latency_ms: float, rows: int) -> None:
        self.calls += 1
        self.ok_calls += int(ok)
        self.rows += rows
        self.total_latency_ms += latency_ms
        self.max_latency_ms = max(self.max_latency_ms, latency_ms)


def bucket_of(at: datetime) -> datetime:
    return as_utc(at).replace(second=0, microsecond=0)


class TelemetryBuffer:
    """Thread-safe in-memory aggregation, drained by `flush`."""

    def __init__(self) -> None:
        self._pending: dict[BucketKey, Aggregate] = {}
        self._lock = threading.Lock()

    def record(self, record: CallRecord) -> None:
        key = (record.provider, record.operation, bucket_of(record.at))
        with self._lock:
            agg = self._pending.get(key)
            if agg is None:
                agg = self._pending[key] = Aggregate()
            agg.add(record.ok, record.latency_ms, record.rows)

    def drain(self) -> dict[BucketKey, Aggregate]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def restore(self, pending: dict[BucketKey, Aggregate]) -> None:
        """Put back what a failed flush drained, so no call goes uncounted."""
        with self._lock:
            for key, agg in pending.items():
                mine = self._pending.setdefault(key, Aggregate())
                mine.calls += agg.calls
                mine.ok_calls += agg.ok_calls
                mine.rows += agg.rows
                mine.total_latency_ms += agg.total_latency_ms
                mine.max_latency_ms = max(mine.max_latency_ms, agg.max_latency_ms)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def upsert_buckets(engine: Engine, pending: dict[BucketKey, Aggregate]) -> None:
    """Add each aggregate to its bucket row (insert, or add to the existing row)."""
    if not pending:
        return
    table = IntegrationTelemetry.__table__
    is_pg = engine.dialect.name == "postgresql"
    insert: Any = postgresql.insert if is_pg else sqlite.insert
    greatest = sa.func.greatest if is_pg else sa.func.max  # SQLite's 2-argument max is scalar
    with engine.begin() as conn:
        for (provider, operation, bucket), agg in sorted(pending.items(),
                                                          key=lambda kv: kv[0]):
            stmt = insert(table).values(
                id=new_id(), provider=provider, operation=operation, bucket_start=bucket,
                calls=agg.calls, ok_calls=agg.ok_calls, rows=agg.rows,
                total_latency_ms=agg.total_latency_ms, max_latency_ms=agg.max_latency_ms,
            )
            excluded = stmt.excluded
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["provider", "operation", "bucket_start"],
                set_={
                    "calls": table.c.calls + excluded.calls,
                    "ok_calls": table.c.ok_calls + excluded.ok_calls,
                    "rows": table.c.rows + excluded.rows,
                    "total_latency_ms": table.c.total_latency_ms + excluded.total_latency_ms,
                    "max_latency_ms": greatest(table.c.max_latency_ms, excluded.max_latency_ms),
                },
            ))


def prune(engine: Engine, older_than: datetime) -> int:
    with engine.begin() as conn:
        result = conn.execute(sa.delete(IntegrationTelemetry)
                              .where(IntegrationTelemetry.bucket_start < older_than))
        return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    calls: int
    ok: int
    errors: int
    rows: int
    avg_latency_ms: float | None
    p50_latency_ms: float | None
    max_latency_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls, "ok": self.ok, "errors": self.errors, "rows": self.rows,
            "avg_latency_ms": _round(self.avg_latency_ms),
            "p50_latency_ms": _round(self.p50_latency_ms),
            "max_latency_ms": _round(self.max_latency_ms),
        }


def summarise(buckets: Iterable[tuple[int, int, int, float, float]]) -> UsageSummary:
    """Totals over (calls, ok_calls, rows, total_latency_ms, max_latency_ms) buckets."""
    rows = list(buckets)
    calls = sum(b[0] for b in rows)
    ok = sum(b[1] for b in rows)
    if calls == 0:
        return UsageSummary(0, 0, 0, 0, None, None, None)
    total_latency = sum(b[3] for b in rows)
    means = sorted((b[3] / b[0], b[0]) for b in rows if b[0])
    half, seen, p50 = calls / 2.0, 0, means[-1][0]
    for mean, weight in means:
        seen += weight
        if seen >= half:
            p50 = mean
            break
    return UsageSummary(calls, ok, calls - ok, sum(b[2] for b in rows), total_latency / calls,
                        p50, max(b[4] for b in rows))


def usage_by_provider(engine: Engine, now: datetime,
                      windows: dict[str, timedelta]) -> dict[str, dict[str, UsageSummary]]:
    """Per provider, a summary for each named window ending at `now`."""
    t = IntegrationTelemetry
    since = now - max(windows.values())
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(t.provider, t.bucket_start, t.calls, t.ok_calls, t.rows,
                      t.total_latency_ms, t.max_latency_ms).where(t.bucket_start >= since)
        ).all()
    out: dict[str, dict[str, UsageSummary]] = {}
    providers = {row.provider for row in found}
    for provider in providers:
        mine = [row for row in found if row.provider == provider]
        out[provider] = {
            label: summarise(
                (r.calls, r.ok_calls, r.rows, r.total_latency_ms, r.max_latency_ms)
                for r in mine if as_utc(r.bucket_start) >= now - span
            )
            for label, span in windows.items()
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
