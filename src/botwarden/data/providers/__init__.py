"""Market-data providers behind one interface (see `base.py`): Databento (primary),
Polygon/Massive (backup), Replay (the local store as a live feed), and failover over them."""

from botwarden.data.providers.base import (
    Bar,
    CallObserver,
    CallRecord,
    MarketDataProvider,
    ProviderBase,
    ProviderKind,
    VerifyResult,
)
from botwarden.data.providers.errors import ErrorCode, Health, ProviderError, RetryPolicy
from botwarden.data.providers.faults import FaultKind, FaultPlan

__all__ = [
    "Bar",
    "CallObserver",
    "CallRecord",
    "ErrorCode",
    "FaultKind",
    "FaultPlan",
    "Health",
    "MarketDataProvider",
    "ProviderBase",
    "ProviderError",
    "ProviderKind",
    "RetryPolicy",
    "VerifyResult",
]
