"""The job rules' numbers, read once from the settings into the domain's policy objects."""

from __future__ import annotations

from datetime import timedelta

from botwarden.config import Settings
from botwarden.domain.circuit_breaker import BreakerPolicy
from botwarden.domain.job_machine import RetryPolicy
from botwarden.domain.jobs import JobType


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(tuple(timedelta(seconds=s) for s in settings.job_retry_backoff_seconds),
                       settings.job_retry_jitter)


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(settings.breaker_failure_threshold,
                         timedelta(seconds=settings.breaker_window_seconds),
                         timedelta(seconds=settings.breaker_half_open_seconds))


def heartbeat_timeouts(settings: Settings) -> dict[JobType, timedelta]:
    """Every job type's heartbeat timeout; a type left out of the settings is an error
    at start-up, not a job that can never time out."""
    configured = settings.job_heartbeat_timeout_seconds
    missing = [t.value for t in JobType if t.value not in configured]
    if missing:
        raise ValueError(f"job_heartbeat_timeout_seconds lacks {', '.join(missing)}")
    return {t: timedelta(seconds=configured[t.value]) for t in JobType}
