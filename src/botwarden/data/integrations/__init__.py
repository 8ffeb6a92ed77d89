"""The integration registry: status, telemetry and metrics of every provider and broker."""

from botwarden.data.integrations.registry import (
    DATA_FEED,
    IntegrationRegistry,
    IntegrationSpec,
    default_specs,
)
from botwarden.data.integrations.status import IntegrationState, StatusPolicy, Transition

__all__ = [
    "DATA_FEED",
    "IntegrationRegistry",
    "IntegrationSpec",
    "IntegrationState",
    "StatusPolicy",
    "Transition",
    "default_specs",
]
