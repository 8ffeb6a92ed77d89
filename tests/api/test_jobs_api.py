"""The job and scheduler routes: account isolation, cancel, heartbeat with the lease token,
timeout-stale, the loops' listing and on-demand runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.api.guard import api_routes
from botwarden.api.routers import jobs as jobs_router
from botwarden.clock import utcnow
from botwarden.domain.jobs import JobType
from botwarden.domain.trading import Role
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from tests.api.conftest import ApiUser


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    if not any(r.path == "/api/jobs" for r in api_routes(app)):  # until app.py mounts it
        app.include_router(jobs_router.router)
    with TestClient(app) as c:
        yield c


def submit(app: FastAPI, account_id: str, n: int = 1, **kw: Any) -> list[str]:
    job_type = kw.pop("job_type", JobType.BACKTEST)
    with write_transaction(app.state.engine) as conn:
        return js.create_jobs(conn, account_id=account_id, job_type=job_type, actor="test",
                              now=kw.pop("now", utcnow()), payloads=[{}] * n, **kw)


def claim(app: FastAPI, now: Any = None) -> list[js.ClaimedJob]:
    with write_transaction(app.state.engine) as conn:
        return js.claim_jobs(conn, owner="api-test", types=list(JobType), limit=100,
                             lease_seconds=30, now=now or utcnow())


def test_reads_are_scoped_to_the_account(
    client: TestClient, app: FastAPI, user: ApiUser, bot_id: str,
    make_user: Callable[..., ApiUser],
) -> None:
    mine = submit(app, user.account_id, 2)
    runner = submit(app, user.account_id, job_type=JobType.RUNNER, bot_id=bot_id)[0]
    other = make_user()
    theirs = submit(app, other.account_id)[0]
    listed = client.get("/api/jobs", headers=user.headers).json()
    assert {j["id"] for j in listed} == {*mine, runner}
    assert [j["id"] for j in client.get(f"/api/jobs?bot_id={bot_id}",
                                        headers=user.headers).json()] == [runner]
    assert {j["id"] for j in client.get("/api/jobs?type=BACKTEST&status=QUEUED",
                                        headers=user.headers).json()} == set(mine)
    one = client.get(f"/api/jobs/{mine[0]}", headers=user.headers).json()
    assert one["status"] == "QUEUED" and "lease_token" not in one
    events = client.get(f"/api/jobs/{mine[0]}/events", headers=user.headers).json()
    assert [(e["from_status"], e["to_status"]) for e in events] == [(None, "QUEUED")]
    for path in (f"/api/jobs/{theirs}", f"/api/jobs/{theirs}/events", "/api/jobs/nope"):
        response = client.get(path, headers=user.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    for verb in ("cancel", "heartbeat"):
        body = {"lease_token": "x"} if verb == "heartbeat" else {}
        response = client.post(f"/api/jobs/{theirs}/{verb}", json=body, headers=user.headers)
        assert response.status_code == 404, verb
    bad = client.get("/api/jobs?status=ASLEEP", headers=user.headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_REQUEST"
    assert client.get("/api/jobs").status_code == 401


def test_cancel(client: TestClient, app: FastAPI, user: ApiUser,
                make_user: Callable[..., ApiUser]) -> None:
    job_id = submit(app, user.account_id)[0]
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    denied = client.post(f"/api/jobs/{job_id}/cancel", json={}, headers=viewer.headers)
    assert denied.status_code == 403
    done = client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "not needed"},
                       headers=user.headers)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["status_reason_code"], body["status_reason"]) == (
        "CANCELED", "CANCELED_BY_USER", "not needed")
    assert body["completed_at"] is not None
    again = client.post(f"/api/jobs/{job_id}/cancel", json={}, headers=user.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_TERMINAL"
    audit = client.get("/api/audit-log?action=JOB_CANCEL", headers=user.headers).json()
    assert {(a["decision"], a["target_id"]) for a in audit} >= {("ALLOW", job_id),
                                                                ("DENY", job_id)}


def test_heartbeat_needs_the_current_lease_token(
    client: TestClient, app: FastAPI, user: ApiUser
) -> None:
    job_id = submit(app, user.account_id)[0]
    [job] = claim(app)
    beat = client.post(f"/api/jobs/{job_id}/heartbeat",
                       json={"lease_token": job.lease.token, "progress": 0.25},
                       headers=user.headers)
    assert beat.status_code == 200, beat.text
    row = client.get(f"/api/jobs/{job_id}", headers=user.headers).json()
    assert row["progress"] == 0.25 and row["last_heartbeat_at"] is not None
    stale = client.post(f"/api/jobs/{job_id}/heartbeat", json={"lease_token": "0" * 32},
                        headers=user.headers)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "LEASE_LOST"
    assert stale.json()["error"]["fix"]


def test_timeout_stale_reports_only_this_accounts_jobs(
    client: TestClient, app: FastAPI, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    other = make_user()
    long_ago = utcnow() - timedelta(hours=2)
    mine = submit(app, user.account_id, now=long_ago)[0]
    submit(app, other.account_id, now=long_ago)
    held = claim(app, now=long_ago)
    with write_transaction(app.state.engine) as conn:  # alive worker, silent handlers
        js.renew_leases(conn, [js.Beat(j.lease, long_ago) for j in held], now=utcnow(),
                        lease_seconds=30)
    trader = make_user(Role.TRADER, account_id=user.account_id)
    assert client.post("/api/jobs/timeout-stale", headers=trader.headers).status_code == 403
    response = client.post("/api/jobs/timeout-stale", headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"timed_out": 1, "job_ids": [mine]}
    listed = client.get("/api/jobs/timed-out", headers=user.headers).json()
    assert [(j["id"], j["status_reason_code"]) for j in listed] == [(mine, "HEARTBEAT_TIMEOUT")]


def test_the_scheduler_lists_and_runs_loops(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    tasks = client.get("/api/scheduler", headers=user.headers).json()["tasks"]
    intervals = {t["name"]: t["interval_seconds"] for t in tasks}  # and any a package added
    assert (intervals["timeout_worker"], intervals["supervisor"]) == (15.0, 10.0)
    ran = client.post("/api/scheduler/trigger", json={"task": "supervisor"},
                      headers=user.headers)
    assert ran.status_code == 200, ran.text
    assert ran.json()["ok"] and ran.json()["result"]["restarted"] == 0
    assert "killed_bot_ids" not in ran.json()["result"]  # no other account's ids
    listed = {t["name"]: t for t in client.get("/api/scheduler",
                                               headers=user.headers).json()["tasks"]}
    assert listed["supervisor"]["run_count"] == 1 and listed["supervisor"]["last_ok"]
    unknown = client.post("/api/scheduler/trigger", json={"task": "nope"}, headers=user.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "UNKNOWN_TASK"
    trader = make_user(Role.TRADER, account_id=user.account_id)
    assert client.post("/api/scheduler/trigger", json={"task": "supervisor"},
                       headers=trader.headers).status_code == 403


def test_readiness_reports_workers_and_loops(client: TestClient) -> None:
    check = client.get("/api/ready").json()["checks"]["workers"]
    # This app runs no workers of its own (run_workers is off in tests): it only reports.
    assert check["ok"] is True and check["workers_alive"] == 0
    assert set(check["loops_stale"]) >= {"timeout_worker", "supervisor"}
