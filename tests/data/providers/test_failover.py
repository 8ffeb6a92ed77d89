"""Failover and recovery end to end, through Replay with injected faults, on both databases:
a 429 storm turns the primary DEGRADED and the feed fails over; when the faults stop a probe
turns it OK again and the feed fails back, without losing or repeating a bar."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations import DATA_FEED, IntegrationRegistry, StatusPolicy, persist
from botwarden.data.providers.base import Bar
from botwarden.data.providers.errors import Health, ProviderError
from botwarden.data.providers.failover import FailoverProvider
from botwarden.data.providers.faults import FaultKind, FaultPlan
from botwarden.data.providers.replay import ReplayProvider
from tests.data.builders import make_bars, minutes
from tests.data.providers.helpers import FakeClock, Sleeps


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    store = BarStore(tmp_path / "bars")
    store.write(make_bars(minutes("2025-03-12 13:00", 120)), dataset="TEST", provider="test",
                synthetic=True)
    return store


def build(settings: Settings, engine: Engine, store: BarStore, clock: FakeClock
          ) -> tuple[IntegrationRegistry, FaultPlan, FailoverProvider, Sleeps]:
    registry = IntegrationRegistry(settings, engine, clock=clock, store=store,
                                   policy=StatusPolicy(storm_threshold=5))
    plan = FaultPlan(clock)
    primary = ReplayProvider(store, name="replay-primary", faults=plan, observer=registry,
                             clock=clock, sleep=Sleeps())
    backup = ReplayProvider(store, name="replay-backup", observer=registry, clock=clock,
                            sleep=Sleeps())
    sleeps = Sleeps(clock)
    feed = FailoverProvider([primary, backup], registry, probe_interval=timedelta(seconds=10),
                            clock=clock, async_sleep=sleeps.async_sleep)
    return registry, plan, feed, sleeps


def test_storm_fails_over_and_recovery_fails_back(settings, engine, store) -> None:
    clock = FakeClock()
    registry, plan, feed, _ = build(settings, engine, store, clock)
    served_by: list[str | None] = []
    got: list[Bar] = []

    async def run() -> None:
        async for bar in feed.stream_bars("MES"):
            got.append(bar)
            served_by.append(feed.active)
            clock.advance(5)  # five seconds of wall time per bar
            if len(got) == 30:
                plan.storm(calls=8)  # 429s: stream, then every probe, until they run out

    asyncio.run(run())
    registry.flush()

    want = store.load("MES")
    assert [b.ts for b in got] == want.ts.tolist()  # every bar once, in order, no gap
    assert served_by[0] == "replay-primary" and "replay-backup" in served_by
    assert served_by[-1] == "replay-primary"  # failed back after the storm
    assert registry.status("replay-primary") is Health.OK

    primary_events = [(e["to_status"], e["code"])
                      for e in reversed(persist.recent_events(engine, "replay-primary", 50))]
    assert primary_events[0] == ("DEGRADED", "RATE_LIMITED")
    assert ("DEGRADED", "RATE_LIMIT_STORM") in primary_events
    assert primary_events[-1] == ("OK", "RECOVERED")
    feed_events = [e["code"] for e in reversed(persist.recent_events(engine, DATA_FEED, 50))]
    assert feed_events == ["STARTED", "FAILOVER", "FAILBACK"]
    assert persist.load_state(engine, DATA_FEED).status is Health.OK


def test_storm_is_a_kill_trigger_only_when_nothing_can_serve(settings, engine, store) -> None:
    clock = FakeClock()
    registry, plan, feed, _ = build(settings, engine, store, clock)
    plan.storm(calls=20)
    span = (datetime(2025, 3, 12, tzinfo=UTC), datetime(2025, 3, 13, tzinfo=UTC))
    for _ in range(2):  # 3 attempts each: six 429s inside the window
        with pytest.raises(ProviderError):
            feed.providers[0].fetch_bars("MES", *span)
    assert registry.state("replay-primary").in_storm(clock.now, registry.policy)
    assert registry.kill_trigger(["replay-primary", "replay-backup"]) is None  # backup OK
    assert registry.kill_trigger(["replay-primary"]) == "RATE_LIMIT_STORM"


def test_fetch_fails_over_to_the_backup(settings, engine, store) -> None:
    clock = FakeClock()
    registry, plan, feed, _ = build(settings, engine, store, clock)
    plan.add(FaultKind.FORBIDDEN, calls=1)
    bars = feed.fetch_bars("MES", datetime(2025, 3, 12, tzinfo=UTC),
                           datetime(2025, 3, 13, tzinfo=UTC))
    assert len(bars) == 120
    assert registry.status("replay-primary") is Health.DOWN
    assert registry.kill_trigger(["replay-primary"]) == "ENTITLEMENT_REVOKED"
    assert feed.select().name == "replay-backup" and feed.health() is Health.DEGRADED


def test_nothing_usable_is_recorded_and_waits(settings, engine, store) -> None:
    clock = FakeClock()
    registry, plan, feed, sleeps = build(settings, engine, store, clock)
    plan.add(FaultKind.FORBIDDEN, calls=100)
    feed.providers[1].faults = plan  # both fail now
    got: list[Bar] = []

    async def run() -> None:
        async for bar in feed.stream_bars("MES"):
            got.append(bar)

    async def bounded() -> None:
        task = asyncio.create_task(run())
        while len(sleeps.calls) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(bounded())
    assert got == []
    assert feed.active is None and feed.health() is Health.DOWN
    assert persist.load_state(engine, DATA_FEED).last_error_code == "NO_PROVIDER"
    assert registry.kill_trigger(feed.chain) == "ENTITLEMENT_REVOKED"


def test_a_provider_without_the_symbol_is_skipped(settings, engine, store, tmp_path) -> None:
    clock = FakeClock()
    registry = IntegrationRegistry(settings, engine, clock=clock, store=store)
    empty = ReplayProvider(BarStore(tmp_path / "empty"), name="replay-empty",
                           observer=registry, clock=clock)
    full = ReplayProvider(store, name="replay-full", observer=registry, clock=clock)
    feed = FailoverProvider([empty, full], registry, clock=clock)

    async def run() -> list[Bar]:
        return [bar async for bar in feed.stream_bars("MES")]

    assert len(asyncio.run(run())) == 120
    only_empty = FailoverProvider([empty], registry, clock=clock)

    async def run_empty() -> None:
        async for _ in only_empty.stream_bars("MES"):
            pass

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run_empty())
    assert caught.value.reason.value == "NO_DATA"
