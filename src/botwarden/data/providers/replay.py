"""Replay: the local bar store played as a live feed. The default for runners without keys.

- Speed: `speed=None` plays as fast as the consumer takes bars; `speed=60.0` plays one
  1-minute bar per second (a bar's wall-clock delay is its time gap divided by the speed,
  optionally capped by `max_wait` so a weekend does not stall a demo).
- Memory stays flat: bars are read in chunks (`BarStore.iter_chunks`), one chunk at a time,
  off the event loop.
- Faults: a `FaultPlan` makes any operation fail the way a vendor does (429 storms, 403,
  timeouts, disconnects mid-stream), for tests and the autonomy demo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

from botwarden.data.bar_store import STORED_TIMEFRAME, BarStore
from botwarden.data.calendar import to_ns
from botwarden.data.providers.base import Bar, ProviderBase
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.data.providers.faults import FaultPlan
from botwarden.data.providers.streaming import resample_stream
from botwarden.domain.bars import Bars
from botwarden.domain.errors import DomainError

AsyncSleep = Callable[[float], Awaitable[None]]
_YIELD_EVERY = 4096  # as fast as possible still lets other tasks of the loop run


class ReplayProvider(ProviderBase):
    def __init__(
        self,
        store: BarStore,
        *,
        name: str = "replay",
        dataset: str | None = None,
        speed: float | None = None,
        max_wait: float | None = None,
        faults: FaultPlan | None = None,
        chunk_rows: int = 50_000,
        async_sleep: AsyncSleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None: as fast as possible)")
        self.name = name
        self.store = store
        self.dataset = dataset
        self.speed = speed
        self.max_wait = max_wait
        self.faults = faults
        self.chunk_rows = chunk_rows
        self._async_sleep = async_sleep
        self._monotonic = monotonic

    # ---- historical ----

    def fetch_bars(self, symbol: str, start: datetime, end: datetime,
                   timeframe: str = STORED_TIMEFRAME) -> Bars:
        def load() -> Bars:
            self._fault("fetch")
            with self._store_errors():
                return self.store.load(symbol, start, end, timeframe, dataset=self.dataset)

        return self.call("fetch", load, len)

    # ---- live ----

    def stream_bars(self, symbol: str, timeframe: str = STORED_TIMEFRAME, *,
                    start: datetime | None = None, end: datetime | None = None
                    ) -> AsyncIterator[Bar]:
        minutes = self._minutes(symbol, start, end)
        if timeframe == STORED_TIMEFRAME:
            return minutes
        return _from(resample_stream(minutes, symbol, timeframe, flush_at_end=True),
                     to_ns(start) if start is not None else None)

    async def _minutes(self, symbol: str, start: datetime | None, end: datetime | None
                       ) -> AsyncIterator[Bar]:
        chunks = self._chunks(symbol, start, end)
        due: float | None = None
        previous_ts: int | None = None
        faults = self.faults
        while True:
            started = time.perf_counter()
            try:
                self._fault("stream")
                chunk = await asyncio.to_thread(next, chunks, None)
            except ProviderError as error:
                self.report("stream", False, _ms(started), error=error)
                raise
            if chunk is None:
                return
            self.report("stream", True, _ms(started), len(chunk))
            symbol_name, timeframe = chunk.symbol, chunk.timeframe
            rows = zip(chunk.ts.tolist(), chunk.open.tolist(), chunk.high.tolist(),
                       chunk.low.tolist(), chunk.close.tolist(), chunk.volume.tolist(),
                       strict=True)
            for count, (ts, o, h, lo, c, v) in enumerate(rows, 1):
                if faults is not None and faults.active:
                    self._stream_fault()
                if self.speed is not None:
                    due = await self._pace(due, previous_ts, ts)
                    previous_ts = ts
                elif count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                yield Bar(symbol_name, timeframe, ts, o, h, lo, c, v)

    def _chunks(self, symbol: str, start: datetime | None, end: datetime | None
                ) -> Iterator[Bars]:
        with self._store_errors():
            yield from self.store.iter_chunks(symbol, start, end, dataset=self.dataset,
                                              chunk_rows=self.chunk_rows)

    async def _pace(self, due: float | None, previous_ts: int | None, ts: int) -> float:
        """Wait until this bar is due; return when it was due (the next wait counts from it,
        so pacing does not drift)."""
        now = self._monotonic()
        if due is None or previous_ts is None:
            return now
        assert self.speed is not None
        wait = (ts - previous_ts) / 1e9 / self.speed
        if self.max_wait is not None:
            wait = min(wait, self.max_wait)
        due += wait
        if due > now:
            await self._async_sleep(due - now)
        return due

    def _stream_fault(self) -> None:
        try:
            self._fault("stream")
        except ProviderError as error:
            self.report("stream", False, 0.0, error=error)
            raise

    # ---- verify ----

    def _verify_remote(self) -> dict[str, Any]:
        self._fault("verify")
        series = [s for s in self.store.series()
                  if self.dataset is None or s.dataset.name == self.dataset]
        if not series:
            raise ProviderError(self.name, ErrorCode.NO_DATA,
                                "no bars in the store to replay; run `botwarden data synth` "
                                "or `botwarden data import`")
        return {"series": [{"dataset": s.dataset.name, "symbol": s.symbol, "bars": s.rows,
                            "synthetic": s.dataset.synthetic} for s in series]}

    def has_data(self, symbol: str | None = None) -> bool:
        return any(self.dataset is None or s.dataset.name == self.dataset
                   for s in self.store.series(symbol))

    # ---- helpers ----

    def _fault(self, operation: str) -> None:
        if self.faults is not None:
            self.faults.check(self.name, operation)

    def _store_errors(self) -> _StoreErrors:
        return _StoreErrors(self.name)


class _StoreErrors:
    """The store's own refusals, as provider errors (so failover can move on)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: Any, exc: BaseException | None, _tb: Any) -> None:
        if isinstance(exc, DomainError) and not isinstance(exc, ProviderError):
            reason = ErrorCode.NO_DATA if exc.code == "NO_DATA" else ErrorCode.BAD_REQUEST
            raise ProviderError(self.provider, reason, exc.message) from exc


async def _from(source: AsyncIterator[Bar], start_ns: int | None) -> AsyncIterator[Bar]:
    """Drop a first bucket that opened before `start` (only part of its minutes were read)."""
    async for bar in source:
        if start_ns is None or bar.ts >= start_ns:
            yield bar


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
