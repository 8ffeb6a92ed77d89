"""Trading sessions of CME Globex futures: when the market is open, and which trading day a
bar belongs to.

Holidays, early closes and daylight-saving changes come from the maintained
`exchange_calendars` library (its "CMES" calendar). That calendar models each session as
17:00-17:00 Chicago with no pause, so it misses the daily maintenance halt: Globex equity,
metal and energy futures close at 16:00 Chicago (17:00 New York) and reopen at 17:00 Chicago
(18:00 New York). `_CMEGlobexCalendar` therefore keeps the library's schedule and only moves
the regular close to 16:00 Chicago; early closes (12:00 Chicago on MLK day, Thanksgiving,
Christmas Eve, ...) are earlier still and stay as the library has them.

Times are UTC everywhere: a timestamp is either an aware `datetime` or an int of nanoseconds
since the epoch. Exchange time exists only inside this module. A session is labelled by its
trading date (the day it closes), as an int of days since 1970-01-01 in vectorised results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import lru_cache
from typing import NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd
from exchange_calendars.exchange_calendar_cmes import CMESExchangeCalendar

from botwarden.domain.bars import I64
from botwarden.domain.errors import DomainError

DEFAULT_CALENDAR = "CMES"
NO_SESSION = -1
"""Session id given to a bar time at which the market is closed."""

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = date(1970, 1, 1)
# The library's holiday rules reach back decades; 2000 covers any data we will import while
# keeping construction cheap (about 0.2 s, then cached for the life of the process).
CALENDAR_START = "2000-01-03"

Timestamp = datetime | int
BoolArray = npt.NDArray[np.bool_]


class _CMEGlobexCalendar(CMESExchangeCalendar):  # type: ignore[misc]
    """The CMES schedule with the 16:00-17:00 Chicago daily halt (see the module docstring)."""

    name = "CME_GLOBEX"
    close_times = ((None, clock_time(16)),)


_CALENDAR_CLASSES = {"CMES": _CMEGlobexCalendar}


@dataclass(frozen=True, slots=True, eq=False)
class SessionLabels:
    """Per-bar result of `label_sessions`: the session id (trading date as days since the
    epoch, `NO_SESSION` when closed) and whether the bar time lies inside a session."""

    session: I64
    in_session: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class SessionCalendar:
    """Sessions as sorted int64 arrays (ns since the epoch, UTC): session `i` runs over
    `[opens[i], closes[i])` and trades on day `days[i]` (days since the epoch)."""

    name: str
    days: I64
    opens: I64
    closes: I64
    # The last lookup's span, (start, end, index): every time in [start, end) has that
    # index (a session, or NO_SESSION for the closed span after it). A runner asks about
    # the same session several times a bar; one tuple, replaced whole, so threads share it.
    _last: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 0, NO_SESSION)],
                                              compare=False, repr=False)

    # ---- lookups on the arrays; every public function below is built on these ----

    def _index_at(self, ts: int) -> int:
        """Index of the session containing `ts`, or NO_SESSION."""
        start, end, index = self._last[0]
        if start <= ts < end:
            return index
        self._check_range(ts)
        i = int(np.searchsorted(self.opens, ts, side="right")) - 1
        if i < 0:
            return NO_SESSION
        close = int(self.closes[i])
        if ts < close:
            self._last[0] = (int(self.opens[i]), close, i)
            return i
        if i + 1 < len(self.opens):
            self._last[0] = (close, int(self.opens[i + 1]), NO_SESSION)
        return NO_SESSION

    def _check_range(self, ts: int) -> None:
        if ts < int(self.opens[0]) or ts >= int(self.closes[-1]):
            self._out_of_range(ts)

    def _out_of_range(self, ts: int) -> NoReturn:
        raise DomainError(
            "CALENDAR_OUT_OF_RANGE",
            f"{to_datetime(ts).isoformat()} is outside the {self.name} calendar "
            f"({to_datetime(int(self.opens[0])).date()} to "
            f"{to_datetime(int(self.closes[-1])).date()})",
            "Use a time inside the calendar's range.",
            status=422,
        )

    def is_open(self, ts: Timestamp) -> bool:
        return self._index_at(to_ns(ts)) != NO_SESSION

    def next_open(self, ts: Timestamp) -> datetime:
        """The first session open strictly after `ts`."""
        ns = to_ns(ts)
        self._check_range(ns)
        i = int(np.searchsorted(self.opens, ns, side="right"))
        if i >= len(self.opens):
            self._out_of_range(ns)
        return to_datetime(int(self.opens[i]))

    def next_close(self, ts: Timestamp) -> datetime:
        """The first session close strictly after `ts`: the close of the session in progress,
        or of the next session while the market is closed."""
        ns = to_ns(ts)
        self._check_range(ns)
        i = int(np.searchsorted(self.closes, ns, side="right"))
        return to_datetime(int(self.closes[i]))

    def session_of(self, ts: Timestamp) -> date | None:
        """The trading day of the session containing `ts`; None while the market is closed."""
        i = self._index_at(to_ns(ts))
        return None if i == NO_SESSION else _EPOCH + timedelta(days=int(self.days[i]))

    def minutes_to_close(self, ts: Timestamp) -> float:
        """Minutes left in the session in progress; 0.0 while the market is closed."""
        ns = to_ns(ts)
        i = self._index_at(ns)
        return 0.0 if i == NO_SESSION else (int(self.closes[i]) - ns) / NS_PER_MINUTE

    def label(self, ts: I64) -> SessionLabels:
        """Vectorised session lookup for bar open times (int64 ns). Times outside the
        calendar's range are labelled closed rather than refused: they are data, not queries."""
        idx = self.locate(ts)
        inside = idx != NO_SESSION
        session = np.where(inside, self.days[np.clip(idx, 0, None)], NO_SESSION)
        return SessionLabels(session=session.astype(np.int64), in_session=inside)

    def session_id(self, ts: int) -> int:
        """`label` of one bar open time (int ns), without building arrays: a runner asks it
        on every bar."""
        if not int(self.opens[0]) <= ts < int(self.closes[-1]):
            return NO_SESSION  # outside the calendar's range: closed, as `label` says
        i = self._index_at(ts)
        return NO_SESSION if i == NO_SESSION else int(self.days[i])

    def locate(self, ts: I64) -> I64:
        """Vectorised index of the session containing each time, NO_SESSION when closed."""
        ts = np.asarray(ts, dtype=np.int64)
        idx = np.searchsorted(self.opens, ts, side="right") - 1
        inside = (idx >= 0) & (ts < self.closes[np.clip(idx, 0, None)])
        return np.where(inside, idx, NO_SESSION).astype(np.int64)

    def sessions_between(self, start: Timestamp, end: Timestamp) -> slice:
        """Index range of the sessions that overlap `[start, end)`."""
        lo = int(np.searchsorted(self.closes, to_ns(start), side="right"))
        hi = int(np.searchsorted(self.opens, to_ns(end), side="left"))
        return slice(lo, max(lo, hi))

    def session_index(self, day: date) -> int:
        """Index of the session trading on `day`; raises when `day` is not a trading day."""
        d = (day - _EPOCH).days
        i = int(np.searchsorted(self.days, d))
        if i >= len(self.days) or int(self.days[i]) != d:
            raise DomainError(
                "NOT_A_TRADING_DAY",
                f"{day.isoformat()} is not a {self.name} trading day",
                "Pick a weekday that is not an exchange holiday.",
                status=422,
            )
        return i

    def last_session_on_or_before(self, day: date) -> int:
        """Index of the last session whose trading date is `day` or earlier."""
        i = int(np.searchsorted(self.days, (day - _EPOCH).days, side="right")) - 1
        if i < 0:
            raise DomainError(
                "CALENDAR_OUT_OF_RANGE",
                f"no {self.name} session on or before {day.isoformat()}",
                f"Use a date after {CALENDAR_START}.",
                status=422,
            )
        return i


def get_calendar(name: str = DEFAULT_CALENDAR) -> SessionCalendar:
    """The session calendar by the name an `Instrument` carries; built once per process."""
    return _build_calendar(name)


@lru_cache(maxsize=4)
def _build_calendar(name: str) -> SessionCalendar:
    try:
        cls = _CALENDAR_CLASSES[name]
    except KeyError:
        raise DomainError(
            "UNKNOWN_CALENDAR",
            f"no session calendar named {name!r}",
            f"Use one of {', '.join(sorted(_CALENDAR_CLASSES))}.",
            status=422,
        ) from None
    library_calendar = cls(start=CALENDAR_START)
    opens = pd.DatetimeIndex(library_calendar.opens).as_unit("ns").asi8
    closes = pd.DatetimeIndex(library_calendar.closes).as_unit("ns").asi8
    days = library_calendar.sessions.to_numpy().astype("datetime64[D]").view(np.int64)
    return SessionCalendar(
        name,
        np.ascontiguousarray(days, dtype=np.int64),
        np.ascontiguousarray(opens, dtype=np.int64),
        np.ascontiguousarray(closes, dtype=np.int64),
    )


def to_ns(ts: Timestamp) -> int:
    """Nanoseconds since the epoch of an aware datetime (or an int taken as ns already)."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise DomainError(
                "NAIVE_DATETIME",
                f"{ts.isoformat()} has no time zone",
                "Pass a timezone-aware datetime (UTC).",
                status=422,
            )
        if isinstance(ts, pd.Timestamp):
            return int(ts.value)  # keeps the nanoseconds a datetime cannot hold
        delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return int(ts)


def to_datetime(ns: int) -> datetime:
    """An int of ns since the epoch as an aware UTC datetime (to the microsecond)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def day_to_date(day: int) -> date:
    """A session id (days since the epoch) as a date."""
    return _EPOCH + timedelta(days=int(day))


# ---- module-level shortcuts on the default calendar (what most callers want) ----


def is_open(ts: Timestamp, calendar: str = DEFAULT_CALENDAR) -> bool:
    return get_calendar(calendar).is_open(ts)


def next_open(ts: Timestamp, calendar: str = DEFAULT_CALENDAR) -> datetime:
    return get_calendar(calendar).next_open(ts)


def next_close(ts: Timestamp, calendar: str = DEFAULT_CALENDAR) -> datetime:
    return get_calendar(calendar).next_close(ts)


def session_of(ts: Timestamp, calendar: str = DEFAULT_CALENDAR) -> date | None:
    return get_calendar(calendar).session_of(ts)


def minutes_to_close(ts: Timestamp, calendar: str = DEFAULT_CALENDAR) -> float:
    return get_calendar(calendar).minutes_to_close(ts)


def label_sessions(ts: I64, calendar: str = DEFAULT_CALENDAR) -> SessionLabels:
    return get_calendar(calendar).label(ts)
