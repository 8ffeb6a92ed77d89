"""An intent judged and persisted (OrderManager.place_chain): the risk engine's verdict on
what the manager holds and on the gate read in the intent's transaction, its decision trace
and its order row, and, once written, the order held as open and counted for the next
checks (rate, duplicates, working contracts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from botwarden.domain.kill import KillState
from botwarden.domain.risk import (
    DUPLICATE_WINDOW_SECONDS,
    AccountRisk,
    BotRisk,
    OrderIntent,
    RiskVerdict,
    check_order,
    order_signature,
    reduces_position,
)
from botwarden.domain.stages import Stage
from botwarden.domain.trading import OrderStatus, Side, TradingState
from botwarden.trading import order_store as store
from botwarden.trading.order_store import NewOrder, StoredOrder

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager, RiskContext


@dataclass
class Rows:
    """Traces and order rows of a chain, written together (`write`): one statement each."""

    traces: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)

    def write(self, conn: Connection) -> None:
        store.insert_intents(conn, self.traces, self.orders)
        self.traces, self.orders = [], []


Judged = list[tuple[StoredOrder, RiskVerdict]]  # orders allowed and held, in chain order
Refusal = tuple[str, RiskVerdict]  # the refused order's client id and its verdict


def judge_chain(manager: OrderManager, conn: Connection | None, gate: Any,
                chain: Sequence[NewOrder],
                ctx: RiskContext, system_flatten: bool, now: datetime, rows: Rows,
                ) -> tuple[Judged, Refusal | None]:
    """Judge a chain's orders in turn on `gate` (`judge`); the first refused ends it (those
    after it are not judged). Returns the orders allowed and held, and the refusal (its
    client order id and verdict). `conn` (the intents' transaction) is read only for an
    account with a contract cap; None where there is none."""
    judged: Judged = []
    for order in chain:
        if gate.max_contracts is not None:
            assert conn is not None
            rows.write(conn)  # the account's open contracts count them
        verdict, stored = judge(manager, conn, gate, order, ctx, system_flatten, now, rows)
        if stored is None:
            return judged, (order.client_order_id, verdict)
        judged.append((stored, verdict))
    return judged, None


@dataclass(frozen=True, slots=True)
class HeldBefore:
    """What `_hold` changes in the manager, as it was before a chain was judged: a chain
    judged on a gate that turned out stale is forgotten (`forget`) and judged again."""

    signature: Any
    order_time: datetime | None
    recent_signatures: list[Any]
    sent_times: list[datetime]

    @classmethod
    def of(cls, manager: OrderManager) -> HeldBefore:
        # `_hold` replaces these lists rather than changing them: the references suffice.
        return cls(manager.last_signature, manager.last_order_time,
                   manager.recent_signatures, manager.sent_times)

    def forget(self, manager: OrderManager, held: Sequence[StoredOrder]) -> None:
        for stored in held:
            manager.open.pop(stored.client_order_id, None)
            manager.seen_ids.discard(stored.client_order_id)
        manager.last_signature, manager.last_order_time = self.signature, self.order_time
        manager.recent_signatures, manager.sent_times = self.recent_signatures, self.sent_times


def judge(manager: OrderManager, conn: Connection | None, gate: Any, order: NewOrder,
          ctx: RiskContext, system_flatten: bool, now: datetime, rows: Rows,
          ) -> tuple[RiskVerdict, StoredOrder | None]:
    """The verdict on `order`, its trace added to `rows`; when allowed, its order row too,
    and the order as held from now on (None: refused)."""
    intent = _intent(order, system_flatten)
    bot = bot_risk(manager, order.symbol, gate, ctx)
    account = AccountRisk(gate.starting_capital, ctx.account_equity, ctx.account_peak)
    if gate.max_contracts is not None:
        assert conn is not None  # judge_chain's caller gives the transaction for a cap
        account = replace(account, max_contracts=gate.max_contracts,
                          open_contracts=store.account_open_contracts(conn, gate.account_id))
    # The set itself, not a copy: it holds every client id sent since the start.
    verdict = check_order(intent, bot, account, ctx.market, manager.limits, manager.seen_ids)
    detail = {"order": _order_json(order), "verdict": verdict.code,
              "message": verdict.message, "position": bot.position, **ctx.detail}
    rows.traces.append(store.trace_row(
        manager.bot_id, manager.job_id, kind="DECISION", bar_time=ctx.bar_time,
        decision="ORDER" if verdict.allowed else "DENIED", reason_code=verdict.code,
        detail=detail, now=now))
    if not verdict.allowed:
        rows.traces.append(store.trace_row(
            manager.bot_id, manager.job_id, kind="NO_TRADE", bar_time=ctx.bar_time,
            decision="NO_TRADE", reason_code=verdict.code,
            detail={**detail, "fix": verdict.fix}, now=now))
        return verdict, None
    if reduces_position(intent, bot):
        order = replace(order, reduce_only=True)
    row = store.order_row(manager.bot_id, manager.job_id, order, broker=manager.broker.name,
                          mode=manager.mode, now=now, status=OrderStatus.PENDING,
                          reject_code=None)
    rows.orders.append(row)
    return verdict, _hold(manager, str(row["id"]), order, ctx, system_flatten, now)


def _hold(manager: OrderManager, order_id: str, order: NewOrder, ctx: RiskContext,
          system_flatten: bool, now: datetime) -> StoredOrder:
    """Hold an intent being persisted as open, and count it for the next risk checks."""
    stored = StoredOrder(order_id, order.client_order_id, manager.job_id, order.symbol,
                         order.side, order.qty, order.order_type, OrderStatus.PENDING, 0,
                         order.limit_price, order.stop_price, order.reduce_only,
                         order.parent_client_order_id, now)
    manager.open[order.client_order_id] = stored
    manager.seen_ids.add(order.client_order_id)
    manager.last_signature = order_signature(_intent(order, system_flatten), order.reduce_only)
    manager.last_order_time = at = ctx.market.now
    manager.recent_signatures = [
        (signature, when) for signature, when in manager.recent_signatures
        if (at - when).total_seconds() < DUPLICATE_WINDOW_SECONDS
    ] + [(manager.last_signature, at)]
    manager.sent_times = [t for t in manager.sent_times
                          if (at - t).total_seconds() < 60] + [at]
    return stored


def bot_risk(manager: OrderManager, symbol: str, gate: Any, ctx: RiskContext) -> BotRisk:
    kill_state = KillState(gate.kill_state)
    # The account kill switch halts every bot of the account (domain.md): a soft-killed
    # bot too, which could otherwise still send its own reducing orders.
    if gate.kill_switch_engaged and kill_state in (KillState.NONE, KillState.SOFT_KILLED):
        kill_state = KillState.HARD_KILLED
    return BotRisk(
        stage=Stage(gate.stage), kill_state=kill_state,
        is_trading_enabled=gate.is_trading_enabled, position=manager.position(symbol),
        working_buy=manager.working(symbol, Side.BUY),
        working_sell=manager.working(symbol, Side.SELL),
        daily_pnl=ctx.daily_pnl, equity=ctx.equity, equity_peak=ctx.equity_peak,
        capital=ctx.capital, recent_order_times=tuple(manager.sent_times),
        last_order_signature=manager.last_signature, last_order_time=manager.last_order_time,
        trading_state=TradingState(gate.trading_state),
        recent_signatures=tuple(manager.recent_signatures))


def _intent(order: NewOrder, system_flatten: bool) -> OrderIntent:
    return OrderIntent(order.client_order_id, order.side, order.qty, order.order_type,
                       order.limit_price, order.stop_price, system_flatten)


def _order_json(order: NewOrder) -> dict[str, Any]:
    return {"client_order_id": order.client_order_id, "symbol": order.symbol,
            "side": order.side.value, "qty": order.qty, "type": order.order_type.value,
            "limit_price": None if order.limit_price is None else str(order.limit_price),
            "stop_price": None if order.stop_price is None else str(order.stop_price)}


def record_no_trade(manager: OrderManager, bar_time: datetime, code: str, message: str,
                    fix: str, detail: dict[str, Any]) -> None:
    """A bar on which the runner wanted to decide and could not, with the reason."""
    row = store.trace_row(manager.bot_id, manager.job_id, kind="NO_TRADE", bar_time=bar_time,
                          decision="NO_TRADE", reason_code=code,
                          detail={**detail, "message": message, "fix": fix},
                          now=manager.clock())
    with manager.write() as conn:
        store.insert_intents(conn, [row], [])
