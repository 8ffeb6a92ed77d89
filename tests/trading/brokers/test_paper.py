"""The paper broker on hand-written bars: each fill rule, brackets, exactly-once, reports,
and positions that agree with the exact ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.instruments import get_instrument
from botwarden.domain.ledger import Book, apply_fill
from botwarden.domain.reconcile import BrokerFill, BrokerOrder
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers import (
    Bracket,
    BrokerRejected,
    MemoryStateStore,
    OrderRequest,
    PaperBroker,
    SimulatedBroker,
    bracket_ids,
)
from tests.trading.brokers.helpers import bar, limit, market, px, stop


def paper(**options: object) -> PaperBroker:
    return PaperBroker("acct", MemoryStateStore(), **options)  # type: ignore[arg-type]


def prices(fills: list) -> list[Decimal]:  # type: ignore[type-arg]
    return [f.price for f in fills]


def test_it_is_a_simulated_broker() -> None:
    assert isinstance(paper(), SimulatedBroker)


def test_market_order_fills_at_the_next_open_with_slippage_against_us() -> None:
    broker = paper(slippage_ticks=2)
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    broker.submit(market("b", Side.BUY))
    broker.submit(market("s", Side.SELL, qty=2))
    fills = broker.on_bar("MES", bar(1, 104, 105, 103, 104))
    assert [(f.client_order_id, f.price) for f in fills] == [("b", px(106)), ("s", px(102))]
    assert broker.position("MES").qty == -1


def test_nothing_fills_before_a_bar_arrives() -> None:
    broker = paper()
    broker.submit(market("b", Side.BUY))
    report = broker.query_order("b")
    assert report is not None and report.status is OrderStatus.WORKING
    assert broker.fills() == []


@pytest.mark.parametrize(("side", "price", "row", "expected"), [
    (Side.SELL, 98, (100, 101, 98, 99), 98),  # touched: a stop fills at the stop
    (Side.SELL, 98, (100, 101, 99, 99), None),  # not reached
    (Side.SELL, 98, (95, 96, 94, 95), 95),  # gapped through: at the open
    (Side.BUY, 102, (100, 102, 99, 101), 102),
    (Side.BUY, 102, (105, 106, 104, 105), 105),
])
def test_stop_orders(side: Side, price: int, row: tuple[int, int, int, int],
                     expected: int | None) -> None:
    broker = paper()
    broker.submit(stop("st", side, price))
    fills = broker.on_bar("MES", bar(0, *row))
    assert prices(fills) == ([] if expected is None else [px(expected)])


@pytest.mark.parametrize(("side", "price", "row", "expected"), [
    (Side.BUY, 98, (100, 101, 98, 99), None),  # touched only: no fill (queue unknown)
    (Side.BUY, 98, (100, 101, 97, 99), 98),  # traded through: at the limit
    (Side.BUY, 98, (95, 96, 94, 95), 95),  # a better open
    (Side.SELL, 102, (100, 102, 99, 101), None),
    (Side.SELL, 102, (100, 103, 99, 101), 102),
    (Side.SELL, 102, (106, 107, 105, 106), 106),
])
def test_limit_orders(side: Side, price: int, row: tuple[int, int, int, int],
                      expected: int | None) -> None:
    broker = paper(slippage_ticks=3)  # limits never slip
    broker.submit(limit("lm", side, price))
    fills = broker.on_bar("MES", bar(0, *row))
    assert prices(fills) == ([] if expected is None else [px(expected)])


def test_stop_slips_against_us() -> None:
    broker = paper(slippage_ticks=1)
    broker.submit(stop("st", Side.SELL, 98))
    assert prices(broker.on_bar("MES", bar(0, 100, 101, 97, 99))) == [px(97)]


def test_bracket_exits_work_from_the_entry_bar_and_cancel_each_other() -> None:
    broker = paper()
    broker.submit(market("e", Side.BUY, bracket=Bracket(4, 4)))
    stop_id, target_id = bracket_ids("e")
    assert broker.query_order(stop_id) is None  # exits exist once the entry fills
    fills = broker.on_bar("MES", bar(0, 100, 102, 99, 101))
    assert [f.client_order_id for f in fills] == ["e"]
    sl, tp = broker.query_order(stop_id), broker.query_order(target_id)
    assert sl is not None and tp is not None
    assert (sl.order_type, sl.stop_price, sl.side) == (OrderType.STOP, px(96), Side.SELL)
    assert (tp.order_type, tp.limit_price, tp.parent_client_order_id) == (
        OrderType.LIMIT, px(104), "e")
    fills = broker.on_bar("MES", bar(1, 101, 105, 100, 104))
    assert [(f.client_order_id, f.price) for f in fills] == [(target_id, px(104))]
    assert broker.query_order(stop_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert broker.open_orders() == [] and broker.position("MES").qty == 0


def test_exits_of_an_entry_filled_inside_a_bar_wait_for_the_next_bar() -> None:
    broker = paper()
    broker.submit(OrderRequest("e", "MES", Side.BUY, 1, OrderType.STOP, stop_price=px(102),
                               bracket=Bracket(stop_loss_ticks=2)))
    # the stop entry fills at 102; the bar also reaches 99, but after the fill is unknown
    assert prices(broker.on_bar("MES", bar(0, 100, 103, 99, 101))) == [px(102)]
    # next bar: the exit rested through the open, which gapped below it: filled at the open
    assert prices(broker.on_bar("MES", bar(1, 98, 99, 97, 98))) == [px(98)]


def test_same_client_id_never_makes_a_second_order() -> None:
    broker = paper()
    first = broker.submit(market("c", Side.BUY))
    again = broker.submit(market("c", Side.BUY))
    assert again.duplicate and again.broker_order_id == first.broker_order_id
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    after_fill = broker.submit(market("c", Side.BUY))
    assert after_fill.duplicate and after_fill.status is OrderStatus.FILLED
    assert broker.position("MES").qty == 1 and len(broker.fills()) == 1


def test_same_client_id_for_another_order_is_refused() -> None:
    broker = paper()
    broker.submit(market("c", Side.BUY))
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(market("c", Side.SELL))
    assert caught.value.code == "DUPLICATE_CLIENT_ORDER_ID"
    assert len(broker.open_orders()) == 1


@pytest.mark.parametrize(("request_", "code"), [
    (OrderRequest("p", "MES", Side.BUY, 1, OrderType.LIMIT, limit_price=Decimal("4500.1")),
     "PRICE_OFF_TICK_GRID"),
    (OrderRequest("u", "ZZZ", Side.BUY, 1, OrderType.MARKET), "UNKNOWN_SYMBOL"),
    (OrderRequest("x:SL", "MES", Side.BUY, 1, OrderType.MARKET), "RESERVED_CLIENT_ORDER_ID"),
])
def test_refused_orders_are_recorded_and_refused_again(request_: OrderRequest,
                                                       code: str) -> None:
    broker = paper()
    for _ in range(2):
        with pytest.raises(BrokerRejected) as caught:
            broker.submit(request_)
        assert caught.value.code == code
    report = broker.query_order(request_.client_order_id)
    assert report is not None and report.status is OrderStatus.REJECTED
    assert report.reject_code == code


def test_cancel() -> None:
    broker = paper()
    broker.submit(limit("l", Side.BUY, 90))
    report = broker.cancel("l")
    assert report is not None and report.status is OrderStatus.CANCELED
    assert broker.on_bar("MES", bar(0, 85, 86, 80, 85)) == []
    assert broker.cancel("never-sent") is None
    broker.submit(market("m", Side.BUY))
    broker.on_bar("MES", bar(1, 85, 86, 80, 85))
    filled = broker.cancel("m")  # too late: it stays filled
    assert filled is not None and filled.status is OrderStatus.FILLED


def test_reports_for_reconcile() -> None:
    broker = paper()
    broker.submit(market("m", Side.BUY, qty=2))
    broker.submit(limit("l", Side.SELL, 200))
    [fill] = broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    report = broker.query_order("m")
    assert report is not None
    assert report.as_broker_order() == BrokerOrder("m", OrderStatus.FILLED, 2, 2, px(100))
    assert fill.as_broker_fill() == BrokerFill(fill.fill_id, "m", 2, px(100))
    assert [o.client_order_id for o in broker.open_orders("MES")] == ["l"]
    assert broker.open_orders("MNQ") == []
    assert broker.query_order("nope") is None


def test_fills_since_is_inclusive_and_ids_are_unique() -> None:
    broker = paper()
    broker.submit(market("a", Side.BUY))
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    broker.submit(market("b", Side.SELL))
    broker.on_bar("MES", bar(1, 100, 101, 99, 100))
    every = broker.fills()
    assert len({f.fill_id for f in every}) == 2
    assert broker.fills(since=every[1].at) == [every[1]]
    assert broker.fills(since=datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_a_replayed_bar_is_not_matched_twice() -> None:
    broker = paper()
    broker.submit(limit("l", Side.BUY, 98))
    assert broker.on_bar("MES", bar(1, 100, 101, 99, 100)) == []
    assert broker.on_bar("MES", bar(0, 100, 101, 90, 100)) == []  # older: ignored


def test_flatten_closes_the_position_once() -> None:
    broker = paper()
    assert broker.flatten("MES", "f0") is None
    broker.submit(market("m", Side.SELL, qty=3))
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    ack = broker.flatten("MES", "f1")
    assert ack is not None and not ack.duplicate
    again = broker.flatten("MES", "f1")
    assert again is not None and again.duplicate
    broker.on_bar("MES", bar(1, 100, 101, 99, 100))
    assert broker.position("MES").qty == 0
    report = broker.query_order("f1")
    assert report is not None and (report.side, report.qty) == (Side.BUY, 3)
    late = broker.flatten("MES", "f1")  # after the fill: still the same order
    assert late is not None and late.duplicate


def test_fees_default_to_the_instrument_and_can_be_set() -> None:
    broker = paper(fees={"MES": Decimal("1.10")})
    broker.submit(market("a", Side.BUY, qty=2))
    broker.submit(market("b", Side.BUY, symbol="MNQ"))
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    broker.on_bar("MNQ", bar(0, 100, 101, 99, 100, symbol="MNQ"))
    assert {f.symbol: f.fee for f in broker.fills()} == {
        "MES": Decimal("2.20"), "MNQ": get_instrument("MNQ").commission_per_side}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 3),
                          st.integers(-6, 6)), min_size=1, max_size=25))
def test_position_and_realised_pnl_are_the_exact_ledger(orders: list[tuple[Side, int, int]]
                                                        ) -> None:
    broker = paper(slippage_ticks=1)
    instrument = get_instrument("MES")
    price = 16_000
    for i, (side, qty, move) in enumerate(orders):
        broker.submit(market(f"o{i}", side, qty))
        price += move
        broker.on_bar("MES", bar(i, price, price + 2, price - 2, price))
    book = Book()
    for fill in broker.fills():
        book, _ = apply_fill(book, fill.side, fill.qty, fill.price, fill.fee or Decimal(0),
                             instrument.point_value)
    position = broker.position("MES")
    assert (position.qty, position.avg_price, position.realized_pnl, position.fees) == (
        book.qty, book.avg_price, book.realized_pnl, book.fees)
    assert position.qty == sum(q if s is Side.BUY else -q for s, q, _ in orders)
