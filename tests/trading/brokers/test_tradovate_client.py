"""Tradovate's REST client: log-in, renewal, penalty tickets, 401/429/423, timeouts,
secrets kept out of messages, and its verifier in the integration registry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from botwarden.config import Settings
from botwarden.data.integrations.registry import IntegrationRegistry, IntegrationSpec
from botwarden.data.providers.base import ProviderKind
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from botwarden.trading.brokers.tradovate import (
    TradovateClient,
    TradovateCredentials,
    is_configured,
    register_tradovate,
)
from botwarden.trading.brokers.tradovate.session import close_sessions, process_client
from tests.trading.brokers.conftest import (
    BASE,
    CREDENTIALS,
    FakeClock,
    Recorder,
    body,
    load,
    ok,
)


def accounts(client: TradovateClient) -> object:
    return client.get("/account/list", operation="accounts")


def test_logs_in_once_and_sends_the_token(api: respx.MockRouter,
                                          client: TradovateClient) -> None:
    accounts(client)
    accounts(client)
    assert api["token"].call_count == 1
    sent = body(api["token"])
    assert sent == {"name": "bw-demo", "password": "hunter2-password", "appId": "Botwarden",
                    "appVersion": "1.0", "cid": 8812, "sec": "s3cr3t-api-key"}
    request = api["accounts"].calls.last.request
    assert request.headers["Authorization"] == "Bearer demo-access-token-1"
    assert client.user_id == 2710431


def test_renews_fifteen_minutes_before_expiry(api: respx.MockRouter, client: TradovateClient,
                                              clock: FakeClock) -> None:
    accounts(client)  # token expires 16:30
    clock.advance(minutes=74)  # 16:14: not yet
    accounts(client)
    assert api["renew"].call_count == 0
    clock.advance(minutes=2)  # 16:16: inside the 15-minute margin
    accounts(client)
    assert api["renew"].call_count == 1 and api["token"].call_count == 1
    assert api["renew"].calls.last.request.headers["Authorization"] == (
        "Bearer demo-access-token-1")
    assert api["accounts"].calls.last.request.headers["Authorization"] == (
        "Bearer demo-access-token-2")
    clock.advance(minutes=90)  # 17:46: the renewed token (until 18:00) is renewed in turn
    accounts(client)
    assert api["renew"].call_count == 2


def test_an_expired_or_unrenewable_session_logs_in_again(api: respx.MockRouter,
                                                         client: TradovateClient,
                                                         clock: FakeClock) -> None:
    accounts(client)
    clock.advance(hours=2)  # 17:00, past the 16:30 expiry: no renewal possible
    later = {**load("access_token.json"), "expirationTime": "2025-12-01T18:30:00Z"}
    api["token"].mock(return_value=httpx.Response(200, json=later))
    accounts(client)
    assert (api["token"].call_count, api["renew"].call_count) == (2, 0)
    api["renew"].mock(return_value=httpx.Response(401))
    clock.advance(minutes=80)  # 18:20: renewal is due, and refused
    accounts(client)
    assert (api["token"].call_count, api["renew"].call_count) == (3, 1)


def test_a_refused_token_logs_in_once_more_then_gives_up(api: respx.MockRouter,
                                                         client: TradovateClient) -> None:
    api["accounts"].mock(side_effect=[httpx.Response(401), ok("account_list.json")])
    accounts(client)
    assert api["token"].call_count == 2
    api["accounts"].mock(return_value=httpx.Response(401))
    with pytest.raises(ProviderError) as caught:
        accounts(client)
    assert caught.value.reason is ErrorCode.ENTITLEMENT_REVOKED


def test_refused_credentials_are_entitlement_revoked_without_the_secrets(
        api: respx.MockRouter, client: TradovateClient) -> None:
    api["token"].mock(return_value=ok("access_token_refused.json"))
    with pytest.raises(ProviderError) as caught:
        accounts(client)
    assert caught.value.reason is ErrorCode.ENTITLEMENT_REVOKED
    assert "Incorrect username or password" in caught.value.detail
    assert "hunter2" not in repr(CREDENTIALS) and "s3cr3t" not in repr(CREDENTIALS)


def test_penalty_ticket_waits_and_resends_with_the_ticket(api: respx.MockRouter,
                                                          client: TradovateClient,
                                                          slept: list[float]) -> None:
    api["token"].mock(side_effect=[ok("penalty_ticket.json"), ok("access_token.json")])
    accounts(client)
    assert slept == [15.0]
    assert "p-ticket" not in body(api["token"], 0)
    assert body(api["token"], 1)["p-ticket"] == "c2FtcGxlLXBlbmFsdHktdGlja2V0"


def test_captcha_penalty_is_a_rate_limit_of_an_hour(api: respx.MockRouter,
                                                    client: TradovateClient) -> None:
    api["token"].mock(return_value=ok("penalty_captcha.json"))
    with pytest.raises(ProviderError) as caught:
        accounts(client)
    assert caught.value.reason is ErrorCode.RATE_LIMITED
    assert caught.value.retry_after == 3600


def test_429_backs_off_and_retries_reads(api: respx.MockRouter, client: TradovateClient,
                                         slept: list[float], recorder: Recorder) -> None:
    api["accounts"].mock(side_effect=[httpx.Response(429), ok("account_list.json")])
    assert isinstance(accounts(client), list)
    assert len(slept) == 1
    assert [(c.operation, c.ok, c.error and c.error.reason) for c in recorder.calls] == [
        ("accounts", False, ErrorCode.RATE_LIMITED), ("accounts", True, None)]


def test_commands_are_sent_once(api: respx.MockRouter, client: TradovateClient) -> None:
    api["place"].mock(return_value=httpx.Response(429))
    with pytest.raises(ProviderError) as caught:
        client.post("/order/placeorder", {}, operation="submit")
    assert caught.value.reason is ErrorCode.RATE_LIMITED
    assert api["place"].call_count == 1


@pytest.mark.parametrize(("response", "reason"), [
    (httpx.Response(423), ErrorCode.RATE_LIMITED),
    (httpx.Response(503), ErrorCode.SERVER_ERROR),
    (httpx.Response(200, text="<html>"), ErrorCode.PROVIDER_BAD_DATA),
    (httpx.ReadTimeout("timed out"), ErrorCode.TIMEOUT),
])
def test_failures_are_classified(api: respx.MockRouter, client: TradovateClient,
                                 response: object, reason: ErrorCode) -> None:
    api["accounts"].mock(side_effect=[response] * 3)
    with pytest.raises(ProviderError) as caught:
        accounts(client)
    assert caught.value.reason is reason


def test_not_configured_sends_nothing(api: respx.MockRouter) -> None:
    client = TradovateClient(None)
    with pytest.raises(ProviderError) as caught:
        accounts(client)
    assert caught.value.reason is ErrorCode.KEY_MISSING
    assert api["token"].call_count == 0
    result = client.verify()
    assert (result.ok, result.code) == (False, "KEY_MISSING")


def test_credentials_come_from_the_settings() -> None:
    settings = Settings(tradovate_username="u", tradovate_password=SecretStr("p"),
                        tradovate_cid="8812", tradovate_sec=SecretStr("s"),
                        tradovate_environment="live")
    credentials = TradovateCredentials.from_settings(settings)
    assert credentials is not None and credentials.environment == "live"
    assert TradovateClient(credentials).base_url == "https://live.tradovateapi.com/v1"
    assert is_configured(settings)
    assert not is_configured(Settings(tradovate_username="u",
                                      tradovate_password=SecretStr("p")))


def test_verify_requests_a_token_then_renews_the_session(api: respx.MockRouter,
                                                         client: TradovateClient) -> None:
    first = client.verify()
    assert first.ok and first.details["user_id"] == 2710431
    assert "demo-access-token" not in str(first.details)
    second = client.verify()
    assert second.ok
    assert (api["token"].call_count, api["renew"].call_count) == (1, 1)


def test_registry_verifies_tradovate(api: respx.MockRouter, tmp_path: Path,
                                     clock: FakeClock) -> None:
    settings = Settings(data_dir=tmp_path, tradovate_username="bw-demo",
                        tradovate_password=SecretStr("hunter2-password"),
                        tradovate_cid="8812", tradovate_sec=SecretStr("s3cr3t-api-key"))
    registry = IntegrationRegistry(settings, clock=clock, specs=[
        IntegrationSpec("replay", ProviderKind.DATA, True, "local bars"),
        IntegrationSpec("tradovate", ProviderKind.BROKER, True, "BOTWARDEN_TRADOVATE_*")])
    try:
        client = register_tradovate(registry, settings)
        assert client is process_client(settings) and client.observer is registry
        assert registry.status("tradovate") is Health.DEGRADED  # keys present, not verified
        assert registry.verify("tradovate").ok
        assert registry.status("tradovate") is Health.OK
        close_sessions()  # a new process: its client holds no session yet
        api["token"].mock(return_value=ok("access_token_refused.json"))
        client = register_tradovate(registry, settings)
        assert client is not None
        result = registry.verify("tradovate")
        assert (result.ok, result.code) == (False, "ENTITLEMENT_REVOKED")
        assert registry.status("tradovate") is Health.DOWN
        assert "hunter2" not in result.message and client.base_url == BASE
    finally:
        close_sessions()


def test_nothing_is_registered_without_credentials(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tradovate_username="bw-demo")
    registry = IntegrationRegistry(settings, specs=[
        IntegrationSpec("replay", ProviderKind.DATA, True, "local bars"),
        IntegrationSpec("tradovate", ProviderKind.BROKER, False, "BOTWARDEN_TRADOVATE_*")])
    assert register_tradovate(registry, settings) is None
    assert registry.verify("tradovate").code == "KEY_MISSING"
