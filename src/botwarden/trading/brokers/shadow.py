"""The shadow broker: every order is mirrored against the broker's quotes and nothing is
sent anywhere. It keeps the same persisted book and reports as the paper broker, so reconcile
works the same way.

- A market order fills at once at the latest quote: a buy at the ask, a sell at the bid (it
  waits for the first quote when there is none yet).
- A buy limit fills when the ask is at or below the limit, a sell limit when the bid is at
  or above it; a buy stop triggers when the ask reaches the stop, a sell stop when the bid
  does. Each fills at that quote (which may be better than its price), no slippage.
- A bracket's exits start working at their entry's fill and meet the quotes after it.
- Orders are checked on arrival and at every new quote, in the order they were sent.

Quotes come from a `QuoteSource`. With only bars at hand, `BarQuotes` stands in: bid = close
- 1 tick, ask = close + 1 tick, quoted at the bar's end. That is an approximation (a
one-tick half-spread, which micro equity-index futures usually show, and no quote between
closes), stated here and in the report; a Tradovate quote stream can replace it through the
same interface, calling `on_quote` as quotes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from botwarden.data.providers.base import Bar
from botwarden.domain.bars import TIMEFRAME_SECONDS
from botwarden.domain.instruments import Instrument, get_instrument
from botwarden.domain.trading import OrderType, Side
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.brokers.sim_state import SimOrder
from botwarden.trading.brokers.simulated import SimulatedBrokerCore
from botwarden.trading.brokers.state_store import StateStore


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    at: datetime


class QuoteSource(Protocol):
    def latest(self, symbol: str) -> Quote | None: ...

    def observe_bar(self, symbol: str, bar: Bar) -> None:
        """A bar closed (a streaming quote source may ignore it)."""
        ...


class BarQuotes:
    """Quotes approximated from bar closes: close -/+ `half_spread_ticks` ticks."""

    def __init__(self, half_spread_ticks: int = 1) -> None:
        if half_spread_ticks < 0:
            raise ValueError("the half-spread is a count of ticks >= 0")
        self.half_spread_ticks = half_spread_ticks
        self._quotes: dict[str, Quote] = {}

    def latest(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol.upper())

    def observe_bar(self, symbol: str, bar: Bar) -> None:
        symbol = symbol.upper()
        instrument = get_instrument(symbol)
        close = instrument.to_ticks(Decimal(repr(float(bar.close))))
        spread = self.half_spread_ticks
        at = bar.at + timedelta(seconds=TIMEFRAME_SECONDS.get(bar.timeframe, 60))
        self._quotes[symbol] = Quote(symbol, instrument.from_ticks(close - spread),
                                     instrument.from_ticks(close + spread), at)


def quote_price(order: SimOrder, quote: Quote) -> Decimal | None:
    """The price `order` fills at against `quote`, or None when the quote does not reach it."""
    buy = order.side is Side.BUY
    price = quote.ask if buy else quote.bid
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None
        reached = price <= order.limit_price if buy else price >= order.limit_price
    elif order.order_type is OrderType.STOP:
        assert order.stop_price is not None
        reached = price >= order.stop_price if buy else price <= order.stop_price
    else:
        reached = True
    return price if reached else None


class ShadowBroker(SimulatedBrokerCore):
    name = "shadow"

    def __init__(self, account_key: str, store: StateStore, *,
                 quotes: QuoteSource | None = None, **options: Any) -> None:
        super().__init__(account_key, store, **options)
        self.quotes: QuoteSource = quotes if quotes is not None else BarQuotes()
        for symbol, bar in self._state.last_bars.items():  # a restart quotes at once
            self.quotes.observe_bar(symbol, bar)

    def on_quote(self, symbol: str) -> list[FillReport]:
        """The quote source has a new quote for `symbol`: match working orders against it."""
        with self._lock:
            self._refresh()
            fills = self._match_quote(symbol.upper(), get_instrument(symbol))
            if fills:
                self._save()
            return fills

    def _accepted(self, order: SimOrder, instrument: Instrument) -> None:
        quote = self.quotes.latest(order.symbol)
        if quote is not None:
            self._try_fill(order, quote, instrument)

    def _match(self, symbol: str, instrument: Instrument, bar: Bar) -> list[FillReport]:
        self.quotes.observe_bar(symbol, bar)
        return self._match_quote(symbol, instrument)

    def _match_quote(self, symbol: str, instrument: Instrument) -> list[FillReport]:
        quote = self.quotes.latest(symbol)
        if quote is None:
            return []
        fills = []
        for order in self._state.working(symbol):  # exits opened here wait for a new quote
            if order.is_open:
                fill = self._try_fill(order, quote, instrument)
                if fill is not None:
                    fills.append(fill)
        return fills

    def _try_fill(self, order: SimOrder, quote: Quote, instrument: Instrument
                  ) -> FillReport | None:
        price = quote_price(order, quote)
        if price is None:
            return None
        at_ns = int(quote.at.timestamp() * 1_000_000_000)
        return self._fill(order, instrument.to_ticks(price), instrument, quote.at,
                          exits_from_ns=at_ns)
