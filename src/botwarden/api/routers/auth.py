"""Register, login, logout, `GET /api/me`, and TOTP two-factor setup and verification."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session, get_settings_dep
from botwarden.api.guard import Guarded, guard
from botwarden.api.schemas.auth import (
    LoginRequest,
    MeAccount,
    MeOut,
    MeToken,
    MeUser,
    RegisterOut,
    RegisterRequest,
    TokenOut,
    TotpSetupOut,
    TotpVerifyOut,
    TotpVerifyRequest,
    TwoFactorState,
)
from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.domain.errors import NotFound
from botwarden.domain.trading import Role
from botwarden.policy import Action
from botwarden.services import accounts, totp
from botwarden.store.models import Account, ApiToken, Bot, User

router = APIRouter(tags=["auth"])


def request_now(request: Request) -> datetime:
    """The time auth decisions are made at; tests set `app.state.clock` instead of sleeping."""
    clock: Clock = getattr(request.app.state, "clock", utcnow)
    return clock()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def no_facts(session: Session, bot: Bot | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """These actions need no facts from the body; keep passwords and codes out of them."""
    return {}


@router.post("/api/auth/register", status_code=201, response_model=RegisterOut)
def register(
    body: RegisterRequest,
    settings: Settings = Depends(get_settings_dep),
    ctx: Guarded = Depends(guard(Action.AUTH_REGISTER, facts=no_facts)),
) -> RegisterOut:
    """A new account whose first user, its admin, is the caller."""
    account, user = accounts.create_account(ctx.session, body.email, body.password,
                                            settings=settings)
    ctx.audit.account_id, ctx.audit.target_type, ctx.audit.target_id = account.id, "user", user.id
    ctx.commit()
    return RegisterOut(user_id=user.id, account_id=account.id)


@router.post("/api/auth/login", response_model=TokenOut)
def login(
    body: LoginRequest,
    request: Request,
    now: datetime = Depends(request_now),
    settings: Settings = Depends(get_settings_dep),
    ctx: Guarded = Depends(guard(Action.AUTH_LOGIN, facts=no_facts)),
) -> TokenOut:
    """A bearer token. 401 INVALID_CREDENTIALS (the same answer for an unknown email and a
    wrong password), 401 TOTP_REQUIRED / TOTP_INVALID / TOTP_REPLAYED when 2FA is on, 429
    RATE_LIMITED after too many failures of the email or of the client address."""
    result = accounts.login(ctx.session, email=body.email, password=body.password,
                            code=body.totp, address=client_address(request), now=now,
                            settings=settings, audit=ctx.audit)
    ctx.commit()
    return TokenOut(token=result.token.token, expires_at=result.token.expires_at,
                    step_up_until=result.step_up_until)


@router.post("/api/auth/logout", status_code=204)
def logout(now: datetime = Depends(request_now),
           ctx: Guarded = Depends(guard(Action.AUTH_LOGOUT))) -> Response:
    """Revoke the token this request carries."""
    assert ctx.principal is not None
    accounts.revoke_token(ctx.session, ctx.principal.token_id, now)
    ctx.audit.target_type, ctx.audit.target_id = "token", ctx.principal.token_id
    ctx.commit()
    return Response(status_code=204)


@router.get("/api/me", response_model=MeOut)
def me(
    now: datetime = Depends(request_now),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> MeOut:
    user = session.get(User, principal.user_id)
    account = session.get(Account, principal.account_id)
    token = session.get(ApiToken, principal.token_id)
    if user is None or account is None or token is None:
        raise NotFound("user")
    return MeOut(
        user=MeUser(id=user.id, email=user.email, role=Role(user.role)),
        account=MeAccount(id=account.id, name=account.name, gate_profile=account.gate_profile,
                          kill_switch_engaged=account.kill_switch_engaged),
        two_factor=TwoFactorState(enabled=user.totp_enabled,
                                  pending=user.totp_pending_secret is not None),
        step_up_until=user.step_up_until if totp.step_up_active(user, now) else None,
        token=MeToken(id=token.id, expires_at=token.expires_at),
    )


@router.post("/api/2fa/setup", response_model=TotpSetupOut)
def totp_setup(now: datetime = Depends(request_now),
               ctx: Guarded = Depends(guard(Action.TOTP_SETUP, facts=no_facts))) -> TotpSetupOut:
    """A new secret, pending until a code of it is verified. Replacing the secret of an
    enabled 2FA needs a step-up."""
    assert ctx.principal is not None
    user = ctx.session.get(User, ctx.principal.user_id)
    if user is None:
        raise NotFound("user")
    ctx.audit.target_type, ctx.audit.target_id = "user", user.id
    secret = totp.begin_setup(user, now)
    ctx.commit()
    return TotpSetupOut(secret=secret, otpauth_uri=totp.otpauth_uri(secret, user.email))


@router.post("/api/2fa/verify", response_model=TotpVerifyOut)
def totp_verify(
    body: TotpVerifyRequest,
    now: datetime = Depends(request_now),
    settings: Settings = Depends(get_settings_dep),
    ctx: Guarded = Depends(guard(Action.TOTP_VERIFY, facts=no_facts)),
) -> TotpVerifyOut:
    """Confirm a pending secret (enabling 2FA), or prove possession of the enabled one; both
    grant a step-up of 5 minutes. Each code is accepted once (TOTP_REPLAYED)."""
    assert ctx.principal is not None
    ctx.audit.target_type, ctx.audit.target_id = "user", ctx.principal.user_id
    result = accounts.verify_totp(ctx.session, ctx.principal.user_id, body.code, now=now,
                                  settings=settings)
    ctx.audit.detail = {"enabled_now": result.enabled_now}
    ctx.commit()
    return TotpVerifyOut(two_factor_enabled=True, enabled_now=result.enabled_now,
                         step_up_until=result.step_up_until)
