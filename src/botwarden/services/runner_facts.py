"""The facts of the safe-start checks (domain/safe_start.py), read from the store.

Everything is read through the caller's session: a guarded API request holds SQLite's write
lock, so a second connection that wrote (building an IntegrationRegistry does) would wait
on it. Integration health therefore comes from the `integration_status` rows the registry
of every process keeps, and "configured" from the settings: for a data provider as the
registry decides it, for Tradovate as its broker does (user name, password, API client id
and secret), so that a start this check lets through does not fail in the runner for want
of a key.

- Data: the replay provider serves the bar store, so its data is there when the store holds
  bars of the bot's symbol; the dataset it reads is the one the store resolves for the
  symbol (the only one, else the only real one; with several, real before synthetic and then
  by name, so the choice is stable). A keyed vendor serves any listed symbol: its health is
  the question, not a file.
- Loops: the supervisor and the timeout worker heal and time out runners. Each is alive when
  its `scheduler_tasks` row shows a run within the last 3 intervals that did not fail.
- Breaker: open (no start) until it half-opens; half-open allows one trial start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.clock import as_utc
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations.registry import default_specs
from botwarden.data.providers.base import ProviderKind
from botwarden.data.providers.errors import ErrorCode, Health
from botwarden.domain.circuit_breaker import BreakerState
from botwarden.domain.kill import KillState
from botwarden.domain.safe_start import REAL_BROKER, StartFacts
from botwarden.domain.stages import Stage
from botwarden.store.breakers import read_breaker
from botwarden.store.models import Account, Bot, IntegrationStatus, SchedulerTask
from botwarden.trading.brokers.tradovate.integration import is_configured as tradovate_configured
from botwarden.workers.policy import breaker_policy

RUNNER_LOOPS: tuple[str, ...] = ("supervisor", "timeout_worker")
ALIVE_WITHIN_INTERVALS = 3
REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class GatheredFacts:
    facts: StartFacts
    dataset: str | None  # the dataset the runner's provider reads, when known


def gather_facts(session: Session, bot: Bot, *, settings: Settings, store: BarStore,
                 now: datetime) -> GatheredFacts:
    provider = settings.runner_provider
    specs = {spec.name: spec for spec in default_specs(settings)}
    provider_spec = specs.get(provider)
    health = _health(session, (provider, REAL_BROKER))
    if provider == REPLAY:
        dataset = replay_dataset(store, bot.symbol)
        data_available = dataset is not None
    else:
        dataset, data_available = _vendor_dataset(provider), True
    provider_status, provider_error = health.get(provider, (None, None))
    # A replay found empty when last verified may have been given bars since: the store,
    # just read, is the fresher witness of that.
    provider_down = provider_status is Health.DOWN and not (
        provider_error == ErrorCode.NO_DATA.value and data_available)
    breaker = read_breaker(session, bot.id)
    policy = breaker_policy(settings)
    open_until = (as_utc(breaker.opened_at) + policy.half_open_after
                  if breaker.state(now, policy) is BreakerState.OPEN and breaker.opened_at
                  else None)
    switch = session.scalar(sa.select(Account.kill_switch_engaged)
                            .where(Account.id == bot.account_id))
    facts = StartFacts(
        bot_id=bot.id,
        symbol=bot.symbol,
        kill_state=KillState(bot.kill_state),
        account_kill_switch_engaged=bool(switch),
        stage=Stage(bot.stage),
        is_trading_enabled=bot.is_trading_enabled,
        provider=provider,
        provider_configured=bool(provider_spec and provider_spec.kind is ProviderKind.DATA
                                 and provider_spec.configured),
        provider_down=provider_down,
        broker_configured=tradovate_configured(settings),
        broker_down=health.get(REAL_BROKER, (None, None))[0] is Health.DOWN,
        data_available=data_available,
        dead_loops=dead_loops(session, now),
        breaker_open_until=open_until,
    )
    return GatheredFacts(facts, dataset)


def replay_dataset(store: BarStore, symbol: str) -> str | None:
    """The dataset a replay of `symbol` reads, or None when the store has no such bars.
    Where the store resolves one by itself (the only dataset, else the only real one) this
    is the same; among several real ones it picks by name instead of refusing."""
    held = store.holders(symbol)
    return min(held, key=lambda d: (d.synthetic, d.name)).name if held else None


def _vendor_dataset(provider: str) -> str | None:
    if provider == "databento":
        from botwarden.data.providers.databento import DATASET

        return DATASET
    return None


def _health(session: Session, names: tuple[str, ...]) -> dict[str, tuple[Health, str | None]]:
    rows = session.execute(
        sa.select(IntegrationStatus.name, IntegrationStatus.status,
                  IntegrationStatus.last_error_code)
        .where(IntegrationStatus.name.in_(names))).all()
    return {row.name: (Health(row.status), row.last_error_code) for row in rows}


def dead_loops(session: Session, now: datetime) -> tuple[str, ...]:
    """The runner loops that have not run, successfully, within their last 3 intervals."""
    rows = {row.name: row for row in session.execute(
        sa.select(SchedulerTask.name, SchedulerTask.last_run_at, SchedulerTask.last_ok,
                  SchedulerTask.interval_seconds)
        .where(SchedulerTask.name.in_(RUNNER_LOOPS))).all()}
    dead = []
    for name in RUNNER_LOOPS:
        row = rows.get(name)
        window = (timedelta(seconds=row.interval_seconds * ALIVE_WITHIN_INTERVALS)
                  if row is not None else None)
        if (row is None or window is None or row.last_run_at is None or row.last_ok is False
                or now - as_utc(row.last_run_at) > window):
            dead.append(name)
    return tuple(dead)
