"""Accounts, users, tokens, login throttling, approvals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.domain.trading import Role
from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import Money, UTCDateTime


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = pk()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    # "standard" applies domain.md's gates; "demo" is the lighter, declared demo profile.
    gate_profile: Mapped[str] = mapped_column(sa.String(32), nullable=False, default="standard")
    starting_capital: Mapped[Decimal] = mapped_column(Money(), nullable=False,
                                                      default=Decimal(50000))
    # Account-wide cap on contracts held plus working across all its bots (None: no cap).
    # Checked inside the transaction that persists each order intent, under a lock on this
    # row, so two bots racing cannot exceed it together.
    max_contracts: Mapped[int | None] = mapped_column(sa.Integer)
    kill_switch_engaged: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    kill_switch_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (one_of("gate_profile", ("standard", "demo"), "gate_profile"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = pk()
    account_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email: Mapped[str] = mapped_column(sa.String(320), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=Role.ADMIN.value)
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    # Highest TOTP time step ever accepted: a code at or below it is a replay.
    totp_last_step: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    step_up_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (one_of("role", [r.value for r in Role], "role"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = pk()
    user_id: Mapped[str] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = now_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """One failed login or TOTP attempt; counted per key within a sliding window."""

    __tablename__ = "login_failures"

    id: Mapped[str] = pk()
    key: Mapped[str] = mapped_column(sa.String(400), nullable=False)
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (sa.Index("ix_login_failures_key_created", "key", "created_at"),)


class Approval(Base):
    """A signed CANARY -> LIVE approval; stored so that each token is used at most once."""

    __tablename__ = "approvals"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = now_column()
