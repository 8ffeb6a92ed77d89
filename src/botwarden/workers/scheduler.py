"""The scheduler: runs each named loop once per interval across every process.

Each loop has a row in scheduler_tasks. Its interval is cut into slots; a process runs the
loop only after taking the row's lock with a compare-and-set UPDATE that also requires the
slot to be due, and on finishing moves `next_run_at` to the first slot after now. So a slot
is run by one process exactly once however many processes schedule; a lock left by a dead
process expires after `lock_seconds`."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.logging import get_logger
from botwarden.store.db import insert_ignoring_duplicates, write_transaction
from botwarden.store.models import SchedulerTask
from botwarden.workers.supervisor import run_supervisor
from botwarden.workers.tasks import LoopContext, ScheduledTask, registered_tasks
from botwarden.workers.timeouts import run_timeout_worker

log = get_logger("botwarden.scheduler")
rows = cast(sa.Table, SchedulerTask.__table__)

BUILTIN: tuple[ScheduledTask, ...] = (
    ScheduledTask("timeout_worker", run_timeout_worker,
                  attrgetter("timeout_worker_interval_seconds")),
    ScheduledTask("supervisor", run_supervisor, attrgetter("supervisor_interval_seconds")),
)


def default_tasks() -> list[ScheduledTask]:
    return [*BUILTIN, *registered_tasks()]


def next_slot(slot: datetime, interval: timedelta, now: datetime) -> datetime:
    """The first slot strictly after `now` on the grid `slot + k * interval`; slots missed
    while no process was running are skipped, not caught up."""
    if now < slot:
        return slot + interval
    return slot + interval * (int((now - slot) / interval) + 1)


def summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a loop's result (counts, flags): what is stored and listed.
    Lists of ids go back only to whoever triggered the run, since every account sees the
    listing and the loops work across accounts."""
    return {k: v for k, v in result.items()
            if v is None or isinstance(v, bool | int | float | str)}


def lock_seconds(interval: float) -> float:
    return max(30.0, 3 * interval)


class Scheduler:
    def __init__(self, settings: Settings, *, engine: Engine,
                 tasks: Sequence[ScheduledTask] | None = None, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.engine = engine
        self.tasks = {t.name: t for t in (tasks if tasks is not None else default_tasks())}
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:sched-{secrets.token_hex(3)}"

    def interval(self, task: ScheduledTask) -> timedelta:
        return timedelta(seconds=task.interval(self.settings))

    def ensure_rows(self) -> None:
        """Create each task's row (due at once) and keep its interval in step with the
        settings; safe when several processes start together."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            for task in self.tasks.values():
                seconds = self.interval(task).total_seconds()
                insert_ignoring_duplicates(conn, rows, name=task.name, interval_seconds=seconds,
                                           next_run_at=now, run_count=0)
                conn.execute(sa.update(rows).where(rows.c.name == task.name,
                                                   rows.c.interval_seconds != seconds)
                             .values(interval_seconds=seconds))

    # --- running ---------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Run every task whose slot is due and whose lock this process takes."""
        now = self.clock()
        with self.engine.connect() as conn:
            due = conn.execute(sa.select(rows.c.name).where(
                rows.c.name.in_(list(self.tasks)), rows.c.next_run_at <= now)).scalars().all()
        return [name for name in due if self._run(self.tasks[name], scheduled=True)]

    def run_until(self, stop: threading.Event) -> None:
        rows_ready = False
        while not stop.is_set():
            try:
                if not rows_ready:  # retried until the database answers
                    self.ensure_rows()
                    rows_ready = True
                self.tick()
                wait = self._seconds_to_next_slot()
            except sa.exc.SQLAlchemyError as exc:
                log.warning("scheduler_tick_failed", error=repr(exc))
                wait = 1.0
            stop.wait(min(max(wait, 0.01), 1.0))

    def _seconds_to_next_slot(self) -> float:
        with self.engine.connect() as conn:
            soonest = conn.execute(sa.select(sa.func.min(rows.c.next_run_at)).where(
                rows.c.name.in_(list(self.tasks)))).scalar()
        return 1.0 if soonest is None else (soonest - self.clock()).total_seconds()

    def trigger(self, name: str) -> dict[str, Any]:
        """Run one task now, outside its schedule (its next slot stays as it was)."""
        task = self.tasks.get(name)
        if task is None:
            raise DomainError("UNKNOWN_TASK", f"no scheduled task named {name!r}",
                              f"Use one of: {', '.join(sorted(self.tasks))}.", status=404)
        self.ensure_rows()
        outcome: dict[str, Any] = {}
        if not self._run(task, scheduled=False, outcome=outcome):
            raise DomainError("TASK_BUSY", f"{name} is running in another process right now",
                              "Retry in a few seconds.")
        return outcome

    def _acquire(self, conn: Connection, task: ScheduledTask, now: datetime,
                 scheduled: bool) -> Row[Any] | None:
        """Take the task's lock; the answer carries the slot being run, None if not taken."""
        free = sa.or_(rows.c.lock_owner.is_(None), rows.c.lock_expires_at < now,
                      rows.c.lock_owner == self.owner)
        where = [rows.c.name == task.name, free]
        if scheduled:
            where.append(rows.c.next_run_at <= now)
        until = now + timedelta(seconds=lock_seconds(task.interval(self.settings)))
        return conn.execute(sa.update(rows).where(*where)
                            .values(lock_owner=self.owner, lock_expires_at=until)
                            .returning(rows.c.next_run_at)).first()

    def _run(self, task: ScheduledTask, *, scheduled: bool,
             outcome: dict[str, Any] | None = None) -> bool:
        started = self.clock()
        with write_transaction(self.engine) as conn:
            taken = self._acquire(conn, task, started, scheduled)
        if taken is None:
            return False
        slot: datetime = taken.next_run_at or started
        ctx = LoopContext(self.engine, self.settings, self.clock, task.name,
                          slot if scheduled else None)
        began = time.perf_counter()
        try:
            result, ok = task.run(ctx), True
        except Exception as exc:  # noqa: BLE001 - a failing loop is recorded, not fatal
            log.exception("scheduled_task_failed", task=task.name)
            result, ok = {"error": repr(exc)}, False
        result = {**result, "duration_ms": round((time.perf_counter() - began) * 1000, 3)}
        values: dict[str, Any] = {
            "last_run_at": started, "last_result": summary(result), "last_ok": ok,
            "run_count": rows.c.run_count + 1, "lock_owner": None, "lock_expires_at": None}
        if scheduled:
            values["next_run_at"] = next_slot(slot, self.interval(task), self.clock())
        with write_transaction(self.engine) as conn:
            conn.execute(sa.update(rows).where(rows.c.name == task.name,
                                               rows.c.lock_owner == self.owner).values(**values))
        if outcome is not None:
            outcome.update(task=task.name, ok=ok, result=result)
        return True


def list_tasks(engine: Engine, settings: Settings, *, tasks: Sequence[ScheduledTask] | None = None,
               clock: Clock = utcnow) -> list[dict[str, Any]]:
    """Every registered loop with its interval, last run, last result and next run; `stale`
    when a loop has missed more than two of its slots (no process is running it)."""
    tasks = tasks if tasks is not None else default_tasks()
    now = clock()
    with engine.connect() as conn:
        stored = {r.name: r for r in conn.execute(sa.select(rows)).all()}
    listed = []
    for task in tasks:
        row = stored.get(task.name)
        interval = timedelta(seconds=task.interval(settings))
        next_run = row.next_run_at if row else None
        running = bool(row and row.lock_owner and row.lock_expires_at
                       and row.lock_expires_at >= now)
        listed.append({
            "name": task.name,
            "interval_seconds": interval.total_seconds(),
            "last_run_at": row.last_run_at if row else None,
            "last_ok": row.last_ok if row else None,
            "last_result": row.last_result if row else None,
            "next_run_at": next_run,
            "run_count": row.run_count if row else 0,
            "running": running,
            "stale": next_run is None or now - next_run > 2 * interval,
        })
    return listed


def trigger_task(engine: Engine, settings: Settings, name: str, *,
                 tasks: Sequence[ScheduledTask] | None = None,
                 clock: Clock = utcnow) -> dict[str, Any]:
    return Scheduler(settings, engine=engine, tasks=tasks, clock=clock).trigger(name)
