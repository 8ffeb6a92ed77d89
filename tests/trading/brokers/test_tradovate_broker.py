"""The Tradovate adapter against responses in Tradovate's JSON format (respx, no network):
placing, finding orders again by our client id, reports, fills, positions, cancel, flatten,
and how each failure of order entry is told to the caller."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import respx

from botwarden.domain.reconcile import ActionKind, OurOrder, diff
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers import (
    Bracket,
    Broker,
    BrokerAuthError,
    BrokerDisconnected,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    OrderRequest,
)
from botwarden.trading.brokers.tradovate import TradovateBroker, TradovateClient
from tests.trading.brokers.conftest import ACCOUNT, ACCOUNT_ID, FakeClock, body, ok

FILLED, WORKING, FOREIGN = 8812347711, 8812347750, 8812347800


def limit_sell(cid: str = "bw-new", price: str = "6870.50") -> OrderRequest:
    return OrderRequest(cid, "MES", Side.SELL, 1, OrderType.LIMIT, limit_price=Decimal(price))


def market_buy(cid: str = "bw-new", qty: int = 2) -> OrderRequest:
    return OrderRequest(cid, "MES", Side.BUY, qty, OrderType.MARKET)


def route_order(api: respx.MockRouter, order_id: int, item: str, versions: str,
                fills: str | None = None) -> None:
    api.get("/order/item", params={"id": order_id}).mock(return_value=ok(item))
    api.get("/orderVersion/deps", params={"masterid": order_id}).mock(return_value=ok(versions))
    api.get("/fill/deps", params={"masterid": order_id}).mock(
        return_value=ok(fills) if fills else httpx.Response(200, json=[]))


def route_lists(api: respx.MockRouter) -> None:
    api.get("/order/list", name="order_list").mock(return_value=ok("order_list.json"))
    api.get("/orderVersion/list").mock(return_value=ok("order_version_list.json"))
    api.get("/fill/list", name="fill_list").mock(return_value=ok("fill_list.json"))


def test_it_is_a_broker(broker: TradovateBroker) -> None:
    assert isinstance(broker, Broker)


def test_submit_places_on_the_front_month_with_our_client_id(api: respx.MockRouter,
                                                             broker: TradovateBroker) -> None:
    api["commands"].mock(return_value=httpx.Response(200, json=[]))
    ack = broker.submit(limit_sell())
    assert (ack.broker_order_id, ack.status, ack.duplicate) == (
        str(FILLED), OrderStatus.WORKING, False)
    assert body(api["place"]) == {
        "accountSpec": ACCOUNT, "accountId": ACCOUNT_ID, "clOrdId": "bw-new",
        "action": "Sell", "symbol": "MESZ5", "orderQty": 1, "orderType": "Limit",
        "price": 6870.5, "isAutomated": True}
    assert api["suggest"].calls.last.request.url.params["t"] == "MES"


def test_the_front_month_rolls_and_a_contract_name_is_found(api: respx.MockRouter,
                                                            broker: TradovateBroker,
                                                            clock: FakeClock) -> None:
    api["commands"].mock(return_value=httpx.Response(200, json=[]))
    clock.now = datetime(2025, 12, 20, 15, tzinfo=UTC)  # MESZ5 expired on the 19th
    broker.submit(market_buy("a"))
    assert body(api["place"])["symbol"] == "MESH6"
    api.get("/contract/find", params={"name": "MESM6"}).mock(
        return_value=httpx.Response(200, json={"id": 3628371, "name": "MESM6",
                                               "contractMaturityId": 52803}))
    broker.submit(OrderRequest("b", "mesm6", Side.BUY, 1, OrderType.MARKET))
    assert body(api["place"])["symbol"] == "MESM6"


def test_a_resend_finds_the_order_and_places_nothing(api: respx.MockRouter,
                                                     broker: TradovateBroker) -> None:
    api["commands"].mock(return_value=httpx.Response(200, json=[]))
    first = broker.submit(market_buy())
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    again = broker.submit(market_buy())
    assert again.duplicate and again.broker_order_id == first.broker_order_id
    assert again.status is OrderStatus.FILLED
    assert api["place"].call_count == 1 and api["commands"].call_count == 1


def test_after_a_restart_orders_are_found_by_client_id(api: respx.MockRouter,
                                                       client: TradovateClient) -> None:
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    restarted = TradovateBroker(client, account=ACCOUNT)
    ack = restarted.submit(market_buy("bw-c-1"))  # bw-c-1 is in /command/list
    assert ack.duplicate and ack.broker_order_id == str(FILLED)
    assert api["place"].call_count == 0


def test_rejection_carries_tradovate_s_reason(api: respx.MockRouter,
                                              broker: TradovateBroker) -> None:
    api["place"].mock(return_value=ok("place_order_rejected.json"))
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(market_buy())
    assert (caught.value.code, caught.value.message) == (
        "MaxPosLimitReached", "Max position limit is reached")


def test_a_timed_out_order_is_found_on_the_next_query_never_placed_twice(
        api: respx.MockRouter, broker: TradovateBroker) -> None:
    placed = [{"id": 9930, "orderId": FILLED, "clOrdId": "bw-new", "commandType": "New",
               "commandStatus": "RiskPassed", "timestamp": "2025-12-01T15:30:00.101Z"}]
    api["commands"].mock(side_effect=[httpx.Response(200, json=[]),
                                      httpx.Response(200, json=placed)])
    api["place"].mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(BrokerTimeout) as caught:
        broker.submit(market_buy())
    assert caught.value.reason == "TIMEOUT"
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    report = broker.query_order("bw-new")  # the caller resolves UNRESOLVED by asking
    assert report is not None and report.status is OrderStatus.FILLED
    assert broker.submit(market_buy()).duplicate
    assert api["place"].call_count == 1


def test_a_timed_out_order_that_never_arrived_is_unknown(api: respx.MockRouter,
                                                         broker: TradovateBroker) -> None:
    api["place"].mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(BrokerTimeout):
        broker.submit(market_buy("bw-lost"))
    assert broker.query_order("bw-lost") is None
    assert api["commands"].call_count == 2  # read again: the id was in doubt


@pytest.mark.parametrize(("answer", "error", "reason"), [
    (httpx.ConnectError("refused"), BrokerDisconnected, "NETWORK_ERROR"),
    (httpx.Response(429), BrokerRateLimited, "RATE_LIMITED"),
    (httpx.Response(500), BrokerTimeout, "SERVER_ERROR"),
    (httpx.RemoteProtocolError("peer closed"), BrokerTimeout, "NETWORK_ERROR"),
    (httpx.Response(400, json={"errorText": "bad"}), BrokerRejected, "BAD_REQUEST"),
])
def test_order_entry_failures_say_what_to_do(api: respx.MockRouter, broker: TradovateBroker,
                                             answer: object, error: type[Exception],
                                             reason: str) -> None:
    api["place"].mock(side_effect=[answer])
    with pytest.raises(error) as caught:
        broker.submit(market_buy())
    assert caught.value.reason == reason  # type: ignore[attr-defined]
    assert api["place"].call_count == 1  # an order is never retried blindly


def test_revoked_credentials_are_an_auth_error(api: respx.MockRouter,
                                               broker: TradovateBroker) -> None:
    api["token"].mock(return_value=ok("access_token_refused.json"))
    with pytest.raises(BrokerAuthError) as caught:
        broker.submit(market_buy())
    assert caught.value.reason == "ENTITLEMENT_REVOKED"


def test_query_reports_an_order_with_its_fills(api: respx.MockRouter,
                                               broker: TradovateBroker) -> None:
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    report = broker.query_order("bw-c-1")
    assert report is not None
    assert (report.symbol, report.side, report.order_type, report.qty, report.filled_qty,
            report.status, report.avg_fill_price) == (
        "MES", Side.BUY, OrderType.MARKET, 2, 2, OrderStatus.FILLED, Decimal("6852.375"))
    assert [(f.fill_id, f.price, f.qty) for f in report.fills] == [
        ("tradovate-demo-5521441", Decimal("6852.25"), 1),
        ("tradovate-demo-5521442", Decimal("6852.5"), 1)]
    assert broker.query_order("bw-unknown") is None


def test_open_orders_include_orders_we_did_not_send(api: respx.MockRouter,
                                                    broker: TradovateBroker) -> None:
    route_lists(api)
    api.get("/contract/item", params={"id": 3570918}).mock(
        return_value=ok("contract_find_mesh6.json"))
    reports = broker.open_orders()
    assert [(r.client_order_id, r.order_type, r.qty, r.limit_price, r.stop_price, r.symbol)
            for r in reports] == [
        ("bw-c-2", OrderType.LIMIT, 1, Decimal("6870.5"), None, "MES"),
        (f"tradovate:{FOREIGN}", OrderType.STOP, 3, None, Decimal("6905.25"), "MES")]
    assert all(r.status is OrderStatus.WORKING for r in reports)
    assert broker.open_orders("MNQ") == []


def test_fills_of_this_account_only_and_active_only(api: respx.MockRouter,
                                                    broker: TradovateBroker) -> None:
    route_lists(api)
    fills = broker.fills()
    assert [(f.fill_id, f.client_order_id, f.side, f.price) for f in fills] == [
        ("tradovate-demo-5521441", "bw-c-1", Side.BUY, Decimal("6852.25")),
        ("tradovate-demo-5521442", "bw-c-1", Side.BUY, Decimal("6852.5"))]
    since = datetime(2025, 12, 1, 15, 30, 0, 385000, tzinfo=UTC)
    assert [f.fill_id for f in broker.fills(since=since)] == ["tradovate-demo-5521442"]


def test_a_burst_of_fill_polls_shares_one_read_of_the_lists(
        api: respx.MockRouter, broker: TradovateBroker, clock: FakeClock) -> None:
    """The runners of a process poll at a bar's close: with the user sync down, their polls
    within two seconds cost one read of each list, not one each."""
    route_lists(api)
    polls = [broker.fills() for _runner in range(5)]
    assert all(poll == polls[0] and poll for poll in polls)
    assert api.routes["order_list"].call_count == api.routes["fill_list"].call_count == 1
    clock.advance(seconds=2)  # the next bar's polls read again
    broker.fills()
    assert api.routes["fill_list"].call_count == 2


def test_a_failed_read_of_the_lists_is_shared_too(api: respx.MockRouter,
                                                   broker: TradovateBroker,
                                                   clock: FakeClock) -> None:
    """Blind runners retry every second (runner_core): one request tells them all."""
    api.get("/order/list", name="order_list").mock(side_effect=httpx.ConnectError("refused"))
    api.get("/fill/list", name="fill_list").mock(return_value=ok("fill_list.json"))
    with pytest.raises(BrokerDisconnected):
        broker.fills()
    calls = api.routes["order_list"].call_count  # with the client's own retries
    for _runner in range(2):
        with pytest.raises(BrokerDisconnected):
            broker.fills()
    assert api.routes["order_list"].call_count == calls
    assert api.routes["fill_list"].call_count == 0
    clock.advance(seconds=2)
    api.routes["order_list"].mock(return_value=ok("order_list.json"))
    assert broker.fills()
    assert api.routes["order_list"].call_count == calls + 1


def test_position_is_exact(api: respx.MockRouter, broker: TradovateBroker) -> None:
    api.get("/position/list").mock(return_value=ok("position_list.json"))
    position = broker.position("MES")
    assert (position.symbol, position.qty, position.avg_price) == ("MES", 2, Decimal("6852.375"))
    api.get("/contract/find", params={"name": "MESH6"}).mock(
        return_value=ok("contract_find_mesh6.json"))
    assert broker.position("MESH6").qty == 0


def test_cancel(api: respx.MockRouter, broker: TradovateBroker) -> None:
    cancel = api.post("/order/cancelorder").mock(return_value=ok("cancel_order.json"))
    api.get("/order/item", params={"id": WORKING}).mock(
        side_effect=[ok("order_item_working.json"), ok("order_item_canceled.json")])
    api.get("/orderVersion/deps", params={"masterid": WORKING}).mock(
        return_value=ok("order_version_deps_working.json"))
    api.get("/fill/deps", params={"masterid": WORKING}).mock(
        return_value=httpx.Response(200, json=[]))
    report = broker.cancel("bw-c-2")
    assert report is not None and report.status is OrderStatus.CANCELED
    assert body(cancel) == {"orderId": WORKING, "isAutomated": True}
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    filled = broker.cancel("bw-c-1")  # finished already: nothing sent
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert cancel.call_count == 1
    assert broker.cancel("bw-never") is None


def test_flatten_sells_the_position_once(api: respx.MockRouter,
                                         broker: TradovateBroker) -> None:
    api.get("/position/list").mock(return_value=ok("position_list.json"))
    ack = broker.flatten("MES", "bw-flat")
    assert ack is not None and not ack.duplicate
    sent = body(api["place"])
    assert (sent["action"], sent["orderQty"], sent["orderType"], sent["clOrdId"]) == (
        "Sell", 2, "Market", "bw-flat")
    route_order(api, FILLED, "order_item_working.json", "order_version_deps_filled.json")
    again = broker.flatten("MES", "bw-flat")
    assert again is not None and again.duplicate and api["place"].call_count == 1


def test_refused_before_sending(api: respx.MockRouter, broker: TradovateBroker) -> None:
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(OrderRequest("b", "MES", Side.BUY, 1, OrderType.MARKET,
                                   bracket=Bracket(4, 8)))
    assert caught.value.code == "BRACKET_UNSUPPORTED"
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(limit_sell(price="6870.30"))
    assert caught.value.code == "PRICE_OFF_TICK_GRID"
    assert api["place"].call_count == 0


def test_reports_feed_reconcile(api: respx.MockRouter, broker: TradovateBroker) -> None:
    route_lists(api)
    api.get("/contract/item", params={"id": 3570918}).mock(
        return_value=ok("contract_find_mesh6.json"))
    api.get("/position/list").mock(return_value=ok("position_list.json"))
    route_order(api, FILLED, "order_item_filled.json", "order_version_deps_filled.json",
                "fill_deps_filled.json")
    filled = broker.query_order("bw-c-1")
    assert filled is not None
    theirs = [filled.as_broker_order()] + [r.as_broker_order() for r in broker.open_orders()]
    result = diff([OurOrder("bw-c-1", OrderStatus.UNRESOLVED, 2, 0),
                   OurOrder("bw-c-2", OrderStatus.WORKING, 1, 0)], 0, frozenset(), theirs,
                  [f.as_broker_fill() for f in broker.fills()], broker.position("MES").qty,
                  {"bw-c-1": 1, "bw-c-2": -1})
    assert [(a.kind, a.client_order_id) for a in result.actions] == [
        (ActionKind.APPLY_FILL, "bw-c-1"), (ActionKind.APPLY_FILL, "bw-c-1"),
        (ActionKind.ADOPT_STATUS, "bw-c-1"),
        (ActionKind.CANCEL_AT_BROKER, f"tradovate:{FOREIGN}")]
    assert result.fixable


def test_a_resend_of_a_rejected_order_is_rejected_again(api: respx.MockRouter,
                                                        broker: TradovateBroker) -> None:
    api["commands"].mock(return_value=httpx.Response(200, json=[
        {"id": 9940, "orderId": 8812347790, "clOrdId": "bw-r", "commandType": "New",
         "commandStatus": "RiskRejected", "timestamp": "2025-12-01T15:32:10.001Z"}]))
    api.get("/order/item", params={"id": 8812347790}).mock(
        return_value=ok("order_item_rejected.json"))
    api.get("/orderVersion/deps").mock(return_value=httpx.Response(200, json=[]))
    api.get("/fill/deps").mock(return_value=httpx.Response(200, json=[]))
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(market_buy("bw-r"))
    assert caught.value.code == "Rejected"
    report = broker.query_order("bw-r")
    assert report is not None and report.status is OrderStatus.REJECTED
    assert api["place"].call_count == 0
