"""All tables. Import from here so that every model is registered on `Base.metadata`."""

from botwarden.store.models.accounts import Account, ApiToken, Approval, LoginFailure, User
from botwarden.store.models.audit import (
    AuditLog,
    EconomicEvent,
    IntegrationEvent,
    IntegrationStatus,
    IntegrationTelemetry,
)
from botwarden.store.models.base import Base
from botwarden.store.models.bots import Bot, CircuitBreaker, KillEvent, RiskConfig
from botwarden.store.models.jobs import BotJob, JobRunEvent, SchedulerTask, Worker
from botwarden.store.models.ratelimit import RateLimitHit
from botwarden.store.models.research import EvolutionIndividual, ResearchRun
from botwarden.store.models.trading import (
    EquitySnapshot,
    Fill,
    Order,
    PaperBrokerJournal,
    PaperBrokerState,
    Position,
    RunnerState,
    Trace,
    TradeLog,
)

__all__ = [
    "Account", "ApiToken", "Approval", "AuditLog", "Base", "Bot", "BotJob", "CircuitBreaker",
    "EconomicEvent", "EquitySnapshot", "EvolutionIndividual", "Fill", "IntegrationEvent",
    "IntegrationStatus", "IntegrationTelemetry", "JobRunEvent", "KillEvent", "LoginFailure",
    "Order", "PaperBrokerJournal", "PaperBrokerState", "Position", "RateLimitHit",
    "ResearchRun", "RiskConfig", "RunnerState",
    "SchedulerTask", "Trace", "TradeLog", "User", "Worker",
]
