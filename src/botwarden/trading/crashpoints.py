"""Fault injection for the crash-safety tests: named points of the order lifecycle where a
test has this process killed, the n-th time a point is reached, with SIGKILL (no clean-up,
no `finally`, no flush: as the OOM killer or a power cut would).

    BOTWARDEN_CRASH_AT="order.submitted:3" botwarden worker   # dies at its 3rd submit

Unset (always, outside tests), `reached` is one comparison: the variable is read once per
process, at the first point reached (a child forked by a test reads its own). A value that
names no point, or no positive count, fails loudly rather than injecting nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "BOTWARDEN_CRASH_AT"

# Where the points are, in the order one bar meets them:
BAR_MATCHED = "bar.matched"  # the simulated broker matched the bar; its fills not applied
# fills written (a runner's bar commits them with its intents); brackets not adopted
FILLS_APPLIED = "fills.applied"
ORDER_PERSISTED = "order.persisted"  # the intent committed (PENDING), not sent
ORDER_SUBMITTED = "order.submitted"  # the broker acknowledged; our status not saved
BAR_PROCESSED = "bar.processed"  # the bar's decisions made; the runner state not saved
STATE_SAVED = "state.saved"  # the runner state saved with the bar
POINTS = (BAR_MATCHED, FILLS_APPLIED, ORDER_PERSISTED, ORDER_SUBMITTED, BAR_PROCESSED,
          STATE_SAVED)

_UNREAD = ("", 0)
_plan: tuple[str, int] | None = _UNREAD  # (point, n); None: nothing to inject
_counts: dict[str, int] = {}


def parse(value: str) -> tuple[str, int]:
    """"<point>:<n>" -> (point, n)."""
    point, _, count = value.rpartition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}={value!r}: expected <point>:<n> with n >= 1 and a point "
                         f"among {', '.join(POINTS)}")
    return point, int(count)


def _read() -> tuple[str, int] | None:
    value = os.environ.get(ENV)
    return parse(value) if value else None


def reached(name: str) -> None:
    """Mark that this process reached the point `name`; die here if it is the one armed."""
    global _plan
    if _plan is _UNREAD:
        _plan = _read()
    if _plan is None or _plan[0] != name:
        return
    count = _counts.get(name, 0) + 1
    _counts[name] = count
    if count == _plan[1]:
        os.write(2, f"crashpoint: SIGKILL at {name} #{count}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)


def _forget() -> None:
    """In a forked child: read the variable again (the test sets it after the fork)."""
    global _plan
    _plan = _UNREAD
    _counts.clear()


os.register_at_fork(after_in_child=_forget)
