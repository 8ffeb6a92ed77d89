"""Kill states, trigger codes and the pure kill policy (domain.md, "Kill engine")."""

from __future__ import annotations

from enum import StrEnum


class KillState(StrEnum):
    NONE = "NONE"
    SOFT_KILLED = "SOFT_KILLED"
    HARD_KILLED = "HARD_KILLED"
    QUARANTINED = "QUARANTINED"


class KillMode(StrEnum):
    SOFT = "SOFT"
    HARD = "HARD"


class KillEventType(StrEnum):
    KILL = "KILL"
    RESURRECT = "RESURRECT"


class TriggerCode(StrEnum):
    MANUAL_KILL = "MANUAL_KILL"
    ACCOUNT_KILL_SWITCH = "ACCOUNT_KILL_SWITCH"
    STALE_HEARTBEAT_CRITICAL = "STALE_HEARTBEAT_CRITICAL"
    EXECUTION_REJECTION_SPIKE = "EXECUTION_REJECTION_SPIKE"
    DATA_PROVIDER_MISSING = "DATA_PROVIDER_MISSING"
    ENTITLEMENT_REVOKED = "ENTITLEMENT_REVOKED"
    RATE_LIMIT_STORM = "RATE_LIMIT_STORM"
    DD_BREACH = "DD_BREACH"
    DAILY_LOSS_BREACH = "DAILY_LOSS_BREACH"
    RECONCILE_MISMATCH = "RECONCILE_MISMATCH"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    CONFIG_INVALID = "CONFIG_INVALID"
    EDGE_LOST = "EDGE_LOST"
    MANUAL_RESURRECT = "MANUAL_RESURRECT"


# Triggers whose kill cannot be undone without a human holding a 2FA step-up.
QUARANTINE_TRIGGERS: frozenset[TriggerCode] = frozenset({TriggerCode.RECONCILE_MISMATCH})


def state_after_kill(mode: KillMode, trigger: TriggerCode) -> KillState:
    if trigger in QUARANTINE_TRIGGERS:
        return KillState.QUARANTINED
    return KillState.HARD_KILLED if mode is KillMode.HARD else KillState.SOFT_KILLED


def fold_events(events: list[tuple[KillEventType, KillState]]) -> KillState:
    """The kill state implied by a bot's events, oldest first: the record is the events,
    and the cached state on the bot must always equal this fold."""
    state = KillState.NONE
    for event_type, event_state in events:
        state = KillState.NONE if event_type is KillEventType.RESURRECT else event_state
    return state


def trading_state_for(state: KillState) -> str:
    """SOFT admits only risk-reducing orders; HARD and QUARANTINED halt the bot."""
    return {KillState.NONE: "ACTIVE", KillState.SOFT_KILLED: "REDUCING"}.get(state, "HALTED")
