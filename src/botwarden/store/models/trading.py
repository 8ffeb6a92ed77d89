"""Orders, fills, positions, the trade log and the runner's traces and state."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.domain.trading import OrderStatus, OrderType, Side, SourceType
from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import JSONType, Money, UTCDateTime

_MODES = ("PAPER", "SHADOW", "CANARY", "LIVE")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True
    )
    job_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("bot_jobs.id", ondelete="SET NULL"), index=True
    )
    # Fixed per trading intent and persisted before sending: the exactly-once key.
    client_order_id: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    broker: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    mode: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    symbol: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    side: Mapped[str] = mapped_column(sa.String(4), nullable=False)
    qty: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    order_type: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    limit_price: Mapped[Decimal | None] = mapped_column(Money())
    stop_price: Mapped[Decimal | None] = mapped_column(Money())
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    filled_qty: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    avg_fill_price: Mapped[Decimal | None] = mapped_column(Money())
    reduce_only: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    # A bracket's exit (stop-loss, profit target) names the entry it protects.
    parent_client_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    reject_code: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("side", [s.value for s in Side], "side"),
        one_of("order_type", [t.value for t in OrderType], "order_type"),
        one_of("status", [s.value for s in OrderStatus], "status"),
        one_of("mode", _MODES, "mode"),
        sa.CheckConstraint("qty > 0", name="qty_positive"),
        sa.CheckConstraint("filled_qty >= 0 AND filled_qty <= qty", name="filled_within_qty"),
    )


class Fill(Base):
    __tablename__ = "fills"

    id: Mapped[str] = pk()
    order_id: Mapped[str] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # The broker's fill id: a fill is applied once.
    fill_id: Mapped[str] = mapped_column(sa.String(80), nullable=False, unique=True)
    side: Mapped[str] = mapped_column(sa.String(4), nullable=False)
    qty: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    price: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    fee: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("side", [s.value for s in Side], "side"),
        sa.CheckConstraint("qty > 0", name="qty_positive"),
    )


class Position(Base):
    __tablename__ = "positions"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False
    )
    symbol: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    qty: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)  # signed
    avg_price: Mapped[Decimal | None] = mapped_column(Money())
    # Open FIFO lots as [[qty, "price"], ...]: the exact basis (domain.ledger.Book).
    lots: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    realized_pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (sa.UniqueConstraint("bot_id", "symbol", name="uq_positions_bot_symbol"),)


class TradeLog(Base):
    __tablename__ = "trade_logs"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # The bot instance (its RUNNER or BACKTEST job) that produced the trade.
    bot_instance_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bot_jobs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source_type: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    symbol: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    side: Mapped[str] = mapped_column(sa.String(5), nullable=False)  # LONG or SHORT
    qty: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    exit_time: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    entry_price: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    exit_price: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False)  # net of fees
    fees: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=Decimal(0))
    exit_fill_id: Mapped[str | None] = mapped_column(sa.String(80), unique=True)
    is_invalid: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("source_type", [s.value for s in SourceType], "source_type"),
        one_of("side", ("LONG", "SHORT"), "side"),
        sa.CheckConstraint("qty > 0", name="qty_positive"),
        sa.Index("ix_trade_logs_bot_source", "bot_id", "source_type"),
    )


class Trace(Base):
    """A decision trace (what the runner decided, with the risk verdict) or a no-trade
    trace (wanted to trade, did not, and why)."""

    __tablename__ = "traces"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False
    )
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("bot_jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    bar_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    reason_code: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("kind", ("DECISION", "NO_TRADE"), "kind"),
        sa.Index("ix_traces_bot_kind_created", "bot_id", "kind", "created_at"),
    )


class RunnerState(Base):
    """A runner's strategy state and cursor, so that a restart resumes where it stopped."""

    __tablename__ = "runner_states"

    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("bot_jobs.id", ondelete="SET NULL"))
    last_bar_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last bar's close: the mark for unrealised PnL read by the risk monitor.
    last_price: Mapped[Decimal | None] = mapped_column(Money())
    # Wall-clock seconds expected between two bars: the bar interval, divided by the replay
    # speed when replaying. Data is stale when no bar came for twice this (updated_at).
    bar_wall_seconds: Mapped[float] = mapped_column(sa.Float, nullable=False, default=60.0)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    updated_at: Mapped[datetime] = now_column()


class EquitySnapshot(Base):
    __tablename__ = "equity_snapshots"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    equity: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    realized_pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False)

    __table_args__ = (sa.Index("ix_equity_snapshots_bot_at", "bot_id", "at"),)


class PaperBrokerState(Base):
    """The paper broker's own book, apart from the runner's, so reconcile has two sides: a
    snapshot (`state`, at the revision it carries) and the head `revision`, which every
    change moves on by one (a writer that expected another head is refused). The changes
    after the snapshot are rows of `paper_broker_journal`."""

    __tablename__ = "paper_broker_state"

    account_key: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    revision: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0,
                                          server_default="0")
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (sa.CheckConstraint("revision >= 0", name="revision_not_negative"),)


class PaperBrokerJournal(Base):
    """One change of a paper broker's book after its snapshot: what changed (orders, new
    fills, positions, last bars), so a save writes a few hundred bytes, not the book."""

    __tablename__ = "paper_broker_journal"

    account_key: Mapped[str] = mapped_column(
        sa.ForeignKey("paper_broker_state.account_key", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    delta: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = now_column()
