"""Market context: the economic calendar and Unusual Whales options-flow alerts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from botwarden.api.deps import Principal, current_principal
from botwarden.api.routers.integrations import get_registry
from botwarden.clock import utcnow
from botwarden.data.econ_calendar import Impact
from botwarden.data.econ_calendar_store import query_events, sync_builtin
from botwarden.data.integrations import IntegrationRegistry
from botwarden.data.unusual_whales import FlowAlert
from botwarden.domain.errors import InvalidRequest

router = APIRouter(tags=["market context"])
_SYNC_LOCK = threading.Lock()


class EconomicEventOut(BaseModel):
    at: datetime
    country: str
    name: str
    impact: str
    source: str


class EconomicCalendarOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    count: int
    events: list[EconomicEventOut]


class FlowAlertOut(BaseModel):
    id: str | None
    ticker: str
    option_chain: str | None
    type: str | None
    strike: Decimal | None
    expiry: str | None
    price: Decimal | None
    underlying_price: Decimal | None
    total_size: int | None
    total_premium: Decimal | None
    volume: int | None
    open_interest: int | None
    volume_oi_ratio: Decimal | None
    alert_rule: str | None
    has_sweep: bool | None
    all_opening_trades: bool | None
    trade_count: int | None
    created_at: datetime


class FlowOut(BaseModel):
    provider: str
    symbol: str
    count: int
    alerts: list[FlowAlertOut]


def ensure_builtin_calendar(app: FastAPI) -> None:
    """Load the built-in release dates once per app (idempotent, so a race is harmless)."""
    if getattr(app.state, "builtin_calendar_synced", False):
        return
    with _SYNC_LOCK:
        if not getattr(app.state, "builtin_calendar_synced", False):
            sync_builtin(app.state.engine)
            app.state.builtin_calendar_synced = True


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _impacts(raw: str | None) -> list[Impact] | None:
    if not raw:
        return None
    try:
        return [Impact(part.strip().upper()) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise InvalidRequest(f"unknown impact in {raw!r}",
                             "Use HIGH, MEDIUM or LOW (comma-separated for several).") from None


@router.get("/api/economic-calendar", response_model=EconomicCalendarOut)
def economic_calendar(
    request: Request,
    start: datetime | None = Query(None, alias="from", description="ISO 8601; UTC if naive"),
    end: datetime | None = Query(None, alias="to", description="ISO 8601, exclusive"),
    impact: str | None = Query(None, description="HIGH, MEDIUM, LOW; comma-separated"),
    principal: Principal = Depends(current_principal),
) -> EconomicCalendarOut:
    ensure_builtin_calendar(request.app)
    now = utcnow()
    lo = _utc(start) or now - timedelta(days=1)
    hi = _utc(end) or lo + timedelta(days=31)
    if hi <= lo:
        raise InvalidRequest("'to' must be after 'from'", "Give a range with from < to.")
    events = query_events(request.app.state.engine, lo, hi, _impacts(impact))
    return EconomicCalendarOut.model_validate({
        "from": lo, "to": hi, "count": len(events),
        "events": [EconomicEventOut(at=e.at, country=e.country, name=e.name,
                                    impact=e.impact.value, source=e.source) for e in events]})


@router.get("/api/unusual-whales/flow", response_model=FlowOut)
def unusual_whales_flow(
    symbol: str = Query(..., min_length=1, max_length=10, description="e.g. SPY, QQQ"),
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(current_principal),
    registry: IntegrationRegistry = Depends(get_registry),
) -> FlowOut:
    client = registry.provider("unusual_whales")
    alerts: list[FlowAlert] = client.flow_alerts(symbol, limit)
    return FlowOut(provider="unusual_whales", symbol=symbol.strip().upper(), count=len(alerts),
                   alerts=[FlowAlertOut(**a.model_dump()) for a in alerts])
