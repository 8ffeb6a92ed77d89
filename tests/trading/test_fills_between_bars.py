"""A real broker's fill reported between bars (as Tradovate's user sync reports it) is
applied on the runner's next watchdog tick: the entry's protective exits, which a broker
without native brackets gets from us, go out before the next bar, not with it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading import runner_job
from botwarden.trading.brokers.base import (
    Ack,
    BrokerRejected,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
)
from botwarden.trading.runner_core import RunnerCore
from tests.research.jobs_support import END
from tests.trading.runner_support import (
    first_bar_iso,
    make_bot,
    run_to_completion,
    runner_payload,
)

FILL_DELAY = 0.3  # the market order fills this long after it is placed
SPEED = 20.0  # a 1-minute bar every 3 s: watchdog ticks (1 s) come between bars


class RemoteMarket:
    """A broker outside the runner's process: a market order fills a moment after it is
    placed (on a timer, at the last bar's close), and the broker says it learnt of a fill
    (`fill_revision`); stops and limits rest. No native brackets, as with Tradovate."""

    name = "remote"
    supports_brackets = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.orders: dict[str, OrderReport] = {}
        self.fill_list: list[FillReport] = []
        self.revision = 0
        self.price = Decimal("5000.00")
        self.submitted: dict[str, float] = {}  # client id -> monotonic time placed

    def submit(self, request: OrderRequest) -> Ack:
        if request.bracket is not None:
            raise BrokerRejected("BRACKET_UNSUPPORTED", "no brackets here")
        cid = request.client_order_id
        with self._lock:
            if cid in self.orders:
                return Ack(cid, cid, self.orders[cid].status, duplicate=True)
            self.submitted[cid] = time.monotonic()
            self.orders[cid] = OrderReport(
                cid, cid, request.symbol, request.side, request.order_type, request.qty, 0,
                OrderStatus.WORKING, limit_price=request.limit_price,
                stop_price=request.stop_price)
        if request.order_type is OrderType.MARKET:
            threading.Timer(FILL_DELAY, self._fill, (cid,)).start()
        return Ack(cid, cid, OrderStatus.WORKING)

    def _fill(self, cid: str) -> None:
        with self._lock:
            order = self.orders[cid]
            fill = FillReport(f"remote-{cid}", cid, cid, order.symbol, order.side, order.qty,
                              self.price, None, utcnow())
            self.fill_list.append(fill)
            self.orders[cid] = OrderReport(
                cid, cid, order.symbol, order.side, order.order_type, order.qty, order.qty,
                OrderStatus.FILLED, self.price, fills=(fill,))
            self.revision += 1

    def cancel(self, client_order_id: str) -> OrderReport | None:
        with self._lock:
            order = self.orders.get(client_order_id)
            if order is None or order.status is not OrderStatus.WORKING:
                return order
            self.orders[client_order_id] = OrderReport(
                order.client_order_id, order.broker_order_id, order.symbol, order.side,
                order.order_type, order.qty, 0, OrderStatus.CANCELED,
                limit_price=order.limit_price, stop_price=order.stop_price)
            return self.orders[client_order_id]

    def query_order(self, client_order_id: str) -> OrderReport | None:
        with self._lock:
            return self.orders.get(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        with self._lock:
            return [o for o in self.orders.values() if o.status is OrderStatus.WORKING]

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        with self._lock:
            return [f for f in self.fill_list if since is None or f.at >= since]

    def position(self, symbol: str) -> PositionReport:
        with self._lock:
            qty = sum(f.qty if f.side is Side.BUY else -f.qty for f in self.fill_list)
        return PositionReport(symbol, qty, Decimal("5000.00") if qty else None)

    def flatten(self, symbol: str, client_order_id: str) -> Ack | None:
        qty = self.position(symbol).qty
        if qty == 0:
            return None
        return self.submit(OrderRequest(client_order_id, symbol,
                                        Side.SELL if qty > 0 else Side.BUY, abs(qty),
                                        OrderType.MARKET))

    def fill_revision(self) -> int:
        with self._lock:
            return self.revision


def test_an_entry_filled_between_bars_gets_its_exits_before_the_next_bar(
        engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    write_synthetic(BarStore(settings.data_dir), "MES", 2, seed=5, end=END)
    market = RemoteMarket()
    monkeypatch.setattr(runner_job, "make_broker", lambda *_a, **_k: market)
    bars: list[float] = []  # monotonic time each bar was handed to the runner
    on_bar = RunnerCore.on_bar

    def timed(self: RunnerCore, bar: Any, fills_for: Any) -> Any:
        bars.append(time.monotonic())
        market.price = Decimal(str(bar.close))  # where the market is: fills go there
        return on_bar(self, bar, fills_for)

    monkeypatch.setattr(RunnerCore, "on_bar", timed)
    account_id, bot_id = make_bot(engine)
    start = datetime.fromisoformat(first_bar_iso(settings)) + timedelta(hours=1)  # warmed up
    payload = runner_payload(bot_id, start=start.isoformat(), speed=SPEED,
                             end=(start + timedelta(minutes=3)).isoformat())
    result = run_to_completion(engine, settings, account_id, bot_id, payload)
    assert result["orders_sent"] >= 1
    entries = [c for c in market.submitted if not c.endswith((":MSL", ":MTP"))]
    entry = entries[0]
    placed = market.submitted[entry]
    stop, target = market.submitted[f"{entry}:MSL"], market.submitted[f"{entry}:MTP"]
    next_bar = min(t for t in bars if t > placed)
    assert placed + FILL_DELAY <= stop < next_bar and target < next_bar
    filled = market.orders[entry]
    assert filled.avg_fill_price is not None
    away = Decimal(12) * Decimal("0.25") * (1 if filled.side is Side.BUY else -1)
    assert market.orders[f"{entry}:MSL"].stop_price == filled.avg_fill_price - away  # 12 ticks
