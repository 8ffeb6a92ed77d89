"""Every /api route except register, login, health and readiness answers 401
UNAUTHENTICATED without a token or with a bad one, generated from the app's route table so
that a new route is covered the day it is mounted."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.ids import new_id
from tests.api.route_table import PUBLIC, Schemas, endpoints, fill_path, path_params, protected

BAD_CREDENTIALS = {
    "no token": {},
    "garbage token": {"Authorization": "Bearer bw_not-a-real-token"},
    "empty token": {"Authorization": "Bearer "},
    "other scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
}


def test_every_protected_route_refuses_without_a_valid_token(
    app: FastAPI, client: TestClient
) -> None:
    schemas = Schemas(app)
    checked, failures = 0, []
    for endpoint in protected(app):
        path = fill_path(endpoint, {name: new_id() for name in path_params(endpoint)})
        body = schemas.body(app, endpoint)
        for label, headers in BAD_CREDENTIALS.items():
            response = client.request(endpoint.method, path, headers=headers,
                                      params=schemas.query(app, endpoint),
                                      json=body if endpoint.mutating else None)
            code = response.json().get("error", {}).get("code") if response.content else None
            if response.status_code != 401 or code != "UNAUTHENTICATED":
                failures.append(f"{endpoint} with {label}: {response.status_code} {code}")
            checked += 1
    assert not failures, "protected routes that did not answer 401:\n" + "\n".join(failures)
    assert checked >= 4 * 20  # the route table is really there: a vacuous pass is impossible


def test_public_routes_are_exactly_the_documented_ones(app: FastAPI, client: TestClient) -> None:
    mounted = {(e.method, e.path) for e in endpoints(app) if e.path.startswith("/api/")}
    assert mounted >= PUBLIC, f"public routes missing: {PUBLIC - mounted}"
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/ready").status_code in (200, 503)
    assert client.post("/api/auth/login", json={"email": "nobody@example.com",
                                               "password": "wrong password"}).json()[
        "error"]["code"] != "UNAUTHENTICATED"
