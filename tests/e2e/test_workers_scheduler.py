"""Two processes schedule the same loops: each slot of each loop runs exactly once."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.workers.scheduler import rows
from tests.workers.processes import wait_registered, wait_until, worker_processes

INTERVAL = 0.2


def test_two_schedulers_run_each_slot_exactly_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    record = tmp_path / "probe.log"
    env = {"TEST_PROBE_FILE": str(record), "TEST_PROBE_INTERVAL": str(INTERVAL)}
    with worker_processes(database_url, tmp_path, 2, types="", scheduler=True, env=env,
                          modules=("tests.workers.loop_probe",)) as procs:
        wait_registered(engine, procs)
        wait_until(lambda: record.exists() and len(record.read_text().splitlines()) >= 15,
                   what="fifteen probe runs")
        time.sleep(1.0)  # let the built-in loops run a few times as well
    runs = [line.split() for line in record.read_text().splitlines()]
    slots = [datetime.fromisoformat(slot) for _, slot, _, _ in runs]
    assert len(set(slots)) == len(slots), "a slot ran twice"
    assert slots == sorted(slots)
    spans = sorted((float(start), float(end)) for _, _, start, end in runs)
    assert all(nxt[0] >= prev[1] for prev, nxt in zip(spans, spans[1:], strict=False)), \
        "two runs overlapped"
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(rows.c.name, rows.c.run_count)).all())
    assert counts["probe"] == len(runs)
    assert counts["supervisor"] >= 1 and counts["timeout_worker"] >= 1
