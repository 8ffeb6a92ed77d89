"""Error classification: HTTP statuses and the vendor clients' own exceptions -> codes."""

from __future__ import annotations

import json
import random

import databento
import httpx
import pytest
import requests
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from massive.exceptions import AuthError, BadResponse

from botwarden.data.providers.classify import classify
from botwarden.data.providers.errors import (
    RULES,
    ErrorCode,
    Health,
    ProviderError,
    RetryPolicy,
    code_for_http_status,
    redact,
)


@pytest.mark.parametrize(("status", "code"), [
    (429, ErrorCode.RATE_LIMITED), (401, ErrorCode.ENTITLEMENT_REVOKED),
    (402, ErrorCode.ENTITLEMENT_REVOKED), (403, ErrorCode.ENTITLEMENT_REVOKED),
    (408, ErrorCode.TIMEOUT), (504, ErrorCode.TIMEOUT), (500, ErrorCode.SERVER_ERROR),
    (503, ErrorCode.SERVER_ERROR), (404, ErrorCode.NO_DATA), (400, ErrorCode.BAD_REQUEST),
    (422, ErrorCode.BAD_REQUEST),
])
def test_http_status_codes(status: int, code: ErrorCode) -> None:
    assert code_for_http_status(status) is code


def test_rules_say_what_each_code_does() -> None:
    assert RULES[ErrorCode.RATE_LIMITED].health is Health.DEGRADED
    assert RULES[ErrorCode.RATE_LIMITED].immediate and RULES[ErrorCode.RATE_LIMITED].retryable
    assert RULES[ErrorCode.ENTITLEMENT_REVOKED].health is Health.DOWN
    assert not RULES[ErrorCode.ENTITLEMENT_REVOKED].retryable
    assert not RULES[ErrorCode.TIMEOUT].immediate and RULES[ErrorCode.TIMEOUT].retryable
    assert RULES[ErrorCode.KEY_MISSING].health is Health.DOWN
    assert RULES[ErrorCode.NO_DATA].health is None


def test_databento_errors() -> None:
    body = {"detail": {"case": "rate_limit", "message": "slow down", "docs": None}}
    error = classify(databento.BentoClientError(429, json.dumps(body), body,
                                                headers={"Retry-After": "3"}), "databento")
    assert error is not None and error.reason is ErrorCode.RATE_LIMITED
    assert error.retry_after == 3.0 and "slow down" in error.detail
    server = classify(databento.BentoServerError(503, None, None, "overloaded"), "databento")
    assert server is not None and server.reason is ErrorCode.SERVER_ERROR
    dropped = classify(databento.BentoError("connection lost"), "databento")
    assert dropped is not None and dropped.reason is ErrorCode.DISCONNECTED


def test_massive_errors_use_the_observed_status_or_the_body() -> None:
    assert classify(AuthError("no key"), "polygon").reason is ErrorCode.KEY_MISSING
    body = '{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data."}'
    seen = classify(BadResponse(body), "polygon", http_status=403)
    assert seen.reason is ErrorCode.ENTITLEMENT_REVOKED and "not entitled" in seen.detail
    assert classify(BadResponse(body), "polygon").reason is ErrorCode.ENTITLEMENT_REVOKED
    limited = classify(BadResponse('{"error":"exceeded the maximum requests"}'), "polygon")
    assert limited.reason is ErrorCode.RATE_LIMITED


def test_transport_errors() -> None:
    read = urllib3.exceptions.ReadTimeoutError(None, "/x", "timed out")
    assert classify(read, "polygon").reason is ErrorCode.TIMEOUT
    retries = urllib3.exceptions.MaxRetryError(
        None, "/x", urllib3.exceptions.ResponseError("too many 429 error responses"))
    assert classify(retries, "polygon").reason is ErrorCode.RATE_LIMITED
    assert classify(requests.ConnectionError("refused"), "databento").reason is (
        ErrorCode.NETWORK_ERROR)
    assert classify(httpx.ConnectTimeout("slow"), "uw").reason is ErrorCode.TIMEOUT
    request = httpx.Request("GET", "https://example.test/x")
    status = httpx.HTTPStatusError("x", request=request,
                                   response=httpx.Response(401, request=request))
    assert classify(status, "uw").reason is ErrorCode.ENTITLEMENT_REVOKED


def test_unknown_exceptions_are_not_classified() -> None:
    assert classify(ZeroDivisionError(), "databento") is None


def test_api_envelope_codes() -> None:
    missing = ProviderError("unusual_whales", ErrorCode.KEY_MISSING, "no key")
    assert (missing.code, missing.status) == ("INTEGRATION_KEY_MISSING", 424)
    assert "BOTWARDEN_" in missing.fix


@given(attempt=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       retry_after=st.one_of(st.none(), st.floats(0, 100)))
def test_backoff_is_jittered_bounded_and_honours_retry_after(attempt, seed,
                                                            retry_after) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    delay = policy.delay(attempt, random.Random(seed), retry_after)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    assert 0.0 <= delay <= max(ceiling, min(retry_after or 0.0, 30.0))
    if retry_after is not None:
        assert delay >= min(retry_after, 30.0)


def test_backoff_grows_exponentially_on_average() -> None:
    policy, rng = RetryPolicy(base_delay=1.0, max_delay=1000.0), random.Random(1)
    means = [sum(policy.delay(a, rng) for _ in range(400)) / 400 for a in (1, 3, 5)]
    assert means[0] < means[1] < means[2]


def test_redact_masks_keys_and_bounds_length() -> None:
    text = redact("GET /v0?apiKey=abc123&x=1 Authorization: Bearer sk-live-9 db-SECRET " * 20,
                  ("db-SECRET",))
    assert "abc123" not in text and "sk-live-9" not in text and "db-SECRET" not in text
    assert len(text) <= 300
