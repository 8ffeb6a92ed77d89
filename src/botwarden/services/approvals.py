"""Signed, one-use approvals for CANARY -> LIVE (domain.md, "Promotion gates": a human
approval is a 2FA step-up plus a signed token that expires after 5 minutes).

The token is an itsdangerous signature (HMAC with `Settings.secret_key`) over the approval's
id, bot, approver and expiry; the `approvals` row makes it single-use. A token is accepted
only if its signature holds, it names this bot, its row is unused and unexpired, and its
approver is an enabled user of the bot's account. Consuming it is a compare-and-set on
`used_at` inside the caller's transaction, so the promotion and the consumption commit or
roll back together and two concurrent uses cannot both succeed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.store.models import Approval, Bot, User

_SALT = "botwarden.approval.canary-to-live"
_FIX = "Issue a new approval (POST /api/bots/{id}/approvals with a 2FA step-up) and use it " \
       "within 5 minutes."


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


@dataclass(frozen=True, slots=True)
class IssuedApproval:
    approval_id: str
    token: str
    expires_at: datetime


def issue_approval(session: Session, bot: Bot, user_id: str, *, secret: str, now: datetime,
                   ttl: timedelta) -> IssuedApproval:
    """Store the approval and return its signed token (the caller commits)."""
    row = Approval(bot_id=bot.id, user_id=user_id, expires_at=now + ttl, created_at=now)
    session.add(row)
    session.flush()
    payload = {"aid": row.id, "bot": bot.id, "usr": user_id,
               "exp": int(row.expires_at.timestamp())}
    return IssuedApproval(row.id, _serializer(secret).dumps(payload), row.expires_at)


def _invalid(message: str) -> DomainError:
    return DomainError("APPROVAL_INVALID", message, _FIX, status=403)


def _decode(token: str, secret: str) -> dict[str, Any]:
    try:
        payload = _serializer(secret).loads(token)
    except BadSignature as exc:
        raise _invalid("the approval token is not a valid signed approval") from exc
    if not isinstance(payload, dict) or not all(
            isinstance(payload.get(k), str) for k in ("aid", "bot", "usr")) or \
            type(payload.get("exp")) is not int:
        raise _invalid("the approval token is malformed")
    return payload


def check_approval(session: Session, bot: Bot, token: str, *, secret: str,
                   now: datetime) -> Approval:
    """The approval row behind a usable token for `bot`, or a refusal with its code:
    APPROVAL_INVALID (403), APPROVAL_EXPIRED (403), APPROVAL_USED (409)."""
    payload = _decode(token, secret)
    if payload["bot"] != bot.id:
        raise _invalid("the approval token was issued for another bot")
    row = session.get(Approval, payload["aid"])
    if row is None or row.bot_id != bot.id or row.user_id != payload["usr"]:
        raise _invalid("no such approval for this bot")
    approver = session.get(User, row.user_id)
    if approver is None or approver.disabled or approver.account_id != bot.account_id:
        raise _invalid("the approval was not issued by an enabled user of this account")
    if row.used_at is not None:
        raise DomainError("APPROVAL_USED", "this approval token was already used", _FIX)
    if row.expires_at <= now or now.timestamp() >= payload["exp"]:
        raise DomainError("APPROVAL_EXPIRED", "the approval token has expired", _FIX, status=403)
    return row


def consume_approval(session: Session, approval: Approval, *, now: datetime) -> None:
    """Mark the approval used, in the caller's transaction; lost race -> APPROVAL_USED."""
    done = session.execute(
        sa.update(Approval)
        .where(Approval.id == approval.id, Approval.used_at.is_(None),
               Approval.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError("APPROVAL_USED", "this approval token was already used", _FIX)


def has_open_approval(session: Session, bot_id: str, *, now: datetime) -> bool:
    """Is an unused, unexpired approval waiting for this bot (promotion-evaluation shows it)?"""
    waiting = session.scalar(
        sa.select(sa.func.count()).select_from(Approval)
        .where(Approval.bot_id == bot_id, Approval.used_at.is_(None), Approval.expires_at > now)
    )
    return bool(waiting)
