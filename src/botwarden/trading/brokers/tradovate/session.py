"""One Tradovate session a process and user: its REST client (one access token: Tradovate
keeps two sessions a user and closes the oldest when a third opens, so a client per runner
would close another's) and its user sync socket. The integration registry's live check
(`integration.register_tradovate`) and every runner's broker use them. A broker per account
traded: every runner of the process on that account shares it (the broker serialises its
calls; its caches of contracts and of our client ids serve them all).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from botwarden.config import Settings
from botwarden.trading.brokers.tradovate.broker import TradovateBroker
from botwarden.trading.brokers.tradovate.budget import RequestBudget
from botwarden.trading.brokers.tradovate.client import TradovateClient, TradovateCredentials
from botwarden.trading.brokers.tradovate.user_sync import UserSync


@dataclass
class _Session:
    client: TradovateClient
    sync: UserSync | None = None


_lock = threading.Lock()
_sessions: dict[tuple[str, str], _Session] = {}
_brokers: dict[tuple[str, str, str | None], TradovateBroker] = {}


def _credentials(settings: Settings) -> TradovateCredentials:
    credentials = TradovateCredentials.from_settings(settings)
    if credentials is None:
        raise ValueError("Tradovate credentials are not set")
    return credentials


def _session(settings: Settings, credentials: TradovateCredentials) -> _Session:
    key = (credentials.environment, credentials.username)
    if key not in _sessions:
        budget = RequestBudget(settings.tradovate_requests_per_hour)
        _sessions[key] = _Session(TradovateClient(credentials, budget=budget))
    return _sessions[key]


def process_client(settings: Settings) -> TradovateClient:
    """The process's REST client for these credentials (the caller checks they are set)."""
    with _lock:
        return _session(settings, _credentials(settings)).client


def process_broker(settings: Settings) -> TradovateBroker:
    """The process's broker for these settings' account, made on first use, with the
    session's user sync (started then) unless `tradovate_user_sync` is off."""
    credentials = _credentials(settings)
    key = (credentials.environment, credentials.username, settings.tradovate_account)
    with _lock:
        broker = _brokers.get(key)
        if broker is None:
            session = _session(settings, credentials)
            if settings.tradovate_user_sync and session.sync is None:
                session.sync = UserSync(session.client).start()
            broker = TradovateBroker(session.client, account=settings.tradovate_account,
                                     sync=session.sync if settings.tradovate_user_sync
                                     else None)
            _brokers[key] = broker
        return broker


def close_sessions() -> None:
    """Stop every user sync and forget the sessions and brokers (tests; a process's end)."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
        _brokers.clear()
    for session in sessions:
        if session.sync is not None:
            session.sync.stop()
