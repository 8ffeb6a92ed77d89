"""Job types and statuses (domain.md, "Jobs")."""

from __future__ import annotations

from enum import StrEnum


class JobType(StrEnum):
    BACKTEST = "BACKTEST"
    SWEEP = "SWEEP"
    MATRIX = "MATRIX"
    EVOLVE = "EVOLVE"
    RUNNER = "RUNNER"
    RECONCILE = "RECONCILE"
    PROMOTION = "PROMOTION"


class JobStatus(StrEnum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    BLOCKED = "BLOCKED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TIMEOUT = "TIMEOUT"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMEOUT}
)
NEEDS_REASON: frozenset[JobStatus] = frozenset(
    {JobStatus.FAILED, JobStatus.CANCELED, JobStatus.TIMEOUT}
)
