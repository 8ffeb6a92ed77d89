"""What a job handler sees of its job and of the worker running it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from botwarden.clock import Clock
from botwarden.config import Settings
from botwarden.domain.job_machine import HELD
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction


class LeaseLost(Exception):
    """The job was taken from this worker (requeued, timed out or cancelled): stop, and
    write nothing more; nothing would be accepted anyway."""


@dataclass(eq=False)
class JobContext:
    """Handed to a handler. `heartbeat()` and `progress()` only note the time and fraction;
    the worker's heartbeat thread writes them under the lease token every few seconds,
    so a handler never waits on the database to show it is alive. A handler polls
    `should_stop` (or waits with `wait`) and returns soon after it turns true."""

    job: job_store.ClaimedJob
    settings: Settings
    clock: Clock
    worker_id: str
    engine: Engine
    status: JobStatus = JobStatus.RUNNING
    last_beat: datetime = field(init=False)
    pending_progress: float | None = None
    lease_lost: bool = False
    shutting_down: bool = False
    finished: bool = False  # the handler returned (its outcome may still be unwritten)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.last_beat = self.job.started_at

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def job_type(self) -> JobType:
        return self.job.job_type

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def bot_id(self) -> str | None:
        return self.job.bot_id

    def heartbeat(self) -> None:
        """Say the handler is alive. Raises LeaseLost once the job is no longer ours."""
        self.last_beat = self.clock()
        if self.lease_lost:
            raise LeaseLost(self.job_id)

    def progress(self, fraction: float) -> None:
        self.pending_progress = min(max(fraction, 0.0), 1.0)
        self.heartbeat()

    @property
    def should_stop(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the handler should stop instead."""
        return self._stop.wait(seconds)

    def set_status(self, status: JobStatus, reason_code: str | None = None,
                   reason: str | None = None) -> None:
        """Switch between RUNNING and DEGRADED (a runner whose data provider falters)."""
        if status not in HELD:
            raise ValueError("a handler moves only between RUNNING and DEGRADED; "
                             "return or raise to end the job")
        if status is self.status:
            return
        with write_transaction(self.engine) as conn:
            accepted = job_store.transition_leased(
                conn, self.job.lease, self.status, status, actor=self.worker_id,
                now=self.clock(), trace_id=self.job.trace_id, reason_code=reason_code,
                reason=reason)
        if not accepted:
            self.lose_lease()
            raise LeaseLost(self.job_id)
        self.status = status

    # --- the worker's side ---

    def lose_lease(self) -> None:
        self.lease_lost = True
        self._stop.set()

    def request_shutdown(self) -> None:
        self.shutting_down = True
        self._stop.set()

    def take_beat(self) -> job_store.Beat:
        progress, self.pending_progress = self.pending_progress, None
        return job_store.Beat(self.job.lease, self.last_beat, progress)
