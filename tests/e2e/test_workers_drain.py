"""Real worker processes drain a queue: no job runs twice, none is left behind."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.domain.jobs import JobType
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from tests.workers.helpers import make_account
from tests.workers.processes import wait_registered, wait_until, worker_processes

JOBS = 2000


def test_workers_drain_the_queue_without_double_claims(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    count = 2 if engine.dialect.name == "sqlite" else 4
    runs = tmp_path / "runs"
    runs.mkdir()
    with worker_processes(database_url, tmp_path, count, types="BACKTEST") as procs:
        wait_registered(engine, procs)
        account = make_account(engine)
        with write_transaction(engine) as conn:
            js.create_jobs(conn, account_id=account, job_type=JobType.BACKTEST, actor="test",
                           now=utcnow(),
                           # A few milliseconds of work a job: without it one process can
                           # drain the whole queue before the other wins SQLite's lock once.
                           payloads=[{"n": n, "record": str(runs), "sleep": 0.004}
                                     for n in range(JOBS)])

        def unfinished() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(js.jobs)
                                    .where(js.jobs.c.status != "COMPLETED")).scalar_one()

        wait_until(lambda: unfinished() == 0, timeout=240, what="the queue to drain")
    runs_per_job = Counter(line.split()[0] for f in runs.iterdir()
                           for line in f.read_text().splitlines())
    assert len(runs_per_job) == JOBS and set(runs_per_job.values()) == {1}
    assert len(list(runs.iterdir())) == count  # every process took a share
    with engine.connect() as conn:
        claims = conn.execute(sa.select(js.events.c.job_id, sa.func.count())
                              .where(js.events.c.to_status == "RUNNING")
                              .group_by(js.events.c.job_id)).all()
    assert len(claims) == JOBS and {n for _, n in claims} == {1}
