"""Typed domain errors carrying a reason code, an HTTP status and a fix for the caller."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a reason code. The API turns it into the error envelope."""

    status: int = 409

    def __init__(
        self,
        code: str,
        message: str,
        fix: str = "",
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fix = fix
        if status is not None:
            self.status = status
        self.details = details or {}


class NotFound(DomainError):
    status = 404

    def __init__(self, what: str = "resource") -> None:
        super().__init__(
            "NOT_FOUND", f"{what} not found", "Check the id; it may belong to another account."
        )


class InvalidRequest(DomainError):
    status = 422

    def __init__(self, message: str, fix: str = "Correct the request body and retry.") -> None:
        super().__init__("INVALID_REQUEST", message, fix)
