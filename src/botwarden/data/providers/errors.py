"""What a provider failure means, as data: its reason code, the health it implies, whether a
retry may help, and the jittered backoff before that retry.

Pure: no I/O, no vendor imports. `classify.py` maps the vendor clients' own exceptions onto
these codes; everything downstream (status machine, failover, API) reads only the codes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

from botwarden.domain.errors import DomainError


class Health(StrEnum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


class ErrorCode(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"  # HTTP 429
    ENTITLEMENT_REVOKED = "ENTITLEMENT_REVOKED"  # HTTP 401/402/403: key refused or plan lacks data
    KEY_MISSING = "KEY_MISSING"  # no key configured: nothing was sent
    TIMEOUT = "TIMEOUT"
    SERVER_ERROR = "SERVER_ERROR"  # HTTP 5xx
    NETWORK_ERROR = "NETWORK_ERROR"  # connection refused, reset, DNS
    DISCONNECTED = "DISCONNECTED"  # a live stream dropped
    PROVIDER_BAD_DATA = "PROVIDER_BAD_DATA"  # the payload did not parse or failed validation
    BAD_REQUEST = "BAD_REQUEST"  # HTTP 400/422: our request was wrong, the provider is fine
    NO_DATA = "NO_DATA"  # nothing for this symbol or range (HTTP 404, empty store)


@dataclass(frozen=True, slots=True)
class Rule:
    health: Health | None  # the health this failure implies; None: says nothing of health
    retryable: bool
    immediate: bool  # takes effect on the first occurrence, not after the retries ran out


RULES: dict[ErrorCode, Rule] = {
    ErrorCode.RATE_LIMITED: Rule(Health.DEGRADED, retryable=True, immediate=True),
    ErrorCode.ENTITLEMENT_REVOKED: Rule(Health.DOWN, retryable=False, immediate=True),
    ErrorCode.KEY_MISSING: Rule(Health.DOWN, retryable=False, immediate=True),
    ErrorCode.TIMEOUT: Rule(Health.DEGRADED, retryable=True, immediate=False),
    ErrorCode.SERVER_ERROR: Rule(Health.DEGRADED, retryable=True, immediate=False),
    ErrorCode.NETWORK_ERROR: Rule(Health.DEGRADED, retryable=True, immediate=False),
    ErrorCode.DISCONNECTED: Rule(Health.DEGRADED, retryable=True, immediate=False),
    ErrorCode.PROVIDER_BAD_DATA: Rule(Health.DEGRADED, retryable=False, immediate=True),
    ErrorCode.BAD_REQUEST: Rule(None, retryable=False, immediate=False),
    ErrorCode.NO_DATA: Rule(None, retryable=False, immediate=False),
}

# How each failure is told to an API caller: (envelope code, HTTP status, fix).
_API: dict[ErrorCode, tuple[str, int, str]] = {
    ErrorCode.RATE_LIMITED: (
        "INTEGRATION_RATE_LIMITED", 503, "The provider is rate-limiting us; retry after the "
        "delay given, or lower the request rate."),
    ErrorCode.ENTITLEMENT_REVOKED: (
        "INTEGRATION_ENTITLEMENT_REVOKED", 424, "The provider refused the key: check the key "
        "and the plan's entitlements in the provider's portal, then POST "
        "/api/integrations/{name}/verify."),
    ErrorCode.KEY_MISSING: (
        "INTEGRATION_KEY_MISSING", 424, "Set the provider's key in the environment (for "
        "example BOTWARDEN_DATABENTO_API_KEY) and restart."),
    ErrorCode.TIMEOUT: (
        "INTEGRATION_UNAVAILABLE", 503, "The provider timed out; retry later."),
    ErrorCode.SERVER_ERROR: (
        "INTEGRATION_UNAVAILABLE", 503, "The provider answered with a server error; retry "
        "later."),
    ErrorCode.NETWORK_ERROR: (
        "INTEGRATION_UNAVAILABLE", 503, "The provider could not be reached; check the "
        "network, then retry."),
    ErrorCode.DISCONNECTED: (
        "INTEGRATION_UNAVAILABLE", 503, "The provider's stream dropped; it reconnects by "
        "itself."),
    ErrorCode.PROVIDER_BAD_DATA: (
        "INTEGRATION_BAD_DATA", 502, "The provider sent data that failed validation; it was "
        "refused. Retry later or use another provider."),
    ErrorCode.BAD_REQUEST: (
        "INVALID_REQUEST", 422, "Correct the request (symbol, range, parameters)."),
    ErrorCode.NO_DATA: (
        "NO_DATA", 404, "Ask for another symbol or range, or import bars first."),
}


class ProviderError(DomainError):
    """A classified provider failure. `reason` is the provider-level code; `code` (from
    DomainError) is what an API caller sees."""

    def __init__(
        self,
        provider: str,
        reason: ErrorCode,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        api_code, status, fix = _API[reason]
        super().__init__(api_code, f"{provider}: {message}", fix.replace("{name}", provider),
                         status=status, details={"provider": provider, "reason": reason.value})
        self.provider = provider
        self.reason = reason
        self.detail = message
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def rule(self) -> Rule:
        return RULES[self.reason]

    @classmethod
    def from_http(cls, provider: str, status: int, message: str,
                  retry_after: float | None = None) -> ProviderError:
        return cls(provider, code_for_http_status(status), f"HTTP {status}: {message}",
                   http_status=status, retry_after=retry_after)


def code_for_http_status(status: int) -> ErrorCode:
    if status == 429:
        return ErrorCode.RATE_LIMITED
    if status in (401, 402, 403):
        return ErrorCode.ENTITLEMENT_REVOKED
    if status in (408, 504):
        return ErrorCode.TIMEOUT
    if status >= 500:
        return ErrorCode.SERVER_ERROR
    if status == 404:
        return ErrorCode.NO_DATA
    return ErrorCode.BAD_REQUEST


def parse_retry_after(value: object) -> float | None:
    """Seconds from a Retry-After header (the delta form; an HTTP date is ignored)."""
    try:
        seconds = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per call and the jittered exponential backoff between them."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): "full jitter",
        uniform in [0, min(max, base * 2^(attempt-1))], never shorter than the provider's
        own Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1))
        jittered = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            return max(min(retry_after, self.max_delay), jittered)
        return jittered


_MAX_MESSAGE = 300


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """A vendor's message made safe to store and show: known secrets masked, anything that
    looks like a credential in a URL masked, and bounded in length."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)(api[_-]?key|apikey|token|key)=([^&\s]+)", r"\1=***", text)
    text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
