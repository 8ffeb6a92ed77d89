"""The autonomy demo's timeline and its verdict: what was read back from the store, in time
order, and whether each expected event is among it.

Pure: the events come in as `Event`s (read by evidence.py), the expectations as
`Expected`s. An expectation is met by the first event of its source, kind and subject that
is not older than the event that met its `after` expectation, so "the job is RUNNING again"
has to follow the failback, not precede it. The demo exits 0 only when every expectation is
met (`exit_code`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

PASS, FAIL = "PASS", "FAIL"


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    source: str  # the table it was read from (or "demo" for what the demo itself did)
    subject: str  # who it is about: a bot's label, a provider, a worker
    kind: str  # a stable code: FAILOVER, RUNNING->DEGRADED, DAILY_LOSS_BREACH, ...
    text: str = ""  # the details, for people


@dataclass(frozen=True, slots=True)
class Expected:
    name: str
    description: str
    source: str
    kind: str
    subject: str | None = None  # None: any subject
    after: str | None = None  # the name of an expectation this one must not precede
    also: tuple[str, ...] = ()  # other kinds that meet it as well

    def matches(self, event: Event) -> bool:
        return (event.source == self.source and (event.kind == self.kind
                                                 or event.kind in self.also)
                and (self.subject is None or event.subject == self.subject))


@dataclass(frozen=True, slots=True)
class Verdict:
    expected: Expected
    event: Event | None

    @property
    def passed(self) -> bool:
        return self.event is not None


def ordered(events: Sequence[Event]) -> list[Event]:
    """Time order; at one instant, the order the events were given in."""
    return sorted(events, key=lambda e: e.at)


def judge(expectations: Sequence[Expected], events: Sequence[Event]) -> list[Verdict]:
    """One verdict per expectation, in the given order. An expectation whose `after` names
    one that was not met cannot be met either."""
    timeline = ordered(events)
    met: dict[str, Event | None] = {}
    verdicts = []
    for expected in expectations:
        floor: datetime | None = None
        blocked = False
        if expected.after is not None:
            before = met.get(expected.after)
            if before is None:
                blocked = True
            else:
                floor = before.at
        found = None if blocked else next(
            (e for e in timeline if expected.matches(e) and (floor is None or e.at >= floor)),
            None)
        met[expected.name] = found
        verdicts.append(Verdict(expected, found))
    return verdicts


def exit_code(verdicts: Sequence[Verdict]) -> int:
    return 0 if verdicts and all(v.passed for v in verdicts) else 1


def render_timeline(events: Sequence[Event], start: datetime | None = None) -> list[str]:
    """One line per event: seconds since `start` (the first event by default), wall time,
    source table, subject, kind and details."""
    timeline = ordered(events)
    if not timeline:
        return ["(no events)"]
    origin = start or timeline[0].at
    lines = []
    for e in timeline:
        offset = (e.at - origin).total_seconds()
        clock = e.at.strftime("%H:%M:%S.%f")[:-3]
        text = f"  {e.text}" if e.text else ""
        lines.append(f"{offset:+8.1f}s  {clock}  {e.source:<20} {e.subject:<14} {e.kind}{text}")
    return lines


def render_verdicts(verdicts: Sequence[Verdict]) -> list[str]:
    lines = []
    for v in verdicts:
        if v.event is not None:
            lines.append(f"{PASS}  {v.expected.name:<26} {v.expected.description} "
                         f"[{v.event.source} {v.event.at:%H:%M:%S}]")
        else:
            lines.append(f"{FAIL}  {v.expected.name:<26} {v.expected.description} "
                         f"[not seen in {v.expected.source}]")
    return lines


def summary(verdicts: Sequence[Verdict]) -> str:
    missing = [v.expected.name for v in verdicts if not v.passed]
    passed = len(verdicts) - len(missing)
    if not missing:
        return f"autonomy demo: PASS ({passed} of {len(verdicts)} expected events seen)"
    return (f"autonomy demo: FAIL ({passed} of {len(verdicts)} expected events seen; "
            f"missing: {', '.join(missing)})")
