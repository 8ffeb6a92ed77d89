"""Bars and orders for the broker tests. Prices are given in ticks of MES (0.25)."""

from __future__ import annotations

from decimal import Decimal

from botwarden.data.providers.base import Bar
from botwarden.domain.trading import OrderType, Side
from botwarden.trading.brokers import Bracket, OrderRequest

NS_MINUTE = 60_000_000_000
TICK = Decimal("0.25")


def bar(index: int, o: int, h: int, low: int, c: int, symbol: str = "MES") -> Bar:
    """Bar number `index` (one a minute), OHLC in ticks."""
    return Bar(symbol, "1m", (index + 1) * NS_MINUTE, *(float(TICK * v) for v in (o, h, low, c)),
               10.0)


def px(ticks: int) -> Decimal:
    return TICK * ticks


def market(cid: str, side: Side, qty: int = 1, bracket: Bracket | None = None,
           symbol: str = "MES") -> OrderRequest:
    return OrderRequest(cid, symbol, side, qty, OrderType.MARKET, bracket=bracket)


def limit(cid: str, side: Side, ticks: int, qty: int = 1) -> OrderRequest:
    return OrderRequest(cid, "MES", side, qty, OrderType.LIMIT, limit_price=px(ticks))


def stop(cid: str, side: Side, ticks: int, qty: int = 1) -> OrderRequest:
    return OrderRequest(cid, "MES", side, qty, OrderType.STOP, stop_price=px(ticks))
