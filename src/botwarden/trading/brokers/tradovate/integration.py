"""Tradovate in the integration registry: configured when the user name, password, API
client id and secret are all set; verified by a token request (or, when this process holds a
session already, by renewing it: a new session would close another process's oldest one).
The check runs on the process's own client (session.py), which also reports its calls to
the registry, so the brokers' refusals (429s, a revoked key) count in its health."""

from __future__ import annotations

from botwarden.config import Settings
from botwarden.data.integrations.registry import IntegrationRegistry
from botwarden.trading.brokers.tradovate.client import TradovateClient, TradovateCredentials

NAME = "tradovate"


def is_configured(settings: Settings) -> bool:
    return TradovateCredentials.from_settings(settings) is not None


def register_tradovate(registry: IntegrationRegistry, settings: Settings
                       ) -> TradovateClient | None:
    """Install Tradovate's live check when it is configured; returns the client."""
    if not is_configured(settings):
        return None
    from botwarden.trading.brokers.tradovate.session import process_client

    client = process_client(settings)
    if client.observer is None:
        client.observer = registry
    registry.register_verifier(NAME, client.verify)
    return client
