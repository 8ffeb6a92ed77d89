"""The error envelope: `{"error": {"code", "message", "fix", "trace_id"}}`, for every error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from botwarden.api.tracing import current_trace_id
from botwarden.domain.errors import DomainError
from botwarden.logging import get_logger

log = get_logger("botwarden.api")

_HTTP_CODES = {
    400: ("INVALID_REQUEST", "Correct the request and retry."),
    401: ("UNAUTHENTICATED", "Log in and send 'Authorization: Bearer <token>'."),
    403: ("FORBIDDEN", "Ask an admin of your account for the needed role."),
    404: ("NOT_FOUND", "Check the path and the id."),
    405: ("METHOD_NOT_ALLOWED", "Use a verb this route accepts."),
    413: ("INVALID_REQUEST", "Send a smaller body."),
    415: ("INVALID_REQUEST", "Send JSON with Content-Type: application/json."),
    422: ("INVALID_REQUEST", "Correct the request body and retry."),
    429: ("RATE_LIMITED", "Wait for the time given in Retry-After, then retry."),
}


def envelope(
    status: int,
    code: str,
    message: str,
    fix: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "fix": fix,
        "trace_id": current_trace_id(),
    }
    if details:
        body.update(details)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class ApiError(DomainError):
    """A refusal raised by the API layer itself (auth, rate limits)."""

    def __init__(self, status: int, code: str, message: str, fix: str,
                 headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(code, message, fix, status=status, details=details)
        self.headers = headers


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        on_error = getattr(request.state, "on_domain_error", None)
        if on_error is not None:
            await on_error(exc)
        return envelope(exc.status, exc.code, exc.message, exc.fix, exc.details or None,
                        getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(422, "INVALID_REQUEST", _validation_message(exc),
                        "Correct the request body and retry.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, fix = _HTTP_CODES.get(exc.status_code, ("ERROR", "Retry later."))
        return envelope(exc.status_code, code, str(exc.detail), fix,
                        headers=getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.DataError)
    async def _data(request: Request, exc: sa_exc.DataError) -> JSONResponse:
        # The database refused a value the schema let through (a NUL byte, an overflow).
        return envelope(422, "INVALID_REQUEST", "a value in the request cannot be stored",
                        "Remove control characters and keep numbers within range.")

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver refuses integers beyond 64 bits before the database sees them.
        return envelope(422, "INVALID_REQUEST", "a number in the request is out of range",
                        "Keep numbers within 64-bit integers.")

    @app.exception_handler(sa_exc.OperationalError)
    async def _busy(request: Request, exc: sa_exc.OperationalError) -> JSONResponse:
        log.warning("database_unavailable", error=str(exc.orig), path=request.url.path)
        return envelope(503, "SERVICE_BUSY", "the database is busy or unavailable",
                        "Retry after the time given in Retry-After.",
                        headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=repr(exc), path=request.url.path, exc_info=exc)
        return envelope(500, "INTERNAL", "internal error",
                        "Retry; report the trace id if it persists.")
