"""The simulated brokers' book: its working orders come from an index of the open ones,
which must agree with a scan of every order, through adds, fills, cancels, newer versions
folded in from the store, and the forgetting of old finished orders."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers.sim_state import SimOrder, SimState

SYMBOLS = ("MES", "MNQ")
TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP)
FINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)
AT = datetime(2026, 3, 4, 15, tzinfo=UTC)

step = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SYMBOLS), st.sampled_from(TYPES),
              st.booleans()),
    st.tuples(st.just("finish"), st.integers(0, 40), st.sampled_from(FINAL)),
    st.tuples(st.just("fold"), st.integers(0, 40), st.sampled_from(FINAL)),
    st.tuples(st.just("compact"), st.integers(0, 5)),
    st.tuples(st.just("reload")),
)


def scan(state: SimState, symbol: str, order_type: OrderType | None) -> list[str]:
    found = [o for o in state.orders.values() if o.symbol == symbol and o.is_open
             and (order_type is None or o.order_type is order_type)]
    return [o.client_order_id for o in sorted(found, key=lambda o: o.seq)]


@given(st.lists(step, max_size=60))
def test_working_orders_match_a_scan_of_the_book(steps: list[tuple[object, ...]]) -> None:
    state = SimState()
    for action, *args in steps:
        cids = list(state.orders)
        if action == "add":
            symbol, order_type, rejected = args
            seq = state.take_seq()
            order = SimOrder(f"c{seq}", f"b{seq}", str(symbol), Side.BUY,
                             order_type, 1, seq, AT)  # type: ignore[arg-type]
            state.add(order)
            if rejected:
                order.status = OrderStatus.REJECTED  # as a refused submit marks it
        elif action == "finish" and cids:
            state.orders[cids[int(args[0]) % len(cids)]].status = args[1]  # type: ignore[assignment]
        elif action == "fold" and cids:  # a newer version of the order, from the store
            newer = SimOrder.from_json(state.orders[cids[int(args[0]) % len(cids)]].to_json())
            newer.status = args[1]  # type: ignore[assignment]
            state.add(newer)
        elif action == "compact":
            state.compact(int(args[0]))  # type: ignore[call-overload]
        elif action == "reload":
            state = SimState.from_json(state.to_json())
        for symbol in SYMBOLS:
            for order_type in (None, *TYPES):
                assert [o.client_order_id for o in state.working(symbol, order_type)] == \
                    scan(state, symbol, order_type)
