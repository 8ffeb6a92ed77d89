"""The risk monitor on rows seeded through the models: each trigger makes exactly one kill
event with its code and state, halt hooks run after the commit, bands set the trading
state, snapshots are written once a minute, and a killed bot is left alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.domain.kill import KillMode, TriggerCode
from botwarden.domain.kill_detectors import Thresholds
from botwarden.services import kill as kill_service
from botwarden.services import risk_monitor
from botwarden.services.bot_watch import gather_watch
from botwarden.services.risk_monitor import monitor_bot, run_risk_monitor
from botwarden.store.models import (
    Bot,
    EquitySnapshot,
    IntegrationTelemetry,
    KillEvent,
    TradeLog,
)
from botwarden.workers.tasks import LoopContext
from tests.services.risk_seed import (
    NOW,
    RISK,
    SESSION_CLOSE,
    seed_bot,
    seed_breaker,
    seed_integration,
    seed_job,
    seed_order,
    seed_position,
    seed_runner_state,
    seed_snapshot,
    seed_trade,
)


@dataclass
class RecordingHalt:
    """An execution hook that notes each call and what another connection saw then: the
    kill is committed before the hooks run, or that connection would not see it."""

    engine: Engine
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            committed = conn.execute(sa.select(sa.func.count()).select_from(KillEvent)
                                     .where(KillEvent.bot_id == bot.id)).scalar_one()
        self.calls.append({"bot_id": bot.id, "state": bot.kill_state, "trace_id": trace_id,
                           "committed_events": committed})
        if self.fail:
            raise RuntimeError("broker unreachable")
        return {"bot_id": bot.id, "flat": True}


@pytest.fixture
def hooks(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingHalt]:
    # Only this test's hook: others a test session may have imported stay out of it.
    monkeypatch.setattr(kill_service, "_hooks", [])
    with kill_service.installed_execution_hooks(RecordingHalt(engine)) as recorder:
        yield recorder
    assert kill_service._hooks == []


def kill_events(engine: Engine, bot_id: str) -> list[KillEvent]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot_id)
                                    .order_by(KillEvent.created_at, KillEvent.id)))


def bot_row(engine: Engine, bot_id: str) -> Bot:
    with Session(engine) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        return bot


# --- one scenario per trigger ----------------------------------------------------------------

Scenario = Callable[[Session], str]


def daily_loss(session: Session) -> str:
    bot = seed_bot(session)
    job = seed_job(session, bot)
    seed_trade(session, bot, job, "-320.50", NOW - timedelta(hours=2))
    seed_trade(session, bot, job, "-179.50", NOW - timedelta(hours=1))  # -500: the limit
    return bot.id


def drawdown(session: Session) -> str:
    bot = seed_bot(session, risk={**RISK, "max_daily_loss_usd": "100000"})
    seed_job(session, bot)
    seed_snapshot(session, bot, "55000", NOW - timedelta(days=3))
    seed_position(session, bot, [], realized="-6000")  # equity 44000: 20% under 55000
    return bot.id


def stale_heartbeat(session: Session) -> str:
    bot = seed_bot(session)
    seed_job(session, bot, heartbeat=NOW - timedelta(seconds=91))
    seed_position(session, bot, [(1, "5000")])
    seed_runner_state(session, bot, last_price="5000", last_bar_time=NOW - timedelta(minutes=2),
                      updated_at=NOW - timedelta(seconds=95))
    return bot.id


def dead_runner_with_a_position(session: Session) -> str:
    bot = seed_bot(session)
    seed_job(session, bot, status="FAILED", heartbeat=NOW - timedelta(minutes=10))
    seed_position(session, bot, [(2, "5000")], short=True)
    return bot.id


def rejection_spike(session: Session) -> str:
    bot = seed_bot(session)
    seed_job(session, bot)
    for minutes in range(5):
        seed_order(session, bot, status="REJECTED", reject_code="MARGIN",
                   created_at=NOW - timedelta(minutes=minutes))
    for _ in range(3):
        seed_order(session, bot, status="FILLED")
    seed_order(session, bot, status="REJECTED", created_at=NOW - timedelta(minutes=6))  # old
    return bot.id


def provider_missing(session: Session) -> str:
    bot = seed_bot(session)
    seed_job(session, bot, payload={"provider": "databento"})
    seed_integration(session, "databento", "DOWN", configured=False, code="KEY_MISSING")
    return bot.id


def broker_revoked(session: Session) -> str:
    bot = seed_bot(session, stage="CANARY")
    seed_job(session, bot)
    seed_integration(session, "tradovate", "DOWN", kind="broker", code="ENTITLEMENT_REVOKED")
    return bot.id


def circuit_open(session: Session) -> str:
    bot = seed_bot(session, stage="LIVE")
    seed_job(session, bot, status="BLOCKED")
    seed_breaker(session, bot)
    return bot.id


@pytest.mark.parametrize(("scenario", "trigger"), [
    (daily_loss, TriggerCode.DAILY_LOSS_BREACH),
    (drawdown, TriggerCode.DD_BREACH),
    (stale_heartbeat, TriggerCode.STALE_HEARTBEAT_CRITICAL),
    (dead_runner_with_a_position, TriggerCode.STALE_HEARTBEAT_CRITICAL),
    (rejection_spike, TriggerCode.EXECUTION_REJECTION_SPIKE),
    (provider_missing, TriggerCode.DATA_PROVIDER_MISSING),
    (broker_revoked, TriggerCode.ENTITLEMENT_REVOKED),
    (circuit_open, TriggerCode.CIRCUIT_OPEN),
])
def test_each_hard_trigger_kills_once_and_halts_after_the_commit(
    engine: Engine, settings: Settings, hooks: RecordingHalt, scenario: Scenario,
    trigger: TriggerCode,
) -> None:
    with Session(engine) as session:
        bot_id = scenario(session)
        session.commit()
    result = monitor_bot(engine, bot_id, NOW, settings=settings)
    assert result["kill"]["trigger"] == trigger.value and result["kill"]["mode"] == "HARD"
    assert result["trading_state"] == "HALTED"
    assert result["halt"] == [{"bot_id": bot_id, "flat": True}]
    events = kill_events(engine, bot_id)
    assert len(events) == 1
    event = events[0]
    assert (event.event_type, event.state, event.trigger_code, event.actor) == (
        "KILL", "HARD_KILLED", trigger.value, "risk_monitor")
    assert event.metadata_["mode"] == "HARD"
    assert event.metadata_["fired"][0]["trigger"] == trigger.value
    assert set(event.metadata_["figures"]) >= {"daily_pnl", "equity", "equity_peak"}
    assert event.metadata_["facts"]["bot_id"] == bot_id
    bot = bot_row(engine, bot_id)
    assert (bot.kill_state, bot.trading_state) == ("HARD_KILLED", "HALTED")
    assert hooks.calls == [{"bot_id": bot_id, "state": "HARD_KILLED",
                            "trace_id": event.trace_id, "committed_events": 1}]
    # Detected again: a no-op, however often.
    again = monitor_bot(engine, bot_id, NOW + timedelta(seconds=5), settings=settings)
    assert again["checked"] is False and again["why"] == "already HARD_KILLED"
    assert len(kill_events(engine, bot_id)) == 1 and len(hooks.calls) == 1


def test_a_rate_limit_storm_soft_kills_and_a_hard_trigger_escalates(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_job(session, bot)
        seed_integration(session, "replay", "DEGRADED", code="RATE_LIMITED")
        minute = NOW.replace(second=0)
        session.add(IntegrationTelemetry(provider="replay", operation="stream",
                                         bucket_start=minute, calls=30, ok_calls=8))
        session.commit()
        bot_id = bot.id
    soft = monitor_bot(engine, bot_id, NOW, settings=settings)
    assert soft["kill"] == {"trigger": "RATE_LIMIT_STORM", "mode": "SOFT",
                            "state": "SOFT_KILLED", "reason": soft["kill"]["reason"]}
    assert "22 rate-limited calls" in soft["kill"]["reason"]
    assert soft["halt"] is None and hooks.calls == []  # a SOFT kill flattens nothing
    assert (bot_row(engine, bot_id).kill_state, bot_row(engine, bot_id).trading_state) == (
        "SOFT_KILLED", "REDUCING")
    # Still storming: no second SOFT kill.
    assert monitor_bot(engine, bot_id, NOW + timedelta(seconds=5),
                       settings=settings)["kill"] is None
    with Session(engine) as session:
        for _ in range(5):
            seed_order(session, session.get(Bot, bot_id), status="REJECTED")
        session.commit()
    hard = monitor_bot(engine, bot_id, NOW + timedelta(seconds=10), settings=settings)
    assert hard["kill"]["trigger"] == "EXECUTION_REJECTION_SPIKE"
    assert hard["kill"]["state"] == "HARD_KILLED"
    events = kill_events(engine, bot_id)
    assert [(e.state, e.trigger_code) for e in events] == [
        ("SOFT_KILLED", "RATE_LIMIT_STORM"), ("HARD_KILLED", "EXECUTION_REJECTION_SPIKE")]
    assert len(hooks.calls) == 1


@pytest.mark.parametrize(("seconds", "storm"), [(30, True), (33, False)])
def test_rate_limited_calls_over_a_sliding_minute(
    engine: Engine, settings: Settings, hooks: RecordingHalt, seconds: int, storm: bool,
) -> None:
    """The previous minute's bucket counts for the part of it still inside the last 60 s:
    at 15:00:30, 10 now and half of 20 before make 20; at 15:00:33, 10 + 9.9 do not."""
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_job(session, bot)
        seed_integration(session, "replay", "DEGRADED", code="RATE_LIMITED")
        minute = NOW.replace(second=0)
        session.add(IntegrationTelemetry(provider="replay", operation="stream",
                                         bucket_start=minute - timedelta(minutes=1), calls=25,
                                         ok_calls=5))
        session.add(IntegrationTelemetry(provider="replay", operation="stream",
                                         bucket_start=minute, calls=10, ok_calls=0))
        session.add(IntegrationTelemetry(provider="replay", operation="stream",
                                         bucket_start=minute - timedelta(minutes=2), calls=99,
                                         ok_calls=0))  # out of the window
        session.commit()
        bot_id = bot.id
    result = monitor_bot(engine, bot_id, NOW + timedelta(seconds=seconds), settings=settings)
    assert (result["kill"] is not None) is storm
    if storm:
        assert result["kill"]["trigger"] == "RATE_LIMIT_STORM"


def test_a_storm_on_a_primary_with_a_serving_backup_is_no_kill(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    """Failover heals: the storm counts only on the provider the feed is served by."""
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_job(session, bot, payload={"provider": "replay", "backup": "replay-backup"})
        seed_integration(session, "replay", "DEGRADED", code="RATE_LIMITED")
        seed_integration(session, "replay-backup", "OK")
        session.add(IntegrationTelemetry(provider="replay", operation="stream",
                                         bucket_start=NOW.replace(second=0), calls=40,
                                         ok_calls=0))
        session.commit()
        bot_id = bot.id
    result = monitor_bot(engine, bot_id, NOW, settings=settings)
    assert result["kill"] is None and result["fired"] == []
    assert kill_events(engine, bot_id) == []


def test_the_reducing_band_sets_the_trading_state_and_lifts_it(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, risk={**RISK, "max_daily_loss_usd": "5000"})
        job = seed_job(session, bot)
        trade = seed_trade(session, bot, job, "-1500", NOW - timedelta(hours=1))  # 3%
        session.commit()
        bot_id, trade_id = bot.id, trade.id
    result = monitor_bot(engine, bot_id, NOW, settings=settings)
    assert result["kill"] is None and result["trading_state_changed"] is True
    assert bot_row(engine, bot_id).trading_state == "REDUCING"
    assert any("daily_loss 3.00%" in w for w in result["warnings"])
    unchanged = monitor_bot(engine, bot_id, NOW + timedelta(seconds=5), settings=settings)
    assert unchanged["trading_state_changed"] is False
    with Session(engine) as session:
        session.execute(sa.update(TradeLog).where(TradeLog.id == trade_id)
                        .values(is_invalid=True))
        session.commit()
    lifted = monitor_bot(engine, bot_id, NOW + timedelta(seconds=10), settings=settings)
    assert lifted["trading_state"] == "ACTIVE" and lifted["trading_state_changed"] is True
    assert bot_row(engine, bot_id).trading_state == "ACTIVE"
    assert kill_events(engine, bot_id) == [] and hooks.calls == []


def test_equity_snapshots_at_most_once_a_minute(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_job(session, bot)
        seed_position(session, bot, [(1, "5000.25")], realized="-12.34")
        seed_runner_state(session, bot, last_price="5002.00", last_bar_time=NOW)
        session.commit()
        bot_id = bot.id
    written = [monitor_bot(engine, bot_id, NOW + timedelta(seconds=s),
                           settings=settings)["snapshot"] for s in (0, 30, 59, 60, 61, 90)]
    assert written == [True, False, False, True, False, False]
    with Session(engine) as session:
        rows = session.scalars(sa.select(EquitySnapshot).where(EquitySnapshot.bot_id == bot_id)
                               .order_by(EquitySnapshot.at)).all()
    assert [r.at for r in rows] == [NOW, NOW + timedelta(seconds=60)]
    # 50000 - 12.34 + (5002.00 - 5000.25) x $5.
    assert [(r.equity, r.realized_pnl, r.unrealized_pnl) for r in rows] == [
        (Decimal("49996.41"), Decimal("-12.34"), Decimal("8.75"))] * 2


def test_flatten_before_close_and_stale_data_are_actions_for_the_runner(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    near_close = SESSION_CLOSE - timedelta(minutes=10)
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_job(session, bot, heartbeat=near_close)
        seed_position(session, bot, [(1, "5000")])
        seed_runner_state(session, bot, last_price="5000", last_bar_time=near_close,
                          updated_at=near_close - timedelta(seconds=150))
        session.commit()
        bot_id = bot.id
    result = monitor_bot(engine, bot_id, near_close, settings=settings)
    assert result["kill"] is None
    assert result["actions"] == ["STALE_DATA", "FLATTEN_BEFORE_CLOSE"]


def test_a_kill_between_read_and_write_is_not_repeated(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    with Session(engine) as session:
        bot_id = daily_loss(session)
        session.commit()
    with engine.connect() as conn:
        gathered = gather_watch(conn, bot_id, NOW, settings=settings, thresholds=Thresholds())
    assert gathered is not None and gathered.watch.kill_state == "NONE"
    with Session(engine) as session:  # a human is faster than the monitor
        kill_service.kill_bot(session, session.get(Bot, bot_id), mode=KillMode.HARD,
                              trigger=TriggerCode.MANUAL_KILL, reason="me first", actor="ops")
        session.commit()
    outcome, detection = risk_monitor._write(engine, gathered, NOW, Thresholds(),
                                             "risk_monitor", "t-1")
    assert outcome["kill"] is None and detection.kill is None
    assert [e.trigger_code for e in kill_events(engine, bot_id)] == ["MANUAL_KILL"]


def test_a_failing_halt_hook_is_reported_and_the_kill_stands(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    hooks.fail = True
    with Session(engine) as session:
        bot_id = stale_heartbeat(session)
        session.commit()
    result = monitor_bot(engine, bot_id, NOW, settings=settings)
    assert result["halt"] == {"error": "RuntimeError('broker unreachable')"}
    assert bot_row(engine, bot_id).kill_state == "HARD_KILLED"


def test_the_loop_checks_watched_bots_only(
    engine: Engine, settings: Settings, hooks: RecordingHalt,
) -> None:
    with Session(engine) as session:
        healthy = seed_bot(session)
        seed_job(session, healthy)
        losing = daily_loss(session)
        in_trials = seed_bot(session, stage="TRIALS")
        seed_position(session, in_trials, [(1, "5000")])
        killed = seed_bot(session, kill_state="HARD_KILLED")
        seed_job(session, killed, heartbeat=NOW - timedelta(hours=1))
        seed_position(session, killed, [(1, "5000")])
        idle = seed_bot(session)  # no runner, nothing open
        working = seed_bot(session)  # no runner, but an order may still fill
        seed_order(session, working, status="WORKING")
        session.commit()
        healthy_id, working_id = healthy.id, working.id
        ignored = [in_trials.id, killed.id, idle.id]
    assert set(risk_monitor.watched_bot_ids(engine)) == {healthy_id, losing, working_id}
    ctx = LoopContext(engine, settings, lambda: NOW, "risk_monitor", None)
    summary = run_risk_monitor(ctx)
    assert summary == {"checked": 3, "reducing": 0, "snapshots": 3, "flatten_before_close": 0,
                       "stale_data": 0, "errors": 0, "bots_killed": 1, "killed": [losing]}
    assert [c["bot_id"] for c in hooks.calls] == [losing]
    for bot_id in ignored:
        assert kill_events(engine, bot_id) == []
    with Session(engine) as session:
        snapped = set(session.scalars(sa.select(EquitySnapshot.bot_id)))
    assert snapped == {healthy_id, losing, working_id}
    # The next run, seconds later: nothing new to kill, no snapshot due yet.
    ctx = LoopContext(engine, settings, lambda: NOW + timedelta(seconds=5), "risk_monitor", None)
    assert run_risk_monitor(ctx)["bots_killed"] == 0


def test_the_task_is_registered_for_the_workers(settings: Settings) -> None:
    from botwarden.workers.registry import HANDLER_MODULES
    from botwarden.workers.tasks import registered_tasks

    assert "botwarden.services.risk_monitor" in HANDLER_MODULES
    task = next(t for t in registered_tasks() if t.name == "risk_monitor")
    assert task.run is run_risk_monitor
    assert task.interval(settings) == 5.0
    assert task.interval(settings.model_copy(update={"risk_monitor_interval_seconds": 2.0})) \
        == 2.0


def test_an_unwatched_bot_is_not_checked(engine: Engine, settings: Settings) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, stage="TRIALS")
        session.commit()
        bot_id = bot.id
    assert monitor_bot(engine, bot_id, NOW, settings=settings) == {
        "bot_id": bot_id, "checked": False, "why": "stage TRIALS"}
    assert monitor_bot(engine, "nope", NOW, settings=settings)["checked"] is False
