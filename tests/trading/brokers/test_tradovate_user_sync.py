"""Tradovate's user sync against a loopback server speaking its protocol (the frames of
fixtures/tradovate/socket), and the broker reading the mirror while it is live: the sync
and its heartbeats, events, a close and a silence (each followed by a new session and its
snapshot), a refused authorization, and REST for whatever the mirror cannot answer."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers import OrderRequest
from botwarden.trading.brokers.tradovate import TradovateBroker, TradovateClient
from botwarden.trading.brokers.tradovate.user_sync import UserSync
from tests.trading.brokers.conftest import ACCOUNT, FakeClock
from tests.trading.brokers.tradovate_socket_fake import FakeTradovateSocket

SOCKET = Path(__file__).parent / "fixtures" / "tradovate" / "socket"
NEW_ORDER = 8812347900
WAIT = 5.0


def fixture(name: str) -> Any:
    return json.loads((SOCKET / name).read_text())


@pytest.fixture
def server() -> Iterator[FakeTradovateSocket]:
    fake = FakeTradovateSocket(fixture("sync_snapshot.json"))
    yield fake
    fake.shutdown()


@pytest.fixture
def sync(server: FakeTradovateSocket, client: TradovateClient,
         api: respx.MockRouter) -> Iterator[UserSync]:
    user_sync = UserSync(client, url=server.url, heartbeat_seconds=0.05, stale_after=0.5,
                         backoff=(0.05, 0.2)).start()
    yield user_sync
    user_sync.stop()


def has_order(order_id: int, status: str | None = None) -> Any:
    def check(mirror: Any) -> bool:
        order = mirror.order(order_id)
        return order is not None and (status is None or order["ordStatus"] == status)
    return check


def wait_until(condition: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_it_authorizes_syncs_applies_events_and_sends_heartbeats(
        server: FakeTradovateSocket, sync: UserSync) -> None:
    assert sync.wait(has_order(8812347750), WAIT)
    server.push(*fixture("events_order_filled.json"))
    assert sync.wait(has_order(NEW_ORDER, "Filled"), WAIT)
    requests = [frame for frame in server.received if frame != "[]"]
    assert requests[:2] == ["authorize\n0\n\ndemo-access-token-1",
                                   'user/syncrequest\n1\n\n{"users": [2710431]}']
    assert wait_until(lambda: server.heartbeats_received() >= 2)
    status = sync.status()
    assert status["live"] and status["sessions"] == 1 and status["events"] == 7


def test_a_close_frame_starts_a_new_session_whose_snapshot_has_what_was_missed(
        server: FakeTradovateSocket, sync: UserSync) -> None:
    assert sync.wait(has_order(8812347750), WAIT)
    later = copy.deepcopy(server.snapshot)
    for event in fixture("events_order_filled.json")[:6]:  # happened while disconnected
        entity = event["d"]["entity"]
        key = {"order": "orders", "orderVersion": "orderVersions", "fill": "fills",
               "command": "commands"}[event["d"]["entityType"]]
        later[key] = [e for e in later[key] if e["id"] != entity["id"]] + [entity]
    server.snapshot = later
    server.close_session()
    assert sync.wait(has_order(NEW_ORDER, "Filled"), WAIT)
    assert server.sessions == 2 and "Go away!" in (sync.last_error or "")


def test_silence_is_stale_and_the_mirror_stops_answering(server: FakeTradovateSocket,
                                                         sync: UserSync) -> None:
    assert sync.wait(has_order(8812347750), WAIT)
    server.heartbeats = False
    assert wait_until(lambda: sync.read(lambda _mirror: True) is None)
    assert wait_until(lambda: server.sessions >= 2)  # it hung up and came back
    server.heartbeats = True
    assert sync.wait(has_order(8812347750), WAIT)
    assert "nothing heard" in (sync.last_error or "")


def test_a_refused_authorization_never_goes_live(server: FakeTradovateSocket,
                                                 client: TradovateClient,
                                                 api: respx.MockRouter) -> None:
    server.refuse_auth = True
    user_sync = UserSync(client, url=server.url, heartbeat_seconds=0.05, stale_after=0.5,
                         backoff=(0.05, 0.2)).start()
    try:
        assert wait_until(lambda: server.sessions >= 2)  # it keeps trying, backing off
        assert not user_sync.live
        assert "authorization refused (401)" in (user_sync.last_error or "")
    finally:
        user_sync.stop()


# ---- the broker on the mirror ----


@pytest.fixture
def synced_broker(client: TradovateClient, clock: FakeClock, sync: UserSync
                  ) -> TradovateBroker:
    assert sync.wait(has_order(8812347750), WAIT)
    return TradovateBroker(client, account=ACCOUNT, clock=clock, sync=sync)


def rest_reads(api: respx.MockRouter) -> dict[str, respx.Route]:
    empty = httpx.Response(200, json=[])
    return {path: api.get(path).mock(return_value=empty)
            for path in ("/order/list", "/fill/list", "/order/item", "/orderVersion/deps",
                         "/fill/deps")}


def test_fills_and_reports_come_from_the_mirror_without_a_request(
        api: respx.MockRouter, server: FakeTradovateSocket, sync: UserSync,
        synced_broker: TradovateBroker) -> None:
    reads = rest_reads(api)
    before = synced_broker.fill_revision()
    server.push(*fixture("events_order_filled.json"))
    assert sync.wait(has_order(NEW_ORDER, "Filled"), WAIT)
    assert before is not None and synced_broker.fill_revision() == before + 1  # one fill
    manual = {"id": 8812347800, "accountId": 1234567, "contractId": 3447120,  # no clOrdId
              "timestamp": "2025-12-01T15:41:00.000Z", "action": "Buy", "ordStatus": "Filled"}
    server.push({"e": "props", "d": {"entityType": "order", "eventType": "Created",
                                     "entity": manual}},
                {"e": "props", "d": {"entityType": "fill", "eventType": "Created", "entity": {
                    "id": 5521600, "orderId": 8812347800, "contractId": 3447120,
                    "timestamp": "2025-12-01T15:41:00.100Z", "action": "Buy", "qty": 1,
                    "price": 6861.0, "active": True}}})
    assert sync.wait(lambda mirror: len(mirror.fills()) == 4, WAIT)
    fills = synced_broker.fills()
    assert [(f.client_order_id, f.qty) for f in fills] == [
        ("bw-c-1", 1), ("bw-c-1", 1), ("bw-c-3", 2), ("tradovate:8812347800", 1)]
    assert fills[2].fill_id == "tradovate-demo-5521500" and fills[2].symbol == "MES"
    report = synced_broker.query_order("bw-c-3")
    assert report is not None and (report.status, report.filled_qty) == (OrderStatus.FILLED, 2)
    working = synced_broker.query_order("bw-c-2")
    assert working is not None and working.status is OrderStatus.WORKING
    assert synced_broker.query_order("bw-never-sent") is None
    assert all(not route.called for route in reads.values())
    assert not api["commands"].called and not api["contract"].called


def test_what_the_mirror_has_not_seen_and_a_stopped_sync_read_rest(
        api: respx.MockRouter, sync: UserSync, synced_broker: TradovateBroker) -> None:
    reads = rest_reads(api)
    api["place"].mock(return_value=httpx.Response(200, json={"orderId": NEW_ORDER}))
    synced_broker.submit(OrderRequest("bw-c-3", "MES", Side.SELL, 2, OrderType.MARKET))
    synced_broker.query_order("bw-c-3")  # placed, not in the mirror yet: REST
    assert reads["/order/item"].called
    sync.stop()
    assert wait_until(lambda: not sync.live)
    assert synced_broker.fill_revision() is None  # the runner asks with its bars only
    synced_broker.fills()
    assert reads["/order/list"].called and reads["/fill/list"].called
