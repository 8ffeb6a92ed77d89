"""Shared by the job, worker and loop tests: a clock that tests move by hand, and an
account with bots to hang jobs on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.domain.stages import Stage
from botwarden.store.models import Account, Bot

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class FakeClock:
    """Time that moves only when told to (thread-safe: workers read it from threads)."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def make_account(engine: Engine) -> str:
    with Session(engine) as session:
        account = Account(name="jobs-test")
        session.add(account)
        session.commit()
        return account.id


def make_bot(engine: Engine, account_id: str, stage: Stage = Stage.PAPER) -> str:
    with Session(engine) as session:
        bot = Bot(account_id=account_id, name=f"bot-{stage.value.lower()}",
                  strategy_kind="sma_cross", strategy_params={"fast": 5, "slow": 20},
                  symbol="MES", stage=stage.value)
        session.add(bot)
        session.commit()
        return bot.id


def fast_settings(settings: Settings, **overrides: object) -> Settings:
    """Short leases, beats and backoff so that real-time tests stay short."""
    values: dict[str, object] = dict(
        job_lease_seconds=2.0, worker_heartbeat_seconds=0.2, worker_poll_seconds=0.05,
        worker_shutdown_grace_seconds=2.0, job_retry_backoff_seconds=(0.0,),
        supervisor_interval_seconds=0.5, timeout_worker_interval_seconds=0.5)
    values.update(overrides)
    return settings.model_copy(update=values)
