"""The status machine of one integration: what each call outcome does to OK / DEGRADED / DOWN.

Pure and deterministic (time comes in as an argument), so every rule is testable alone:

- success: OK (a recovery from DEGRADED or DOWN is a transition with code RECOVERED);
- RATE_LIMITED: DEGRADED at once; `storm_threshold` of them inside `storm_window` is a
  RATE_LIMIT_STORM (a kill-engine trigger) until the window holds fewer again;
- ENTITLEMENT_REVOKED and KEY_MISSING: DOWN at once;
- PROVIDER_BAD_DATA: DEGRADED at once;
- TIMEOUT, SERVER_ERROR, NETWORK_ERROR, DISCONNECTED: DEGRADED after `degrade_after`
  consecutive failures (the retries of one call ran out), never from one blip;
- BAD_REQUEST and NO_DATA: our request, not the provider's health: no change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from botwarden.data.providers.errors import RULES, ErrorCode, Health, ProviderError

RECOVERED = "RECOVERED"
RATE_LIMIT_STORM = "RATE_LIMIT_STORM"
NOT_VERIFIED = "NOT_VERIFIED"
VERIFIED = "VERIFIED"

# Kill-engine trigger codes (domain.md, "Kill engine") an integration's state can raise.
DATA_PROVIDER_MISSING = "DATA_PROVIDER_MISSING"
ENTITLEMENT_REVOKED = "ENTITLEMENT_REVOKED"


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    degrade_after: int = 3  # consecutive transient failures before DEGRADED
    storm_threshold: int = 5  # 429s inside the window that make a storm
    storm_window: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IntegrationState:
    name: str
    kind: str
    configured: bool
    status: Health
    last_success_at: datetime | None = None
    last_error_code: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_verified_at: datetime | None = None
    consecutive_failures: int = 0
    rate_limited_at: tuple[datetime, ...] = field(default=())  # inside the storm window

    def in_storm(self, now: datetime, policy: StatusPolicy) -> bool:
        return sum(1 for t in self.rate_limited_at if now - t < policy.storm_window) >= (
            policy.storm_threshold
        )

    def kill_trigger(self, now: datetime, policy: StatusPolicy) -> str | None:
        """What the kill engine should hear about this integration alone, if anything."""
        if self.status is Health.DOWN:
            if self.last_error_code == ErrorCode.ENTITLEMENT_REVOKED:
                return ENTITLEMENT_REVOKED
            return DATA_PROVIDER_MISSING
        if self.in_storm(now, policy):
            return RATE_LIMIT_STORM
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change (or a storm starting), to be persisted as an integration event."""

    name: str
    from_status: Health | None
    to_status: Health
    code: str | None
    detail: str | None
    at: datetime


def apply_success(state: IntegrationState, now: datetime, *, verified: bool = False
                  ) -> tuple[IntegrationState, Transition | None]:
    new = replace(state, status=Health.OK, last_success_at=now, consecutive_failures=0,
                  last_verified_at=now if verified else state.last_verified_at)
    if state.status is Health.OK:
        return new, None
    if state.last_error_code == NOT_VERIFIED:
        new = replace(new, last_error_code=None, last_error=None, last_error_at=None)
        return new, Transition(state.name, state.status, Health.OK, VERIFIED,
                               "first successful call or verify", now)
    detail = f"recovered after {state.last_error_code or 'an unknown failure'}"
    return new, Transition(state.name, state.status, Health.OK, RECOVERED, detail, now)


def apply_failure(state: IntegrationState, error: ProviderError, now: datetime,
                  policy: StatusPolicy, *, verified: bool = False
                  ) -> tuple[IntegrationState, Transition | None]:
    rule = RULES[error.reason]
    if rule.health is None:
        return state, None
    failures = state.consecutive_failures + 1
    recent = tuple(t for t in state.rate_limited_at if now - t < policy.storm_window)
    if error.reason is ErrorCode.RATE_LIMITED:
        recent = (*recent, now)
    new = replace(
        state,
        last_error_code=error.reason.value,
        last_error=error.detail,
        last_error_at=now,
        consecutive_failures=failures,
        rate_limited_at=recent,
        configured=state.configured and error.reason is not ErrorCode.KEY_MISSING,
        last_verified_at=now if verified else state.last_verified_at,
    )
    target = rule.health if (rule.immediate or failures >= policy.degrade_after) else None
    if target is not None and _worse_or_equal(target, state.status):
        new = replace(new, status=target)
    if new.status is not state.status:
        return new, Transition(state.name, state.status, new.status, error.reason.value,
                               error.detail, now)
    if (error.reason is ErrorCode.RATE_LIMITED and new.in_storm(now, policy)
            and not state.in_storm(now, policy)):
        detail = f"{len(recent)} rate-limited calls within {policy.storm_window.seconds} s"
        return new, Transition(state.name, state.status, new.status, RATE_LIMIT_STORM, detail,
                               now)
    return new, None


_RANK = {Health.OK: 0, Health.DEGRADED: 1, Health.DOWN: 2}


def _worse_or_equal(target: Health, current: Health) -> bool:
    """A failure never improves the status: a DOWN provider that times out stays DOWN."""
    return _RANK[target] >= _RANK[current]


def status_rank(status: Health) -> int:
    return _RANK[status]
