"""A scheduled task for the two-scheduler test: each run appends "pid slot start end" to
the file named by BOTWARDEN_TEST_PROBE_FILE. Imported with `--handlers`."""

from __future__ import annotations

import os
import time
from typing import Any

from botwarden.workers.tasks import LoopContext, register_task

FILE = os.environ["BOTWARDEN_TEST_PROBE_FILE"]
INTERVAL = float(os.environ["BOTWARDEN_TEST_PROBE_INTERVAL"])


def probe(ctx: LoopContext) -> dict[str, Any]:
    start = time.time()
    time.sleep(0.02)  # long enough for an overlapping run to show
    with open(FILE, "a") as out:
        slot = ctx.scheduled_for.isoformat() if ctx.scheduled_for else "triggered"
        out.write(f"{os.getpid()} {slot} {start} {time.time()}\n")
    return {"pid": os.getpid()}


register_task("probe", probe, lambda _settings: INTERVAL)
