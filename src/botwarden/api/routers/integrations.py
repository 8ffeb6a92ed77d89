"""Integrations: every provider and broker with its honest state, and a live verify.

The registry lives on `app.state.integrations`, built on first use from the app's settings
and engine. `start_integration_checks(app)` (called by the app factory) runs the start-up
entitlement checks in a background thread and starts the telemetry flusher.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel

from botwarden.api.deps import Principal, current_principal
from botwarden.api.guard import Guarded, guard
from botwarden.api.routers.health import READINESS_CHECKS
from botwarden.data.integrations import DATA_FEED, IntegrationRegistry, IntegrationState, persist
from botwarden.data.integrations.telemetry import usage_by_provider
from botwarden.data.providers.errors import Health
from botwarden.domain.errors import NotFound
from botwarden.policy import Action

router = APIRouter(prefix="/api/integrations", tags=["integrations"])

_SHARED = ("status", "configured", "last_success_at", "last_error_code", "last_error",
           "last_error_at", "last_verified_at")
WINDOWS = {"last_hour": timedelta(hours=1), "last_day": timedelta(days=1)}
_LOCK = threading.Lock()


def registry_for(app: FastAPI) -> IntegrationRegistry:
    registry = getattr(app.state, "integrations", None)
    if registry is None:
        with _LOCK:
            registry = getattr(app.state, "integrations", None)
            if registry is None:
                registry = IntegrationRegistry(app.state.settings, app.state.engine)
                app.state.integrations = registry
    return registry


def get_registry(request: Request) -> IntegrationRegistry:
    return registry_for(request.app)


def start_integration_checks(app: FastAPI, flush_seconds: float = 5.0) -> None:
    """Start-up entitlement checks (background thread: start-up never waits on the network;
    unconfigured integrations are recorded as KEY_MISSING without any call) and the
    periodic telemetry flush."""
    registry = registry_for(app)
    registry.start_background_verification()
    app.state.integrations_flusher = registry.start_flusher(flush_seconds)


# ---- response shapes ----


class LastError(BaseModel):
    code: str | None
    message: str | None
    at: datetime | None


class Usage(BaseModel):
    calls: int
    ok: int
    errors: int
    rows: int
    avg_latency_ms: float | None
    p50_latency_ms: float | None
    max_latency_ms: float | None


class IntegrationOut(BaseModel):
    name: str
    kind: str
    configured: bool
    status: str
    last_success_at: datetime | None
    last_verified_at: datetime | None
    last_error: LastError | None
    usage: dict[str, Usage]
    kill_trigger: str | None


class EventOut(BaseModel):
    name: str
    from_status: str | None
    to_status: str
    code: str | None
    detail: str | None
    at: datetime


class DataFeedOut(BaseModel):
    status: str | None
    detail: str | None
    chain: list[str]
    events: list[EventOut]


class IntegrationsOut(BaseModel):
    integrations: list[IntegrationOut]
    usable_data_providers: list[str]
    data_feed: DataFeedOut
    recent_events: list[EventOut]


class VerifyOut(BaseModel):
    ok: bool
    code: str | None
    message: str
    checked_at: datetime
    latency_ms: float | None
    details: dict[str, Any]


class VerifyResponse(BaseModel):
    verify: VerifyOut
    integration: IntegrationOut


# ---- views ----


def _view(registry: IntegrationRegistry, state: IntegrationState,
          usage: dict[str, Any]) -> IntegrationOut:
    empty = Usage(calls=0, ok=0, errors=0, rows=0, avg_latency_ms=None, p50_latency_ms=None,
                  max_latency_ms=None)
    error = None
    if state.last_error_code or state.last_error:
        error = LastError(code=state.last_error_code, message=state.last_error,
                          at=state.last_error_at)
    return IntegrationOut(
        name=state.name, kind=state.kind, configured=state.configured,
        status=state.status.value, last_success_at=state.last_success_at,
        last_verified_at=state.last_verified_at, last_error=error,
        usage={label: Usage(**usage[label].as_dict()) if label in usage else empty
               for label in WINDOWS},
        kill_trigger=state.kill_trigger(registry.clock(), registry.policy),
    )


def _current_states(registry: IntegrationRegistry) -> dict[str, IntegrationState]:
    """The stored states (what every process agreed on), completed by this process's own
    view of anything not stored yet; the in-memory counters stay this process's."""
    states = registry.states()
    if registry.engine is not None:
        stored = persist.load_states(registry.engine)
        for name, state in stored.items():
            mine = states.get(name)
            # Keep this process's in-memory counters, but the shared status and fields.
            states[name] = state if mine is None else replace(mine, **{
                key: getattr(state, key) for key in _SHARED})
    return states


def integrations_view(registry: IntegrationRegistry) -> IntegrationsOut:
    registry.flush()
    now = registry.clock()
    usage = usage_by_provider(registry.engine, now, WINDOWS) if registry.engine else {}
    states = _current_states(registry)
    order = [spec.name for spec in registry.specs()]
    names = order + sorted(n for n in states if n not in order and n != DATA_FEED)
    items = [_view(registry, states[n], usage.get(n, {})) for n in names if n in states]
    feed = states.get(DATA_FEED)
    events = persist.recent_events(registry.engine, limit=20) if registry.engine else []
    return IntegrationsOut(
        integrations=items,
        usable_data_providers=registry.usable_data_providers(),
        data_feed=DataFeedOut(
            status=feed.status.value if feed else None,
            detail=feed.last_error if feed else None,
            chain=registry.default_chain(),
            events=[EventOut(**e) for e in events if e["name"] == DATA_FEED][:10]),
        recent_events=[EventOut(**e) for e in events],
    )


# ---- routes ----


@router.get("", response_model=IntegrationsOut)
def list_integrations(
    principal: Principal = Depends(current_principal),
    registry: IntegrationRegistry = Depends(get_registry),
) -> IntegrationsOut:
    return integrations_view(registry)


@router.post("/{name}/verify", response_model=VerifyResponse)
def verify_integration(
    name: str,
    # The registry first: building it writes through its own connection, which must not
    # wait on the guard's transaction (on SQLite that holds the write lock from BEGIN).
    registry: IntegrationRegistry = Depends(get_registry),
    ctx: Guarded = Depends(guard(Action.INTEGRATION_VERIFY)),
) -> VerifyResponse:
    if not registry.has(name):
        raise NotFound("integration")
    # The registry writes through its own connections. End the guard's read transaction
    # first: on SQLite a transaction that read before another writer committed cannot write
    # after it. The pending audit row is kept and written by the commit below.
    ctx.session.rollback()
    result = registry.verify(name)
    registry.flush()
    ctx.audit.target_type, ctx.audit.target_id = "integration", name
    ctx.audit.detail = {"ok": result.ok, "code": result.code}
    ctx.commit()
    view = integrations_view(registry)
    mine = next(i for i in view.integrations if i.name == name)
    return VerifyResponse(
        verify=VerifyOut(ok=result.ok, code=result.code, message=result.message,
                         checked_at=result.checked_at, latency_ms=result.latency_ms,
                         details=result.details),
        integration=mine,
    )


# ---- readiness ----


def market_data_readiness(app: FastAPI) -> tuple[str, bool, dict[str, Any]]:
    """Ready only when a runner could get bars: some data provider is OK (replay counts
    when the store has bars to replay)."""
    registry = registry_for(app)
    if registry.status("replay") is not Health.OK:
        registry.verify("replay")  # local: bars may have been written since
    usable = registry.usable_data_providers()
    if usable:
        return "market_data", True, {"usable": usable}
    return "market_data", False, {
        "usable": [],
        "fix": "Run `botwarden data synth --symbol MES --days 90` (or import bars), or set "
               "BOTWARDEN_DATABENTO_API_KEY / BOTWARDEN_POLYGON_API_KEY.",
    }


READINESS_CHECKS.append(market_data_readiness)
