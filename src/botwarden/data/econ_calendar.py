"""Economic calendar events and the news-blackout rule: pure code, no I/O.

An event has a UTC time, a country, a name and an impact (HIGH, MEDIUM, LOW). Release
schedules are published in exchange time (US releases in America/New_York), so conversion
to UTC happens once, here, with the time-zone database: 08:30 New York is 13:30 UTC in
winter and 12:30 UTC in summer.

`blackout(events, now, minutes=10)` is what the risk engine's NEWS_BLACKOUT check asks:
the high-impact event within `minutes` of `now` (before or after, both ends included),
nearest first, or None.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NEW_YORK = ZoneInfo("America/New_York")


class Impact(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


@dataclass(frozen=True, slots=True)
class EconEvent:
    at: datetime  # UTC
    country: str
    name: str
    impact: Impact
    source: str = "builtin"


def exchange_time_to_utc(day: date, clock: time, tz: ZoneInfo = NEW_YORK) -> datetime:
    """A wall-clock time in `tz` on `day`, as UTC (daylight saving applied by the tz data)."""
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def blackout(events: Iterable[EconEvent], now: datetime, minutes: float = 10,
             impacts: frozenset[Impact] = frozenset({Impact.HIGH})) -> EconEvent | None:
    """The event of `impacts` nearest to `now` within `minutes` either side, else None.
    On a tie (one event before, one after, equally far) the earlier one is returned."""
    window = timedelta(minutes=minutes)
    best: EconEvent | None = None
    best_key: tuple[timedelta, datetime] | None = None
    for event in events:
        if event.impact not in impacts:
            continue
        distance = abs(event.at - now)
        if distance > window:
            continue
        key = (distance, event.at)
        if best_key is None or key < best_key:
            best, best_key = event, key
    return best


class CalendarFileError(ValueError):
    """A calendar file that cannot be loaded, with the rows at fault."""


def parse_events(text: str, fmt: str, source: str = "import") -> list[EconEvent]:
    """Events from CSV or JSON text. Each row has either `at` (ISO 8601 with an offset, or
    UTC when it has none) or `date` + `time` (+ optional `tz`, default America/New_York),
    and `name`, optional `country` (default US) and `impact` (default HIGH)."""
    if fmt == "csv":
        rows: list[Mapping[str, Any]] = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "json":
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise CalendarFileError(f"not JSON: {exc}") from exc
        rows = payload.get("events", []) if isinstance(payload, dict) else payload
        if not isinstance(rows, list):
            raise CalendarFileError("expected a list of events or {\"events\": [...]}")
    else:
        raise CalendarFileError(f"unknown format {fmt!r}: use csv or json")
    events, problems = [], []
    for number, row in enumerate(rows, start=2 if fmt == "csv" else 1):
        try:
            events.append(_event(row, source))
        except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError) as exc:
            problems.append(f"{'line' if fmt == 'csv' else 'item'} {number}: {exc}")
    if problems:
        shown = "; ".join(problems[:5])
        raise CalendarFileError(f"{len(problems)} invalid event(s): {shown}")
    return events


def _event(row: Mapping[str, Any], source: str) -> EconEvent:
    if not isinstance(row, Mapping):
        raise TypeError("an event must be an object")
    name = str(row.get("name") or "").strip()
    if not name:
        raise ValueError("name missing")
    if len(name) > 200:
        raise ValueError("name longer than 200 characters")
    impact = Impact(str(row.get("impact") or "HIGH").strip().upper())
    country = str(row.get("country") or "US").strip().upper()
    if not 1 <= len(country) <= 8:
        raise ValueError(f"country {country!r} must be 1-8 characters")
    if row.get("at"):
        at = datetime.fromisoformat(str(row["at"]).strip().replace("Z", "+00:00"))
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    else:
        day = date.fromisoformat(str(row["date"]).strip())
        clock = time.fromisoformat(str(row["time"]).strip())
        tz = ZoneInfo(str(row.get("tz") or "America/New_York").strip())
        at = exchange_time_to_utc(day, clock, tz)
    return EconEvent(at, country, name, impact, source)
