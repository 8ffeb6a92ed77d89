"""Trace ids: one per request (a caller's X-Request-Id is honoured), on every log line and
response (`X-Trace-Id`)."""

from __future__ import annotations

import re
import time
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botwarden.ids import new_id
from botwarden.logging import get_logger

log = get_logger("botwarden.http")

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_NUL_BODY = (b'{"error": {"code": "INVALID_REQUEST", "message": "NUL byte in the URL", '
             b'"fix": "Remove control characters from the path and query.", "trace_id": "')


def current_trace_id() -> str:
    value = _trace_id.get()
    return value if value is not None else new_id()


class TraceIdMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID.match(candidate):
                    trace_id = candidate
                break
        trace_id = trace_id or new_id()
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # NUL cannot reach a query (PostgreSQL refuses it): answer 400 up front.
            await self._refuse_nul(send, trace_id)
            return
        token = _trace_id.set(trace_id)
        structlog.contextvars.bind_contextvars(trace_id=trace_id)
        scope.setdefault("state", {})["trace_id"] = trace_id
        header = (b"x-trace-id", trace_id.encode())
        started = time.perf_counter()
        status = 500

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            log.info("request", method=scope["method"], path=scope["path"], status=status,
                     ms=round((time.perf_counter() - started) * 1000, 2))
            structlog.contextvars.unbind_contextvars("trace_id")
            _trace_id.reset(token)

    @staticmethod
    async def _refuse_nul(send: Send, trace_id: str) -> None:
        body = _NUL_BODY + trace_id.encode() + b'"}}'
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"x-trace-id", trace_id.encode())]})
        await send({"type": "http.response.body", "body": body})
