"""Vocabulary of orders, fills, positions and the trade log."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"


class OrderStatus(StrEnum):
    PENDING = "PENDING"  # persisted intent, not yet sent
    SENT = "SENT"  # handed to the broker, no acknowledgement yet
    WORKING = "WORKING"  # acknowledged, resting
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    UNRESOLVED = "UNRESOLVED"  # sent, outcome unknown: query the broker, never resend


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class SourceType(StrEnum):
    LIVE = "LIVE"
    PAPER = "PAPER"
    SHADOW = "SHADOW"
    CANARY = "CANARY"
    BACKTEST = "BACKTEST"
    TEST = "TEST"


class Role(StrEnum):
    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"
