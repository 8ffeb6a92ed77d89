"""Two real server processes sharing one database admit exactly the configured number of
mutating requests between them, per user and for the whole server."""

from __future__ import annotations

from datetime import timedelta
from itertools import cycle
from pathlib import Path

import httpx
import pytest

from botwarden.ids import new_id
from botwarden.services.accounts import create_account, issue_token
from botwarden.store.db import make_engine, make_session_factory
from tests.e2e.servers import serve_many

PER_USER, SERVER_WIDE = 4, 7


def tokens(database_url: str, count: int) -> list[str]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            issued = []
            for _ in range(count):
                _, user = create_account(session, f"{new_id()}@example.com",
                                         "correct horse battery")
                issued.append(issue_token(session, user, timedelta(hours=1)).token)
            session.commit()
            return issued
    finally:
        engine.dispose()


@pytest.mark.timeout(180)
def test_two_processes_share_the_limits(database_url: str, tmp_path: Path) -> None:
    first, second = tokens(database_url, 2)
    env = {"BOTWARDEN_RATE_LIMIT_USER_PER_MINUTE": str(PER_USER),
           "BOTWARDEN_RATE_LIMIT_GLOBAL_PER_MINUTE": str(SERVER_WIDE),
           "BOTWARDEN_DEMO_DATA": "false", "BOTWARDEN_INTEGRATION_CHECKS": "false"}
    with serve_many(2, database_url, tmp_path, env) as servers, httpx.Client(timeout=30) as http:
        urls = cycle(server.url for server in servers)

        def send(token: str) -> httpx.Response:
            return http.post(f"{next(urls)}/api/action-security", json={"action": "BOT_CREATE"},
                             headers={"Authorization": f"Bearer {token}"})

        # The first user alone: their own limit binds, whichever process answers.
        first_answers = [send(first) for _ in range(PER_USER * 2 + 1)]
        # The second user: the server-wide limit binds (the first user used PER_USER of it).
        second_answers = [send(second) for _ in range(PER_USER * 2 + 1)]
        logs = "\n".join(server.log_tail() for server in servers)

    first_codes = [r.status_code for r in first_answers]
    second_codes = [r.status_code for r in second_answers]
    assert first_codes == [200] * PER_USER + [429] * (PER_USER + 1), (first_codes, logs)
    assert second_codes == ([200] * (SERVER_WIDE - PER_USER)
                            + [429] * (PER_USER * 2 + 1 - (SERVER_WIDE - PER_USER))), second_codes
    refusals = [r for r in first_answers + second_answers if r.status_code == 429]
    assert {r.json()["error"]["scope"] for r in refusals} == {"caller", "global"}
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refusals)
