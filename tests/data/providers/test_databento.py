"""Databento adapter against recorded responses, through the official client: its HTTP
transport (`requests`, as bound inside `databento.common.http`) answers from fixtures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import databento
import databento.common.http as bento_http
import databento_dbn as dbn
import numpy as np
import pytest
import requests
from pydantic import SecretStr

from botwarden.data.integrations import IntegrationRegistry
from botwarden.data.providers.databento import DatabentoProvider
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from tests.data.providers.helpers import (
    FakeClock,
    Sleeps,
    fixture_bytes,
    memory_registry,
)

START = datetime(2025, 3, 12, 13, 30, tzinfo=UTC)
END = datetime(2025, 3, 12, 13, 35, tzinfo=UTC)
KEY = "db-TESTKEY0123456789abcdefghijklm"


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Any:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r._content_consumed = True
    r.headers.update(headers or {})
    return r


class FakeTransport:
    """Stands in for the `requests` module inside databento's HTTP layer."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _next(self, url: str, **kwargs: Any) -> Any:
        self.calls.append((url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    post = get = _next


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(tmp_path: Path, clock: FakeClock) -> IntegrationRegistry:
    return memory_registry(tmp_path, clock, databento_api_key=SecretStr(KEY))


def provider(registry: IntegrationRegistry, clock: FakeClock, sleeps: Sleeps | None = None,
             **kw: Any) -> DatabentoProvider:
    return DatabentoProvider(SecretStr(KEY), observer=registry, clock=clock,
                             sleep=sleeps or Sleeps(), **kw)


def install(monkeypatch: pytest.MonkeyPatch, *answers: Any) -> FakeTransport:
    transport = FakeTransport(*answers)
    monkeypatch.setattr(bento_http, "requests", transport)
    return transport


def test_fetch_parses_recorded_dbn_into_validated_bars(monkeypatch, registry, clock) -> None:
    transport = install(monkeypatch, response(200, fixture_bytes("databento_mes_ohlcv_1m.dbn")))
    bars = provider(registry, clock).fetch_bars("MES", START, END)
    assert len(bars) == 5 and bars.symbol == "MES"
    assert bars.ts[0] == 1_741_786_200_000_000_000
    np.testing.assert_array_equal(bars.close, [5602.75, 5604.5, 5599.25, 5597.0, 5600.75])
    sent = transport.calls[0][1]["data"]
    assert sent["symbols"] == "MES.c.0" and sent["stype_in"] == "continuous"
    assert sent["dataset"] == "GLBX.MDP3" and sent["schema"] == "ohlcv-1m"
    state = registry.state("databento")
    assert state.status is Health.OK and state.last_success_at == clock.now
    key = ("databento", "fetch", clock.now.replace(second=0, microsecond=0))
    agg = registry.telemetry.drain()[key]
    assert (agg.calls, agg.ok_calls, agg.rows) == (1, 1, 5)


def test_fetch_resamples_to_five_minutes(monkeypatch, registry, clock) -> None:
    install(monkeypatch, response(200, fixture_bytes("databento_mes_ohlcv_1m.dbn")))
    bars = provider(registry, clock).fetch_bars("MES", START, END, "5m")
    assert len(bars) == 1
    assert (bars.open[0], bars.high[0], bars.low[0], bars.close[0]) == (
        5600.0, 5605.0, 5596.5, 5600.75)


def test_429_is_rate_limited_backs_off_and_degrades(monkeypatch, registry, clock) -> None:
    busy = response(429, fixture_bytes("databento_429.json"), {"Retry-After": "2"})
    install(monkeypatch, busy, busy, busy)
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock, sleeps).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.RATE_LIMITED
    assert caught.value.code == "INTEGRATION_RATE_LIMITED"
    assert len(sleeps.calls) == 2 and all(s >= 2.0 for s in sleeps.calls)  # Retry-After kept
    state = registry.state("databento")
    assert state.status is Health.DEGRADED and state.last_error_code == "RATE_LIMITED"
    assert KEY not in (state.last_error or "")


def test_429_then_success_recovers(monkeypatch, registry, clock) -> None:
    dbn_body = fixture_bytes("databento_mes_ohlcv_1m.dbn")
    install(monkeypatch, response(200, dbn_body), response(429, fixture_bytes(
        "databento_429.json")), response(200, dbn_body))
    source = provider(registry, clock)
    source.fetch_bars("MES", START, END)  # first success: NOT_VERIFIED -> OK
    seen = []
    registry.subscribe(seen.append)
    assert len(source.fetch_bars("MES", START, END)) == 5
    assert [(t.to_status, t.code) for t in seen][-2:] == [
        (Health.DEGRADED, "RATE_LIMITED"), (Health.OK, "RECOVERED")]


def test_403_is_entitlement_revoked_down_without_retry(monkeypatch, registry, clock) -> None:
    transport = install(monkeypatch, response(403, fixture_bytes("databento_403.json")))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.ENTITLEMENT_REVOKED
    assert caught.value.status == 424
    assert len(transport.calls) == 1
    state = registry.state("databento")
    assert state.status is Health.DOWN
    assert "license does not include dataset" in (state.last_error or "")
    assert state.kill_trigger(clock.now, registry.policy) == "ENTITLEMENT_REVOKED"


def test_timeouts_retry_then_degrade(monkeypatch, registry, clock) -> None:
    timeout = requests.exceptions.ReadTimeout("read timed out")
    transport = install(monkeypatch, timeout, timeout, timeout)
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.TIMEOUT
    assert len(transport.calls) == 3
    assert registry.state("databento").status is Health.DEGRADED


def test_one_server_error_retried_is_not_a_degradation(monkeypatch, registry, clock) -> None:
    install(monkeypatch, response(503, b'{"detail": "gateway overloaded"}'),
            response(200, fixture_bytes("databento_mes_ohlcv_1m.dbn")))
    assert len(provider(registry, clock).fetch_bars("MES", START, END)) == 5
    state = registry.state("databento")
    assert state.status is Health.OK and state.last_error_code == "SERVER_ERROR"


def test_5xx_exhausted_degrades(monkeypatch, registry, clock) -> None:
    bad = response(500, b'{"detail": "internal error"}')
    install(monkeypatch, bad, bad, bad)
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.SERVER_ERROR
    assert registry.state("databento").status is Health.DEGRADED


def test_undecodable_payload_is_bad_data(monkeypatch, registry, clock) -> None:
    install(monkeypatch, response(200, b"<html>proxy error</html>"))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.PROVIDER_BAD_DATA
    assert registry.state("databento").status is Health.DEGRADED


def test_invalid_record_refuses_the_whole_payload(monkeypatch, registry, clock) -> None:
    metadata = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.CONTINUOUS,
                            stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.OHLCV_1M,
                            symbols=["MES.c.0"])
    scale = 1_000_000_000
    good = dbn.OHLCVMsg(0x21, 1, 7, 1_741_786_200_000_000_000, 5600 * scale, 5601 * scale,
                        5599 * scale, 5600 * scale, 10)
    off_grid = dbn.OHLCVMsg(0x21, 1, 7, 1_741_786_260_000_000_000, 5600 * scale,
                            int(5601.1 * scale), 5599 * scale, 5600 * scale, 10)
    install(monkeypatch, response(200, metadata.encode() + bytes(good) + bytes(off_grid)))
    with pytest.raises(ProviderError) as caught:
        provider(registry, clock).fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.PROVIDER_BAD_DATA
    assert "off the 0.25 tick grid" in caught.value.detail


def test_missing_key_sends_nothing(monkeypatch, tmp_path, clock) -> None:
    transport = install(monkeypatch)
    registry = memory_registry(tmp_path, clock)
    unkeyed = DatabentoProvider(None, observer=registry, clock=clock)
    with pytest.raises(ProviderError) as caught:
        unkeyed.fetch_bars("MES", START, END)
    assert caught.value.reason is ErrorCode.KEY_MISSING
    assert caught.value.code == "INTEGRATION_KEY_MISSING"
    assert transport.calls == []
    result = unkeyed.verify()
    assert not result.ok and result.code == "KEY_MISSING" and transport.calls == []
    assert registry.state("databento").configured is False


def test_verify_uses_dataset_range(monkeypatch, registry, clock) -> None:
    transport = install(monkeypatch, response(200, fixture_bytes("databento_dataset_range.json")))
    result = provider(registry, clock).verify()
    assert result.ok and result.details["dataset"] == "GLBX.MDP3"
    assert "metadata.get_dataset_range" in transport.calls[0][0]
    state = registry.state("databento")
    assert state.status is Health.OK and state.last_verified_at == clock.now


def test_verify_401_is_down(monkeypatch, registry, clock) -> None:
    install(monkeypatch, response(401, b'{"detail": "Authentication failed."}'))
    result = provider(registry, clock).verify()
    assert not result.ok and result.code == "ENTITLEMENT_REVOKED"
    assert registry.state("databento").status is Health.DOWN


class FakeLive:
    """The Live client's surface: subscribe, async iteration over DBN records, stop."""

    def __init__(self, records: list[Any], fail_subscribe: Exception | None = None) -> None:
        self.records = records
        self.fail_subscribe = fail_subscribe
        self.subscribed: dict[str, Any] = {}
        self.stopped = False

    def subscribe(self, **kwargs: Any) -> int:
        if self.fail_subscribe is not None:
            raise self.fail_subscribe
        self.subscribed = kwargs
        return 1

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        for record in self.records:
            if isinstance(record, BaseException):
                raise record
            yield record

    def stop(self) -> None:
        self.stopped = True


def _records() -> list[Any]:
    store = databento.DBNStore.from_bytes(fixture_bytes("databento_mes_ohlcv_1m.dbn"))
    return list(store)


def test_live_stream_yields_bars_then_classifies_the_drop(registry, clock) -> None:
    live = FakeLive([*_records(), databento.BentoError("connection lost")])
    source = provider(registry, clock, live_factory=lambda: live)
    got: list[Any] = []

    async def consume() -> None:
        async for bar in source.stream_bars("MES", start=START):
            got.append(bar)

    with pytest.raises(ProviderError) as caught:
        asyncio.run(consume())
    assert caught.value.reason is ErrorCode.DISCONNECTED
    assert [b.close for b in got] == [5602.75, 5604.5, 5599.25, 5597.0, 5600.75]
    assert live.subscribed["symbols"] == ["MES.c.0"] and live.subscribed["start"] == START
    assert live.stopped


def test_live_auth_refusal_is_entitlement_revoked(registry, clock) -> None:
    live = FakeLive([], fail_subscribe=ValueError("User authentication failed: bad key"))
    source = provider(registry, clock, live_factory=lambda: live)

    async def consume() -> None:
        async for _ in source.stream_bars("MES"):
            pass

    with pytest.raises(ProviderError) as caught:
        asyncio.run(consume())
    assert caught.value.reason is ErrorCode.ENTITLEMENT_REVOKED
    assert registry.state("databento").status is Health.DOWN
