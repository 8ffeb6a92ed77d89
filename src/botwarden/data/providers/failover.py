"""Primary-to-backup failover over a chain of providers (databento -> polygon -> replay, by
configuration), with failback when a better provider recovers.

The chain is served by the first provider whose status is OK, in chain order. Statuses come
from the integration registry, which every provider reports its calls to, so a 429 storm
that turns the primary DEGRADED moves the feed to the backup at the next bar. Providers
ahead of the active one are probed (`verify`) every `probe_interval`; a successful probe
turns them OK and the feed fails back, resuming one bar after the last bar it delivered, so
no bar is skipped or repeated. Each switch is recorded by the registry as a `data_feed`
event (FAILOVER, FAILBACK, NO_PROVIDER).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from botwarden.clock import Clock, utcnow
from botwarden.data.calendar import to_datetime
from botwarden.data.providers.base import Bar, MarketDataProvider, VerifyResult
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError, RetryPolicy
from botwarden.data.resample import timeframe_ns
from botwarden.domain.bars import Bars

AsyncSleep = Callable[[float], Awaitable[None]]
_RANK = {Health.OK: 0, Health.DEGRADED: 1, Health.DOWN: 2}


class StatusSource(Protocol):
    """What failover needs of the registry."""

    def status(self, name: str) -> Health: ...

    def record_feed_switch(self, chain: Sequence[str], old: str | None, new: str | None,
                           reason: str) -> None: ...


class FailoverProvider:
    name = "data_feed"

    def __init__(
        self,
        providers: Sequence[MarketDataProvider],
        registry: StatusSource,
        *,
        probe_interval: timedelta = timedelta(seconds=30),
        retry: RetryPolicy | None = None,
        clock: Clock = utcnow,
        async_sleep: AsyncSleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a failover chain needs at least one provider")
        self.providers = list(providers)
        self.chain = [p.name for p in self.providers]
        self.registry = registry
        self.probe_interval = probe_interval
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self._async_sleep = async_sleep
        self.rng = rng or random.Random()
        self.active: str | None = None
        self._last_probe: datetime | None = None

    # ---- choosing ----

    def select(self, skip: frozenset[str] = frozenset()) -> MarketDataProvider | None:
        """The first OK provider of the chain (not in `skip`), recording a switch when it
        changes."""
        chosen = next((p for p in self.providers
                       if p.name not in skip and self.registry.status(p.name) is Health.OK), None)
        new = chosen.name if chosen else None
        if new != self.active:
            self.registry.record_feed_switch(self.chain, self.active, new, self._why(new))
            self.active = new
        return chosen

    def _why(self, new: str | None) -> str:
        behind = [f"{n} {self.registry.status(n).value}" for n in self.chain
                  if n != new and self.registry.status(n) is not Health.OK]
        return ", ".join(behind) if behind else "every provider OK"

    def probe(self, *, force: bool = False) -> list[VerifyResult]:
        """Verify the providers ahead of the active one (at most every probe_interval)."""
        now = self.clock()
        if not force and self._last_probe is not None and (
            now - self._last_probe < self.probe_interval
        ):
            return []
        self._last_probe = now
        results = []
        for provider in self.providers:
            if provider.name == self.active:
                break
            if self.registry.status(provider.name) is not Health.OK and provider.configured:
                results.append(provider.verify())
        return results

    def _better_available(self, current: str) -> bool:
        for name in self.chain:
            if name == current:
                return False
            if self.registry.status(name) is Health.OK:
                return True
        return False

    # ---- historical ----

    def fetch_bars(self, symbol: str, start: datetime, end: datetime,
                   timeframe: str = "1m") -> Bars:
        """From the first OK provider; on failure, from the next usable one (OK first, then
        DEGRADED; never a DOWN one)."""
        self.probe()
        self.select()
        ranked = sorted(self.providers, key=lambda p: _RANK[self.registry.status(p.name)])
        last: ProviderError | None = None
        for provider in ranked:
            if self.registry.status(provider.name) is Health.DOWN:
                continue
            try:
                return provider.fetch_bars(symbol, start, end, timeframe)
            except ProviderError as error:
                last = error
        raise last or ProviderError(self.name, ErrorCode.NO_DATA,
                                    "no usable data provider in the chain")

    # ---- live ----

    async def stream_bars(self, symbol: str, timeframe: str = "1m", *,
                          start: datetime | None = None) -> AsyncIterator[Bar]:
        """Bars from the best provider available, switching as statuses change."""
        step = timeframe_ns(timeframe)
        last_ts: int | None = None
        failures = 0
        cannot_serve: set[str] = set()  # providers without this symbol or range
        while True:
            await asyncio.to_thread(self.probe)
            provider = self.select(frozenset(cannot_serve))
            if provider is None and cannot_serve and all(
                p.name in cannot_serve or self.registry.status(p.name) is Health.DOWN
                for p in self.providers
            ):
                raise ProviderError(self.name, ErrorCode.NO_DATA,
                                    f"no provider of {', '.join(self.chain)} has {symbol} bars")
            if provider is None:
                failures += 1
                await self._backoff(failures, None)
                await asyncio.to_thread(self.probe, force=True)
                continue
            resume = start if last_ts is None else to_datetime(last_ts + step)
            try:
                switched = False
                async for bar in provider.stream_bars(symbol, timeframe, start=resume):
                    if last_ts is not None and bar.ts <= last_ts:
                        continue  # overlap after a resume: already delivered
                    last_ts = bar.ts
                    failures = 0
                    yield bar
                    if await self._should_leave(provider.name):
                        switched = True
                        break
                if not switched:
                    return  # the provider's stream ended: so does the feed
            except ProviderError as error:
                if error.reason in (ErrorCode.NO_DATA, ErrorCode.BAD_REQUEST):
                    cannot_serve.add(provider.name)  # nothing for this symbol here: next one
                    continue
                failures += 1
                if self.registry.status(provider.name) is Health.OK:
                    await self._backoff(failures, error.retry_after)  # retry the same one

    async def _should_leave(self, current: str) -> bool:
        if self.registry.status(current) is not Health.OK:
            return True
        if current != self.chain[0] and self._probe_due():
            await asyncio.to_thread(self.probe)  # a probe may call the network: off the loop
        return self._better_available(current)

    def _probe_due(self) -> bool:
        return self._last_probe is None or self.clock() - self._last_probe >= self.probe_interval

    async def _backoff(self, failures: int, retry_after: float | None) -> None:
        await self._async_sleep(self.retry.delay(failures, self.rng, retry_after))

    # ---- health for the kill engine ----

    def health(self) -> Health:
        if self.active is None:
            return Health.DOWN
        return Health.OK if self.active == self.chain[0] else Health.DEGRADED
