"""Unusual Whales adapter against recorded responses (respx stands in for the network)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from botwarden.data.unusual_whales import BASE_URL, FLOW_ALERTS, UnusualWhalesClient
from tests.data.providers.helpers import FakeClock, Sleeps, fixture_json, memory_registry

KEY = "uw-test-key-0000"
URL = BASE_URL + FLOW_ALERTS


def client(tmp_path: Path) -> tuple[UnusualWhalesClient, object]:
    clock = FakeClock()
    registry = memory_registry(tmp_path, clock, unusual_whales_api_key=SecretStr(KEY))
    return UnusualWhalesClient(SecretStr(KEY), observer=registry, clock=clock,
                               sleep=Sleeps()), registry


@respx.mock
def test_alerts_are_parsed_with_bearer_auth(tmp_path: Path) -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(200, json=fixture_json(
        "uw_flow_alerts.json")))
    uw, registry = client(tmp_path)
    alerts = uw.flow_alerts("qqq", limit=500)
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.url.params["ticker_symbol"] == "QQQ" and request.url.params["limit"] == "200"
    assert [a.type for a in alerts] == ["call", "put"]
    assert alerts[0].total_premium == Decimal("143920") and alerts[0].strike == Decimal("611")
    assert alerts[1].has_sweep is True
    assert registry.state("unusual_whales").status is Health.OK


@respx.mock
@pytest.mark.parametrize(("status", "reason", "health"), [
    (401, ErrorCode.ENTITLEMENT_REVOKED, Health.DOWN),
    (429, ErrorCode.RATE_LIMITED, Health.DEGRADED),
    (500, ErrorCode.SERVER_ERROR, Health.DEGRADED),
])
def test_errors_are_classified(tmp_path: Path, status, reason, health) -> None:
    respx.get(URL).mock(return_value=httpx.Response(status, json={"error": "nope"}))
    uw, registry = client(tmp_path)
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY")
    assert caught.value.reason is reason
    assert registry.state("unusual_whales").status is health


@respx.mock
def test_timeout_and_malformed_payloads(tmp_path: Path) -> None:
    respx.get(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    uw, _ = client(tmp_path)
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY")
    assert caught.value.reason is ErrorCode.TIMEOUT
    respx.get(URL).mock(return_value=httpx.Response(200, json={"alerts": []}))
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY")
    assert caught.value.reason is ErrorCode.PROVIDER_BAD_DATA
    respx.get(URL).mock(return_value=httpx.Response(200, json={"data": [{"ticker": "SPY"}]}))
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY")
    assert "created_at" in caught.value.detail


@respx.mock
def test_without_key_nothing_is_sent(tmp_path: Path) -> None:
    route = respx.get(URL)
    uw = UnusualWhalesClient(None)
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY")
    assert caught.value.code == "INTEGRATION_KEY_MISSING" and not route.called


def test_ticker_is_validated(tmp_path: Path) -> None:
    uw, _ = client(tmp_path)
    with pytest.raises(ProviderError) as caught:
        uw.flow_alerts("SPY; DROP")
    assert caught.value.reason is ErrorCode.BAD_REQUEST
