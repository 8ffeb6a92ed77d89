"""Real worker processes that die or freeze while holding jobs."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from botwarden.workers.scheduler import trigger_task
from tests.workers.helpers import make_account
from tests.workers.processes import (
    FAST,
    WorkerProcess,
    wait_registered,
    wait_until,
    worker_id_of,
)

HELD = 3


def submit(engine: Engine, payload: dict[str, Any], n: int = HELD) -> list[str]:
    account = make_account(engine)
    with write_transaction(engine) as conn:
        return [js.create_job(conn, account_id=account, job_type=JobType.BACKTEST, actor="test",
                              now=utcnow(), payload=payload) for _ in range(n)]


def jobs(engine: Engine, ids: list[str]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(js.jobs).where(js.jobs.c.id.in_(ids))).all())


def held_by(engine: Engine, ids: list[str], owner: str | None) -> bool:
    return all(j.status == "RUNNING" and j.lease_owner == owner for j in jobs(engine, ids))


def test_a_killed_workers_jobs_are_requeued_within_one_supervisor_run_and_complete(
    database_url: str, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    doomed = WorkerProcess(database_url, tmp_path, "doomed", concurrency=HELD)
    heir = None
    try:
        wait_registered(engine, [doomed])
        doomed_id = worker_id_of(engine, doomed)
        ids = submit(engine, {"sleep_first_attempt": 5.0})
        wait_until(lambda: held_by(engine, ids, doomed_id), what="the jobs to be held")
        doomed.signal(signal.SIGKILL)
        doomed.proc.wait()
        heir = WorkerProcess(database_url, tmp_path, "heir", concurrency=HELD)
        expiry = max(j.lease_expires_at for j in jobs(engine, ids))
        wait_until(lambda: utcnow() > expiry, what="the lease to expire")
        # One supervisor run after the lease ran out requeues every one of them...
        loop_settings = settings.model_copy(update={
            "job_lease_seconds": float(FAST["JOB_LEASE_SECONDS"]),
            "job_retry_backoff_seconds": (0.0,)})
        outcome = trigger_task(engine, loop_settings, "supervisor")
        assert outcome["result"]["requeued"] == HELD
        # ...and another worker then completes them.
        wait_until(lambda: all(j.status == "COMPLETED" for j in jobs(engine, ids)),
                   what="the jobs to complete elsewhere")
        heir_id = worker_id_of(engine, heir)
        for job in jobs(engine, ids):
            assert job.attempts == 2 and job.result["worker"] == heir_id
            with engine.connect() as conn:
                trail = [(e.to_status, e.reason_code, e.actor) for e in js.job_events(conn, job.id)]
            assert trail[1:] == [("RUNNING", None, doomed_id),
                                 ("QUEUED", "LEASE_EXPIRED", "supervisor"),
                                 ("RUNNING", None, heir_id),
                                 ("COMPLETED", None, heir_id)], (trail, doomed.log.read_text())
    finally:
        doomed.stop()
        if heir is not None:
            heir.stop()


def test_a_frozen_worker_cannot_write_after_its_lease_is_taken(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """SIGSTOP past the lease: the other worker's supervisor requeues the jobs and it runs
    them; after SIGCONT not one write of the frozen worker is accepted."""
    frozen = WorkerProcess(database_url, tmp_path, "frozen", concurrency=HELD)
    heir = None
    try:
        wait_registered(engine, [frozen])
        frozen_id = worker_id_of(engine, frozen)
        ids = submit(engine, {"sleep_first_attempt": 5.0})
        wait_until(lambda: held_by(engine, ids, frozen_id), what="the jobs to be held")
        frozen.signal(signal.SIGSTOP)
        heir = WorkerProcess(database_url, tmp_path, "heir", concurrency=HELD, scheduler=True)
        wait_until(lambda: all(j.status == "COMPLETED" for j in jobs(engine, ids)),
                   what="the jobs to complete elsewhere")
        heir_id = worker_id_of(engine, heir)
        frozen.signal(signal.SIGCONT)
        # Awake, it finishes its stale attempts, and every write is refused.
        wait_until(lambda: {e.get("job_id") for e in frozen.events("job_fenced")} >= set(ids),
                   what="the frozen worker to be fenced")
        for job in jobs(engine, ids):
            assert job.result["worker"] == heir_id and job.attempts == 2
            with engine.connect() as conn:
                trail = js.job_events(conn, job.id)
            requeued = [e.reason_code for e in trail].index("LEASE_EXPIRED")
            assert all(e.actor != frozen_id for e in trail[requeued:])
    finally:
        frozen.stop()
        if heir is not None:
            heir.stop()
