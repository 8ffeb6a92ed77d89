"""Databento (primary): CME Globex MDP 3.0 (`GLBX.MDP3`), `ohlcv-1m`, through the official
`databento` client.

- Historical: `Historical.timeseries.get_range` on the continuous front-month symbol
  (`MES.c.0`, `stype_in="continuous"`: the contract nearest expiry, rolled by the vendor).
- Live: `Live.subscribe` to the same symbol; `start` asks the gateway's intraday replay to
  resume from a past minute (how failover resumes without a gap).
- Verify: `metadata.get_dataset_range(GLBX.MDP3)`: authenticated, free, and it answers 401 /
  403 when the key is bad or the plan lacks the dataset.
Prices arrive as fixed-point integers (1e-9); every payload is validated (tick grid, OHLC
order, whole minutes, no conflicting duplicates) before it is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
from pydantic import SecretStr

from botwarden.data.providers.base import Bar, ProviderBase
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.data.providers.streaming import resample_stream
from botwarden.data.resample import resample
from botwarden.data.validation import snap_to_grid, validate_bars
from botwarden.domain.bars import Bars
from botwarden.domain.instruments import get_instrument

DATASET = "GLBX.MDP3"
SCHEMA = "ohlcv-1m"
PRICE_SCALE = 1e-9  # databento.FIXED_PRICE_SCALE
UNDEF_PRICE = 2**63 - 1  # databento.UNDEF_PRICE


def continuous_symbol(symbol: str, rank: int = 0) -> str:
    """Databento's calendar front-month continuous symbol: `MES.c.0`."""
    return f"{get_instrument(symbol).symbol}.c.{rank}"


class DatabentoProvider(ProviderBase):
    name = "databento"

    def __init__(
        self,
        api_key: SecretStr | None,
        *,
        historical: Any = None,
        live_factory: Callable[[], Any] | None = None,
        **base: Any,
    ) -> None:
        key = api_key.get_secret_value().strip() if api_key is not None else ""
        super().__init__(secrets=(key,) if key else (), **base)
        self._key = key
        self._historical = historical
        self._live_factory = live_factory

    @property
    def configured(self) -> bool:
        return bool(self._key)

    def _client(self) -> Any:
        if self._historical is None:
            import databento

            self._historical = databento.Historical(self._key)
        return self._historical

    # ---- historical ----

    def fetch_bars(self, symbol: str, start: datetime, end: datetime,
                   timeframe: str = "1m") -> Bars:
        if not self.configured:
            raise self.missing_key("fetch")
        instrument = get_instrument(symbol)

        def fetch() -> Bars:
            store = self._client().timeseries.get_range(
                dataset=DATASET, schema=SCHEMA, symbols=[continuous_symbol(symbol)],
                stype_in="continuous", start=start, end=end)
            if str(store.schema) != SCHEMA:
                raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                    f"expected {SCHEMA} records, got {store.schema}")
            return self.parse(store.to_ndarray(), instrument.symbol)

        minutes = self.call("fetch", fetch, len)
        return minutes if timeframe == "1m" else resample(minutes, timeframe)

    def parse(self, records: np.ndarray, symbol: str) -> Bars:  # type: ignore[type-arg]
        """OHLCV records (a DBN structured array) as validated bars; a payload with any
        invalid record is refused whole (PROVIDER_BAD_DATA), never used in part."""
        try:
            frame = pl.DataFrame({
                "line": np.arange(1, len(records) + 1, dtype=np.int64),
                "ts": records["ts_event"].astype(np.int64),
                **{name: _prices(records[name]) for name in ("open", "high", "low", "close")},
                "volume": records["volume"].astype(np.float64),
            })
        except (KeyError, ValueError, TypeError) as exc:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                f"records lack OHLCV fields: {exc}") from exc
        bars, report = validate_bars(frame, symbol, location_label="record")
        if report.rows_rejected:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA, report.summary())
        return bars

    # ---- live ----

    def stream_bars(self, symbol: str, timeframe: str = "1m", *,
                    start: datetime | None = None) -> AsyncIterator[Bar]:
        minutes = self._live_minutes(symbol, start)
        return minutes if timeframe == "1m" else resample_stream(minutes, symbol, timeframe)

    async def _live_minutes(self, symbol: str, start: datetime | None) -> AsyncIterator[Bar]:
        if not self.configured:
            raise self.missing_key("stream")
        import databento

        instrument = get_instrument(symbol)
        live = self._live_factory() if self._live_factory else databento.Live(key=self._key)
        try:
            try:
                live.subscribe(dataset=DATASET, schema=SCHEMA, stype_in="continuous",
                               symbols=[continuous_symbol(symbol)], start=start)
            except ValueError as exc:  # the client's way of saying the gateway refused auth
                raise ProviderError(self.name, ErrorCode.ENTITLEMENT_REVOKED, str(exc)) from exc
            async for record in live:
                if isinstance(record, databento.OHLCVMsg):
                    bar = self._bar(record, instrument.symbol)
                    self.report("stream", True, 0.0, 1)
                    yield bar
                elif isinstance(record, databento.ErrorMsg):
                    raise _gateway_error(self.name, str(record.err))
            raise ProviderError(self.name, ErrorCode.DISCONNECTED, "live session closed")
        except Exception as exc:
            error = self.classify(exc)
            if error is None:
                raise
            self.report("stream", False, 0.0, error=error)
            raise error from exc
        finally:
            _close(live)

    def _bar(self, record: Any, symbol: str) -> Bar:
        raw = (record.open, record.high, record.low, record.close)
        if UNDEF_PRICE in raw:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA, "undefined price")
        o, h, lo, c = snap_to_grid(np.array(raw, dtype=np.float64) * PRICE_SCALE,
                                   get_instrument(symbol)).tolist()
        if not (lo <= min(o, c) and h >= max(o, c) and lo > 0):
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                f"inconsistent OHLC at {record.ts_event}")
        return Bar(symbol, "1m", int(record.ts_event), o, h, lo, c, float(record.volume))

    # ---- verify ----

    def _verify_remote(self) -> dict[str, Any]:
        available = self._client().metadata.get_dataset_range(dataset=DATASET)
        if not isinstance(available, dict) or "start" not in available:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                "unexpected get_dataset_range answer")
        return {"dataset": DATASET, "start": available.get("start"),
                "end": available.get("end")}


def _prices(column: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    raw = column.astype(np.int64)
    prices = raw.astype(np.float64) * PRICE_SCALE
    prices[raw == UNDEF_PRICE] = np.nan
    return prices


def _gateway_error(provider: str, message: str) -> ProviderError:
    lowered = message.lower()
    if "entitle" in lowered or "auth" in lowered or "permission" in lowered:
        return ProviderError(provider, ErrorCode.ENTITLEMENT_REVOKED, message)
    return ProviderError(provider, ErrorCode.DISCONNECTED, message)


def _close(live: Any) -> None:
    for method in ("stop", "terminate"):
        try:
            getattr(live, method)()
            return
        except (ValueError, AttributeError):
            continue
