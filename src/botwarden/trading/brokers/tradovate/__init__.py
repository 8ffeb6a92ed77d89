"""Tradovate, the original system's broker: REST client, broker adapter, registry hook."""

from botwarden.trading.brokers.tradovate.broker import TradovateBroker
from botwarden.trading.brokers.tradovate.client import (
    URLS,
    TradovateClient,
    TradovateCredentials,
)
from botwarden.trading.brokers.tradovate.integration import is_configured, register_tradovate

__all__ = [
    "URLS",
    "TradovateBroker",
    "TradovateClient",
    "TradovateCredentials",
    "is_configured",
    "register_tradovate",
]
