"""The kill engine's detectors and the post-trade monitor's bands (domain.md, "Kill engine",
"Risk engine"): from the facts of one bot, the kill to make, the trading state the bands
call for, and the actions short of a kill. Pure: the facts come in as a `BotWatch`.

Triggers and their default thresholds (`Thresholds`), in the order one is chosen when
several fire (money first, then the plumbing that keeps the bot honest):

| trigger | fires when (default) | mode |
|---|---|---|
| DAILY_LOSS_BREACH | daily loss >= the bot's max_daily_loss_usd, or >= 5% of capital | HARD |
| DD_BREACH | drawdown from the equity peak >= 20% | HARD |
| ENTITLEMENT_REVOKED | the data feed (running bot) or the broker is DOWN, key refused | HARD |
| DATA_PROVIDER_MISSING | a key missing (feed of a running bot, or broker), broker DOWN | HARD |
| DATA_PROVIDER_MISSING | the feed DOWN otherwise and no bar for 2 bar intervals | HARD |
| STALE_HEARTBEAT_CRITICAL | runner heartbeat older than 90 s while the bot has exposure | HARD |
| EXECUTION_REJECTION_SPIKE | >= 5 broker rejections and >= 50% of orders sent in 5 min | HARD |
| CIRCUIT_OPEN | circuit breaker open on a CANARY or LIVE bot | HARD |
| RATE_LIMIT_STORM | >= 20 rate-limited calls within a minute | SOFT |

A bot is killed at most once: HARD_KILLED and QUARANTINED bots get no kill; a SOFT_KILLED
bot only an escalation to HARD. Raising any threshold never adds a kill (monotone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from botwarden.domain.kill import KillMode, KillState, TriggerCode, trading_state_for
from botwarden.domain.risk import evaluate_bands
from botwarden.domain.stages import REAL_MONEY_STAGES, Stage
from botwarden.domain.trading import TradingState


class ProviderStatus(StrEnum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


class MonitorAction(StrEnum):
    """What the monitor asks for short of a kill; the runner acts on it."""

    FLATTEN_BEFORE_CLOSE = "FLATTEN_BEFORE_CLOSE"  # intraday position, session close near
    STALE_DATA = "STALE_DATA"  # no bar for longer than the allowed multiple of the interval


REVOKED = "ENTITLEMENT_REVOKED"
KEY_MISSING = "KEY_MISSING"


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """An integration's health as the store has it."""

    name: str
    status: ProviderStatus
    reason: str | None = None  # last error code: KEY_MISSING, ENTITLEMENT_REVOKED, RATE_LIMITED
    configured: bool = True

    @property
    def is_revoked(self) -> bool:
        return self.status is ProviderStatus.DOWN and self.reason == REVOKED

    @property
    def is_key_missing(self) -> bool:
        return not self.configured or (self.status is ProviderStatus.DOWN
                                       and self.reason == KEY_MISSING)

    @property
    def is_down(self) -> bool:
        return self.status is ProviderStatus.DOWN


def combine_feed(chain: Sequence[ProviderFacts]) -> ProviderFacts | None:
    """One data feed served by a failover chain, primary first: healthy while any provider
    is OK (failover heals); otherwise a DEGRADED provider still serves; with every provider
    DOWN, the most specific reason (a refused key over a missing one)."""
    if not chain:
        return None
    for status in (ProviderStatus.OK, ProviderStatus.DEGRADED):
        serving = [p for p in chain if p.status is status and p.configured]
        if serving:
            return serving[0]
    revoked = [p for p in chain if p.is_revoked]
    return revoked[0] if revoked else chain[0]


@dataclass(frozen=True, slots=True)
class Thresholds:
    stale_heartbeat_seconds: float = 90.0
    rejection_window_seconds: float = 300.0  # the window the counts below are taken over
    rejection_min_count: int = 5
    rejection_min_share: float = 0.5  # of the orders sent in the window
    rate_limit_window_seconds: float = 60.0
    rate_limit_storm_calls: int = 20
    stale_data_bar_multiple: float = 2.0  # data is stale after this many bar intervals


@dataclass(frozen=True, slots=True)
class BotWatch:
    """What the store says about one bot, at one moment."""

    bot_id: str
    stage: Stage
    kill_state: KillState
    trading_state: TradingState
    position: int = 0  # signed contracts
    working_orders: int = 0  # orders that may still fill
    runner_heartbeat_age_s: float | None = None  # None: no runner
    bar_age_s: float | None = None  # wall seconds since the runner's last bar; None: none yet
    bar_wall_seconds: float = 60.0  # wall seconds expected between two bars
    rejections: int = 0  # broker rejections within the rejection window
    sent: int = 0  # orders sent to the broker within the window (rejected ones included)
    data_feed: ProviderFacts | None = None
    broker: ProviderFacts | None = None
    rate_limited_calls: int = 0  # within the rate-limit window, feed and broker together
    capital: Decimal = Decimal(50000)
    daily_pnl: Decimal = Decimal(0)
    equity: Decimal = Decimal(50000)
    equity_peak: Decimal = Decimal(50000)
    max_daily_loss_usd: Decimal | None = None  # None: no valid risk config
    breaker_open: bool = False
    session_open: bool = True
    minutes_to_close: float | None = None
    flatten_before_close_minutes: int = 15
    flatten_intraday: bool = True

    @property
    def has_exposure(self) -> bool:
        return self.position != 0 or self.working_orders > 0

    @property
    def has_runner(self) -> bool:
        return self.runner_heartbeat_age_s is not None

    def to_json(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}


def _json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ProviderFacts):
        return {"name": value.name, "status": value.status.value, "reason": value.reason,
                "configured": value.configured}
    return value


@dataclass(frozen=True, slots=True)
class KillDecision:
    trigger: TriggerCode
    mode: KillMode
    reason: str


@dataclass(frozen=True, slots=True)
class Detection:
    kill: KillDecision | None  # the kill to make now; None: none (or the bot is killed)
    trading_state: TradingState  # what the bot's trading state should be after this
    actions: tuple[MonitorAction, ...]
    fired: tuple[KillDecision, ...]  # every trigger that fired, the chosen one first
    warnings: tuple[str, ...]


def detect(watch: BotWatch, thresholds: Thresholds = Thresholds()) -> Detection:
    bands = evaluate_bands(watch.daily_pnl, watch.capital, watch.equity, watch.equity_peak)
    fired = _fired(watch, thresholds, bands.kill_trigger)
    kill = _kill_to_make(watch.kill_state, fired)
    state = _worst(bands.trading_state, trading_state_for(watch.kill_state))
    if kill is not None:
        state = _worst(state, TradingState.HALTED if kill.mode is KillMode.HARD
                       else TradingState.REDUCING)
    actions, warnings = _actions(watch, thresholds, kill)
    ordered = tuple(([kill] if kill else []) + [f for f in fired if f != kill])
    return Detection(kill, state, actions, ordered, bands.warnings + warnings)


def _fired(watch: BotWatch, t: Thresholds, band_trigger: str | None) -> list[KillDecision]:
    hard, fired = KillMode.HARD, []
    loss = -watch.daily_pnl
    if watch.max_daily_loss_usd is not None and loss >= watch.max_daily_loss_usd:
        fired.append(KillDecision(TriggerCode.DAILY_LOSS_BREACH, hard,
                                  f"daily loss {loss} >= limit {watch.max_daily_loss_usd}"))
    elif band_trigger == TriggerCode.DAILY_LOSS_BREACH:
        fired.append(KillDecision(TriggerCode.DAILY_LOSS_BREACH, hard,
                                  f"daily loss {loss} reached the 5% band of {watch.capital}"))
    if band_trigger == TriggerCode.DD_BREACH:
        fired.append(KillDecision(TriggerCode.DD_BREACH, hard,
                                  f"equity {watch.equity} is 20% or more below its peak "
                                  f"{watch.equity_peak}"))
    fired += _integration_triggers(watch, t)
    age = watch.runner_heartbeat_age_s
    if age is not None and age > t.stale_heartbeat_seconds and watch.has_exposure:
        fired.append(KillDecision(TriggerCode.STALE_HEARTBEAT_CRITICAL, hard,
                                  f"runner heartbeat {age:.0f} s old with exposure "
                                  f"(position {watch.position}, {watch.working_orders} working)"))
    sent = max(watch.sent, watch.rejections)
    if (watch.rejections >= t.rejection_min_count
            and watch.rejections >= t.rejection_min_share * sent):
        fired.append(KillDecision(TriggerCode.EXECUTION_REJECTION_SPIKE, hard,
                                  f"{watch.rejections} of {sent} orders rejected within "
                                  f"{t.rejection_window_seconds:.0f} s"))
    if watch.breaker_open and watch.stage in REAL_MONEY_STAGES:
        fired.append(KillDecision(TriggerCode.CIRCUIT_OPEN, hard,
                                  f"circuit breaker open on a {watch.stage.value} bot"))
    if watch.rate_limited_calls >= t.rate_limit_storm_calls:
        fired.append(KillDecision(TriggerCode.RATE_LIMIT_STORM, KillMode.SOFT,
                                  f"{watch.rate_limited_calls} rate-limited calls within "
                                  f"{t.rate_limit_window_seconds:.0f} s"))
    return fired


def _integration_triggers(watch: BotWatch, t: Thresholds) -> list[KillDecision]:
    """The broker always; the data feed while a runner uses it. A feed DOWN for a reason
    other than its key (a verify that found nothing, a chain with nothing left) is believed
    only once bars stop: a runner still fed proves the status row stale."""
    hard, fired = KillMode.HARD, []
    feed = watch.data_feed if watch.has_runner else None
    for role, facts in (("data feed", feed), ("broker", watch.broker)):
        if facts is not None and facts.is_revoked:
            fired.append(KillDecision(TriggerCode.ENTITLEMENT_REVOKED, hard,
                                      f"{role} {facts.name}: entitlement revoked"))
    if feed is not None and not feed.is_revoked and (
            feed.is_key_missing or (feed.is_down and _data_stale(watch, t))):
        fired.append(KillDecision(TriggerCode.DATA_PROVIDER_MISSING, hard,
                                  f"data feed {feed.name} is {feed.status.value} "
                                  f"({feed.reason or 'not configured'})"))
    broker = watch.broker
    if broker is not None and not broker.is_revoked and (broker.is_key_missing
                                                         or broker.is_down):
        fired.append(KillDecision(TriggerCode.DATA_PROVIDER_MISSING, hard,
                                  f"broker {broker.name} is {broker.status.value} "
                                  f"({broker.reason or 'not configured'})"))
    return fired


def _data_stale(watch: BotWatch, t: Thresholds) -> bool:
    """No bar for longer than the allowed multiple of the expected interval, in session."""
    return (watch.has_runner and watch.session_open and watch.bar_age_s is not None
            and watch.bar_age_s > t.stale_data_bar_multiple * watch.bar_wall_seconds)


def _kill_to_make(state: KillState, fired: list[KillDecision]) -> KillDecision | None:
    if state is KillState.NONE:
        return fired[0] if fired else None
    if state is KillState.SOFT_KILLED:  # only an escalation to HARD
        return next((f for f in fired if f.mode is KillMode.HARD), None)
    return None


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def _worst(a: TradingState | str, b: TradingState | str) -> TradingState:
    a, b = TradingState(a), TradingState(b)
    return a if _RANK[a] >= _RANK[b] else b


def _actions(watch: BotWatch, t: Thresholds, kill: KillDecision | None
             ) -> tuple[tuple[MonitorAction, ...], tuple[str, ...]]:
    actions: list[MonitorAction] = []
    warnings: list[str] = []
    if _data_stale(watch, t):
        assert watch.bar_age_s is not None
        actions.append(MonitorAction.STALE_DATA)
        warnings.append(f"stale data: last bar {watch.bar_age_s:.0f} s ago, expected every "
                        f"{watch.bar_wall_seconds:g} s")
    halting = kill is not None and kill.mode is KillMode.HARD  # the halt flattens anyway
    if (watch.position != 0 and watch.flatten_intraday and not halting and watch.session_open
            and watch.minutes_to_close is not None
            and watch.minutes_to_close <= watch.flatten_before_close_minutes):
        actions.append(MonitorAction.FLATTEN_BEFORE_CLOSE)
        warnings.append(f"{watch.minutes_to_close:.1f} min to the session close: flatten "
                        f"the intraday position of {watch.position}")
    return tuple(actions), tuple(warnings)
