"""Tradovate in the integration registry: configured when the user name, password, API
client id and secret are all set; verified by a token request (or, when this process holds a
session already, by renewing it: a new session would close another process's oldest one)."""

from __future__ import annotations

import httpx

from botwarden.config import Settings
from botwarden.data.integrations.registry import IntegrationRegistry
from botwarden.trading.brokers.tradovate.client import TradovateClient, TradovateCredentials

NAME = "tradovate"


def is_configured(settings: Settings) -> bool:
    return TradovateCredentials.from_settings(settings) is not None


def register_tradovate(registry: IntegrationRegistry, settings: Settings, *,
                       http: httpx.Client | None = None) -> TradovateClient:
    """Install Tradovate's live check; returns the client, for the broker to share (one
    session per process)."""
    client = TradovateClient(TradovateCredentials.from_settings(settings), http=http,
                             observer=registry, clock=registry.clock)
    registry.register_verifier(NAME, client.verify)
    return client
