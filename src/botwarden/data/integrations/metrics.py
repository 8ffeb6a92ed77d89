"""Prometheus metrics per integration, served by `/metrics` from the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from botwarden.data.providers.base import CallRecord
from botwarden.data.providers.errors import Health

CALLS = Counter("botwarden_integration_calls_total", "Provider calls by outcome.",
                ["provider", "operation", "outcome"])
ERRORS = Counter("botwarden_integration_errors_total", "Provider call failures by reason code.",
                 ["provider", "code"])
ROWS = Counter("botwarden_integration_rows_total", "Rows (bars, alerts) received.",
               ["provider", "operation"])
LATENCY = Histogram("botwarden_integration_latency_seconds", "Provider call latency.",
                    ["provider", "operation"],
                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STATUS = Gauge("botwarden_integration_status", "Integration status: 0 OK, 1 DEGRADED, 2 DOWN.",
               ["provider"])
CONFIGURED = Gauge("botwarden_integration_configured", "1 when the integration's keys are set.",
                   ["provider"])

STATUS_VALUE = {Health.OK: 0, Health.DEGRADED: 1, Health.DOWN: 2}


def observe_call(record: CallRecord) -> None:
    CALLS.labels(record.provider, record.operation, "ok" if record.ok else "error").inc()
    LATENCY.labels(record.provider, record.operation).observe(record.latency_ms / 1000.0)
    if record.rows:
        ROWS.labels(record.provider, record.operation).inc(record.rows)
    if record.error is not None:
        ERRORS.labels(record.provider, record.error.reason.value).inc()


def observe_status(provider: str, status: Health, configured: bool) -> None:
    STATUS.labels(provider).set(STATUS_VALUE[status])
    CONFIGURED.labels(provider).set(1 if configured else 0)
