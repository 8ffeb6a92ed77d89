"""One Tradovate session a process (session.py): every runner's broker is the same one, on
one client (one access token) and one user sync; another account gets a broker of its own
on the same session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from botwarden.config import Settings
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.brokers.tradovate import session
from botwarden.trading.brokers.tradovate.user_sync import UserSync


@pytest.fixture
def credentials(settings: Settings) -> Iterator[Settings]:
    yield settings.model_copy(update={
        "tradovate_username": "bw-demo", "tradovate_password": SecretStr("pw"),
        "tradovate_cid": "8812", "tradovate_sec": SecretStr("sec")})
    session.close_sessions()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[UserSync]:
    """User syncs started (not connected: no network in tests)."""
    seen: list[UserSync] = []

    def start(self: UserSync) -> UserSync:
        seen.append(self)
        return self

    monkeypatch.setattr(UserSync, "start", start)
    return seen


def test_runners_share_one_broker_client_and_sync(credentials: Settings, engine: Any,
                                                  started: list[UserSync]) -> None:
    first = make_broker(engine, credentials, "bot-a", "tradovate")
    second = make_broker(engine, credentials, "bot-b", "tradovate")
    assert first is second and started == [first.sync]  # type: ignore[attr-defined]
    other = make_broker(engine, credentials.model_copy(update={"tradovate_account": "X"}),
                        "bot-c", "tradovate")
    assert other is not first and other.sync is first.sync  # type: ignore[attr-defined]
    assert len(started) == 1  # one socket a user: it reports every account of the user


def test_without_user_sync_the_broker_reads_rest(credentials: Settings, engine: Any,
                                                 started: list[UserSync]) -> None:
    rest_only = credentials.model_copy(update={"tradovate_user_sync": False})
    broker = make_broker(engine, rest_only, "bot-a", "tradovate")
    assert broker.sync is None and started == []  # type: ignore[attr-defined]


def test_closing_sessions_stops_their_syncs(credentials: Settings, engine: Any,
                                            started: list[UserSync]) -> None:
    broker = make_broker(engine, credentials, "bot-a", "tradovate")
    session.close_sessions()
    assert started[0]._stopped.is_set()
    assert make_broker(engine, credentials, "bot-a", "tradovate") is not broker
