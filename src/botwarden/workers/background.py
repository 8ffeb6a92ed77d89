"""Workers and loops inside another process (the API server), and their readiness."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.logging import get_logger
from botwarden.workers.presence import live_workers, stale_workers
from botwarden.workers.registry import HANDLER_MODULES, load_modules
from botwarden.workers.scheduler import Scheduler, list_tasks
from botwarden.workers.worker import Worker, worker_engine

log = get_logger("botwarden.workers")


@dataclass
class BackgroundHandle:
    worker: Worker | None
    scheduler: Scheduler | None
    engine: Engine
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def stop(self, grace: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.worker is not None:
            self.worker.stop(grace)
        self.engine.dispose()


def start_background(
    settings: Settings,
    *,
    with_worker: bool = True,
    with_scheduler: bool = True,
    types: Iterable[JobType] | None = None,
    concurrency: int | None = None,
    handler_modules: Iterable[str] = HANDLER_MODULES,
) -> BackgroundHandle:
    """Start a worker (for every registered job type) and the scheduler's loops in threads
    of this process; `handle.stop()` stops both gracefully. The API server calls this on
    start-up when `run_workers` is on; `botwarden worker` uses it too."""
    load_modules(handler_modules)
    engine = worker_engine(settings, concurrency or settings.worker_concurrency,
                           settings.worker_runner_slots if with_worker else 0)
    worker = None
    if with_worker:
        worker = Worker(settings, engine=engine, types=types, concurrency=concurrency)
        worker.start()
    handle = BackgroundHandle(worker, None, engine)
    if with_scheduler:
        scheduler = Scheduler(settings, engine=engine)
        handle.scheduler = scheduler
        handle._thread = threading.Thread(target=scheduler.run_until, args=(handle._stop,),
                                          name="scheduler", daemon=True)
        handle._thread.start()
    return handle


def readiness(engine: Engine, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """For /api/ready: live and stale workers, and loops that missed their slots. Not
    ready when no worker is alive or a loop is stale."""
    now = utcnow()
    silent = timedelta(seconds=settings.job_lease_seconds)
    with engine.connect() as conn:
        alive = live_workers(conn, now=now, silent_for=silent)
        stale = stale_workers(conn, now=now, silent_for=silent)
    loops = list_tasks(engine, settings)
    stale_loops = [t["name"] for t in loops if t["stale"]]
    detail = {"workers_alive": len(alive), "workers_stale": [w.id for w in stale],
              "loops_stale": stale_loops}
    return bool(alive) and not stale_loops, detail
