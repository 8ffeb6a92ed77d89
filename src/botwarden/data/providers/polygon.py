"""Polygon, now Massive (backup): futures minute aggregates through the official `massive`
client.

- Contracts: `list_futures_contracts(product_code=ROOT, date=...)` gives the outright
  contracts and their last trade dates; the front month of each session is the contract
  nearest expiry (the same calendar roll as Databento's `.c.0`), so a range crossing a roll
  is fetched per contract and stitched at the session boundary.
- Bars: `list_futures_aggregates(TICKER, resolution="1min", window_start.gte/.lt in ns)`.
- Live: the REST aggregates polled every `poll_interval`; a minute is emitted once it is
  complete (the vendor's futures WebSocket is not generally available).
- Verify: the contracts endpoint for MES: authenticated and entitlement-checked.

The client's own urllib3 retries are turned off (our retry policy and status machine decide),
and its `BadResponse` carries only the body, so the transport is wrapped to remember each
response's HTTP status (and to refuse a 200 whose body is not JSON, which the client would
otherwise silently turn into an empty result).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from pydantic import SecretStr

from botwarden.data.calendar import get_calendar, to_datetime, to_ns
from botwarden.data.providers.base import Bar, ProviderBase, bars_to_stream
from botwarden.data.providers.classify import classify
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.data.providers.streaming import resample_stream
from botwarden.data.resample import resample
from botwarden.data.validation import validate_bars
from botwarden.domain.bars import Bars
from botwarden.domain.instruments import get_instrument

AsyncSleep = Callable[[float], Awaitable[None]]
PAGE_LIMIT = 50_000
_MONTH_CODES = "FGHJKMNQUVXZ"


class _StatusRecorder:
    """Delegates to the client's urllib3 pool and remembers each response's status (per
    thread), refusing a successful response whose body is not JSON."""

    def __init__(self, pool: Any, provider: str) -> None:
        self._pool = pool
        self._provider = provider
        self._local = threading.local()

    @property
    def last_status(self) -> int | None:
        return getattr(self._local, "status", None)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self._local.status = None
        response = self._pool.request(method, url, **kwargs)
        self._local.status = int(response.status)
        if response.status == 200:
            try:
                json.loads(response.data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ProviderError(self._provider, ErrorCode.PROVIDER_BAD_DATA,
                                    f"response body is not JSON ({exc})") from exc
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class PolygonProvider(ProviderBase):
    name = "polygon"

    def __init__(
        self,
        api_key: SecretStr | None,
        *,
        pool: Any = None,
        poll_interval: float = 15.0,
        settle_seconds: float = 5.0,
        async_sleep: AsyncSleep = asyncio.sleep,
        **base: Any,
    ) -> None:
        key = api_key.get_secret_value().strip() if api_key is not None else ""
        super().__init__(secrets=(key,) if key else (), **base)
        self._key = key
        self._pool = pool
        self._client_obj: Any = None
        self._recorder: _StatusRecorder | None = None
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self._async_sleep = async_sleep
        self._contracts_cache: dict[tuple[str, date], list[tuple[str, date]]] = {}

    @property
    def configured(self) -> bool:
        return bool(self._key)

    def _client(self) -> Any:
        if self._client_obj is None:
            from massive import RESTClient

            client = RESTClient(api_key=self._key, retries=0, pagination=True,
                                connection_pool_kw={"retries": False})
            self._recorder = _StatusRecorder(self._pool or client.client, self.name)
            client.client = self._recorder
            self._client_obj = client
        return self._client_obj

    def classify(self, exc: BaseException) -> ProviderError | None:
        status = self._recorder.last_status if self._recorder is not None else None
        error = classify(exc, self.name, http_status=status)
        return None if error is None else super().classify(error)

    # ---- contracts and the front month ----

    def contracts(self, root: str, on: date) -> list[tuple[str, date]]:
        """Outright contracts of `root` listed on `on`: (ticker, last trade date), by expiry."""
        key = (root, on)
        if key not in self._contracts_cache:
            def fetch() -> list[tuple[str, date]]:
                found = self._client().list_futures_contracts(
                    product_code=root, date=on.isoformat(), limit=1000)
                return _outrights(root, found)

            self._contracts_cache[key] = self.call("contracts", fetch, len)
        return self._contracts_cache[key]

    def front_segments(self, symbol: str, start: datetime, end: datetime
                       ) -> list[tuple[str, int, int]]:
        """(ticker, start ns, end ns) pieces of `[start, end)`, each served by the contract
        that was front month in its sessions."""
        instrument = get_instrument(symbol)
        cal = get_calendar(instrument.calendar)
        listed = self.contracts(instrument.symbol, start.date())
        lo, hi = to_ns(start), to_ns(end)
        sessions = cal.sessions_between(start, end)
        segments: list[tuple[str, int, int]] = []
        for i in range(sessions.start, sessions.stop):
            day = date(1970, 1, 1) + timedelta(days=int(cal.days[i]))
            ticker = next((t for t, last in listed if last >= day), None)
            if ticker is None:
                raise ProviderError(self.name, ErrorCode.NO_DATA,
                                    f"no {instrument.symbol} contract listed for {day}")
            seg_lo, seg_hi = max(lo, int(cal.opens[i])), min(hi, int(cal.closes[i]))
            if segments and segments[-1][0] == ticker:
                segments[-1] = (ticker, segments[-1][1], seg_hi)
            else:
                segments.append((ticker, seg_lo, seg_hi))
        return segments

    # ---- historical ----

    def fetch_bars(self, symbol: str, start: datetime, end: datetime,
                   timeframe: str = "1m") -> Bars:
        if not self.configured:
            raise self.missing_key("fetch")
        instrument = get_instrument(symbol)
        rows: list[Any] = []
        for ticker, lo, hi in self.front_segments(symbol, start, end):
            def fetch(ticker: str = ticker, lo: int = lo, hi: int = hi) -> list[Any]:
                return list(self._client().list_futures_aggregates(
                    ticker, resolution="1min", window_start_gte=lo, window_start_lt=hi,
                    limit=PAGE_LIMIT, sort="window_start.asc"))

            page: list[Any] = self.call("fetch", fetch, len)
            rows.extend(page)
        minutes = self.parse(rows, instrument.symbol)
        return minutes if timeframe == "1m" else resample(minutes, timeframe)

    def parse(self, aggs: list[Any], symbol: str) -> Bars:
        """Aggregates as validated bars; any invalid row refuses the whole payload."""
        def column(name: str) -> list[Any]:
            return [getattr(a, name, None) for a in aggs]

        try:
            frame = pl.DataFrame({
                "line": np.arange(1, len(aggs) + 1, dtype=np.int64),
                "ts": pl.Series(column("window_start"), dtype=pl.Int64, strict=False),
                **{name: pl.Series(column(name), dtype=pl.Float64, strict=False)
                   for name in ("open", "high", "low", "close", "volume")},
            })
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                f"aggregates did not parse: {exc}") from exc
        bars, report = validate_bars(frame, symbol)
        if report.rows_rejected:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA, report.summary())
        return bars

    # ---- live (polled) ----

    def stream_bars(self, symbol: str, timeframe: str = "1m", *,
                    start: datetime | None = None) -> AsyncIterator[Bar]:
        minutes = self._polled_minutes(symbol, start)
        return minutes if timeframe == "1m" else resample_stream(minutes, symbol, timeframe)

    async def _polled_minutes(self, symbol: str, start: datetime | None) -> AsyncIterator[Bar]:
        if not self.configured:
            raise self.missing_key("stream")
        minute = 60_000_000_000
        cursor = to_ns(start) if start is not None else (to_ns(self.clock()) // minute) * minute
        while True:
            now = to_ns(self.clock()) - int(self.settle_seconds * 1e9)
            if now - cursor >= minute:
                bars = await asyncio.to_thread(self.fetch_bars, symbol, to_datetime(cursor),
                                               to_datetime(now))
                for bar in bars_to_stream(bars):
                    if bar.ts + minute <= now:  # complete minutes only
                        cursor = bar.ts + minute
                        yield bar
            await self._async_sleep(self.poll_interval)

    # ---- verify ----

    def _verify_remote(self) -> dict[str, Any]:
        today = self.clock().date()
        found = _outrights("MES", self._client().list_futures_contracts(
            product_code="MES", date=today.isoformat(), limit=50))
        return {"contracts_listed": len(found)}


def _outrights(root: str, contracts: Any) -> list[tuple[str, date]]:
    pattern = re.compile(rf"^{re.escape(root)}[{_MONTH_CODES}]\d{{1,2}}$")
    out = []
    for contract in contracts:
        ticker = getattr(contract, "ticker", None) or ""
        last = getattr(contract, "last_trade_date", None)
        if pattern.match(ticker) and last:
            try:
                out.append((ticker, date.fromisoformat(str(last)[:10])))
            except ValueError as exc:
                raise ProviderError("polygon", ErrorCode.PROVIDER_BAD_DATA,
                                    f"bad last_trade_date {last!r}") from exc
    return sorted(out, key=lambda item: item[1])
