"""Map the vendor clients' own exceptions onto provider error codes.

- databento: `BentoHttpError` (and its `BentoClientError` / `BentoServerError`) carry
  `http_status` and the response headers; a `BentoError` without a status is a broken
  stream or connection; the DBN decoder raises `DBNError` or `ValueError` on a bad payload.
- massive (Polygon): `AuthError` means no key; `BadResponse` carries only the body, so the
  caller passes the HTTP status it observed; the transport is urllib3 (timeouts, protocol
  errors, `MaxRetryError` wrapping either).
- requests (databento's transport) and httpx (our own REST adapters): timeouts, connection
  errors and, for httpx, `HTTPStatusError` with the response.

Anything else is not classified (`None`): an unexpected exception is a bug to surface, not a
provider failure to retry.
"""

from __future__ import annotations

import json

import databento
import httpx
import requests
import urllib3.exceptions as u3
from databento_dbn import DBNError
from massive.exceptions import AuthError, BadResponse

from botwarden.data.providers.errors import ErrorCode, ProviderError, parse_retry_after

_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError,
    u3.TimeoutError,
    requests.Timeout,
    httpx.TimeoutException,
)
_NETWORK: tuple[type[BaseException], ...] = (
    ConnectionError,
    u3.ProtocolError,
    u3.NewConnectionError,
    u3.HTTPError,
    requests.ConnectionError,
    httpx.TransportError,
)


def classify(
    exc: BaseException, provider: str, *, http_status: int | None = None
) -> ProviderError | None:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, databento.BentoHttpError):
        retry_after = parse_retry_after(exc.headers.get("Retry-After"))
        return ProviderError.from_http(provider, exc.http_status, exc.message or "",
                                       retry_after)
    if isinstance(exc, databento.BentoError):
        # Without a status, the client raises BentoError for a dropped connection or stream,
        # and for a payload it cannot decode (compression, DBN header).
        text = str(exc)
        if any(word in text.lower() for word in ("connection", "stream", "timed out")):
            return ProviderError(provider, ErrorCode.DISCONNECTED, text)
        return ProviderError(provider, ErrorCode.PROVIDER_BAD_DATA, text)
    if isinstance(exc, AuthError):
        return ProviderError(provider, ErrorCode.KEY_MISSING, "no API key")
    if isinstance(exc, BadResponse):
        return _bad_response(provider, str(exc), http_status)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return ProviderError.from_http(
            provider, response.status_code, _body_message(response.text),
            parse_retry_after(response.headers.get("Retry-After")))
    if isinstance(exc, u3.MaxRetryError):
        return _max_retry(provider, exc)
    if isinstance(exc, _TIMEOUTS):
        return ProviderError(provider, ErrorCode.TIMEOUT, f"timed out ({type(exc).__name__})")
    if isinstance(exc, _NETWORK):
        return ProviderError(provider, ErrorCode.NETWORK_ERROR, type(exc).__name__)
    if isinstance(exc, DBNError | json.JSONDecodeError):
        return ProviderError(provider, ErrorCode.PROVIDER_BAD_DATA, f"undecodable payload: {exc}")
    return None


def _bad_response(provider: str, body: str, http_status: int | None) -> ProviderError:
    message = _body_message(body)
    if http_status is None:
        # No status seen: only the body is left to go by (Polygon names the case in it).
        upper = body.upper()
        if "NOT_AUTHORIZED" in upper or "NOT ENTITLED" in upper or "UNKNOWN API KEY" in upper:
            http_status = 403
        elif "EXCEEDED THE MAXIMUM REQUESTS" in upper:
            http_status = 429
        else:
            http_status = 500
    return ProviderError.from_http(provider, http_status, message)


def _max_retry(provider: str, exc: u3.MaxRetryError) -> ProviderError:
    reason = exc.reason
    if isinstance(reason, u3.ResponseError):
        # "too many 429 error responses": urllib3 names the status it gave up on.
        for token in str(reason).split():
            if token.isdigit():
                return ProviderError.from_http(provider, int(token), str(reason))
        return ProviderError(provider, ErrorCode.SERVER_ERROR, str(reason))
    if reason is not None:
        inner = classify(reason, provider)
        if inner is not None:
            return inner
    return ProviderError(provider, ErrorCode.NETWORK_ERROR, "retries exhausted")


def _body_message(body: str) -> str:
    """The human part of a JSON error body (Polygon: message/error, UW: error), else the
    body's start."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return body[:200]
    if isinstance(payload, dict):
        for key in ("message", "error", "detail"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return body[:200]
