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
from botwarden.domain.circuit_breaker import Breaker, BreakerState
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
from botwarden.services.bot_figures import BotFigures, figures_from, head_query, market_clock
from botwarden.store.models import (
    Bot,
    BotJob,
    CircuitBreaker,
    EquitySnapshot,
    IntegrationStatus,
    IntegrationTelemetry,
    Order,
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


_bot: sa.BindParameter[str] = sa.bindparam("bot_id")
# Statements built once (see bot_figures): seven reads a bot, one more in a rate-limit storm.
_HEAD = head_query(Bot.stage, Bot.kill_state, Bot.trading_state,
                   RunnerState.updated_at.label("bar_written_at"), RunnerState.bar_wall_seconds,
                   CircuitBreaker.opened_at.label("breaker_opened_at")
                   ).outerjoin(CircuitBreaker, CircuitBreaker.bot_id == Bot.id)
_RUNNER = (sa.select(BotJob.status, BotJob.payload, BotJob.last_heartbeat_at,
                     BotJob.started_at, BotJob.created_at)
           .where(BotJob.bot_id == _bot, BotJob.job_type == JobType.RUNNER.value)
           .order_by(BotJob.created_at.desc(), BotJob.id.desc()).limit(1))
_since: sa.BindParameter[datetime] = sa.bindparam("since")
_sent = sa.and_(Order.created_at >= _since, Order.status != OrderStatus.PENDING.value)
_ORDERS = sa.select(
    sa.func.sum(sa.case((Order.status.in_(WORKING), 1), else_=0)).label("working"),
    sa.func.sum(sa.case((_sent, 1), else_=0)).label("sent"),
    sa.func.sum(sa.case((sa.and_(_sent, Order.status == OrderStatus.REJECTED.value), 1),
                        else_=0)).label("rejected"),
).where(Order.bot_id == _bot)
_INTEGRATIONS = sa.select(IntegrationStatus.name, IntegrationStatus.status,
                          IntegrationStatus.last_error_code, IntegrationStatus.configured
                          ).where(IntegrationStatus.name.in_(sa.bindparam("names",
                                                                         expanding=True)))
_FAILED_CALLS = (sa.select(IntegrationTelemetry.bucket_start,
                           sa.func.sum(IntegrationTelemetry.calls
                                       - IntegrationTelemetry.ok_calls))
                 .where(IntegrationTelemetry.provider == sa.bindparam("provider"),
                        IntegrationTelemetry.bucket_start >= sa.bindparam("previous"),
                        IntegrationTelemetry.bucket_start <= sa.bindparam("current"))
                 .group_by(IntegrationTelemetry.bucket_start))


def gather_watch(conn: Executor, bot_id: str, now: datetime, *, settings: Settings,
                 thresholds: Thresholds) -> Gathered | None:
    """The bot's facts now; None when the bot no longer exists."""
    head = conn.execute(_HEAD, {"bot_id": bot_id}).first()
    if head is None:
        return None
    read = figures_from(conn, bot_id, head, now)
    figures, limits = read.figures, read.limits
    stage = Stage(head.stage)
    runner = conn.execute(_RUNNER, {"bot_id": bot_id}).first()
    clock = market_clock(head.symbol, head.timeframe, head.last_bar_time, now)
    feed_chain = _feed_chain(runner)
    broker_name = STAGE_BROKER.get(stage)
    stored = _providers(conn, [*feed_chain, *([broker_name] if broker_name else [])])
    feed = combine_feed([stored.get(name) or ProviderFacts(name, ProviderStatus.OK)
                         for name in feed_chain])
    broker = stored.get(broker_name) if broker_name else None
    since = now - timedelta(seconds=thresholds.rejection_window_seconds)
    orders = conn.execute(_ORDERS, {"bot_id": bot_id, "since": since}).one()
    # Only the opening time decides OPEN (the failures tell HALF_OPEN from CLOSED).
    breaker = Breaker(opened_at=head.breaker_opened_at)
    watch = BotWatch(
        bot_id=bot_id, stage=stage, kill_state=KillState(head.kill_state),
        trading_state=TradingState(head.trading_state), position=read.position,
        working_orders=int(orders.working or 0),
        runner_heartbeat_age_s=_heartbeat_age(runner, now),
        bar_age_s=_bar_age(runner, head, now),
        bar_wall_seconds=float(head.bar_wall_seconds or 60.0),
        rejections=int(orders.rejected or 0), sent=int(orders.sent or 0),
        data_feed=feed, broker=broker,
        rate_limited_calls=sum(_rate_limited(conn, p, now) for p in (feed, broker)
                               if p is not None),
        capital=figures.capital, daily_pnl=figures.daily_pnl, equity=figures.equity,
        equity_peak=figures.equity_peak,
        max_daily_loss_usd=limits.max_daily_loss_usd if limits is not None else None,
        breaker_open=breaker.state(now, breaker_policy(settings)) is BreakerState.OPEN,
        session_open=clock.is_open, minutes_to_close=clock.minutes_to_close,
        flatten_before_close_minutes=limits.flatten_before_close_minutes if limits else 15,
        flatten_intraday=limits.flatten_intraday if limits else True)
    return Gathered(watch, figures, read.last_snapshot_at)


def last_snapshot_at(conn: Executor, bot_id: str) -> datetime | None:
    at = conn.execute(sa.select(sa.func.max(EquitySnapshot.at))
                      .where(EquitySnapshot.bot_id == bot_id)).scalar()
    return None if at is None else as_utc(at)


def _heartbeat_age(runner: Any, now: datetime) -> float | None:
    if runner is None or runner.status not in ACTIVE_RUNNER + DEAD_RUNNER:
        return None
    beat = runner.last_heartbeat_at or runner.started_at or runner.created_at
    return max(0.0, (now - as_utc(beat)).total_seconds())


def _bar_age(runner: Any, head: Any, now: datetime) -> float | None:
    if head.last_bar_time is None or head.bar_written_at is None:
        return None
    since = as_utc(head.bar_written_at)
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


def _providers(conn: Executor, names: list[str]) -> dict[str, ProviderFacts]:
    """Stored integration statuses by name. A data provider without a row has reported no
    failure (the registry adds rows as providers report); a broker without one is simulated."""
    rows = conn.execute(_INTEGRATIONS, {"names": names}).all()
    return {row.name: ProviderFacts(row.name, ProviderStatus(row.status), row.last_error_code,
                                    bool(row.configured)) for row in rows}


def _rate_limited(conn: Executor, provider: ProviderFacts, now: datetime) -> int:
    if provider.reason != RATE_LIMITED:
        return 0
    current = bucket_of(now)
    previous = current - timedelta(seconds=MINUTE)
    rows = conn.execute(_FAILED_CALLS, {"provider": provider.name, "previous": previous,
                                        "current": current}).all()
    failed = {as_utc(start): int(total or 0) for start, total in rows}
    overlap = 1.0 - (now - current).total_seconds() / MINUTE
    return int(failed.get(current, 0) + failed.get(previous, 0) * overlap)
