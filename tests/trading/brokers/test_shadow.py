"""The shadow broker fills at the quote: buys at the ask, sells at the bid; with bars only,
the quote is close -/+ one tick."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.engine import Engine

from botwarden.domain.trading import OrderStatus, Side
from botwarden.trading.brokers import (
    Bracket,
    MemoryStateStore,
    ShadowBroker,
    SqlStateStore,
    bracket_ids,
)
from botwarden.trading.brokers.shadow import BarQuotes, Quote
from tests.trading.brokers.helpers import bar, limit, market, px, stop


def shadow(**options: object) -> ShadowBroker:
    return ShadowBroker("acct", MemoryStateStore(), **options)  # type: ignore[arg-type]


def test_bar_quotes_are_close_plus_and_minus_a_tick_at_the_bar_end() -> None:
    quotes = BarQuotes()
    quotes.observe_bar("MES", bar(0, 100, 104, 96, 101))
    quote = quotes.latest("MES")
    assert quote is not None
    assert (quote.bid, quote.ask) == (px(100), px(102))
    assert quote.at == bar(1, 0, 0, 0, 0).at  # the next bar's open: this bar's end


def test_market_orders_fill_at_once_at_the_ask_and_the_bid() -> None:
    broker = shadow()
    broker.on_bar("MES", bar(0, 100, 104, 96, 101))
    buy = broker.submit(market("b", Side.BUY, qty=2))
    sell = broker.submit(market("s", Side.SELL))
    assert buy.status is sell.status is OrderStatus.FILLED
    assert [(f.client_order_id, f.price, f.qty) for f in broker.fills()] == [
        ("b", px(102), 2), ("s", px(100), 1)]
    position = broker.position("MES")
    assert (position.qty, position.avg_price) == (1, px(102))


def test_a_market_order_waits_for_the_first_quote() -> None:
    broker = shadow()
    assert broker.submit(market("b", Side.BUY)).status is OrderStatus.WORKING
    fills = broker.on_bar("MES", bar(0, 100, 110, 90, 100))
    assert [(f.client_order_id, f.price) for f in fills] == [("b", px(101))]


def test_limits_and_stops_meet_the_quote() -> None:
    broker = shadow()
    broker.on_bar("MES", bar(0, 100, 100, 100, 100))  # bid 99, ask 101
    broker.submit(limit("bl", Side.BUY, 100))  # ask 101 above: waits
    broker.submit(limit("sl", Side.SELL, 98))  # bid 99 above the limit: fills at the bid
    broker.submit(stop("ss", Side.SELL, 97))  # bid above the stop: waits
    assert [(f.client_order_id, f.price) for f in broker.fills()] == [("sl", px(99))]
    # the bar dips to 90 and closes at 99: only the close is quoted (bid 98, ask 100)
    fills = broker.on_bar("MES", bar(1, 100, 100, 90, 99))
    assert [(f.client_order_id, f.price) for f in fills] == [("bl", px(100))]
    fills = broker.on_bar("MES", bar(2, 99, 99, 95, 97))  # bid 96: the stop triggers
    assert [(f.client_order_id, f.price) for f in fills] == [("ss", px(96))]


def test_bracket_exits_meet_the_quotes_after_the_entry() -> None:
    broker = shadow()
    broker.on_bar("MES", bar(0, 100, 100, 100, 100))
    broker.submit(market("e", Side.BUY, bracket=Bracket(stop_loss_ticks=1, profit_target_ticks=3)))
    stop_id, target_id = bracket_ids("e")
    # entry at the ask 101; the stop at 100 is above the bid 99 already, yet it waits
    report = broker.query_order(stop_id)
    assert report is not None and report.status is OrderStatus.WORKING
    assert report.stop_price == px(100)
    fills = broker.on_bar("MES", bar(1, 100, 106, 100, 105))  # bid 104: the target
    assert [(f.client_order_id, f.price) for f in fills] == [(target_id, px(104))]
    assert broker.query_order(stop_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]


def test_same_client_id_fills_once() -> None:
    broker = shadow()
    broker.on_bar("MES", bar(0, 100, 100, 100, 100))
    broker.submit(market("b", Side.BUY))
    assert broker.submit(market("b", Side.BUY)).duplicate
    assert len(broker.fills()) == 1 and broker.position("MES").qty == 1


def test_a_streaming_quote_source_plugs_in() -> None:
    class Stream:
        def __init__(self) -> None:
            self.quote: Quote | None = None

        def latest(self, symbol: str) -> Quote | None:
            return self.quote

        def observe_bar(self, symbol: str, bar: object) -> None:
            """Quotes come from the stream, not from bars."""

    stream = Stream()
    broker = shadow(quotes=stream)
    broker.submit(limit("bl", Side.BUY, 100))
    broker.on_bar("MES", bar(0, 90, 90, 90, 90))  # a bar says nothing to this source
    assert broker.fills() == []
    stream.quote = Quote("MES", px(99), px(100), datetime(2025, 1, 6, 15, tzinfo=UTC))
    fills = broker.on_quote("MES")
    assert [(f.price, f.at) for f in fills] == [(px(100), stream.quote.at)]
    assert broker.on_quote("MES") == []


def test_restart_resumes_the_book_and_the_last_quote(engine: Engine) -> None:
    first = ShadowBroker("s-1", SqlStateStore(engine), fees={"MES": Decimal("0.50")})
    first.on_bar("MES", bar(0, 100, 100, 100, 100))
    first.submit(market("b", Side.BUY))
    first.submit(limit("l", Side.SELL, 110))
    restarted = ShadowBroker("s-1", SqlStateStore(engine), fees={"MES": Decimal("0.50")})
    assert restarted.fills() == first.fills()
    assert [o.client_order_id for o in restarted.open_orders()] == ["l"]
    assert restarted.submit(market("s", Side.SELL)).status is OrderStatus.FILLED  # bid 99
    position = restarted.position("MES")
    assert position.qty == 0
    assert position.realized_pnl == Decimal("-2.50") - Decimal("1.00")  # 2 ticks, 2 fees
