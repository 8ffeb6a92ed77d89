"""The RUNNER job: one bot trading, hosted by a worker (a runner is a thread of a worker
process, not a process of its own).

Start: read the bot, its limits (fail closed), claim the bot's runner state (a fence: a
replaced runner can write nothing more), reconcile with the broker, restore the strategy
state or warm it up on the history before the start, then consume the live bar stream
(Replay by default, through the failover feed). Every bar goes through `RunnerCore`; its
state goes to the process's state writer (trading/state_writer.py: one transaction for all
the process's runners every 0.25 s, the previous bar's state durable before the next bar is
decided), which also reads the kill states the runner acts on. A watchdog beats the heart,
follows the feed's health (RUNNING or DEGRADED), and watches the kill state: on a HARD kill
the runner cancels, flattens, waits until the broker shows it flat, and ends.

Payload (services.runners): bot_id, mode, broker, provider, dataset, symbol, timeframe,
speed, start; optional `end` (fast-forward on history), `faults` (the autonomy demo's
provider faults) and `backup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
import structlog

from botwarden.clock import utcnow
from botwarden.data.bar_store import BarStore
from botwarden.data.calendar import get_calendar, to_datetime
from botwarden.data.econ_calendar_store import query_events
from botwarden.data.providers.base import Bar
from botwarden.domain.bars import TIMEFRAME_SECONDS
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.kill import KillState
from botwarden.domain.risk_limits import RiskLimits, parse_risk_limits
from botwarden.research.market import label
from botwarden.research.strategies import build_strategy
from botwarden.services.bot_figures import bot_figures
from botwarden.services.risk_monitor import monitor_bot
from botwarden.store.models import Account, Bot, RiskConfig
from botwarden.trading import crashpoints
from botwarden.trading import order_store as store
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.brokers.base import Bracket, Broker
from botwarden.trading.brokers.simulated import SimulatedBrokerCore
from botwarden.trading.feeds import build_feed
from botwarden.trading.fill_poll import FillPoll
from botwarden.trading.halt import halt_orders
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.reconcile_service import reconcile
from botwarden.trading.runner_core import Money, RunnerCore
from botwarden.trading.runner_health import RunnerHealth
from botwarden.trading.state_writer import SavedState, effective_kill, seat_for
from botwarden.workers.context import JobContext
from botwarden.workers.registry import register_handler

log = structlog.get_logger(__name__)
bots_t = cast(sa.Table, Bot.__table__)
WATCH_SECONDS = 1.0
HALT_WAIT_SECONDS = 30.0
DEFAULT_LOOKBACK = timedelta(days=3)
WARMUP_FLOOR = 500
# Runners of one process that start at once (a worker claims every free slot in one go):
# each start costs tens of milliseconds of the process's one interpreter, and 250 at a time
# left some silent past the RUNNER heartbeat timeout (30 s). The others wait their turn,
# beating.
STARTING_AT_ONCE = 4
_starting = threading.BoundedSemaphore(STARTING_AT_ONCE)


@contextlib.contextmanager
def starting(ctx: JobContext) -> Iterator[None]:
    while not _starting.acquire(timeout=WATCH_SECONDS):
        ctx.heartbeat()  # LeaseLost when the job was taken away meanwhile
    try:
        ctx.heartbeat()
        yield
    finally:
        _starting.release()


def bracket_for(limits: RiskLimits | None) -> Bracket | None:
    if limits is None or not (limits.stop_loss_ticks or limits.profit_target_ticks):
        return None
    return Bracket(limits.stop_loss_ticks, limits.profit_target_ticks)


def load_money(engine: Any, bot_id: str, account_id: str, now: datetime) -> Money:
    """The bot's figures as the risk monitor computes them (services.bot_figures), for the
    runner to keep current from its own fills and marks."""
    with engine.connect() as conn:
        figures = bot_figures(conn, bot_id, now)
        starting = conn.execute(sa.select(Account.__table__.c.starting_capital).where(
            Account.__table__.c.id == account_id)).scalar_one()
    return Money(capital=figures.capital,
                 realized_before_today=figures.realized_pnl - figures.daily_realized,
                 daily_realized=figures.daily_realized, equity_peak=figures.equity_peak,
                 account_equity=Decimal(starting), account_peak=Decimal(starting))


class Runner:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.payload = ctx.payload
        self.engine = ctx.engine
        self.bot_id = str(self.payload["bot_id"])
        self.mode = str(self.payload["mode"])
        self.symbol = str(self.payload["symbol"]).upper()
        self.timeframe = str(self.payload.get("timeframe") or "1m")
        self.bar_seconds = TIMEFRAME_SECONDS.get(self.timeframe, 60)
        speed = self.payload.get("speed")
        self.speed = float(speed) if speed else None
        self.halted = False
        self.health = RunnerHealth(ctx)  # RUNNING or DEGRADED: the feed's, the broker's
        self.kill_after_bar = KillState.NONE.value
        self.monitored: dict[str, Any] | None = None
        self.bars = 0
        self.bar_wall_seconds = self.bar_seconds / self.speed if self.speed \
            else float(self.bar_seconds)

    # ---- set-up ----

    def prepare(self) -> RunnerCore:
        with self.engine.connect() as conn:
            bot = conn.execute(sa.select(bots_t).where(bots_t.c.id == self.bot_id)).one()
            config = conn.execute(sa.select(RiskConfig.__table__.c.config).where(
                RiskConfig.__table__.c.bot_id == self.bot_id)).scalar_one_or_none()
        if bot.kill_state != KillState.NONE.value:
            raise DomainError("BOT_KILLED", f"bot is {bot.kill_state}", "Resurrect it first.")
        limits = parse_risk_limits(config)  # NO_LIMIT_CONFIGURED: the runner never starts
        self.broker: Broker = make_broker(self.engine, self.ctx.settings, self.bot_id,
                                          str(self.payload["broker"]))
        self.manager = OrderManager(self.engine, bot_id=self.bot_id, job_id=self.ctx.job_id,
                                    broker=self.broker, mode=self.mode, source_type=self.mode,
                                    limits=limits, clock=self.ctx.clock,
                                    bracket=bracket_for(limits))
        resume = store.claim_fence(self.engine, self.bot_id, self.ctx.job_id, self.ctx.clock())
        self.ctx.heartbeat()
        # A simulated broker's clock is the bar stream: an intent it never received waits
        # for the replayed bar it was decided on (RunnerCore.on_bar resends it after the
        # broker has seen that bar), or it could fill at that bar's own open.
        self.reconciled = reconcile(self.engine, self.manager, self.symbol,
                                    actor=f"runner:{self.ctx.job_id}",
                                    resend=not isinstance(self.broker, SimulatedBrokerCore))
        if self.reconciled.killed:
            raise DomainError("RECONCILE_MISMATCH", "reconcile at start found a mismatch",
                              "The bot is QUARANTINED; review it and resurrect with 2FA.")
        self.ctx.heartbeat()
        instrument = get_instrument(self.symbol)
        strategy = build_strategy(bot.strategy_kind, bot.strategy_params)
        events = query_events(self.engine, start=utcnow() - timedelta(days=400))
        core = RunnerCore(self.bot_id, strategy, instrument, get_calendar(), self.manager,
                          limits, load_money(self.engine, self.bot_id, bot.account_id,
                                             self.ctx.clock()),
                          size=1, bar_seconds=self.bar_seconds, events=events,
                          fresh_fills=isinstance(self.broker, SimulatedBrokerCore))
        self.start = self._start_time(resume.get("last_bar_time"))
        # Fast-forward paper trading on history ends at `end`; a live runner has none.
        end = self.payload.get("end")
        self.end = datetime.fromisoformat(str(end)) if end else None
        if not core.restore(resume.get("state") or {}):
            self._warm_up(core, strategy.warmup)
        elif self._exit_filled_after(resume.get("last_bar_time")):
            # A bracket exit filled on the bar about to be replayed, after the saved state:
            # the latch its fill sets (RunnerCore._note_fills) is not in that state.
            core.latched = True
        return core

    def _exit_filled_after(self, last_bar_time: datetime | None) -> bool:
        if last_bar_time is None:
            return False
        fills, orders = store.fills, store.orders
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(fills.c.id).join(orders, orders.c.id == fills.c.order_id)
                .where(fills.c.bot_id == self.bot_id, fills.c.filled_at > last_bar_time,
                       orders.c.parent_client_order_id.is_not(None)).limit(1)).first()
        return found is not None

    def _bar_store(self) -> BarStore:
        return BarStore.from_settings(self.ctx.settings)

    def _start_time(self, last_bar_time: datetime | None) -> datetime:
        if last_bar_time is not None:
            return last_bar_time + timedelta(seconds=self.bar_seconds)
        if self.payload.get("start"):
            return datetime.fromisoformat(str(self.payload["start"]))
        series = [s for s in self._bar_store().series(self.symbol)
                  if self.payload.get("dataset") in (None, s.dataset.name)]
        if not series:
            raise DomainError("DATA_UNAVAILABLE", f"no stored bars for {self.symbol}",
                              "Import bars or enable the demo data.", status=424)
        return to_datetime(max(s.last_ts for s in series)) - DEFAULT_LOOKBACK

    def _warm_up(self, core: RunnerCore, warmup: int) -> None:
        span = timedelta(seconds=self.bar_seconds * max(warmup * 4, WARMUP_FLOOR))
        try:
            bars = self._bar_store().load(self.symbol, self.start - span * 3, self.start,
                                          self.timeframe, dataset=self.payload.get("dataset"))
        except DomainError:
            return
        if len(bars) == 0:
            return
        market = label(bars, core.instrument.tick_size, "CMES")
        core.warm_up(market.bars, market.sessions)

    # ---- running ----

    def fills_for(self) -> Callable[[Bar], Any]:
        broker = self.broker
        if isinstance(broker, SimulatedBrokerCore):
            return lambda bar: broker.on_bar(self.symbol, bar)
        return FillPoll(broker, self.bot_id, self.ctx.clock)

    def process(self, core: RunnerCore, bar: Bar, fills_for: Callable[[Bar], Any]) -> None:
        # The previous bar's state is durable before this bar's decisions: a crash replays
        # at most this bar (its orders are named as before and not sent twice).
        self.seat.ensure_saved()
        self.seat.check()
        holding = getattr(self.broker, "holding_changes", None)
        # A simulated broker's book changes (the match, submits, cancels) are stored in the
        # order manager's transactions of this bar, not in one of their own each.
        with holding() if holding is not None else contextlib.nullcontext():
            core.on_bar(bar, fills_for)
        self.health.follow_broker(core)
        breached = core.breaches_limits(bar)
        crashpoints.reached(crashpoints.BAR_PROCESSED)
        self.bars += 1
        saved = SavedState(self.bot_id, self.ctx.job_id, core.to_json(), bar.at,
                           Decimal(str(bar.close)), self.bar_wall_seconds, self.ctx.clock())
        if breached or self.speed is None:
            # A breach: the monitor below reads the mark of this bar. Unpaced (history
            # fast-forward): bars come back to back, the state is saved with each.
            self.kill_after_bar = self.seat.save_now(saved)
        else:
            self.seat.hand(saved)  # written with the other runners' states, within 0.25 s
            self.kill_after_bar = self.kill_state()
        if breached:
            # The post-trade monitor on this bar: the runner's own figures say a band or the
            # daily loss limit is crossed; the monitor (reading the mark just saved) decides
            # and acts (kill, REDUCING). It runs on the wall clock: the market clock is the
            # runner state's last bar.
            self.monitored = monitor_bot(self.engine, self.bot_id, self.ctx.clock(),
                                         settings=self.ctx.settings,
                                         actor=f"risk_monitor:{self.ctx.job_id}")
            self.kill_after_bar = self.kill_state(fresh=True)
        self.ctx.heartbeat()

    def kill_state(self, *, fresh: bool = False) -> str:
        """The bot's kill state: as the state writer last read it (every 0.25 s, for every
        runner of this process), or read here when that is stale or `fresh` is asked."""
        known = None if fresh else self.seat.kill_state()
        if known is not None:
            return known
        with self.engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT b.kill_state, a.kill_switch_engaged FROM bots b JOIN accounts a "
                "ON a.id = b.account_id WHERE b.id = :id"), {"id": self.bot_id}).one()
        return effective_kill(row[0], row[1])

    def run(self) -> dict[str, Any]:
        with starting(self.ctx):
            core = self.prepare()
            feed = build_feed(self.ctx.settings, self.engine, self.payload, self.speed)
        self.seat = seat_for(self.engine, self.bot_id, self.ctx.job_id)  # after the claim
        try:
            result = asyncio.run(self._loop(core, feed))
        except BaseException:
            self.seat.leave(save=False)  # fenced out, lease lost or failed: resume earlier
            raise
        self.seat.leave(save=True)  # stopped, halted or at the replay's end: resume here
        return {"bot_id": self.bot_id, "mode": self.mode, "bars": self.bars,
                "orders_sent": core.orders_sent, "halted": self.halted,
                "reconcile_at_start": self.reconciled.as_json(), **result}

    async def _loop(self, core: RunnerCore, feed: Any) -> dict[str, Any]:
        queue: asyncio.Queue[Bar | BaseException | object | None] = asyncio.Queue(maxsize=1000)

        async def consume() -> None:
            try:
                async for bar in feed.stream_bars(self.symbol, self.timeframe, start=self.start):
                    if self.end is not None and bar.at >= self.end:
                        break
                    await queue.put(bar)
                await queue.put(None)
            except Exception as exc:  # reported to the loop, which degrades and retries
                await queue.put(exc)

        task = asyncio.create_task(consume())
        fills_for = self.fills_for()
        watched = 0.0
        halt_started: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), WATCH_SECONDS)
                except TimeoutError:
                    item = None if task.done() and queue.empty() else _TICK
                if item is None:
                    return {"ended": "REPLAY_EXHAUSTED" if not self.halted else "HALTED"}
                if isinstance(item, BaseException):
                    self.health.set_status(JobStatus.DEGRADED, "DATA_PROVIDER_ERROR", str(item))
                    raise item
                if isinstance(item, Bar):
                    self.process(core, item, fills_for)
                watchdog = loop.time() - watched >= WATCH_SECONDS or item is _TICK
                if watchdog:
                    watched = loop.time()
                    self.ctx.heartbeat()
                    self.seat.check()
                    if self.ctx.should_stop:
                        return {"ended": "STOPPED"}
                    self.health.follow_feed(feed)
                    if isinstance(fills_for, FillPoll):
                        self.health.fills_between_bars(core, fills_for)
                # The kill state is read after every bar too (with its save), not only by
                # the watchdog: a kill is acted on within a bar.
                if watchdog or isinstance(item, Bar):
                    bar = item if isinstance(item, Bar) else core.last_bar
                    state = self.kill_after_bar if isinstance(item, Bar) else self.kill_state()
                    if not self.halted and state in (
                            KillState.HARD_KILLED.value, KillState.QUARANTINED.value):
                        self._halt(core, bar)
                        halt_started = loop.time()
                    elif self.halted and self._flatten_missing():
                        self._halt(core, bar)  # the flatten was refused: again, a bar later
                if self.halted and self._flat():
                    return {"ended": "HALTED", "flat": True}
                if halt_started is not None and loop.time() - halt_started > HALT_WAIT_SECONDS:
                    return {"ended": "HALTED", "flat": False}
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _halt(self, core: RunnerCore, bar: Bar | None) -> None:
        self.halted = True
        if bar is None:
            return
        now = bar.at + timedelta(seconds=self.bar_seconds)
        facts = core.market_facts(now, bar)
        cancelled, flatten_id = halt_orders(self.manager, self.symbol, facts,
                                            tag=str(int(now.timestamp())),
                                            mark=Decimal(str(bar.close)))
        log.info("runner_halted", bot_id=self.bot_id, cancelled=cancelled,
                 flatten_order=flatten_id)

    def _flatten_missing(self) -> bool:
        """Halted with a position and nothing working to close it: the flatten was denied
        (the market was closed) or rejected by the broker."""
        return self.manager.position(self.symbol) != 0 and not any(
            o.symbol == self.symbol for o in self.manager.open.values())

    def _flat(self) -> bool:
        if self.manager.position(self.symbol) != 0 or self.manager.open:
            return False
        return self.broker.position(self.symbol).qty == 0


_TICK = object()


def run_runner(ctx: JobContext) -> dict[str, Any]:
    return Runner(ctx).run()


register_handler(JobType.RUNNER, run_runner)
