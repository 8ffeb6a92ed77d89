"""Research evidence: backtests, sweeps, matrices, walk-forward, stress, evolution."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import JSONType, UTCDateTime

RESEARCH_KINDS = ("BACKTEST", "SWEEP", "MATRIX", "WALK_FORWARD", "STRESS", "EVOLUTION")


class ResearchRun(Base):
    """One research result. BACKTEST rows with provenance are the evidence TRIALS gates read."""

    __tablename__ = "research_runs"

    id: Mapped[str] = pk()
    account_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    bot_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("bot_jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="QUEUED")
    strategy_kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    symbol: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    timeframe: Mapped[str] = mapped_column(sa.String(8), nullable=False, default="1m")
    # Provenance: which real (or synthetic) market data produced this result.
    provider: Mapped[str | None] = mapped_column(sa.String(32))
    dataset: Mapped[str | None] = mapped_column(sa.String(64))
    range_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    range_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data_hash: Mapped[str | None] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    passed: Mapped[bool | None] = mapped_column(sa.Boolean)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = now_column()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        one_of("kind", RESEARCH_KINDS, "kind"),
        sa.Index("ix_research_runs_bot_kind", "bot_id", "kind", "created_at"),
    )


class EvolutionIndividual(Base):
    """One evaluated candidate of an evolution run (a Optuna trial), with its lineage."""

    __tablename__ = "evolution_individuals"

    id: Mapped[str] = pk()
    run_id: Mapped[str] = mapped_column(
        sa.ForeignKey("research_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    generation: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    trial_number: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    fitness: Mapped[float] = mapped_column(sa.Float, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    parents: Mapped[list[int]] = mapped_column(JSONType, nullable=False, default=list)
    created_at: Mapped[datetime] = now_column()
