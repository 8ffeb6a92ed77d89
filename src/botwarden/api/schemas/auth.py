"""Request and response bodies of the auth, 2FA and user routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from botwarden.domain.trading import Role

Password = Annotated[str, Field(min_length=8, max_length=1024)]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    password: Password


class RegisterOut(BaseModel):
    user_id: str
    account_id: str


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Not validated as an email: a malformed one is simply unknown (INVALID_CREDENTIALS).
    email: str = Field(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16,
                             description="The current code, when 2FA is on")


class TokenOut(BaseModel):
    token: str = Field(description="Send as 'Authorization: Bearer <token>'")
    expires_at: datetime
    step_up_until: datetime | None = Field(
        default=None, description="Set when the login carried a valid TOTP code")


class MeUser(BaseModel):
    id: str
    email: str
    role: Role


class MeAccount(BaseModel):
    id: str
    name: str
    gate_profile: str
    kill_switch_engaged: bool


class TwoFactorState(BaseModel):
    enabled: bool
    pending: bool = Field(description="A secret awaits its first code (POST /api/2fa/verify)")


class MeToken(BaseModel):
    id: str
    expires_at: datetime


class MeOut(BaseModel):
    user: MeUser
    account: MeAccount
    two_factor: TwoFactorState
    step_up_until: datetime | None = Field(description="null when no step-up is active")
    token: MeToken


class TotpSetupOut(BaseModel):
    secret: str = Field(description="Base32 secret; add it to an authenticator app")
    otpauth_uri: str = Field(description="The same secret as an otpauth:// URI (QR code)")


class TotpVerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=16)


class TotpVerifyOut(BaseModel):
    two_factor_enabled: bool
    enabled_now: bool = Field(description="This code confirmed a newly set-up secret")
    step_up_until: datetime


class UserOut(BaseModel):
    id: str
    email: str
    role: Role
    disabled: bool
    two_factor_enabled: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    password: Password
    role: Role = Role.VIEWER


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None
