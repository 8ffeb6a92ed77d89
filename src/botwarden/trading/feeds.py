"""The live bar stream a runner consumes: a failover feed over its data providers.

Replay is the default provider: the local bar store played at the runner's speed (one
1-minute bar per second at speed 60). The payload may name a `backup` (another replay feed
of the same store, for the autonomy demo) and `faults` for the primary, in the shape
{"kind": "RATE_LIMIT", "calls": 40, "retry_after": 0.2}: the storm a vendor's 429s make, and
`probe_seconds`, how long the feed stays on the backup before probing the primary again
(default: the failover's own 30 s). Keyed vendors (databento, polygon) come from the
integration registry when configured.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations.registry import IntegrationRegistry
from botwarden.data.providers.errors import RetryPolicy
from botwarden.data.providers.failover import FailoverProvider
from botwarden.data.providers.faults import FaultKind, FaultPlan
from botwarden.data.providers.replay import ReplayProvider
from botwarden.trading.brokers.tradovate.integration import register_tradovate

_registries: dict[int, IntegrationRegistry] = {}
_lock = threading.Lock()


def registry_for(settings: Settings, engine: Engine) -> IntegrationRegistry:
    """One integration registry per engine in this process: statuses and telemetry of every
    runner's providers (and Tradovate's, when configured) go through it to the database.
    Status changes are written at once; the telemetry (proof of use, and the refused calls
    the rate-limit-storm detector counts) by the registry's flusher, started with it."""
    with _lock:
        registry = _registries.get(id(engine))
        if registry is None:
            registry = _registries[id(engine)] = IntegrationRegistry(settings, engine)
            # The runners' Tradovate calls (their brokers share the process's client) count
            # in its health: 429s, a revoked key.
            register_tradovate(registry, settings)
            registry.start_flusher()
        return registry


def _chunk_rows(speed: float | None) -> int:
    """A paced stream holds one chunk in memory for its whole life: about a session of
    bars (10 MB per runner at the default 50,000 rows, 0.3 MB at 1,440)."""
    return 1_440 if speed is not None else 50_000


def _faults(spec: dict[str, Any] | None) -> FaultPlan | None:
    if not spec:
        return None
    plan = FaultPlan()
    plan.storm(int(spec.get("calls", 20)), kind=FaultKind(spec.get("kind", "RATE_LIMIT")),
               retry_after=spec.get("retry_after"))
    return plan


def build_feed(settings: Settings, engine: Engine, payload: dict[str, Any],
               speed: float | None) -> FailoverProvider:
    registry = registry_for(settings, engine)
    store = BarStore.from_settings(settings)
    dataset = payload.get("dataset")
    providers: list[Any] = []
    name = str(payload.get("provider") or "replay")
    if name == "replay":
        providers.append(ReplayProvider(store, name="replay", dataset=dataset, speed=speed,
                                        max_wait=5.0, chunk_rows=_chunk_rows(speed),
                                        faults=_faults(payload.get("faults")),
                                        observer=registry, clock=registry.clock))
    else:
        providers.append(registry.provider(name))
    backup = payload.get("backup")
    if backup:
        providers.append(ReplayProvider(store, name=str(backup), dataset=dataset, speed=speed,
                                        max_wait=5.0, chunk_rows=_chunk_rows(speed),
                                        observer=registry, clock=registry.clock))
    # A demo storm should play out in seconds, not in production's half-minute backoffs.
    retry = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=2.0) \
        if payload.get("faults") else None
    probe = payload.get("probe_seconds")
    interval = timedelta(seconds=float(probe)) if probe else timedelta(seconds=30)
    return FailoverProvider(providers, registry, retry=retry, probe_interval=interval)
