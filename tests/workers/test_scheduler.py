"""The scheduler on an injectable clock: one run per slot across schedulers, the lock,
failures recorded, triggering by name, and the task listing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.store.db import write_transaction
from botwarden.workers.scheduler import (
    Scheduler,
    default_tasks,
    list_tasks,
    next_slot,
    rows,
    trigger_task,
)
from botwarden.workers.tasks import LoopContext, ScheduledTask
from tests.workers.helpers import T0, FakeClock


class Probe:
    """A task that records the slot of every run."""

    def __init__(self, fail: bool = False) -> None:
        self.slots: list[Any] = []
        self.fail = fail

    def __call__(self, ctx: LoopContext) -> dict[str, Any]:
        self.slots.append(ctx.scheduled_for)
        if self.fail:
            raise RuntimeError("probe failed")
        return {"runs": len(self.slots)}


def probe_task(probe: Probe, seconds: float = 10.0) -> ScheduledTask:
    return ScheduledTask("probe", probe, lambda _settings: seconds)


def test_two_schedulers_run_each_slot_once(engine: Engine, settings: Settings) -> None:
    clock, probe = FakeClock(), Probe()
    task = probe_task(probe)
    first, second = (Scheduler(settings, engine=engine, tasks=[task], clock=clock)
                     for _ in range(2))
    first.ensure_rows()
    second.ensure_rows()
    ran = []
    for _ in range(20):  # 2 s steps over 40 s: slots at 0, 10, 20, 30, 40
        ran += first.tick() + second.tick() + first.tick()
        clock.advance(seconds=2)
    assert ran == ["probe"] * 4
    assert probe.slots == [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30)]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(rows).where(rows.c.name == "probe")).one()
    assert stored.run_count == 4 and stored.next_run_at == T0 + timedelta(seconds=40)
    assert stored.lock_owner is None and stored.last_result["runs"] == 4 and stored.last_ok


def test_missed_slots_are_skipped_not_caught_up() -> None:
    interval = timedelta(seconds=10)
    assert next_slot(T0, interval, T0) == T0 + interval
    assert next_slot(T0, interval, T0 + timedelta(seconds=35)) == T0 + timedelta(seconds=40)
    assert next_slot(T0, interval, T0 - timedelta(seconds=5)) == T0 + interval


def test_a_held_lock_keeps_others_out_until_it_expires(
    engine: Engine, settings: Settings
) -> None:
    clock, probe = FakeClock(), Probe()
    scheduler = Scheduler(settings, engine=engine, tasks=[probe_task(probe)], clock=clock)
    scheduler.ensure_rows()
    with write_transaction(engine) as conn:  # a process died in the middle of a run
        conn.execute(sa.update(rows).values(lock_owner="dead",
                                            lock_expires_at=T0 + timedelta(seconds=30)))
    assert scheduler.tick() == []
    clock.advance(seconds=31)
    assert scheduler.tick() == ["probe"] and probe.slots == [T0]


def test_a_failing_task_is_recorded_and_runs_again(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    scheduler = Scheduler(settings, engine=engine, tasks=[probe_task(Probe(fail=True))],
                          clock=clock)
    scheduler.ensure_rows()
    assert scheduler.tick() == ["probe"]
    [listed] = list_tasks(engine, settings, tasks=scheduler.tasks.values(), clock=clock)
    assert listed["last_ok"] is False and "probe failed" in listed["last_result"]["error"]
    clock.advance(seconds=10)
    assert scheduler.tick() == ["probe"]


def test_trigger_by_name(engine: Engine, settings: Settings) -> None:
    clock, probe = FakeClock(), Probe()
    tasks = [probe_task(probe)]
    Scheduler(settings, engine=engine, tasks=tasks, clock=clock).ensure_rows()
    outcome = trigger_task(engine, settings, "probe", tasks=tasks, clock=clock)
    assert outcome["ok"] and outcome["result"]["runs"] == 1 and probe.slots == [None]
    [listed] = list_tasks(engine, settings, tasks=tasks, clock=clock)
    assert listed["run_count"] == 1 and listed["next_run_at"] == T0  # its schedule is kept
    with pytest.raises(DomainError) as unknown:
        trigger_task(engine, settings, "nope", tasks=tasks, clock=clock)
    assert (unknown.value.code, unknown.value.status) == ("UNKNOWN_TASK", 404)
    with write_transaction(engine) as conn:
        conn.execute(sa.update(rows).values(lock_owner="other",
                                            lock_expires_at=T0 + timedelta(seconds=30)))
    with pytest.raises(DomainError) as busy:
        trigger_task(engine, settings, "probe", tasks=tasks, clock=clock)
    assert busy.value.code == "TASK_BUSY"


def test_the_listing_shows_every_loop(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    tasks = default_tasks()
    # The built-in loops first; packages imported in this process (the risk monitor) add
    # theirs after them.
    intervals = {t.name: t.interval(settings) for t in tasks}
    assert list(intervals)[:2] == ["timeout_worker", "supervisor"]
    assert (intervals["timeout_worker"], intervals["supervisor"]) == (15.0, 10.0)
    listed = list_tasks(engine, settings, tasks=tasks, clock=clock)
    assert [t["name"] for t in listed] == list(intervals)
    assert all(t["stale"] and t["run_count"] == 0 for t in listed)  # nothing runs them yet
    scheduler = Scheduler(settings, engine=engine, tasks=tasks, clock=clock)
    scheduler.ensure_rows()
    assert sorted(scheduler.tick()) == sorted(intervals)
    listed = {t["name"]: t for t in list_tasks(engine, settings, tasks=tasks, clock=clock)}
    assert listed["supervisor"]["next_run_at"] == T0 + timedelta(seconds=10)
    assert listed["timeout_worker"]["last_result"]["timed_out"] == 0
    assert not any(t["stale"] or t["running"] for t in listed.values())
    clock.advance(seconds=35)  # nobody ran the supervisor for three of its slots
    listed = {t["name"]: t for t in list_tasks(engine, settings, tasks=tasks, clock=clock)}
    assert listed["supervisor"]["stale"] and not listed["timeout_worker"]["stale"]
