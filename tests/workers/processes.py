"""Real worker processes for the end-to-end tests and the benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.store.models import Worker

ROOT = Path(__file__).resolve().parents[2]
FAST = {"JOB_LEASE_SECONDS": "1.5", "WORKER_HEARTBEAT_SECONDS": "0.2",
        "WORKER_POLL_SECONDS": "0.05", "WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        "JOB_RETRY_BACKOFF_SECONDS": "[0.0]", "SUPERVISOR_INTERVAL_SECONDS": "0.3",
        "TIMEOUT_WORKER_INTERVAL_SECONDS": "0.3"}


class WorkerProcess:
    def __init__(self, database_url: str, log_dir: Path, name: str, *, concurrency: int = 4,
                 types: str = "BACKTEST,RUNNER", scheduler: bool = False,
                 modules: tuple[str, ...] = ("tests.workers.worker_plugin",),
                 env: dict[str, str] | None = None, fast: bool = True) -> None:
        self.log = log_dir / f"{name}.log"
        settings = {**(FAST if fast else {}), "DATABASE_URL": database_url, "LOG_JSON": "true",
                    **(env or {})}
        environ = {**os.environ, "PYTHONPATH": str(ROOT),
                   **{f"BOTWARDEN_{k}": v for k, v in settings.items()}}
        command = [sys.executable, "-m", "botwarden.workers.cli", "--concurrency",
                   str(concurrency), "--types", types,
                   "--scheduler" if scheduler else "--no-scheduler"]
        for module in modules:
            command += ["--handlers", module]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(command, env=environ, stdout=out, stderr=out, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def worker_processes(database_url: str, log_dir: Path, count: int,
                     **kw: Any) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(database_url, log_dir, f"w{n}", **kw) for n in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def worker_id_of(engine: Engine, proc: WorkerProcess) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(Worker.id).where(Worker.pid == proc.pid,
                                                       Worker.status == "RUNNING")).scalar()


def wait_registered(engine: Engine, procs: list[WorkerProcess], timeout: float = 60.0) -> None:
    """Until every process has its row in the workers table (or has died: then fail)."""

    def settled() -> bool:
        return all(worker_id_of(engine, p) is not None or p.proc.poll() is not None
                   for p in procs)

    wait_until(settled, timeout, "worker registration")
    for proc in procs:
        assert proc.proc.poll() is None, proc.log.read_text()[-3000:]
