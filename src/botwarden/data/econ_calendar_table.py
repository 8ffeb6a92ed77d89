"""Built-in US high-impact release dates for 2025 and 2026, in New York time.

Sources, as published by the agencies:
- FOMC rate decisions (statement at 14:00 ET on the last day of each meeting): the Federal
  Reserve's meeting calendars for 2025 and 2026.
- CPI (08:30 ET): the BLS release schedule, with the dates BLS revised after the 2025 lapse
  in appropriations (September 2025 CPI moved to Oct 24; October 2025 CPI was never
  published; November 2025 CPI moved to Dec 18) and after the brief 2026 lapse (January
  2026 CPI moved from Feb 11 to Feb 13).
- Employment Situation / nonfarm payrolls (08:30 ET): the BLS schedule with the same
  revisions (September 2025 on Nov 20; October and November 2025 together on Dec 16;
  January 2026 moved from Feb 6 to Feb 11).

Agencies revise schedules; load their newer dates with a calendar file
(`botwarden calendar import FILE`), which adds to this table rather than replacing it.
"""

from __future__ import annotations

from datetime import date, time

from botwarden.data.econ_calendar import EconEvent, Impact, exchange_time_to_utc

BUILTIN_SOURCE = "builtin"

FOMC_DECISIONS = (
    "2025-01-29", "2025-03-19", "2025-05-07", "2025-06-18",
    "2025-07-30", "2025-09-17", "2025-10-29", "2025-12-10",
    "2026-01-28", "2026-03-18", "2026-04-29", "2026-06-17",
    "2026-07-29", "2026-09-16", "2026-10-28", "2026-12-09",
)

# (release date, reference month)
CPI_RELEASES = (
    ("2025-01-15", "December 2024"), ("2025-02-12", "January 2025"),
    ("2025-03-12", "February 2025"), ("2025-04-10", "March 2025"),
    ("2025-05-13", "April 2025"), ("2025-06-11", "May 2025"),
    ("2025-07-15", "June 2025"), ("2025-08-12", "July 2025"),
    ("2025-09-11", "August 2025"), ("2025-10-24", "September 2025"),
    ("2025-12-18", "November 2025"),
    ("2026-01-13", "December 2025"), ("2026-02-13", "January 2026"),
    ("2026-03-11", "February 2026"), ("2026-04-10", "March 2026"),
    ("2026-05-12", "April 2026"), ("2026-06-10", "May 2026"),
    ("2026-07-14", "June 2026"), ("2026-08-12", "July 2026"),
    ("2026-09-11", "August 2026"), ("2026-10-14", "September 2026"),
    ("2026-11-10", "October 2026"), ("2026-12-10", "November 2026"),
)

EMPLOYMENT_RELEASES = (
    ("2025-01-10", "December 2024"), ("2025-02-07", "January 2025"),
    ("2025-03-07", "February 2025"), ("2025-04-04", "March 2025"),
    ("2025-05-02", "April 2025"), ("2025-06-06", "May 2025"),
    ("2025-07-03", "June 2025"), ("2025-08-01", "July 2025"),
    ("2025-09-05", "August 2025"), ("2025-11-20", "September 2025"),
    ("2025-12-16", "October and November 2025"),
    ("2026-01-09", "December 2025"), ("2026-02-11", "January 2026"),
    ("2026-03-06", "February 2026"), ("2026-04-03", "March 2026"),
    ("2026-05-08", "April 2026"), ("2026-06-05", "May 2026"),
    ("2026-07-02", "June 2026"), ("2026-08-07", "July 2026"),
    ("2026-09-04", "August 2026"), ("2026-10-02", "September 2026"),
    ("2026-11-06", "October 2026"), ("2026-12-04", "November 2026"),
)

_FOMC_TIME = time(14, 0)
_BLS_TIME = time(8, 30)


def builtin_events() -> list[EconEvent]:
    events = [
        EconEvent(exchange_time_to_utc(date.fromisoformat(day), _FOMC_TIME), "US",
                  "FOMC rate decision", Impact.HIGH, BUILTIN_SOURCE)
        for day in FOMC_DECISIONS
    ]
    events += [
        EconEvent(exchange_time_to_utc(date.fromisoformat(day), _BLS_TIME), "US",
                  f"CPI for {month}", Impact.HIGH, BUILTIN_SOURCE)
        for day, month in CPI_RELEASES
    ]
    events += [
        EconEvent(exchange_time_to_utc(date.fromisoformat(day), _BLS_TIME), "US",
                  f"Employment Situation (nonfarm payrolls) for {month}", Impact.HIGH,
                  BUILTIN_SOURCE)
        for day, month in EMPLOYMENT_RELEASES
    ]
    return sorted(events, key=lambda e: e.at)
