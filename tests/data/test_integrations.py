"""The integration registry: status machine, telemetry aggregation, persistence and honest
start-up states, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations import IntegrationRegistry, StatusPolicy, persist
from botwarden.data.integrations.status import (
    IntegrationState,
    apply_failure,
    apply_success,
)
from botwarden.data.integrations.telemetry import summarise, usage_by_provider
from botwarden.data.providers.base import CallRecord
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError
from botwarden.store.models import IntegrationEvent, IntegrationTelemetry
from tests.data.builders import make_bars, minutes
from tests.data.providers.helpers import FakeClock

NOW = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)
POLICY = StatusPolicy(degrade_after=3, storm_threshold=5, storm_window=timedelta(seconds=60))


def ok_state() -> IntegrationState:
    return IntegrationState("databento", "data", True, Health.OK)


def err(code: ErrorCode) -> ProviderError:
    return ProviderError("databento", code, code.value.lower())


# ---- the status machine (pure) ----


def test_transient_failures_degrade_only_after_the_retries() -> None:
    state, seen = ok_state(), []
    for _ in range(3):
        state, transition = apply_failure(state, err(ErrorCode.TIMEOUT), NOW, POLICY)
        seen.append(transition)
    assert seen[:2] == [None, None] and state.status is Health.DEGRADED
    assert seen[2] is not None and seen[2].code == "TIMEOUT"


def test_rate_limit_degrades_at_once_and_a_storm_is_an_event() -> None:
    state, transition = apply_failure(ok_state(), err(ErrorCode.RATE_LIMITED), NOW, POLICY)
    assert state.status is Health.DEGRADED and transition.code == "RATE_LIMITED"
    codes = []
    for i in range(1, 6):
        state, transition = apply_failure(state, err(ErrorCode.RATE_LIMITED),
                                          NOW + timedelta(seconds=i), POLICY)
        codes.append(transition.code if transition else None)
    assert codes == [None, None, None, "RATE_LIMIT_STORM", None]
    assert state.kill_trigger(NOW + timedelta(seconds=5), POLICY) == "RATE_LIMIT_STORM"
    assert state.kill_trigger(NOW + timedelta(seconds=120), POLICY) is None  # window passed


def test_entitlement_is_down_and_success_recovers() -> None:
    state, transition = apply_failure(ok_state(), err(ErrorCode.ENTITLEMENT_REVOKED), NOW,
                                      POLICY)
    assert state.status is Health.DOWN and transition.to_status is Health.DOWN
    assert state.kill_trigger(NOW, POLICY) == "ENTITLEMENT_REVOKED"
    state, _ = apply_failure(state, err(ErrorCode.TIMEOUT), NOW, POLICY)
    assert state.status is Health.DOWN  # a later blip never improves it
    state, transition = apply_success(state, NOW)
    assert state.status is Health.OK and transition.code == "RECOVERED"
    assert state.last_error_code == "TIMEOUT"  # the last error stays visible


def test_our_own_bad_requests_say_nothing_of_health() -> None:
    for code in (ErrorCode.NO_DATA, ErrorCode.BAD_REQUEST):
        state, transition = apply_failure(ok_state(), err(code), NOW, POLICY)
        assert state == ok_state() and transition is None


@given(st.lists(st.sampled_from([None, *ErrorCode]), max_size=40))
def test_status_is_always_explained(outcomes: list[ErrorCode | None]) -> None:
    """Whatever happens: a success leaves OK; DOWN only ever follows a refusal."""
    state = ok_state()
    for i, code in enumerate(outcomes):
        at = NOW + timedelta(seconds=i)
        if code is None:
            state, _ = apply_success(state, at)
            assert state.status is Health.OK and state.consecutive_failures == 0
        else:
            state, _ = apply_failure(state, err(code), at, POLICY)
        if state.status is Health.DOWN:
            assert state.last_error_code in {"ENTITLEMENT_REVOKED", "KEY_MISSING"} or any(
                c in (ErrorCode.ENTITLEMENT_REVOKED, ErrorCode.KEY_MISSING)
                for c in outcomes[: i + 1])


# ---- telemetry ----


def test_summary_weights_latency_by_calls() -> None:
    summary = summarise([(10, 9, 100, 100.0, 30.0), (1, 1, 5, 500.0, 500.0)])
    assert (summary.calls, summary.ok, summary.errors, summary.rows) == (11, 10, 1, 105)
    assert summary.avg_latency_ms == pytest.approx(600 / 11)
    assert summary.p50_latency_ms == 10.0 and summary.max_latency_ms == 500.0
    assert summarise([]).calls == 0


def make_registry(settings: Settings, engine: Engine, clock: FakeClock,
                  **keys: SecretStr) -> IntegrationRegistry:
    config = settings.model_copy(update=keys)
    return IntegrationRegistry(config, engine, clock=clock, policy=POLICY)


def record(provider: str, at: datetime, ok: bool = True, latency: float = 10.0,
           rows: int = 1, error: ProviderError | None = None) -> CallRecord:
    return CallRecord(provider, "fetch", ok, latency, rows, at, error)


def test_calls_are_aggregated_per_minute_and_upserted(settings, engine) -> None:
    clock = FakeClock(NOW)
    registry = make_registry(settings, engine, clock)
    for second in range(0, 120, 10):  # 12 calls over two minutes
        registry.on_call(record("replay", NOW + timedelta(seconds=second), rows=100))
    registry.flush()
    registry.on_call(record("replay", NOW + timedelta(seconds=5), ok=False, latency=50.0, rows=0,
                            error=ProviderError("replay", ErrorCode.TIMEOUT, "slow")))
    registry.flush()  # adds to the existing bucket
    with engine.connect() as conn:
        rows = conn.execute(sa.select(IntegrationTelemetry).where(
            IntegrationTelemetry.provider == "replay", IntegrationTelemetry.operation == "fetch"
        ).order_by(IntegrationTelemetry.bucket_start)).all()
    assert [(r.calls, r.ok_calls, r.rows) for r in rows] == [(7, 6, 600), (6, 6, 600)]
    assert rows[0].max_latency_ms == 50.0
    clock.advance(120)
    usage = usage_by_provider(engine, clock(), {"last_hour": timedelta(hours=1)})
    assert usage["replay"]["last_hour"].calls >= 13


def test_old_buckets_are_pruned(settings, engine) -> None:
    clock = FakeClock(NOW)
    registry = make_registry(settings, engine, clock)
    registry.on_call(record("replay", NOW - timedelta(days=10)))
    registry.on_call(record("replay", NOW))
    registry.flush()
    with engine.connect() as conn:
        left = conn.execute(sa.select(IntegrationTelemetry.bucket_start)).scalars().all()
    assert len(left) >= 1 and all(b.replace(tzinfo=UTC) >= NOW - timedelta(days=7)
                                  for b in left)


# ---- start-up states and persistence ----


def test_honest_start_without_keys(settings, engine) -> None:
    registry = make_registry(settings, engine, FakeClock(NOW))
    stored = persist.load_states(engine)
    for name in ("databento", "polygon", "unusual_whales", "tradovate"):
        assert stored[name].configured is False and stored[name].status is Health.DOWN
        assert stored[name].last_error_code == "KEY_MISSING"
        assert "BOTWARDEN_" in (stored[name].last_error or "")
    assert stored["replay"].status is Health.DOWN  # empty store: nothing to replay
    assert stored["replay"].last_error_code == "NO_DATA"
    assert stored["paper"].status is Health.OK
    assert registry.usable_data_providers() == []


def test_replay_is_ok_when_data_exists(settings, engine) -> None:
    BarStore.from_settings(settings).write(make_bars(minutes("2025-03-12 13:00", 10)),
                                           dataset="TEST", provider="test", synthetic=True)
    registry = make_registry(settings, engine, FakeClock(NOW))
    assert registry.status("replay") is Health.OK
    assert registry.usable_data_providers() == ["replay"]


def test_configured_keys_are_unverified_until_checked(settings, engine) -> None:
    secret = "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ1234"
    registry = make_registry(settings, engine, FakeClock(NOW),
                             databento_api_key=SecretStr(secret))
    state = registry.state("databento")
    assert state.configured and state.status is Health.DEGRADED
    assert state.last_error_code == "NOT_VERIFIED"
    with engine.connect() as conn:
        dumped = " ".join(str(v) for row in conn.execute(sa.select(IntegrationEvent)).all()
                          for v in row)
    assert secret not in dumped


def test_status_changes_persist_once_across_processes(settings, engine) -> None:
    clock = FakeClock(NOW)
    first = make_registry(settings, engine, clock)
    second = make_registry(settings, engine, clock)  # another process, same database
    failure = ProviderError("replay-x", ErrorCode.ENTITLEMENT_REVOKED, "403")
    first.on_call(record("replay-x", NOW, ok=False, error=failure))
    second.on_call(record("replay-x", NOW, ok=False, error=failure))
    events = persist.recent_events(engine, "replay-x")
    assert [(e["from_status"], e["to_status"]) for e in events] == [(None, "DOWN")]
    assert persist.load_state(engine, "replay-x").status is Health.DOWN


def test_listeners_hear_every_change(settings, engine) -> None:
    registry = make_registry(settings, engine, FakeClock(NOW))
    heard = []
    unsubscribe = registry.subscribe(heard.append)
    registry.on_call(record("replay-y", NOW, ok=False,
                            error=ProviderError("replay-y", ErrorCode.RATE_LIMITED, "429")))
    registry.on_call(record("replay-y", NOW + timedelta(seconds=1)))
    unsubscribe()
    assert [(t.to_status, t.code) for t in heard] == [
        (Health.DEGRADED, "RATE_LIMITED"), (Health.OK, "RECOVERED")]


def test_background_verification_records_key_missing_without_network(settings,
                                                                     engine) -> None:
    registry = make_registry(settings, engine, FakeClock(NOW))
    registry.start_background_verification().join(timeout=30)
    assert registry.verify("databento").code == "KEY_MISSING"
    assert registry.verify("tradovate").code == "KEY_MISSING"
    assert registry.verify("paper").ok
