"""Unusual Whales: options-flow alerts, for market context (never a trading signal by itself).

`GET https://api.unusualwhales.com/api/option-trades/flow-alerts?ticker_symbol=SPY&limit=50`
with `Authorization: Bearer <key>`; the answer is `{"data": [alert, ...]}`, newest first,
numbers partly sent as strings. Calls go through the shared provider call path, so they are
classified (429 RATE_LIMITED, 401/403 ENTITLEMENT_REVOKED, ...), counted and retried like
every other provider's; without a key nothing is sent and KEY_MISSING is raised.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from botwarden.data.providers.base import ProviderBase, ProviderKind
from botwarden.data.providers.errors import ErrorCode, ProviderError

BASE_URL = "https://api.unusualwhales.com"
FLOW_ALERTS = "/api/option-trades/flow-alerts"
MAX_LIMIT = 200
_TICKER = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


class FlowAlert(BaseModel):
    """One flow alert, as much of it as we use; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    ticker: str
    option_chain: str | None = None
    type: str | None = None  # call / put
    strike: Decimal | None = None
    expiry: str | None = None
    price: Decimal | None = None
    underlying_price: Decimal | None = None
    total_size: int | None = None
    total_premium: Decimal | None = None
    volume: int | None = None
    open_interest: int | None = None
    volume_oi_ratio: Decimal | None = None
    alert_rule: str | None = None
    has_sweep: bool | None = None
    all_opening_trades: bool | None = None
    trade_count: int | None = None
    created_at: datetime

    @field_validator("strike", "price", "underlying_price", "total_premium", "volume_oi_ratio",
                     mode="before")
    @classmethod
    def _decimal(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc


def normalise_ticker(symbol: str) -> str:
    ticker = symbol.strip().upper()
    if not _TICKER.match(ticker):
        raise ProviderError("unusual_whales", ErrorCode.BAD_REQUEST,
                            f"{symbol!r} is not a ticker symbol (e.g. SPY, QQQ)")
    return ticker


class UnusualWhalesClient(ProviderBase):
    name = "unusual_whales"
    kind = ProviderKind.CONTEXT

    def __init__(self, api_key: SecretStr | None, *, http: httpx.Client | None = None,
                 base_url: str = BASE_URL, timeout: float = 10.0, **base: Any) -> None:
        key = api_key.get_secret_value().strip() if api_key is not None else ""
        super().__init__(secrets=(key,) if key else (), **base)
        self._key = key
        self._http = http or httpx.Client(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self._key)

    def flow_alerts(self, symbol: str, limit: int = 50) -> list[FlowAlert]:
        """The latest flow alerts for `symbol` (newest first)."""
        if not self.configured:
            raise self.missing_key("flow_alerts")
        params = {"ticker_symbol": normalise_ticker(symbol),
                  "limit": max(1, min(int(limit), MAX_LIMIT))}
        return self.call("flow_alerts", lambda: self._parse(self._get(FLOW_ALERTS, params)),
                         len)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        response = self._http.get(f"{self.base_url}{path}", params=params,
                                  headers={"Authorization": f"Bearer {self._key}",
                                           "Accept": "application/json"})
        response.raise_for_status()
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                "response body is not JSON") from exc

    def _parse(self, payload: Any) -> list[FlowAlert]:
        rows = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                "expected {\"data\": [...]} in the answer")
        try:
            return [FlowAlert.model_validate(row) for row in rows]
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                f"alert field {where}: {first.get('msg')}") from exc

    def _verify_remote(self) -> dict[str, Any]:
        alerts = self._parse(self._get(FLOW_ALERTS, {"limit": 1}))
        return {"alerts_seen": len(alerts)}
