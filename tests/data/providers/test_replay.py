"""Replay: the store played as a live feed, paced, resampled and with injected faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from botwarden.data.bar_store import BarStore
from botwarden.data.providers.base import Bar
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from botwarden.data.providers.faults import FaultKind, FaultPlan
from botwarden.data.providers.replay import ReplayProvider
from tests.data.builders import make_bars, minutes, ns
from tests.data.providers.helpers import FakeClock, Sleeps, memory_registry

# Wednesday 2025-03-12 from 13:00 UTC: 300 minutes inside one CME session.
T0 = "2025-03-12 13:00"


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    store = BarStore(tmp_path / "data")
    store.write(make_bars(minutes(T0, 300)), dataset="TEST", provider="test", synthetic=True)
    return store


def collect(stream: AsyncIterator[Bar], limit: int | None = None) -> list[Bar]:
    async def run() -> list[Bar]:
        got = []
        async for bar in stream:
            got.append(bar)
            if limit is not None and len(got) >= limit:
                break
        return got

    return asyncio.run(run())


def test_stream_equals_the_store_from_a_start(store: BarStore) -> None:
    start = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)
    got = collect(ReplayProvider(store, chunk_rows=64).stream_bars("MES", start=start))
    want = store.load("MES", start)
    assert len(got) == len(want) == 240
    np.testing.assert_array_equal([b.ts for b in got], want.ts)
    np.testing.assert_array_equal([b.close for b in got], want.close)
    assert got[0].at == start and got[0].timeframe == "1m"


def test_five_minute_stream_matches_the_backtest_bars(store: BarStore) -> None:
    start = datetime(2025, 3, 12, 13, 2, tzinfo=UTC)  # mid-bucket: that bucket is skipped
    got = collect(ReplayProvider(store, chunk_rows=37).stream_bars("MES", "5m", start=start))
    want = store.load("MES", start, timeframe="5m")
    assert [b.ts for b in got] == want.ts.tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert [getattr(b, name) for b in got] == getattr(want, name).tolist(), name


def test_paced_replay_waits_gap_over_speed(store: BarStore) -> None:
    sleeps = Sleeps()
    moments = iter(float(i) * 0.0 for i in range(10_000))  # a clock that never moves
    replay = ReplayProvider(store, speed=60.0, async_sleep=sleeps.async_sleep,
                            monotonic=lambda: next(moments))
    got = collect(replay.stream_bars("MES"), limit=4)
    assert len(got) == 4
    # Bar 1 is due at once; each next 1-minute bar 1 s later (due times accumulate).
    assert sleeps.calls == pytest.approx([1.0, 2.0, 3.0])


def test_paced_replay_caps_long_gaps(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "data")
    ts = np.concatenate((minutes("2025-03-14 20:58", 2), minutes("2025-03-16 22:00", 2)))
    store.write(make_bars(ts), dataset="TEST", provider="test", synthetic=True)
    sleeps = Sleeps()
    replay = ReplayProvider(store, speed=60.0, max_wait=5.0, async_sleep=sleeps.async_sleep,
                            monotonic=lambda: 0.0)
    collect(replay.stream_bars("MES"))
    assert sleeps.calls == pytest.approx([1.0, 6.0, 7.0])  # the weekend costs 5 s, not 49 min


def test_fault_plan_mid_stream_raises_a_classified_error(tmp_path: Path, store) -> None:
    clock = FakeClock()
    registry = memory_registry(tmp_path, clock, store=store)
    plan = FaultPlan(clock)
    replay = ReplayProvider(store, name="replay-faulty", faults=plan, observer=registry,
                            clock=clock)
    got: list[Bar] = []

    async def run() -> None:
        async for bar in replay.stream_bars("MES"):
            got.append(bar)
            if len(got) == 10:
                plan.add(FaultKind.DISCONNECT, calls=1)

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run())
    assert caught.value.reason is ErrorCode.DISCONNECTED and len(got) == 10
    assert plan.fired == 1 and not plan.active


@pytest.mark.parametrize(("kind", "reason", "health"), [
    (FaultKind.RATE_LIMIT, ErrorCode.RATE_LIMITED, Health.DEGRADED),
    (FaultKind.FORBIDDEN, ErrorCode.ENTITLEMENT_REVOKED, Health.DOWN),
    (FaultKind.BAD_DATA, ErrorCode.PROVIDER_BAD_DATA, Health.DEGRADED),
])
def test_injected_faults_classify_like_vendor_errors(tmp_path, store, kind, reason,
                                                     health) -> None:
    clock = FakeClock()
    registry = memory_registry(tmp_path, clock, store=store)
    replay = ReplayProvider(store, name="replay-x", faults=FaultPlan(clock).add(kind, calls=3),
                            observer=registry, clock=clock, sleep=Sleeps())
    with pytest.raises(ProviderError) as caught:
        replay.fetch_bars("MES", datetime(2025, 3, 12, tzinfo=UTC),
                          datetime(2025, 3, 13, tzinfo=UTC))
    assert caught.value.reason is reason
    assert registry.state("replay-x").status is health


def test_timeouts_in_a_window_then_clear(tmp_path, store) -> None:
    clock = FakeClock()
    registry = memory_registry(tmp_path, clock, store=store)
    window = (clock.now, clock.now.replace(minute=5))
    plan = FaultPlan(clock).add(FaultKind.TIMEOUT, between=window, operations={"fetch"})
    replay = ReplayProvider(store, name="replay-t", faults=plan, observer=registry,
                            clock=clock, sleep=Sleeps())
    span = (datetime(2025, 3, 12, tzinfo=UTC), datetime(2025, 3, 13, tzinfo=UTC))
    with pytest.raises(ProviderError):
        replay.fetch_bars("MES", *span)
    assert registry.state("replay-t").status is Health.DEGRADED  # after three attempts
    clock.advance(600)
    assert len(replay.fetch_bars("MES", *span)) == 300
    assert registry.state("replay-t").status is Health.OK


def test_verify_and_missing_symbol(tmp_path: Path, store: BarStore) -> None:
    replay = ReplayProvider(store)
    result = replay.verify()
    assert result.ok and result.details["series"][0]["symbol"] == "MES"
    empty = ReplayProvider(BarStore(tmp_path / "empty"))
    assert empty.verify().code == "NO_DATA"
    with pytest.raises(ProviderError) as caught:
        collect(replay.stream_bars("MNQ"))
    assert caught.value.reason is ErrorCode.NO_DATA


def test_memory_is_flat_in_chunks(store: BarStore) -> None:
    """Chunks are read one at a time: the reader never holds more than chunk_rows bars."""
    seen: list[int] = []
    original = store.iter_chunks

    def spy(*args: Any, **kwargs: Any) -> Any:
        for chunk in original(*args, **kwargs):
            seen.append(len(chunk))
            yield chunk

    store.iter_chunks = spy  # type: ignore[method-assign]
    got = collect(ReplayProvider(store, chunk_rows=50).stream_bars("MES"))
    assert len(got) == 300 and max(seen) <= 50 and len(seen) == 6
    assert got[0].ts == ns(T0)
