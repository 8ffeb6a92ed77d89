"""Brokers behind one interface (`base.Broker`): paper (the backtest's fill rules), shadow
(the quoted bid and ask, nothing sent) and Tradovate (the real broker)."""

from botwarden.trading.brokers.base import (
    Ack,
    Bracket,
    Broker,
    BrokerAuthError,
    BrokerDisconnected,
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
    SimulatedBroker,
    bracket_ids,
)
from botwarden.trading.brokers.faults import BrokerFaultKind, BrokerFaultPlan
from botwarden.trading.brokers.paper import PaperBroker
from botwarden.trading.brokers.shadow import BarQuotes, Quote, QuoteSource, ShadowBroker
from botwarden.trading.brokers.state_store import (
    BrokerStateConflict,
    MemoryStateStore,
    SqlStateStore,
    StateStore,
)

__all__ = [
    "Ack",
    "BarQuotes",
    "Bracket",
    "Broker",
    "BrokerAuthError",
    "BrokerDisconnected",
    "BrokerError",
    "BrokerFaultKind",
    "BrokerFaultPlan",
    "BrokerRateLimited",
    "BrokerRejected",
    "BrokerStateConflict",
    "BrokerTimeout",
    "FillReport",
    "MemoryStateStore",
    "OrderReport",
    "OrderRequest",
    "PaperBroker",
    "PositionReport",
    "Quote",
    "QuoteSource",
    "ShadowBroker",
    "SimulatedBroker",
    "SqlStateStore",
    "StateStore",
    "bracket_ids",
]
