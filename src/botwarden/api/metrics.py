"""Prometheus metrics of the API: requests by method, route template and status, their
latency, policy decisions, rate-limit refusals. `/metrics` (routers.health) serves them.

Metrics live in this process's default registry. With several server processes each serves
its own figures; prometheus-client's multiprocess mode is out of scope, so scrape every
process (or run one API process per host)."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botwarden.store.models import AuditLog

REQUESTS = Counter("botwarden_http_requests_total", "HTTP requests handled",
                   ["method", "route", "status"])
LATENCY = Histogram("botwarden_http_request_duration_seconds",
                    "Time from request received to response sent",
                    ["method", "route", "status"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                             2.5, 5.0, 10.0))
POLICY_DECISIONS = Counter("botwarden_policy_decisions_total",
                           "Action-policy decisions on mutations, as written to the audit log",
                           ["action", "decision"])
RATE_LIMITED = Counter("botwarden_rate_limited_total",
                       "Mutating requests refused by a rate limit (or by its store failing)",
                       ["scope"])

UNMATCHED = "unmatched"  # any path no route knows: keeps the label set bounded


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware task per request). The route label is
    the matched route's template (`/api/bots/{bot_id}`), never the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")  # set by the router on the scope it was handed
            labels = (scope["method"], getattr(route, "path", None) or UNMATCHED, str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(perf_counter() - started)


# Policy decisions are counted from the audit rows that record them, once their transaction
# commits: every allowed or denied mutation writes exactly one such row (api.guard), whether
# the policy, a later domain rule or the dry run decided it.
_PENDING = "botwarden_metrics_decisions"


@event.listens_for(Session, "after_flush")
def _note_decisions(session: Session, _flush_context: Any) -> None:
    rows = [(o.action, o.decision) for o in session.new if isinstance(o, AuditLog)]
    if rows:
        session.info.setdefault(_PENDING, []).extend(rows)


@event.listens_for(Session, "after_commit")
def _count_decisions(session: Session) -> None:
    for action, decision in session.info.pop(_PENDING, []):
        POLICY_DECISIONS.labels(action, decision).inc()


@event.listens_for(Session, "after_rollback")
def _drop_decisions(session: Session) -> None:
    session.info.pop(_PENDING, None)
