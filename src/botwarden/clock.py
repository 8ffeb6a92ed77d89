"""Time, injectable: code that decides by time takes a `Clock` so tests never sleep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything in Botwarden is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def strictly_after(last: datetime | None, now: datetime) -> datetime:
    """`now`, or 1 us after `last` when `now` is not later: an event written under a lock
    that orders it after `last` is dated after it, even when its process read the clock
    before the other process's commit (a trail then reads in the order it was written)."""
    return now if last is None or now > last else last + timedelta(microseconds=1)
