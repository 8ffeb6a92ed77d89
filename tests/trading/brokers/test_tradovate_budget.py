"""Tradovate's request budget on our side (budget.py): reads stop at their share of the
hour, orders keep the rest, and a request over it is refused unsent, without retries."""

from __future__ import annotations

import httpx
import pytest
import respx

from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.trading.brokers import BrokerRateLimited
from botwarden.trading.brokers.tradovate import TradovateBroker, TradovateClient
from botwarden.trading.brokers.tradovate.budget import BudgetSpent, RequestBudget
from tests.trading.brokers.conftest import ACCOUNT, CREDENTIALS, FakeClock, Recorder


def test_reads_stop_at_their_share_and_commands_keep_the_rest() -> None:
    budget = RequestBudget(per_hour=5, read_share=0.8)
    for _ in range(4):
        budget.take(read=True)
    with pytest.raises(BudgetSpent, match="4 reads"):
        budget.take(read=True)
    budget.take(read=False)  # the fifth request of the hour: an order still goes
    with pytest.raises(BudgetSpent, match="5 requests"):
        budget.take(read=False)


def test_a_budget_needs_room_for_a_request() -> None:
    with pytest.raises(ValueError):
        RequestBudget(per_hour=0)
    with pytest.raises(ValueError):
        RequestBudget(read_share=0)


def test_a_read_over_budget_is_refused_unsent_and_reported(
        api: respx.MockRouter, clock: FakeClock, slept: list[float],
        recorder: Recorder) -> None:
    client = TradovateClient(CREDENTIALS, clock=clock, sleep=slept.append, observer=recorder,
                             budget=RequestBudget(per_hour=3, read_share=0.67))
    route = api.get("/position/list").mock(return_value=httpx.Response(200, json=[]))
    client.get("/position/list", operation="position")
    client.get("/position/list", operation="position")
    with pytest.raises(ProviderError) as refused:
        client.get("/position/list", operation="position")
    assert refused.value.reason is ErrorCode.RATE_LIMITED and refused.value.retry_after
    assert route.call_count == 2 and slept == []  # not sent, not retried
    assert [(c.operation, c.ok) for c in recorder.calls][-1] == ("position", False)


def test_the_broker_tells_a_spent_budget_as_rate_limited(api: respx.MockRouter,
                                                         clock: FakeClock) -> None:
    api.get("/position/list").mock(return_value=httpx.Response(200, json=[]))
    client = TradovateClient(CREDENTIALS, clock=clock, sleep=lambda _s: None,
                             budget=RequestBudget(per_hour=1))
    broker = TradovateBroker(client, account=ACCOUNT, clock=clock)
    with pytest.raises(BrokerRateLimited):
        broker.position("MES")  # the account list takes the hour's one read
