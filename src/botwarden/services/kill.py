"""The kill engine's state part: kill, resurrect, the account kill switch.

Each action writes its kill_events row and the bot's cached state in one transaction.
Acting on the market (cancel working orders, flatten, stop the runner) goes through
`ExecutionHooks`, the seam the trading layer fills in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.clock import as_utc, strictly_after, utcnow
from botwarden.domain.errors import DomainError
from botwarden.domain.kill import (
    KillEventType,
    KillMode,
    KillState,
    TriggerCode,
    state_after_kill,
    trading_state_for,
)
from botwarden.store.models import Account, Bot, KillEvent


class ExecutionHooks(Protocol):
    """What a HARD kill asks of the trading layer, after the kill is committed."""

    def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]: ...


_hooks: list[ExecutionHooks] = []


def register_execution_hooks(hooks: ExecutionHooks) -> None:
    _hooks.append(hooks)


def unregister_execution_hooks(hooks: ExecutionHooks) -> None:
    _hooks.remove(hooks)


@contextmanager
def installed_execution_hooks(hooks: ExecutionHooks) -> Iterator[ExecutionHooks]:
    """`hooks` registered for the length of a block (tests, a trading layer's lifetime)."""
    register_execution_hooks(hooks)
    try:
        yield hooks
    finally:
        unregister_execution_hooks(hooks)


def run_halt_hooks(session: Session, bot: Bot, trace_id: str | None) -> list[dict[str, Any]]:
    return [hook.halt(session, bot, trace_id) for hook in _hooks]


def kill_bot(
    session: Session,
    bot: Bot,
    *,
    mode: KillMode,
    trigger: TriggerCode,
    reason: str,
    actor: str,
    trace_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    escalate: bool = False,
) -> KillEvent:
    """Add the kill to the session (the caller commits). A bot already killed answers
    ALREADY_KILLED and changes nothing, unless `escalate` turns a SOFT kill into HARD."""
    current = _locked_kill_state(session, bot)
    new_state = state_after_kill(mode, trigger)
    if current is not KillState.NONE and not (
        escalate and current is KillState.SOFT_KILLED and new_state is not KillState.SOFT_KILLED
    ):
        raise DomainError("ALREADY_KILLED", f"bot is already {current.value}",
                          "Nothing to do; resurrect it first to kill it anew.")
    bot.kill_state = new_state.value
    bot.trading_state = trading_state_for(new_state)
    bot.updated_at = utcnow()
    event = KillEvent(bot_id=bot.id, account_id=bot.account_id, event_type=KillEventType.KILL.value,
                      state=new_state.value, trigger_code=trigger.value, reason=reason,
                      actor=actor, metadata_=dict(metadata or {}, mode=mode.value),
                      trace_id=trace_id, created_at=_event_time(session, bot.id))
    session.add(event)
    return event


def resurrect_bot(
    session: Session, bot: Bot, *, reason: str, actor: str, step_up: bool,
    trace_id: str | None = None,
) -> KillEvent:
    current = _locked_kill_state(session, bot)
    if current is KillState.NONE:
        raise DomainError("NOT_KILLED", "bot is not killed", "Nothing to do.")
    if current is KillState.QUARANTINED and not step_up:
        raise DomainError("STEP_UP_REQUIRED", "a QUARANTINED bot needs a 2FA step-up to resurrect",
                          "POST /api/2fa/verify with a current TOTP code, then retry.", status=403)
    account = session.get(Account, bot.account_id)
    if account is not None and account.kill_switch_engaged:
        raise DomainError("ACCOUNT_KILL_SWITCH_ENGAGED", "the account kill switch is engaged",
                          "An admin must release the kill switch first.")
    bot.kill_state = KillState.NONE.value
    bot.trading_state = trading_state_for(KillState.NONE)
    bot.updated_at = utcnow()
    event = KillEvent(bot_id=bot.id, account_id=bot.account_id,
                      event_type=KillEventType.RESURRECT.value, state=KillState.NONE.value,
                      trigger_code=TriggerCode.MANUAL_RESURRECT.value, reason=reason,
                      actor=actor, metadata_={"from_state": current.value}, trace_id=trace_id,
                      created_at=_event_time(session, bot.id))
    session.add(event)
    return event


def _locked_kill_state(session: Session, bot: Bot) -> KillState:
    """The bot's kill state as last committed, its row locked until the caller's commit: a
    kill that raced another from a second process (the risk monitor, the supervisor, a
    person) sees the first one's state, not the one its session loaded earlier, so it does
    not write a second KILL over it (PostgreSQL; SQLite's writers take turns)."""
    committed = session.execute(sa.select(Bot.kill_state).where(Bot.id == bot.id)
                                .with_for_update()).scalar_one()
    return KillState(committed)


def _event_time(session: Session, bot_id: str) -> datetime:
    """Now, or just after the bot's last kill event (its row is locked): GET kill-events and
    kill-state's last event read in the order the events were written, even when this
    process read its clock before the other one's commit."""
    last = session.execute(sa.select(sa.func.max(KillEvent.created_at))
                           .where(KillEvent.bot_id == bot_id)).scalar()
    return strictly_after(None if last is None else as_utc(last), utcnow())


def engage_kill_switch(
    session: Session, account: Account, *, reason: str, actor: str, trace_id: str | None = None
) -> list[Bot]:
    """Engage the switch and HARD-kill every bot of the account that is not already hard
    down. Returns the bots it killed (the caller commits, then runs the halt hooks)."""
    account.kill_switch_engaged = True
    account.kill_switch_at = account.kill_switch_at or utcnow()
    bots = session.scalars(
        sa.select(Bot).where(Bot.account_id == account.id).with_for_update()
    ).all()
    killed = []
    for bot in bots:
        if bot.kill_state in (KillState.HARD_KILLED.value, KillState.QUARANTINED.value):
            continue
        kill_bot(session, bot, mode=KillMode.HARD, trigger=TriggerCode.ACCOUNT_KILL_SWITCH,
                 reason=reason, actor=actor, trace_id=trace_id, escalate=True)
        killed.append(bot)
    return killed


def release_kill_switch(account: Account) -> None:
    if not account.kill_switch_engaged:
        raise DomainError("NOT_KILLED", "the kill switch is not engaged", "Nothing to do.")
    account.kill_switch_engaged = False
    account.kill_switch_at = None
