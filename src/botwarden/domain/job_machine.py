"""The job state machine and its retry and timeout rules (domain.md, "Jobs"). Pure: no I/O.

Three moments in a job's life are decided here:
- whether a status change is allowed (`check_transition`): terminal states are final, and a
  FAILED, CANCELED or TIMEOUT job always carries a reason code;
- what happens after an attempt is lost (`after_failure`): another attempt after a jittered
  backoff, or the dead letter once the attempts are spent;
- when a held job has gone quiet for too long (`is_heartbeat_stale`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import NEEDS_REASON, TERMINAL, JobStatus, JobType

_S = JobStatus

# A worker holds the job's lease (owner, token, expiry) in these states and in no other.
HELD: frozenset[JobStatus] = frozenset({_S.RUNNING, _S.DEGRADED})
# States a job may be created in.
ENTRY: frozenset[JobStatus] = frozenset({_S.CREATED, _S.QUEUED})
# Jobs that run until stopped. They are restarted under the bot's circuit breaker rather
# than an attempt budget: a runner that ran for a week owes nothing to last week's crashes.
LONG_LIVED: frozenset[JobType] = frozenset({JobType.RUNNER})

_ENDINGS = frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELED, _S.TIMEOUT})

TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _S.CREATED: frozenset({_S.QUEUED, _S.CANCELED}),
    # QUEUED -> FAILED is the dead letter of a job that can no longer run (its bot is gone).
    _S.QUEUED: frozenset({_S.RUNNING, _S.BLOCKED, _S.CANCELED, _S.FAILED}),
    # RUNNING -> QUEUED is a retry, a lost lease or a release at shutdown; -> BLOCKED is a
    # lost runner whose circuit breaker is open.
    _S.RUNNING: frozenset({_S.QUEUED, _S.DEGRADED, _S.BLOCKED}) | _ENDINGS,
    _S.DEGRADED: frozenset({_S.RUNNING, _S.QUEUED, _S.BLOCKED}) | _ENDINGS,
    # BLOCKED waits, unheld, for a condition (a half-open breaker) and then queues again.
    _S.BLOCKED: frozenset({_S.QUEUED, _S.CANCELED, _S.FAILED}),
    **{status: frozenset[JobStatus]() for status in TERMINAL},
}


class JobReason(StrEnum):
    """Reason codes the job machinery itself writes on transitions."""

    HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    HANDLER_ERROR = "HANDLER_ERROR"
    MAX_ATTEMPTS_EXCEEDED = "MAX_ATTEMPTS_EXCEEDED"
    NO_HANDLER = "NO_HANDLER"
    WORKER_SHUTDOWN = "WORKER_SHUTDOWN"
    CANCELED_BY_USER = "CANCELED_BY_USER"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    CIRCUIT_HALF_OPEN = "CIRCUIT_HALF_OPEN"
    BOT_KILLED = "BOT_KILLED"


class IllegalTransition(DomainError):
    def __init__(self, current: JobStatus | None, target: JobStatus, why: str) -> None:
        code = "JOB_TERMINAL" if current in TERMINAL else "ILLEGAL_TRANSITION"
        fix = ("A finished job stays finished; create a new job to run it again."
               if current in TERMINAL else "Only the transitions of the job state machine apply.")
        super().__init__(code, f"job cannot go {current} -> {target}: {why}", fix, status=409)


@dataclass(frozen=True, slots=True)
class Transition:
    from_status: JobStatus | None  # None: the job is being created
    to_status: JobStatus
    reason_code: str | None = None
    reason: str | None = None

    @property
    def ends_job(self) -> bool:
        """A terminal transition stamps `completed_at` and releases the lease."""
        return self.to_status in TERMINAL

    @property
    def keeps_lease(self) -> bool:
        return self.to_status in HELD


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(
    current: JobStatus | None,
    target: JobStatus,
    reason_code: str | None = None,
    reason: str | None = None,
) -> Transition:
    """The transition `current -> target`, or IllegalTransition saying why not."""
    if current is None:
        if target not in ENTRY:
            raise IllegalTransition(current, target, "a job is created CREATED or QUEUED")
    elif current in TERMINAL:
        raise IllegalTransition(current, target, "terminal states are final")
    elif target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target, "not a transition of the state machine")
    if target in NEEDS_REASON and not reason_code:
        raise IllegalTransition(current, target, f"{target} needs a reason code")
    return Transition(current, target, reason_code, reason)


# --- retries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff: Sequence[timedelta]  # delay before attempt 2, 3, ...; the last one repeats
    jitter: float  # each delay is drawn uniformly within +-jitter of its value


@dataclass(frozen=True, slots=True)
class Retry:
    run_after: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason_code: str
    reason: str


def backoff_delay(failures: int, policy: RetryPolicy, draw: float) -> timedelta:
    """Delay after the `failures`-th failure (1-based); `draw` is uniform in [0, 1)."""
    if failures < 1:
        raise ValueError("failures is 1-based")
    if not policy.backoff:
        return timedelta(0)
    base = policy.backoff[min(failures, len(policy.backoff)) - 1]
    return base * (1.0 + policy.jitter * (2.0 * draw - 1.0))


def after_failure(
    *,
    attempts: int,
    max_attempts: int,
    attempt_started_at: datetime,
    policy: RetryPolicy,
    draw: float,
    why: str,
) -> Retry | DeadLetter:
    """What follows a lost attempt (a handler error or an expired lease).

    The backoff runs from the start of the failed attempt, so it spaces attempts apart: a
    job that crashed at once waits the whole delay, while one whose worker died after a
    long run (and whose lease then had to expire) goes again without further delay."""
    if attempts >= max_attempts:
        return DeadLetter(
            JobReason.MAX_ATTEMPTS_EXCEEDED.value,
            f"attempt {attempts} of {max_attempts} failed: {why}",
        )
    return Retry(attempt_started_at + backoff_delay(attempts, policy, draw))


# --- heartbeat timeouts ------------------------------------------------------------------


def is_heartbeat_stale(
    job_type: JobType,
    last_heartbeat_at: datetime,
    now: datetime,
    timeouts: Mapping[JobType, timedelta],
) -> bool:
    """A held job whose handler has not beaten within its type's timeout."""
    return now - last_heartbeat_at > timeouts[job_type]
