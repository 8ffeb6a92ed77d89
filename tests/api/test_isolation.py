"""Isolation between accounts, on every route and verb of the app.

User B, an admin of another account, calls every route with user A's ids where the route
takes ids (path, query, body) and, for comparison, with ids that exist nowhere. B must get:
404 NOT_FOUND wherever A's id is in the path; the same answer as for a missing id
everywhere else (no existence leak); no id of A's in any response; and for a mutation,
not one row of A's changed. The cases come from the app's own route table: a route is
covered the day it is mounted.

Route authors: a path parameter this test cannot fill fails it, naming the route. Add a
filler to FILLERS (an id of one of A's resources of that kind, created through the API), or,
for a parameter naming something every account shares, an entry in SHARED. A route whose
body must be valid before it looks at ownership gets an example in BODIES."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from botwarden.ids import new_id
from botwarden.policy import Action
from botwarden.store.models import Base
from tests.api.conftest import VALID_BOT, ApiUser
from tests.api.route_table import Endpoint, Schemas, fill_path, path_params, protected


class Owner:
    """User A and the resources of A's that the fillers create, each once, through the API."""

    def __init__(self, client: TestClient, user: ApiUser) -> None:
        self.client, self.user = client, user

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.user.headers)
        assert response.status_code < 300, f"setting up A's {path}: {response.text}"
        return response.json()  # type: ignore[no-any-return]

    @cached_property
    def bot_id(self) -> str:
        return str(self.post("/api/bots", VALID_BOT)["id"])

    @cached_property
    def user_id(self) -> str:
        return self.user.user_id

    def research(self, path: str) -> dict[str, Any]:
        """A research run (and its job) of A's bot, queued through `POST path`."""
        if path not in self._runs:
            self._runs[path] = self.post(path, {"bot_id": self.bot_id})
        return self._runs[path]

    @cached_property
    def _runs(self) -> dict[str, dict[str, Any]]:
        return {}


def run_of(path: str) -> Callable[[Owner], str]:
    return lambda owner: str(owner.research(path)["id"])


# Keyed by parameter name, or by "<path segment before it>.<name>" for a generic name such
# as `id` or `run_id`; the qualified key wins.
FILLERS: dict[str, Callable[[Owner], str]] = {
    "bot_id": lambda owner: owner.bot_id,
    "user_id": lambda owner: owner.user_id,
    "target_id": lambda owner: owner.bot_id,  # audit-log filter
    "job_id": lambda owner: str(owner.research("/api/strategy-lab/backtests")["job_id"]),
    "runs.run_id": run_of("/api/strategy-lab/backtests"),
    "backtests.run_id": run_of("/api/strategy-lab/backtests"),
    "backtest-sweep.run_id": run_of("/api/backtest-sweep"),
    "backtest-matrix.run_id": run_of("/api/backtest-matrix"),
    "walk-forward.run_id": run_of("/api/walk-forward"),
    "stress-test.run_id": run_of("/api/stress-test"),
    "populations.run_id": run_of("/api/evolution/trigger"),
}
# Parameters that name something shared by every account (not an isolation case).
SHARED: dict[str, str] = {"integrations.name": "replay"}
# Example bodies, by "METHOD path", for routes that validate the body before ownership.
BODIES: dict[str, dict[str, Any]] = {}


def filler_key(endpoint: Endpoint, param: str) -> str:
    segments = endpoint.path.split("/")
    at = segments.index(f"{{{param}}}") if f"{{{param}}}" in segments else 0
    qualified = f"{segments[at - 1]}.{param}" if at > 0 else param
    return qualified if qualified in FILLERS or qualified in SHARED else param


def owned_rows(engine: sa.Engine, account_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of A's: the account, and every row whose foreign keys lead to it."""
    owned: dict[str, set[Any]] = {}
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            mine = [row for row in conn.execute(sa.select(table)).all()
                    if _is_owned(table, row._mapping, owned, account_id)]
            if len(keys) == 1:
                owned[table.name] = {row._mapping[keys[0].name] for row in mine}
            snapshot[table.name] = sorted(tuple(repr(v) for v in row) for row in mine)
    return snapshot


def _is_owned(table: sa.Table, row: Any, owned: dict[str, set[Any]], account_id: str) -> bool:
    if table.name == "accounts":
        return bool(row["id"] == account_id)
    return any(row[fk.parent.name] in owned.get(fk.column.table.name, ())
               for fk in table.foreign_keys if row[fk.parent.name] is not None)


def secrets_of(snapshot: dict[str, list[tuple[Any, ...]]]) -> set[str]:
    """A's identifiers as they could appear in a response: ids and emails."""
    found = set()
    for rows in snapshot.values():
        for row in rows:
            for value in row:
                text = value.strip("'")
                if len(text) >= 16 and (text.isalnum() or "@" in text):
                    found.add(text)
    return found


def error_code(response: Response) -> str | None:
    try:
        return response.json().get("error", {}).get("code")  # type: ignore[no-any-return]
    except (ValueError, AttributeError):
        return None


class Probe:
    """Builds B's two requests for one endpoint: with A's ids and with missing ones."""

    def __init__(self, app: FastAPI, owner: Owner, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        schemas = Schemas(app)
        self.owned_path = False
        self.ids: dict[str, tuple[str, str]] = {}  # where -> (A's value, missing value)
        for param in path_params(endpoint):
            key = filler_key(endpoint, param)
            if key in SHARED:
                self.ids[f"path:{param}"] = (SHARED[key], SHARED[key])
                continue
            if key not in FILLERS:
                raise LookupError(
                    f"{endpoint}: cannot fill path parameter {param!r}. Add a filler for "
                    f"{key!r} to FILLERS in tests/api/test_isolation.py (an id of the owner's "
                    f"resource, created through the API), or to SHARED if it is not owned.")
            self.ids[f"path:{param}"] = (FILLERS[key](owner), new_id())
            self.owned_path = True
        self.query = schemas.query(app, endpoint)
        for name in schemas.query_names(app, endpoint) & FILLERS.keys():
            self.ids[f"query:{name}"] = (FILLERS[name](owner), new_id())
        self.body = BODIES.get(str(endpoint), schemas.body(app, endpoint))
        for name in schemas.body_properties(app, endpoint) & FILLERS.keys():
            self.ids[f"body:{name}"] = (FILLERS[name](owner), new_id())

    @property
    def uses_ids(self) -> bool:
        return any(a != x for a, x in self.ids.values())

    def send(self, client: TestClient, intruder: ApiUser, which: int) -> Response:
        values = {where: pair[which] for where, pair in self.ids.items()}
        path = fill_path(self.endpoint, {w[5:]: v for w, v in values.items()
                                         if w.startswith("path:")})
        query = {**self.query, **{w[6:]: v for w, v in values.items() if w.startswith("query:")}}
        body = self.body
        if isinstance(body, dict):
            body = {**body, **{w[5:]: v for w, v in values.items() if w.startswith("body:")}}
        return client.request(self.endpoint.method, path, params=query,
                              json=body if self.endpoint.mutating else None,
                              headers=intruder.headers)

    def sent(self) -> set[str]:
        return {a for a, _ in self.ids.values()}


def run_order(endpoint: Endpoint) -> tuple[int, str, str]:
    """Reads first (before B's own audit rows could name A's ids), then mutations, and
    B's logout last of all."""
    rank = 2 if endpoint.action is Action.AUTH_LOGOUT else int(endpoint.mutating)
    return rank, endpoint.path, endpoint.method


def test_another_accounts_ids_are_invisible_on_every_route(
    app: FastAPI, make_user: Callable[..., ApiUser]
) -> None:
    client = TestClient(app, raise_server_exceptions=False)  # a 500 is a finding, not a crash
    owner = Owner(client, make_user())
    intruder = make_user()
    cases = sorted(protected(app), key=run_order)
    probes, failures = [], []
    for endpoint in cases:
        try:
            probes.append(Probe(app, owner, endpoint))
        except LookupError as missing:
            failures.append(str(missing))
    assert not failures, "\n".join(failures)

    engine = app.state.engine
    checked_404 = 0
    for probe in probes:
        before = owned_rows(engine, owner.user.account_id)
        secrets = secrets_of(before)
        missing = probe.send(client, intruder, 1) if probe.uses_ids else None
        answer = probe.send(client, intruder, 0)
        where = f"{probe.endpoint} as another account"
        if answer.status_code >= 500:
            failures.append(f"{where}: server error {answer.status_code} {answer.text[:200]}")
        if probe.owned_path:
            checked_404 += 1
            if answer.status_code != 404 or error_code(answer) != "NOT_FOUND":
                failures.append(f"{where}: {answer.status_code} {error_code(answer)}, expected "
                                f"404 NOT_FOUND; body {answer.text[:200]}")
        if missing is not None and (answer.status_code, error_code(answer)) != (
                missing.status_code, error_code(missing)):
            failures.append(f"{where}: A's id answers {answer.status_code} "
                            f"{error_code(answer)}, a missing id {missing.status_code} "
                            f"{error_code(missing)}: that tells B the id exists")
        leaked = {s for s in secrets - probe.sent() if s in answer.text}
        if leaked:
            failures.append(f"{where}: the response shows A's {sorted(leaked)}")
        if probe.endpoint.mutating and owned_rows(engine, owner.user.account_id) != before:
            failures.append(f"{where}: changed A's rows")
    assert not failures, "isolation failures:\n" + "\n".join(failures)
    assert checked_404 >= 10 and len(probes) >= 20  # the route table is really there
