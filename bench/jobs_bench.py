"""Jobs benchmark: how fast worker processes claim and complete jobs, beside a bare loop
doing the same two transactions per job, and how long a dead worker's jobs take to run
elsewhere. Prints figures; asserts nothing.

    uv run python bench/jobs_bench.py --pg-url postgresql://postgres@127.0.0.1:55433/postgres

The PostgreSQL figures use a database `botwarden_bench` created (and dropped first) on the
server of --pg-url; the SQLite ones a temporary file. Per job the bare loop runs: (1) claim
with FOR UPDATE SKIP LOCKED (BEGIN IMMEDIATE on SQLite) plus its event row, (2) complete
under the lease token plus its event row, each its own transaction."""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from botwarden.clock import utcnow
from botwarden.domain.jobs import JobType
from botwarden.ids import new_id
from botwarden.store import jobs as js
from botwarden.store.db import make_engine, normalise_url, write_transaction
from botwarden.store.migrate import upgrade
from botwarden.workers.context import JobContext
from botwarden.workers.registry import register_handler


def bench_handler(ctx: JobContext) -> dict[str, Any]:
    """No work, so the figures measure the job machinery alone; `hold` keeps the first
    attempt running until the worker dies (for the death-to-rerun figure)."""
    if ctx.payload.get("hold") and ctx.attempt == 1:
        while not ctx.wait(0.5):
            ctx.heartbeat()
    return {}


register_handler(JobType.BACKTEST, bench_handler)  # for `--handlers bench.jobs_bench`


# --- databases ---------------------------------------------------------------------------


def fresh_pg(server_url: str) -> str:
    url = sa.engine.make_url(normalise_url(server_url))
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS botwarden_bench WITH (FORCE)")
        conn.exec_driver_sql("CREATE DATABASE botwarden_bench")
    admin.dispose()
    bench_url = url.set(database="botwarden_bench").render_as_string(hide_password=False)
    upgrade(bench_url)
    return bench_url


def fresh_sqlite(directory: Path) -> str:
    url = f"sqlite:///{directory / 'bench.db'}"
    upgrade(url)
    return url


def seed(url: str, n: int, payload: dict[str, Any] | None = None) -> None:
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        conn.execute(sa.delete(js.jobs))
        conn.exec_driver_sql("DELETE FROM accounts")
        account = new_id()
        conn.execute(sa.text("INSERT INTO accounts (id, name, gate_profile, starting_capital, "
                             "kill_switch_engaged, created_at) VALUES (:id, 'bench', 'standard',"
                             " '50000', false, :now)"), {"id": account, "now": utcnow()})
        if n:
            js.create_jobs(conn, account_id=account, job_type=JobType.BACKTEST, actor="bench",
                           now=utcnow(), payloads=[payload or {}] * n)
    engine.dispose()


def figures(url: str) -> dict[str, float]:
    """Rate from the first claim to the last completion, from the event rows."""
    engine = make_engine(url)
    ev = js.events
    with engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(ev.c.created_at))
                             .where(ev.c.to_status == "RUNNING")).scalar_one()
        last = conn.execute(sa.select(sa.func.max(ev.c.created_at))
                            .where(ev.c.to_status == "COMPLETED")).scalar_one()
        done = conn.execute(sa.select(sa.func.count()).select_from(js.jobs)
                            .where(js.jobs.c.status == "COMPLETED")).scalar_one()
        left = conn.execute(sa.select(sa.func.count()).select_from(js.jobs)
                            .where(js.jobs.c.status != "COMPLETED")).scalar_one()
        claims = conn.execute(sa.select(ev.c.job_id).where(ev.c.to_status == "RUNNING")
                              .group_by(ev.c.job_id).having(sa.func.count() > 1)).all()
    engine.dispose()
    seconds = (last - first).total_seconds()
    return {"jobs_per_s": done / seconds, "seconds": seconds, "double_claims": len(claims),
            "unfinished": left}


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.05)


def unfinished(url: str) -> Callable[[], bool]:
    engine = make_engine(url)

    def check() -> bool:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(js.jobs)
                                .where(js.jobs.c.status != "COMPLETED")).scalar_one() == 0

    return check


# --- Botwarden workers -------------------------------------------------------------------


def botwarden_run(url: str, n: int, workers: int, log_dir: Path) -> dict[str, float]:
    from tests.workers.processes import wait_registered, worker_processes

    seed(url, 0)
    engine = make_engine(url)
    env = {"WORKER_POLL_SECONDS": "0.05", "JOB_LEASE_SECONDS": "30",
           "WORKER_HEARTBEAT_SECONDS": "5", "LOG_LEVEL": "WARNING"}
    with worker_processes(url, log_dir, workers, types="BACKTEST", env=env,
                          modules=("bench.jobs_bench",)) as procs:
        wait_registered(engine, procs)
        seed(url, n)
        wait_until(unfinished(url), timeout=600)
    engine.dispose()
    return figures(url)


# --- the bare loop -----------------------------------------------------------------------

CLAIM = ("UPDATE bot_jobs SET status = 'RUNNING', lease_owner = {p}, lease_token = {p}, "
         "lease_expires_at = {p}, attempts = attempts + 1, started_at = {p}, "
         "last_heartbeat_at = {p} WHERE id = (SELECT id FROM bot_jobs WHERE status = 'QUEUED' "
         "ORDER BY priority DESC, id LIMIT 1{lock}) RETURNING id")
COMPLETE = ("UPDATE bot_jobs SET status = 'COMPLETED', completed_at = {p}, result = '{{}}', "
            "progress = 1, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
            "WHERE id = {p} AND lease_token = {p} AND status = 'RUNNING'")
EVENT = ("INSERT INTO job_run_events (id, job_id, from_status, to_status, actor, created_at) "
         "VALUES ({p}, {p}, {p}, {p}, {p}, {p})")


def bare_loop(url: str, owner: str, start: Any) -> None:
    sqlite = url.startswith("sqlite")
    p, lock = ("?", "") if sqlite else ("%s", " FOR UPDATE SKIP LOCKED")
    claim, complete, event = (CLAIM.format(p=p, lock=lock), COMPLETE.format(p=p),
                              EVENT.format(p=p))
    if sqlite:
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None,
                                    timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

        def now() -> Any:
            return utcnow().replace(tzinfo=None).isoformat(sep=" ")

        def tx(steps: Callable[[], Any]) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = steps()
                conn.execute("COMMIT")
                return out
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    else:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        now = utcnow

        def tx(steps: Callable[[], Any]) -> Any:
            with conn.transaction():
                return steps()

    def take(token: str) -> Any:
        t = now()
        row = conn.execute(claim, (owner, token, t, t, t)).fetchone()
        if row is not None:
            conn.execute(event, (new_id(), row[0], "QUEUED", "RUNNING", owner, t))
        return row

    def finish(job_id: str, token: str) -> None:
        t = now()
        conn.execute(complete, (t, job_id, token))
        conn.execute(event, (new_id(), job_id, "RUNNING", "COMPLETED", owner, t))

    start.wait()
    while True:
        token = secrets.token_hex(16)
        row = tx(lambda: take(token))  # noqa: B023 - called at once, in this iteration
        if row is None:
            break
        tx(lambda: finish(row[0], token))  # noqa: B023
    conn.close()


def bare_run(url: str, n: int, workers: int) -> dict[str, float]:
    seed(url, n)
    start = multiprocessing.Event()
    procs = [multiprocessing.Process(target=bare_loop, args=(url, f"bare-{i}", start))
             for i in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(0.5)
    start.set()
    for proc in procs:
        proc.join()
    return figures(url)


# --- death to rerun ----------------------------------------------------------------------


def death_to_rerun(url: str, log_dir: Path, env: dict[str, str], held: int = 8) -> list[float]:
    """Seconds from SIGKILL of the worker holding `held` jobs to each job's next claim;
    settings not in `env` keep their defaults."""
    from tests.workers.processes import WorkerProcess, wait_registered, worker_id_of

    seed(url, 0)
    engine = make_engine(url)
    env = {**env, "LOG_LEVEL": "WARNING"}
    doomed = WorkerProcess(url, log_dir, "doomed", concurrency=held, types="BACKTEST",
                           env=env, modules=("bench.jobs_bench",), fast=False)
    heir = WorkerProcess(url, log_dir, "heir", concurrency=held, types="BACKTEST",
                         scheduler=True, env=env, modules=("bench.jobs_bench",), fast=False)
    try:
        wait_registered(engine, [doomed, heir])
        heir.signal(signal.SIGSTOP)  # so that the doomed worker takes every job
        seed(url, held, {"hold": True})
        doomed_id = worker_id_of(engine, doomed)

        def all_held() -> bool:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(js.jobs).where(
                    js.jobs.c.lease_owner == doomed_id)).scalar_one() == held

        wait_until(all_held, 60)
        heir.signal(signal.SIGCONT)
        killed_at = datetime.now(UTC)
        doomed.signal(signal.SIGKILL)
        wait_until(unfinished(url), timeout=300)
        with engine.connect() as conn:
            reruns = conn.execute(sa.select(js.events.c.created_at).where(
                js.events.c.to_status == "RUNNING", js.events.c.actor != doomed_id)).scalars()
            return sorted((t - killed_at).total_seconds() for t in reruns)
    finally:
        doomed.stop()
        heir.stop()
        engine.dispose()


# --- main --------------------------------------------------------------------------------


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.workers.processes
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", help="a PostgreSQL server (any database on it)")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skip-death", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    backends = [("sqlite", fresh_sqlite(tmp))]
    if args.pg_url:
        backends.insert(0, ("postgresql", fresh_pg(args.pg_url)))
    print(f"{args.jobs} jobs, {args.workers} worker processes "
          f"({multiprocessing.cpu_count()} cores)")
    for name, url in backends:
        ours = botwarden_run(url, args.jobs, args.workers, tmp)
        bare = bare_run(url, args.jobs, args.workers)
        print(f"{name:10} botwarden {ours['jobs_per_s']:7.0f} jobs/s  "
              f"bare loop {bare['jobs_per_s']:7.0f} jobs/s  "
              f"ratio {ours['jobs_per_s'] / bare['jobs_per_s']:.2f}  "
              f"double claims {ours['double_claims']}/{bare['double_claims']}  "
              f"unfinished {ours['unfinished']}/{bare['unfinished']}")
    if args.skip_death:
        return
    url = backends[0][1]
    for label, env in (
        ("defaults (lease 30 s, supervisor 10 s, heartbeat 5 s)", {}),
        # The first retry waits 30 s from the attempt's start; with a 30 s lease that has
        # passed by the time the lease expires, with a short one it would dominate.
        ("short (lease 3 s, supervisor 1 s, heartbeat 0.5 s, no backoff)",
         {"JOB_LEASE_SECONDS": "3", "SUPERVISOR_INTERVAL_SECONDS": "1",
          "WORKER_HEARTBEAT_SECONDS": "0.5", "JOB_RETRY_BACKOFF_SECONDS": "[0]"}),
    ):
        reruns = death_to_rerun(url, tmp, env)
        print(f"death to rerun on {backends[0][0]}, {label}: "
              f"median {statistics.median(reruns):.1f} s, max {max(reruns):.1f} s "
              f"({len(reruns)} jobs)")


if __name__ == "__main__":
    main()
