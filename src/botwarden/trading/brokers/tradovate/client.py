"""Tradovate's REST API over httpx: authentication, token renewal, and one call path that
classifies failures and reports every call to the integration registry (`ProviderBase`).

- POST /auth/accesstokenrequest {name, password, appId, appVersion, cid, sec[, deviceId]}
  answers {accessToken, expirationTime, userId, name, ...}, or {errorText} for refused
  credentials (ENTITLEMENT_REVOKED). When Tradovate throttles this "novel" request it answers
  200 with a penalty ticket {p-ticket, p-time, p-captcha}: wait p-time seconds and send the
  same body again with the ticket; p-captcha means only a person can unlock it (an hour).
- A token lives 90 minutes. GET /auth/renewaccesstoken renews it 15 minutes before it
  expires: a new access-token request would open a new session, and Tradovate keeps two
  sessions per user, closing the oldest (another process's) when a third opens.
- Every other call carries "Authorization: Bearer <token>". A 401 means the token was
  refused and nothing was done: the client logs in again once and repeats the call; a second
  401 is ENTITLEMENT_REVOKED. A 429 is RATE_LIMITED (Tradovate stops handling requests for
  a while); a 423 after failed log-ins locks the user out for an hour.

Credentials are read once (`TradovateCredentials.from_settings`), sent only in the token
request, masked in every message we keep, and never logged or returned.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from botwarden.config import Settings
from botwarden.data.providers.base import ProviderBase, ProviderKind
from botwarden.data.providers.errors import ErrorCode, ProviderError
from botwarden.trading.brokers.tradovate.budget import (
    RETRY_AFTER_SECONDS,
    BudgetSpent,
    RequestBudget,
)
from botwarden.trading.brokers.tradovate.mapping import parse_time

URLS = {"demo": "https://demo.tradovateapi.com/v1", "live": "https://live.tradovateapi.com/v1"}
LOCKOUT_SECONDS = 3600.0
PENALTY_TICKETS = 3  # penalty waits before giving up on one token request


@dataclass(frozen=True, slots=True)
class TradovateCredentials:
    username: str
    password: SecretStr
    cid: str
    sec: SecretStr
    app_id: str = "Botwarden"
    app_version: str = "1.0"
    device_id: str | None = None
    environment: str = "demo"

    def __post_init__(self) -> None:
        if self.environment not in URLS:
            raise ValueError(f"Tradovate environment is one of {sorted(URLS)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TradovateCredentials | None:
        """None unless the user name, password, API client id and secret are all set."""
        password, sec = settings.tradovate_password, settings.tradovate_sec
        if not (settings.tradovate_username and settings.tradovate_cid and password
                and password.get_secret_value() and sec and sec.get_secret_value()):
            return None
        return cls(settings.tradovate_username, password, settings.tradovate_cid, sec,
                   settings.tradovate_app_id, settings.tradovate_app_version,
                   settings.tradovate_device_id, settings.tradovate_environment)

    def token_request(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.username,
            "password": self.password.get_secret_value(),
            "appId": self.app_id,
            "appVersion": self.app_version,
            "cid": int(self.cid) if self.cid.isdigit() else self.cid,
            "sec": self.sec.get_secret_value(),
        }
        if self.device_id:
            body["deviceId"] = self.device_id
        return body

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password.get_secret_value(), self.sec.get_secret_value())


class TradovateClient(ProviderBase):
    name = "tradovate"
    kind = ProviderKind.BROKER

    def __init__(self, credentials: TradovateCredentials | None, *,
                 http: httpx.Client | None = None, timeout: float = 10.0,
                 renew_before: timedelta = timedelta(minutes=15),
                 budget: RequestBudget | None = None, **options: Any) -> None:
        super().__init__(secrets=credentials.secrets if credentials else (), **options)
        self.credentials = credentials
        self.budget = budget or RequestBudget()
        self.http = http or httpx.Client(timeout=timeout)
        self.renew_before = renew_before
        self.user_id: int | None = None
        self._token: str | None = None
        self._expires: datetime | None = None
        self._auth_lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.credentials is not None

    @property
    def environment(self) -> str:
        return self.credentials.environment if self.credentials else "demo"

    @property
    def base_url(self) -> str:
        return URLS[self.environment]

    # ---- calls ----

    def get(self, path: str, params: dict[str, Any] | None = None, *, operation: str,
            attempts: int | None = None) -> Any:
        """A read: retried with backoff when a retry can help."""
        return self._budgeted(operation, lambda: self.call(
            operation, lambda: self._request("GET", path, params=params), _rows,
            attempts=attempts))

    def post(self, path: str, body: dict[str, Any], *, operation: str,
             attempts: int = 1) -> Any:
        """A command: one attempt unless told otherwise (a resent order is a second order)."""
        return self._budgeted(operation, lambda: self.call(
            operation, lambda: self._request("POST", path, body=body), _rows,
            attempts=attempts))

    def _budgeted(self, operation: str, send: Any) -> Any:
        """`send()`, with a request refused by our budget (budget.py) reported as a refused
        call and raised as RATE_LIMITED, without the retries a 429 from Tradovate gets."""
        started = time.perf_counter()
        try:
            return send()
        except BudgetSpent as spent:
            error = ProviderError(self.name, ErrorCode.RATE_LIMITED, str(spent),
                                  retry_after=RETRY_AFTER_SECONDS)
            self.report(operation, False, (time.perf_counter() - started) * 1e3, error=error)
            raise error from None

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 body: dict[str, Any] | None = None) -> Any:
        if self.credentials is None:
            raise ProviderError(self.name, ErrorCode.KEY_MISSING,
                                "no Tradovate credentials configured")
        token = self._ensure_token()
        self.budget.take(read=method == "GET")  # each attempt is a request
        response = self._send(method, path, token, params, body)
        if response.status_code == 401:  # refused token, nothing done: log in once more
            self.budget.take(read=method == "GET")
            response = self._send(method, path, self._ensure_token(force_new=True), params,
                                  body)
        return self._json(response)

    def _send(self, method: str, path: str, token: str | None,
              params: dict[str, Any] | None = None, body: dict[str, Any] | None = None
              ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base_url + path, params=params, json=body,
                                 headers=headers)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 423:
            raise ProviderError(self.name, ErrorCode.RATE_LIMITED,
                                "locked out after failed log-ins: wait an hour",
                                http_status=423, retry_after=LOCKOUT_SECONDS)
        response.raise_for_status()
        return response.json(parse_float=Decimal)  # prices exact, as the text says

    # ---- the access token ----

    def access_token(self) -> str:
        """The session's token (renewed or requested as needed), for the WebSocket's
        `authorize`."""
        if self.credentials is None:
            raise ProviderError(self.name, ErrorCode.KEY_MISSING,
                                "no Tradovate credentials configured")
        return self._ensure_token()

    def _ensure_token(self, *, force_new: bool = False) -> str:
        with self._auth_lock:
            now = self.clock()
            if force_new:
                self._token = None
            if self._token and self._expires and now < self._expires - self.renew_before:
                return self._token
            if self._token and self._expires and now < self._expires:
                self._renew_or_authenticate()
            else:
                self._authenticate()
            assert self._token is not None
            return self._token

    def _authenticate(self) -> None:
        assert self.credentials is not None
        body = self.credentials.token_request()
        for _ in range(PENALTY_TICKETS):
            data = self._json(self.http.post(self.base_url + "/auth/accesstokenrequest",
                                             json=body, headers={"Accept": "application/json"}))
            ticket = data.get("p-ticket") if isinstance(data, dict) else None
            if not ticket:
                self._take_token(data)
                return
            if data.get("p-captcha"):
                raise ProviderError(
                    self.name, ErrorCode.RATE_LIMITED,
                    "Tradovate asks for a captcha after too many log-ins: log in once through "
                    "its web application, or wait an hour", retry_after=LOCKOUT_SECONDS)
            self.sleep(float(data.get("p-time", 0)))
            body = {**body, "p-ticket": ticket}
        raise ProviderError(self.name, ErrorCode.RATE_LIMITED,
                            "Tradovate kept answering the log-in with penalty tickets")

    def _renew_or_authenticate(self) -> None:
        """Renew the session; when it cannot be renewed (refused, expired, unreachable for a
        moment) open a new one, unless Tradovate is rate-limiting us."""
        try:
            self._renew()
        except Exception as exc:  # narrowed at once: unclassified errors are re-raised
            error = self.classify(exc)
            if error is None:
                raise
            if error.reason is ErrorCode.RATE_LIMITED:
                raise error from exc
            self._authenticate()

    def _renew(self) -> None:
        self._take_token(self._json(self._send("GET", "/auth/renewaccesstoken", self._token)))

    def _take_token(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                "the token answer is not an object")
        if data.get("errorText"):
            raise ProviderError(self.name, ErrorCode.ENTITLEMENT_REVOKED, str(data["errorText"]))
        token, expires = data.get("accessToken"), data.get("expirationTime")
        if not token or not expires:
            raise ProviderError(self.name, ErrorCode.PROVIDER_BAD_DATA,
                                "the token answer has no accessToken or expirationTime")
        self._token, self._expires = str(token), parse_time(str(expires))
        self.user_id = data.get("userId")

    # ---- verification ----

    def _verify_remote(self) -> dict[str, Any]:
        """Renew the session this client holds; without one, request an access token."""
        with self._auth_lock:
            if self._token is None:
                self._authenticate()
            else:
                self._renew_or_authenticate()
        return {"environment": self.environment, "user_id": self.user_id,
                "expires_at": self._expires.isoformat() if self._expires else None}


def _rows(result: Any) -> int:
    return len(result) if isinstance(result, list) else 1
