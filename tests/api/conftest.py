"""API fixtures: an app on the test database and users with tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.api.app import create_app
from botwarden.config import Settings
from botwarden.domain.trading import Role
from botwarden.ids import new_id
from botwarden.services.accounts import add_user, create_account, issue_token

VALID_RISK = {"max_contracts_per_order": 1, "max_position_contracts": 2,
              "max_daily_loss_usd": "500", "max_drawdown_pct": "10"}
VALID_BOT = {"name": "mes-sma",
             "strategy": {"kind": "sma_cross", "params": {"fast": 5, "slow": 20}},
             "symbol": "MES", "timeframe": "1m", "risk_config": VALID_RISK}


@dataclass
class ApiUser:
    user_id: str
    account_id: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def make_user(app: FastAPI) -> Callable[..., ApiUser]:
    def make(role: Role = Role.ADMIN, account_id: str | None = None, **kw: Any) -> ApiUser:
        email = f"{new_id()}@example.com"
        password = "correct horse battery"
        with app.state.session_factory() as session:
            if account_id is None:
                account, user = create_account(session, email, password, **kw)
                if role is not Role.ADMIN:
                    user.role = role.value
            else:
                user = add_user(session, account_id, email, password, role)
            issued = issue_token(session, user, timedelta(hours=1))
            session.commit()
            return ApiUser(user.id, user.account_id, email, password, issued.token)

    return make


@pytest.fixture
def user(make_user: Callable[..., ApiUser]) -> ApiUser:
    return make_user()


@pytest.fixture
def bot_id(client: TestClient, user: ApiUser) -> str:
    response = client.post("/api/bots", json=VALID_BOT, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
