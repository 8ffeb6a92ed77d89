"""The rate limiter's shared store: one row per admitted request, per bucket."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.store.models.base import Base


class RateLimitHit(Base):
    """One request admitted into a rate-limit bucket (a pyrate-limiter `RateItem`), kept
    while it is inside the bucket's window. Every server process reads and writes the same
    rows, so a limit holds across processes (botwarden.api.ratelimit)."""

    __tablename__ = "rate_limit_hits"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    bucket: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    hit_at_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # Unix epoch, ms

    __table_args__ = (sa.Index("ix_rate_limit_hits_bucket_hit_at", "bucket", "hit_at_ms"),)
