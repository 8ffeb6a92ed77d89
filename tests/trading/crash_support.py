"""What the crash-safety test checks after every restart: our side of the book against the
paper broker's, read straight from both stores."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.domain.orders import OPEN
from botwarden.domain.trading import OrderStatus
from botwarden.store.models import Fill, Order, Position, RunnerState, TradeLog
from botwarden.trading.broker_factory import account_key
from botwarden.trading.brokers import PaperBroker, SqlStateStore
from botwarden.trading.brokers.base import PROFIT_TARGET_SUFFIX, STOP_LOSS_SUFFIX
from botwarden.trading.brokers.sim_state import DEFAULT_HISTORY_LIMIT, load_state

UNSETTLED = {OrderStatus.PENDING.value, OrderStatus.UNRESOLVED.value}
OPEN_VALUES = {s.value for s in OPEN}


@dataclass
class Ledger:
    """What the checks saw so far, across restarts (the paper broker forgets finished
    orders beyond its history; every fill is seen here before it is forgotten)."""

    broker_fills: dict[str, tuple[str, int]]  # fill id -> (client order id, qty)
    checks: int = 0
    waiting: int = 0  # intents seen PENDING at a restart, waiting for their bar's replay

    @classmethod
    def empty(cls) -> Ledger:
        return cls({})


def intent_time(client_order_id: str) -> datetime:
    """The open of the bar an intent was decided for: `{bot}-{unix ts}-x|e[:SL|:TP]`."""
    stamp = client_order_id.split(":")[0].rsplit("-", 2)[1]
    return datetime.fromtimestamp(int(stamp), UTC)


def check_agreement(engine: Engine, bot_id: str, symbol: str, ledger: Ledger,
                    *, final: bool = False) -> dict[str, Any]:
    """Assert the invariants of a crash and a restart; returns figures for the log.

    Between a restart's reconcile and its first bar (not `final`), an intent the broker
    never received may still be PENDING if it was decided on the bar about to be replayed:
    the runner sends it once the broker has seen that bar again."""
    broker = PaperBroker(account_key("paper", bot_id), SqlStateStore(engine))
    with engine.connect() as conn:
        ours = {r.client_order_id: r for r in conn.execute(
            sa.select(Order.client_order_id, Order.status, Order.qty, Order.filled_qty,
                      Order.reject_code).where(Order.bot_id == bot_id))}
        our_fills = conn.execute(sa.select(Fill.fill_id, Order.client_order_id, Fill.qty,
                                           Fill.side)
                                 .join(Order, Order.id == Fill.order_id)
                                 .where(Fill.bot_id == bot_id)).all()
        position = conn.execute(sa.select(Position.qty, Position.realized_pnl).where(
            Position.bot_id == bot_id, Position.symbol == symbol)).first()
        resumed_after = conn.execute(sa.select(RunnerState.last_bar_time).where(
            RunnerState.bot_id == bot_id)).scalar_one_or_none()

    # The broker's book as a restart reads it (its snapshot and the changes after it): no
    # client id ever named two broker orders, no fill recorded twice.
    stored = SqlStateStore(engine).load(account_key("paper", bot_id))
    parts = [] if stored is None else [stored.snapshot, *stored.changes]
    broker_orders: dict[str, set[str]] = {}
    for part in parts:
        for encoded in part["orders"]:
            broker_orders.setdefault(encoded["cid"], set()).add(encoded["bid"])
    twice = sorted(c for c, bids in broker_orders.items() if len(bids) > 1)
    assert not twice, f"a client order id twice at the broker: {twice}"
    fill_ids = [f["id"] for part in parts for f in part["fills"]]
    assert len(fill_ids) == len(set(fill_ids)), "a fill twice at the broker"
    state = load_state(stored, DEFAULT_HISTORY_LIMIT)

    # 0 lost intents: nothing left PENDING or UNRESOLVED, nothing refused for being unknown.
    waiting = set()
    if not final and resumed_after is not None:
        waiting = {c for c, r in ours.items() if r.status == OrderStatus.PENDING.value
                   and c not in state.orders
                   and intent_time(c) > resumed_after + timedelta(minutes=1)}
    unsettled = sorted(c for c, r in ours.items() if r.status in UNSETTLED and c not in waiting)
    assert not unsettled, f"intents left unsettled after reconcile: {unsettled}"
    rejected = sorted(c for c, r in ours.items() if r.reject_code is not None)
    assert not rejected, f"intents the broker never got: {rejected}"

    # 0 duplicated orders: every order the broker remembers is one intent of ours (or an
    # exit of its bracket), in the same state.
    for fill in state.fills.values():
        ledger.broker_fills[fill.fill_id] = (fill.client_order_id, fill.qty)
    for client_id, order in state.orders.items():
        assert client_id in ours, f"a broker order we have no row for: {client_id}"
        assert order.status.value == ours[client_id].status, (
            f"{client_id}: ours {ours[client_id].status}, the broker's {order.status.value}")
        assert ours[client_id].filled_qty == order.filled_qty, client_id
    open_ids = {c for c, r in ours.items() if r.status in OPEN_VALUES} - waiting
    unknown_open = sorted(open_ids - set(state.orders))
    assert not unknown_open, f"open intents unknown to the broker: {unknown_open}"

    # Fills applied once: ours are exactly the broker's, fill for fill.
    ours_by_id = {f.fill_id: (f.client_order_id, f.qty) for f in our_fills}
    missing = sorted(set(ledger.broker_fills) - set(ours_by_id))
    assert not missing, f"broker fills we never applied: {missing}"
    # (a fill the ledger never saw belongs to an order the broker has since forgotten)
    unknown = sorted(f for f, (c, _q) in ours_by_id.items()
                     if f not in ledger.broker_fills and c in state.orders)
    assert not unknown, f"fills of ours the broker never made: {unknown}"
    assert all(ours_by_id[f] == seen for f, seen in ledger.broker_fills.items())
    filled: Counter[str] = Counter()
    for client_id, qty in ours_by_id.values():
        filled[client_id] += qty
    assert all(row.filled_qty == filled[c] for c, row in ours.items())

    # Positions agree, to the contract and to the cent.
    theirs = broker.position(symbol)
    our_qty = position.qty if position is not None else 0
    assert our_qty == sum(f.qty if f.side == "BUY" else -f.qty for f in our_fills)
    assert our_qty == theirs.qty, f"our position {our_qty}, the broker's {theirs.qty}"
    assert abs(theirs.qty) <= 1, "more than the bot's one contract: an order went twice"
    if position is not None:
        assert Decimal(position.realized_pnl) == theirs.realized_pnl

    # No fill before the bar its intent was decided for (a resend must not meet an older bar).
    for fill in state.fills.values():
        assert fill.at >= intent_time(fill.client_order_id), (
            f"{fill.client_order_id} filled at {fill.at}, before the bar it was meant for")
    ledger.checks += 1
    ledger.waiting += len(waiting)
    entries = sum(1 for c in ours if c.endswith("-e"))
    legs = sum(1 for c in ours if c.endswith((STOP_LOSS_SUFFIX, PROFIT_TARGET_SUFFIX)))
    return {"orders": len(ours), "entries": entries, "bracket_legs": legs,
            "fills": len(ours_by_id), "position": our_qty, "final": final}


def trades_of(engine: Engine, bot_id: str) -> list[tuple[Any, ...]]:
    """The bot's trade log in the shape of the backtest's trades (tests compare the two)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(TradeLog).where(TradeLog.bot_id == bot_id)
                            .order_by(TradeLog.exit_time, TradeLog.entry_time)).all()
    return [(r.entry_time, r.exit_time, r.side, r.qty, Decimal(r.entry_price),
             Decimal(r.exit_price), Decimal(r.pnl)) for r in rows]
