"""Prometheus metrics: requests by route template (never the raw path), latency, policy
decisions, rate-limit refusals; served at /metrics."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from botwarden.domain.trading import Role
from tests.api.conftest import ApiUser


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_template(
    client: TestClient, user: ApiUser, bot_id: str
) -> None:
    route = {"method": "GET", "route": "/api/bots/{bot_id}", "status": "200"}
    before = sample("botwarden_http_requests_total", **route)
    timed_before = sample("botwarden_http_request_duration_seconds_count", **route)
    missing_before = sample("botwarden_http_requests_total", method="GET",
                            route="/api/bots/{bot_id}", status="404")
    unmatched_before = sample("botwarden_http_requests_total", method="GET", route="unmatched",
                              status="404")
    for _ in range(3):
        assert client.get(f"/api/bots/{bot_id}", headers=user.headers).status_code == 200
    assert client.get("/api/bots/nope", headers=user.headers).status_code == 404
    assert client.get(f"/no/such/{bot_id}").status_code == 404
    assert sample("botwarden_http_requests_total", **route) == before + 3
    assert sample("botwarden_http_request_duration_seconds_count", **route) == timed_before + 3
    assert sample("botwarden_http_request_duration_seconds_sum", **route) > 0
    assert sample("botwarden_http_requests_total", method="GET", route="/api/bots/{bot_id}",
                  status="404") == missing_before + 1
    assert sample("botwarden_http_requests_total", method="GET", route="unmatched",
                  status="404") == unmatched_before + 1
    text = client.get("/metrics").text
    assert 'route="/api/bots/{bot_id}"' in text
    assert bot_id not in text  # ids never become label values


def test_policy_decisions_are_counted_once_committed(
    client: TestClient, user: ApiUser, bot_id: str, make_user: Callable[..., ApiUser]
) -> None:
    allow = {"action": "BOT_UPDATE", "decision": "ALLOW"}
    deny = {"action": "BOT_UPDATE", "decision": "DENY"}
    allowed_before, denied_before = (sample("botwarden_policy_decisions_total", **allow),
                                     sample("botwarden_policy_decisions_total", **deny))
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    assert client.patch(f"/api/bots/{bot_id}", json={"name": "a"},
                        headers=user.headers).status_code == 200
    assert client.patch(f"/api/bots/{bot_id}", json={"name": "b"},
                        headers=viewer.headers).status_code == 403
    # A domain rule refusing after the policy allowed: one DENY, the ALLOW rolled back.
    assert client.patch(f"/api/bots/{bot_id}", json={"risk_config": {"max_contracts_per_order": 1}},
                        headers=user.headers).status_code == 422
    assert sample("botwarden_policy_decisions_total", **allow) == allowed_before + 1
    assert sample("botwarden_policy_decisions_total", **deny) == denied_before + 2
    audit = client.get("/api/audit-log?action=BOT_UPDATE", headers=user.headers).json()
    assert sorted(row["decision"] for row in audit) == ["ALLOW", "DENY", "DENY"]
