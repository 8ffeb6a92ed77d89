"""An account's users and their roles. Any member may read them; an admin manages them."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session, get_settings_dep
from botwarden.api.guard import Guarded, guard
from botwarden.api.routers.auth import no_facts, request_now
from botwarden.api.schemas.auth import UserCreate, UserOut, UserUpdate
from botwarden.config import Settings
from botwarden.domain.trading import Role
from botwarden.policy import Action
from botwarden.services import accounts
from botwarden.store.models import User

router = APIRouter(prefix="/api/users", tags=["users"])


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, role=Role(user.role), disabled=user.disabled,
                   two_factor_enabled=user.totp_enabled, created_at=user.created_at)


def _member(ctx: Guarded, user_id: str) -> User:
    """The caller's account's user, named as the audit row's target once found."""
    assert ctx.principal is not None
    user = accounts.member(ctx.session, ctx.principal.account_id, user_id)
    ctx.audit.target_type, ctx.audit.target_id = "user", user.id
    return user


@router.get("", response_model=list[UserOut])
def list_users(principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> list[UserOut]:
    return [user_out(u) for u in accounts.members(session, principal.account_id)]


@router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: str, principal: Principal = Depends(current_principal),
             session: Session = Depends(get_session)) -> UserOut:
    return user_out(accounts.member(session, principal.account_id, user_id))


@router.post("", status_code=201, response_model=UserOut)
def create_user(body: UserCreate, settings: Settings = Depends(get_settings_dep),
                ctx: Guarded = Depends(guard(Action.USER_MANAGE, facts=no_facts))) -> UserOut:
    """Add a user to the caller's account (role defaults to viewer)."""
    assert ctx.principal is not None
    user = accounts.add_user(ctx.session, ctx.principal.account_id, str(body.email),
                             body.password, body.role, settings)
    ctx.audit.target_type, ctx.audit.target_id = "user", user.id
    ctx.audit.detail = {"op": "create", "role": user.role}
    ctx.commit()
    return user_out(user)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: str, body: UserUpdate, now: datetime = Depends(request_now),
                ctx: Guarded = Depends(guard(Action.USER_MANAGE, facts=no_facts))) -> UserOut:
    """Change a role or disable a user (its tokens are revoked). The account's last active
    admin can be neither demoted nor disabled (409 LAST_ADMIN)."""
    user = _member(ctx, user_id)
    changes = body.model_dump(exclude_unset=True, mode="json")
    accounts.update_member(ctx.session, user, role=body.role, disabled=body.disabled, now=now)
    ctx.audit.detail = {"op": "update", **changes}
    ctx.commit()
    return user_out(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: str,
                ctx: Guarded = Depends(guard(Action.USER_MANAGE, facts=no_facts))) -> Response:
    """Remove a user and its tokens; not the account's last active admin (409 LAST_ADMIN)."""
    user = _member(ctx, user_id)
    accounts.remove_member(ctx.session, user)
    ctx.audit.detail = {"op": "delete", "email": user.email}
    ctx.commit()
    return Response(status_code=204)
