"""Time, injectable: code that decides by time takes a `Clock` so tests never sleep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything in Botwarden is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
