"""The facts of one bot for the kill detectors (domain/kill_detectors.py), read from what
runners, brokers and integrations write to the store.

- Runner: the bot's latest RUNNER job. An unfinished one is its runner; one that died
  (FAILED, TIMEOUT) still counts, its heartbeat ageing, since its position is unattended;
  one stopped on purpose (COMPLETED, CANCELED) means no runner. The heartbeat age runs from
  the last heartbeat, else the start, else the creation.
- Data: the runner state's `updated_at` is the wall time of the last bar, never taken from
  before the runner's start (a restarted runner is not stale before its first bar).
- Integrations: the feed is the runner's failover chain (the job payload's `provider`, else
  replay, then its `backup`), read from `integration_status`; the
  broker follows the stage (paper, shadow: built in, no row; CANARY and LIVE: tradovate).
- Rate-limited calls: the failed calls in the `integration_telemetry` minute buckets of the
  serving feed provider and the broker while their last error is RATE_LIMITED, over the
  last 60 s as a sliding window (the previous bucket weighted by its overlap). Telemetry
  is aggregated per minute without error codes, so this is an estimate.
- Orders: broker rejections and orders sent within the rejection window (an order the risk
  engine refuses never exists, so every REJECTED order was the broker's answer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from botwarden.clock import as_utc
from botwarden.config import Settings
from botwarden.data.integrations.telemetry import bucket_of
from botwarden.domain.circuit_breaker import BreakerState
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.kill import KillState
from botwarden.domain.kill_detectors import (
    BotWatch,
    ProviderFacts,
    ProviderStatus,
    Thresholds,
    combine_feed,
)
from botwarden.domain.stages import Stage
from botwarden.domain.trading import OrderStatus, TradingState
from botwarden.services.bot_figures import BotFigures, bot_figures, market_clock, read_limits
from botwarden.store.breakers import read_breaker
from botwarden.store.models import (
    Bot,
    BotJob,
    EquitySnapshot,
    IntegrationStatus,
    IntegrationTelemetry,
    Order,
    Position,
    RunnerState,
)
from botwarden.workers.policy import breaker_policy

Executor = Session | Connection

ACTIVE_RUNNER = (JobStatus.CREATED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value,
                 JobStatus.DEGRADED.value, JobStatus.BLOCKED.value)
DEAD_RUNNER = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value)
WORKING = (OrderStatus.PENDING.value, OrderStatus.SENT.value, OrderStatus.WORKING.value,
           OrderStatus.PARTIALLY_FILLED.value, OrderStatus.UNRESOLVED.value)
# Where each stage's orders go (domain.md, stage table). Paper and shadow are simulated in
# process and have no integration row; a missing row says nothing, so it is not a fact.
STAGE_BROKER = {Stage.PAPER: "paper", Stage.SHADOW: "shadow", Stage.CANARY: "tradovate",
                Stage.LIVE: "tradovate"}
RATE_LIMITED = "RATE_LIMITED"
REPLAY = "replay"  # the runner's default provider
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Gathered:
    watch: BotWatch
    figures: BotFigures
    last_snapshot_at: datetime | None


def gather_watch(conn: Executor, bot_id: str, now: datetime, *, settings: Settings,
                 thresholds: Thresholds) -> Gathered | None:
    """The bot's facts now; None when the bot no longer exists."""
    bot = conn.execute(sa.select(Bot.stage, Bot.kill_state, Bot.trading_state, Bot.symbol,
                                 Bot.timeframe).where(Bot.id == bot_id)).first()
    if bot is None:
        return None
    figures = bot_figures(conn, bot_id, now)
    limits = read_limits(conn, bot_id)
    stage = Stage(bot.stage)
    runner = _latest_runner(conn, bot_id)
    state = conn.execute(sa.select(RunnerState.last_bar_time, RunnerState.updated_at,
                                   RunnerState.bar_wall_seconds)
                         .where(RunnerState.bot_id == bot_id)).first()
    clock = market_clock(bot.symbol, bot.timeframe,
                         state.last_bar_time if state is not None else None, now)
    feed_chain = _feed_chain(runner)
    feed = combine_feed([_provider(conn, name) or ProviderFacts(name, ProviderStatus.OK)
                         for name in feed_chain])
    broker_name = STAGE_BROKER.get(stage)
    broker = _provider(conn, broker_name) if broker_name else None
    rejections, sent = _order_counts(conn, bot_id, now, thresholds.rejection_window_seconds)
    watch = BotWatch(
        bot_id=bot_id, stage=stage, kill_state=KillState(bot.kill_state),
        trading_state=TradingState(bot.trading_state),
        position=_position(conn, bot_id, bot.symbol), working_orders=_working(conn, bot_id),
        runner_heartbeat_age_s=_heartbeat_age(runner, now),
        bar_age_s=_bar_age(runner, state, now),
        bar_wall_seconds=float(state.bar_wall_seconds) if state is not None else 60.0,
        rejections=rejections, sent=sent, data_feed=feed, broker=broker,
        rate_limited_calls=sum(_rate_limited(conn, p, now) for p in (feed, broker)
                               if p is not None),
        capital=figures.capital, daily_pnl=figures.daily_pnl, equity=figures.equity,
        equity_peak=figures.equity_peak,
        max_daily_loss_usd=limits.max_daily_loss_usd if limits is not None else None,
        breaker_open=read_breaker(conn, bot_id).state(now, breaker_policy(settings))
        is BreakerState.OPEN,
        session_open=clock.is_open, minutes_to_close=clock.minutes_to_close,
        flatten_before_close_minutes=limits.flatten_before_close_minutes if limits else 15,
        flatten_intraday=limits.flatten_intraday if limits else True)
    return Gathered(watch, figures, last_snapshot_at(conn, bot_id))


def last_snapshot_at(conn: Executor, bot_id: str) -> datetime | None:
    at = conn.execute(sa.select(sa.func.max(EquitySnapshot.at))
                      .where(EquitySnapshot.bot_id == bot_id)).scalar()
    return None if at is None else as_utc(at)


def _latest_runner(conn: Executor, bot_id: str) -> Any:
    return conn.execute(
        sa.select(BotJob.status, BotJob.payload, BotJob.last_heartbeat_at, BotJob.started_at,
                  BotJob.created_at, BotJob.completed_at)
        .where(BotJob.bot_id == bot_id, BotJob.job_type == JobType.RUNNER.value)
        .order_by(BotJob.created_at.desc(), BotJob.id.desc()).limit(1)).first()


def _heartbeat_age(runner: Any, now: datetime) -> float | None:
    if runner is None or runner.status not in ACTIVE_RUNNER + DEAD_RUNNER:
        return None
    beat = runner.last_heartbeat_at or runner.started_at or runner.created_at
    return max(0.0, (now - as_utc(beat)).total_seconds())


def _bar_age(runner: Any, state: Any, now: datetime) -> float | None:
    if state is None or state.last_bar_time is None:
        return None
    since = as_utc(state.updated_at)
    if runner is not None and runner.started_at is not None:
        since = max(since, as_utc(runner.started_at))
    return max(0.0, (now - since).total_seconds())


def _feed_chain(runner: Any) -> list[str]:
    """The providers the runner's feed fails over between, as trading/feeds.py builds it."""
    payload = (runner.payload or {}) if runner is not None else {}
    chain = [str(payload.get("provider") or REPLAY)]
    if payload.get("backup"):
        chain.append(str(payload["backup"]))
    return chain


def _provider(conn: Executor, name: str) -> ProviderFacts | None:
    """An integration's stored status; None without a row. A data provider without one has
    reported no failure (the registry adds rows as providers report); a broker without one
    is simulated."""
    row = conn.execute(sa.select(IntegrationStatus.status, IntegrationStatus.last_error_code,
                                 IntegrationStatus.configured)
                       .where(IntegrationStatus.name == name)).first()
    if row is None:
        return None
    return ProviderFacts(name, ProviderStatus(row.status), row.last_error_code,
                         bool(row.configured))


def _rate_limited(conn: Executor, provider: ProviderFacts, now: datetime) -> int:
    if provider.reason != RATE_LIMITED:
        return 0
    current = bucket_of(now)
    previous = current - timedelta(seconds=MINUTE)
    rows = conn.execute(
        sa.select(IntegrationTelemetry.bucket_start,
                  sa.func.sum(IntegrationTelemetry.calls - IntegrationTelemetry.ok_calls))
        .where(IntegrationTelemetry.provider == provider.name,
               IntegrationTelemetry.bucket_start >= previous,
               IntegrationTelemetry.bucket_start <= current)
        .group_by(IntegrationTelemetry.bucket_start)).all()
    failed = {as_utc(start): int(total or 0) for start, total in rows}
    overlap = 1.0 - (now - current).total_seconds() / MINUTE
    return int(failed.get(current, 0) + failed.get(previous, 0) * overlap)


def _order_counts(conn: Executor, bot_id: str, now: datetime,
                  window_seconds: float) -> tuple[int, int]:
    rejected = sa.func.sum(sa.case((Order.status == OrderStatus.REJECTED.value, 1), else_=0))
    row = conn.execute(sa.select(rejected, sa.func.count()).where(
        Order.bot_id == bot_id, Order.created_at >= now - timedelta(seconds=window_seconds),
        Order.status != OrderStatus.PENDING.value)).one()
    return int(row[0] or 0), int(row[1] or 0)


def _position(conn: Executor, bot_id: str, symbol: str) -> int:
    qty = conn.execute(sa.select(Position.qty).where(Position.bot_id == bot_id,
                                                      Position.symbol == symbol)).scalar()
    return int(qty or 0)


def _working(conn: Executor, bot_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(Order).where(
        Order.bot_id == bot_id, Order.status.in_(WORKING))).scalar() or 0)
