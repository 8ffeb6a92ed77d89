"""Audit log, integrations and their telemetry, economic calendar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import JSONType, UTCDateTime


class AuditLog(Base):
    """Append-only (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[str] = pk()
    # Nullable: a refused anonymous request (bad login) has no account yet.
    account_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    target_type: Mapped[str | None] = mapped_column(sa.String(32))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    decision: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    reason_code: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    trace_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("decision", ("ALLOW", "DENY"), "decision"),
        sa.Index("ix_audit_log_account_created", "account_id", "created_at"),
    )


class IntegrationStatus(Base):
    __tablename__ = "integration_status"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)  # data, broker, context
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    configured: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_error_code: Mapped[str | None] = mapped_column(sa.String(40))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (one_of("status", ("OK", "DEGRADED", "DOWN"), "status"),)


class IntegrationEvent(Base):
    """A status change of an integration (DEGRADED, DOWN, recovered)."""

    __tablename__ = "integration_events"

    id: Mapped[str] = pk()
    name: Mapped[str] = mapped_column(sa.String(32), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    code: Mapped[str | None] = mapped_column(sa.String(40))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = now_column()


class IntegrationTelemetry(Base):
    """Proof-of-use, aggregated per provider, operation and minute so it stays bounded."""

    __tablename__ = "integration_telemetry"

    id: Mapped[str] = pk()
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    operation: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    calls: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    ok_calls: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    rows: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    total_latency_ms: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    max_latency_ms: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)

    __table_args__ = (
        sa.UniqueConstraint("provider", "operation", "bucket_start", name="uq_telemetry_bucket"),
    )


class EconomicEvent(Base):
    __tablename__ = "economic_events"

    id: Mapped[str] = pk()
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    country: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    impact: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    source: Mapped[str] = mapped_column(sa.String(32), nullable=False)

    __table_args__ = (
        one_of("impact", ("HIGH", "MEDIUM", "LOW"), "impact"),
        sa.UniqueConstraint("at", "country", "name", name="uq_economic_events_at_name"),
    )
