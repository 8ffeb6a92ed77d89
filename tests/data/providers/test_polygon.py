"""Polygon/Massive adapter against recorded responses, through the official `massive` client:
its urllib3 pool answers from fixtures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
import urllib3
from pydantic import SecretStr

from botwarden.data.integrations import IntegrationRegistry
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from botwarden.data.providers.polygon import PolygonProvider
from tests.data.providers.helpers import FakeClock, Sleeps, fixture_bytes, memory_registry

START = datetime(2025, 3, 12, 13, 30, tzinfo=UTC)
END = datetime(2025, 3, 12, 13, 33, tzinfo=UTC)
KEY = "pk_TESTKEY_abcdefghijklmnop"


def answer(status: int, body: bytes) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=body, status=status,
                                headers={"Content-Type": "application/json"})


CONTRACTS = answer(200, fixture_bytes("polygon_contracts_mes.json"))


class FakePool:
    """The urllib3 pool the client sends through; answers in order, records requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def request(self, method: str, url: str, fields: Any = None, headers: Any = None,
                **_: Any) -> Any:
        self.calls.append((urlparse(url).path, dict(fields or {}), dict(headers or {})))
        item = self.answers.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(tmp_path: Path, clock: FakeClock) -> IntegrationRegistry:
    return memory_registry(tmp_path, clock, polygon_api_key=SecretStr(KEY))


def provider(registry: IntegrationRegistry, clock: FakeClock, pool: FakePool,
             **kw: Any) -> PolygonProvider:
    return PolygonProvider(SecretStr(KEY), pool=pool, observer=registry, clock=clock,
                           sleep=Sleeps(), **kw)


def test_fetch_resolves_front_month_and_parses_aggregates(registry, clock) -> None:
    pool = FakePool(CONTRACTS, answer(200, fixture_bytes("polygon_aggs_mesh5.json")))
    bars = provider(registry, clock, pool).fetch_bars("MES", START, END)
    np.testing.assert_array_equal(bars.close, [5602.75, 5604.5, 5599.25])
    contracts_path, contracts_params, headers = pool.calls[0]
    assert contracts_path == "/futures/v1/contracts"
    assert contracts_params["product_code"] == "MES" and contracts_params["date"] == "2025-03-12"
    assert headers["Authorization"] == f"Bearer {KEY}"
    aggs_path, aggs_params, _ = pool.calls[1]
    assert aggs_path == "/futures/v1/aggs/MESH5"
    assert aggs_params["resolution"] == "1min"
    assert aggs_params["window_start.gte"] == 1_741_786_200_000_000_000
    assert aggs_params["window_start.lt"] == 1_741_786_380_000_000_000
    assert registry.state("polygon").status is Health.OK


def test_front_month_rolls_at_the_session_after_the_last_trade_date(registry, clock) -> None:
    source = provider(registry, clock, FakePool(CONTRACTS))
    segments = source.front_segments("MES", datetime(2025, 3, 20, tzinfo=UTC),
                                     datetime(2025, 3, 25, tzinfo=UTC))
    assert [s[0] for s in segments] == ["MESH5", "MESM5"]
    # MESH5's last trade date is Friday 2025-03-21; MESM5 serves from Sunday's 18:00 ET open.
    assert segments[0][2] == 1_742_590_800_000_000_000  # 2025-03-21 21:00 UTC (17:00 ET)
    assert segments[1][1] == 1_742_767_200_000_000_000  # 2025-03-23 22:00 UTC (18:00 ET)


def test_403_is_entitlement_revoked(registry, clock) -> None:
    pool = FakePool(CONTRACTS, answer(403, fixture_bytes("polygon_403.json")))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, pool).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.ENTITLEMENT_REVOKED
    assert len(pool.calls) == 2  # no retry of a refusal
    state = registry.state("polygon")
    assert state.status is Health.DOWN and "not entitled" in (state.last_error or "")


def test_429_retries_with_backoff_then_degrades(registry, clock) -> None:
    busy = answer(429, fixture_bytes("polygon_429.json"))
    pool = FakePool(CONTRACTS, busy, busy, busy)
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, pool).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.RATE_LIMITED
    assert len(pool.calls) == 4
    assert registry.state("polygon").status is Health.DEGRADED


def test_timeouts_retry_then_degrade(registry, clock) -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/futures/v1/aggs/MESH5", "timed out")
    pool = FakePool(CONTRACTS, timeout, timeout, timeout)
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, pool).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.TIMEOUT
    assert registry.state("polygon").status is Health.DEGRADED


def test_server_error_then_success(registry, clock) -> None:
    pool = FakePool(CONTRACTS, answer(502, b'{"status":"ERROR","error":"bad gateway"}'),
                    answer(200, fixture_bytes("polygon_aggs_mesh5.json")))
    assert len(provider(registry, clock, pool).fetch_bars("MES", START, END)) == 3


def test_body_that_is_not_json_is_bad_data(registry, clock) -> None:
    pool = FakePool(CONTRACTS, answer(200, b"<html>upstream maintenance</html>"))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, pool).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.PROVIDER_BAD_DATA
    assert registry.state("polygon").status is Health.DEGRADED


def test_off_grid_price_is_bad_data(registry, clock) -> None:
    pool = FakePool(CONTRACTS, answer(200, fixture_bytes("polygon_aggs_offgrid.json")))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, pool).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.PROVIDER_BAD_DATA
    assert "tick grid" in caught.value.detail


def test_missing_key_sends_nothing(tmp_path, clock) -> None:
    registry = memory_registry(tmp_path, clock)
    pool = FakePool()
    unkeyed = PolygonProvider(None, pool=pool, observer=registry, clock=clock)
    with pytest.raises(ProviderError) as caught:
        unkeyed.fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.KEY_MISSING and pool.calls == []


def test_verify_lists_contracts(registry, clock) -> None:
    pool = FakePool(CONTRACTS)
    result = provider(registry, clock, pool).verify()
    assert result.ok and result.details == {"contracts_listed": 2}
    assert registry.state("polygon").last_verified_at == clock.now


class StopPolling(Exception):
    pass


def test_polled_stream_emits_complete_minutes_only(registry, clock) -> None:
    clock.now = datetime(2025, 3, 12, 13, 32, 30, tzinfo=UTC)  # the 13:32 bar is still forming
    pool = FakePool(CONTRACTS, answer(200, fixture_bytes("polygon_aggs_mesh5.json")))

    async def stop(_seconds: float) -> None:
        raise StopPolling

    source = provider(registry, clock, pool, settle_seconds=0, async_sleep=stop)
    got: list[Any] = []

    async def consume() -> None:
        async for bar in source.stream_bars("MES", start=START):
            got.append(bar)

    with pytest.raises(StopPolling):
        asyncio.run(consume())
    assert [b.ts for b in got] == [1_741_786_200_000_000_000, 1_741_786_260_000_000_000]
