"""Real handlers for tests, driven by their payload (no production handler is faked).

`install(registry)` registers them: BACKTEST runs `work`, RUNNER runs `run_forever`.
Worker processes started by the end-to-end tests import `tests.workers.worker_plugin`,
which installs them into the process-wide registry."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobType
from botwarden.workers.context import JobContext
from botwarden.workers.registry import HandlerRegistry


def work(ctx: JobContext) -> dict[str, Any]:
    """payload: record (dir: append "job attempt worker" to <dir>/<pid>.log on start),
    sleep (seconds, beating every 0.05 s; `sleep_first_attempt` only on attempt 1),
    beat (False: never heartbeat while sleeping), fail_attempts (raise on attempts <= n),
    refuse (raise a DomainError with this code)."""
    p = ctx.payload
    if p.get("record"):
        with open(Path(p["record"]) / f"{os.getpid()}.log", "a") as log:
            log.write(f"{ctx.job_id} {ctx.attempt} {ctx.worker_id}\n")
    if p.get("refuse"):
        raise DomainError(p["refuse"], "refused by the test handler")
    if ctx.attempt <= p.get("fail_attempts", 0):
        raise RuntimeError(f"planned failure on attempt {ctx.attempt}")
    seconds = p.get("sleep", 0.0) + (p.get("sleep_first_attempt", 0.0) if ctx.attempt == 1 else 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.should_stop:
        if p.get("beat", True):
            ctx.heartbeat()
        ctx.wait(min(0.05, max(deadline - time.monotonic(), 0)))
    return {"worker": ctx.worker_id, "attempt": ctx.attempt, "n": p.get("n")}


def run_forever(ctx: JobContext) -> dict[str, Any]:
    """A runner-like job: beats until asked to stop."""
    beats = 0
    while not ctx.wait(0.05):
        ctx.heartbeat()
        beats += 1
    return {"beats": beats}


def install(registry: HandlerRegistry) -> HandlerRegistry:
    registry.register(JobType.BACKTEST, work, replace=True)
    registry.register(JobType.RUNNER, run_forever, replace=True)
    return registry
