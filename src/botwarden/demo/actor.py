"""The demo user acting: each mutation of the fleet goes through the action policy as that
user, like a request through the API guard, and leaves the same audit row (allowed, in the
change's transaction; refused, on its own), with `"via": "demo-fleet"` in its detail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillState
from botwarden.domain.stages import Stage
from botwarden.domain.trading import Role
from botwarden.ids import new_id
from botwarden.policy import AccountFacts, Action, ActorFacts, BotFacts, decide
from botwarden.policy.actions import SPECS, Target
from botwarden.services.audit import attach_on_commit, audit_row, write_denial
from botwarden.store.models import Account, AuditLog, Bot, User

VIA = "demo-fleet"


@dataclass(frozen=True, slots=True)
class DemoActor:
    user_id: str
    account_id: str
    role: Role

    @classmethod
    def of(cls, user: User) -> DemoActor:
        return cls(user.id, user.account_id, Role(user.role))

    @property
    def label(self) -> str:
        return f"user:{self.user_id}"  # as the API labels a user's actions

    def authorize(self, session: Session, action: Action, *, bot: Bot | None = None,
                  params: Mapping[str, Any] | None = None,
                  detail: Mapping[str, Any] | None = None) -> AuditLog:
        """Decide `action` for this user; allowed: the audit row (its fields may still be
        completed) goes in with the session's next commit; refused: it is written now and
        the refusal raised."""
        account = session.get(Account, self.account_id)
        assert account is not None
        decision = decide(
            action.value, ActorFacts(self.user_id, self.account_id, self.role, None),
            account=AccountFacts(account.id, account.kill_switch_engaged),
            bot=_facts(bot) if bot is not None else None, params=dict(params or {}),
            now=utcnow())
        row = audit_row(account_id=self.account_id, actor=self.label, action=action.value,
                        allowed=decision.allowed, reason_code=decision.reason_code,
                        target_type="bot" if SPECS[action].target is Target.BOT else None,
                        target_id=bot.id if bot is not None else None, trace_id=new_id(),
                        detail={"via": VIA, **(detail or {})})
        if not decision.allowed:
            write_denial(session, row)
            raise DomainError(decision.reason_code, decision.message, decision.fix,
                              status=decision.status)
        attach_on_commit(session, row)
        return row

    def record_refusal(self, session: Session, action: Action, *, bot: Bot | None,
                       code: str) -> None:
        """A refusal from past the policy (a safe-start check), written on its own after the
        change is rolled back, as the guard writes a route's refusal."""
        write_denial(session, audit_row(
            account_id=self.account_id, actor=self.label, action=action.value, allowed=False,
            reason_code=code, target_type="bot" if bot is not None else None,
            target_id=bot.id if bot is not None else None, trace_id=new_id(),
            detail={"via": VIA}))


def _facts(bot: Bot) -> BotFacts:
    return BotFacts(bot.id, bot.account_id, Stage(bot.stage), KillState(bot.kill_state),
                    bot.is_trading_enabled)
