"""Scheduled tasks: the named loops the scheduler runs, each at its own interval.

The job loops (timeout worker, supervisor) are built in; another package adds its own with
one call, e.g. `register_task("promotion_worker", run, attrgetter("promotion_interval_seconds"))`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from botwarden.clock import Clock
from botwarden.config import Settings


@dataclass(frozen=True, slots=True)
class LoopContext:
    engine: Engine
    settings: Settings
    clock: Clock
    actor: str  # written on every row the loop changes: the task's name
    scheduled_for: datetime | None  # the interval slot this run fills; None when triggered


TaskFn = Callable[[LoopContext], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    name: str
    run: TaskFn
    interval: Callable[[Settings], float]  # seconds, read from the settings


_extra: dict[str, ScheduledTask] = {}


def register_task(name: str, run: TaskFn, interval: Callable[[Settings], float]) -> None:
    if name in _extra:
        raise ValueError(f"a task named {name} is already registered")
    _extra[name] = ScheduledTask(name, run, interval)


def registered_tasks() -> list[ScheduledTask]:
    return list(_extra.values())
