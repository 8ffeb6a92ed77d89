"""TOTP two-factor authentication (RFC 6238 via pyotp): setup, verification with a +-1 step
drift window, single use of every code, and the step-up a verified code grants.

Single use: `users.totp_last_step` holds the highest time step ever accepted, and a code is
accepted only by an UPDATE that raises it, so two processes racing with the same code cannot
both win, and an older code of the window is refused once a newer one was used."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.store.models import User

ISSUER = "Botwarden"
DRIFT_STEPS = 1  # a code of the previous or the next 30-second step is still accepted


def new_secret() -> str:
    return pyotp.random_base32()


def otpauth_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def code_at(secret: str, when: datetime, steps: int = 0) -> str:
    """The code an authenticator shows at `when`, shifted by `steps` time steps."""
    return pyotp.TOTP(secret).at(when, counter_offset=steps)


def step_at(secret: str, when: datetime) -> int:
    return pyotp.TOTP(secret).timecode(when)


def matching_steps(secret: str, code: str, now: datetime) -> list[int]:
    """The time steps of the drift window whose code equals `code` (usually none or one)."""
    code = code.replace(" ", "")
    totp = pyotp.TOTP(secret)
    if len(code) != totp.digits or not code.isdigit():
        return []
    current = totp.timecode(now)
    return [current + k for k in range(-DRIFT_STEPS, DRIFT_STEPS + 1)
            if hmac.compare_digest(totp.at(now, counter_offset=k), code)]


def invalid() -> DomainError:
    return DomainError("TOTP_INVALID", "the code is wrong or outside the time window",
                       "Enter the current code from your authenticator app; check the "
                       "device's clock.", status=401)


def replayed() -> DomainError:
    return DomainError("TOTP_REPLAYED", "this code (or a newer one) was already used",
                       "Wait for the next code of your authenticator app.", status=401)


def not_set_up() -> DomainError:
    return DomainError("TOTP_NOT_SET_UP", "two-factor authentication is not set up",
                       "POST /api/2fa/setup, add the secret to an authenticator app, then "
                       "POST /api/2fa/verify with its code.", status=409)


def consume(session: Session, user: User, secret: str, code: str, now: datetime) -> int:
    """Accept `code` for `secret` once: returns its time step, raises TOTP_INVALID or
    TOTP_REPLAYED. The step is recorded in the caller's transaction."""
    steps = matching_steps(secret, code, now)
    if not steps:
        raise invalid()
    step = max(steps)
    claimed = session.execute(
        sa.update(User).where(User.id == user.id, User.totp_last_step < step)
        .values(totp_last_step=step).execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise replayed()
    user.totp_last_step = step
    return step


def begin_setup(user: User, now: datetime) -> str:
    """A fresh pending secret; 2FA is enabled (or the secret replaced) only when a code of
    it is verified. Replacing an enabled secret needs a live step-up, so a stolen token
    alone cannot move the second factor to the thief's device."""
    if user.totp_enabled and not step_up_active(user, now):
        raise DomainError("STEP_UP_REQUIRED",
                          "two-factor authentication is on; replacing its secret needs a "
                          "2FA step-up within the last 5 minutes",
                          "POST /api/2fa/verify with a current code, then retry.", status=403)
    user.totp_pending_secret = new_secret()
    return user.totp_pending_secret


@dataclass(frozen=True, slots=True)
class Verified:
    enabled_now: bool  # this code confirmed a pending secret
    step_up_until: datetime


def verify(session: Session, user: User, code: str, now: datetime,
           step_up: timedelta) -> Verified:
    """Verify a code: against the pending secret (enabling 2FA or replacing the secret), or
    else the enabled one. Either way the user gets a step-up of `step_up`."""
    pending, enabled = user.totp_pending_secret, user.totp_secret if user.totp_enabled else None
    if pending is None and enabled is None:
        raise not_set_up()
    use_pending = pending is not None and (enabled is None
                                           or bool(matching_steps(pending, code, now)))
    secret = pending if use_pending else enabled
    assert secret is not None
    consume(session, user, secret, code, now)
    if use_pending:
        user.totp_secret, user.totp_pending_secret, user.totp_enabled = pending, None, True
    user.step_up_until = now + step_up
    return Verified(use_pending, user.step_up_until)


def step_up_active(user: User, now: datetime) -> bool:
    return user.step_up_until is not None and user.step_up_until > now
