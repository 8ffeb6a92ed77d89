"""Tradovate's API stood in for by respx with the responses under fixtures/tradovate."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from botwarden.trading.brokers.tradovate import (
    URLS,
    TradovateBroker,
    TradovateClient,
    TradovateCredentials,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tradovate"
BASE = URLS["demo"]
ACCOUNT_ID, ACCOUNT = 1234567, "DEMO1234567"
CREDENTIALS = TradovateCredentials("bw-demo", SecretStr("hunter2-password"), "8812",
                                   SecretStr("s3cr3t-api-key"), environment="demo")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ok(name: str) -> httpx.Response:
    return httpx.Response(200, json=load(name))


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 12, 1, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def on_call(self, record: Any) -> None:
        self.calls.append(record)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The account, contracts and token every test needs; tests add or replace routes."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/auth/accesstokenrequest", name="token").mock(
            return_value=ok("access_token.json"))
        router.get("/auth/renewaccesstoken", name="renew").mock(
            return_value=ok("renew_access_token.json"))
        router.get("/account/list", name="accounts").mock(return_value=ok("account_list.json"))
        router.get("/contract/suggest", name="suggest").mock(
            return_value=ok("contract_suggest_mes.json"))
        router.get("/contractMaturity/items", name="maturities").mock(
            return_value=ok("contract_maturity_items.json"))
        router.get("/contract/item", name="contract").mock(
            return_value=ok("contract_item_mesz5.json"))
        router.get("/command/list", name="commands").mock(return_value=ok("command_list.json"))
        router.post("/order/placeorder", name="place").mock(return_value=ok("place_order.json"))
        yield router


@pytest.fixture
def client(clock: FakeClock, slept: list[float], recorder: Recorder) -> TradovateClient:
    return TradovateClient(CREDENTIALS, clock=clock, sleep=slept.append,
                           rng=random.Random(0), observer=recorder)


@pytest.fixture
def broker(client: TradovateClient, clock: FakeClock) -> TradovateBroker:
    return TradovateBroker(client, account=ACCOUNT, clock=clock)


def body(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)
