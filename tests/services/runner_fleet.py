"""A test account with bots, bars and loops, and the runner operations on it, for the
runner service tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.domain.circuit_breaker import Breaker
from botwarden.domain.errors import DomainError
from botwarden.domain.stages import Stage
from botwarden.ids import new_id
from botwarden.services import runners as svc
from botwarden.services.accounts import create_account
from botwarden.services.bots import create_bot
from botwarden.store.breakers import lock_breaker, save_breaker
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, BotJob
from botwarden.workers.policy import breaker_policy
from botwarden.workers.scheduler import trigger_task
from tests.api.conftest import VALID_BOT

ACTOR = "user:test"
TRADOVATE_KEYS = {"tradovate_username": "u", "tradovate_password": SecretStr("p"),
                  "tradovate_cid": "1234", "tradovate_sec": SecretStr("s")}


@dataclass
class Fleet:
    engine: Engine
    settings: Settings
    store: BarStore
    account_id: str

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def bot(self, stage: Stage = Stage.PAPER, symbol: str = "MES", **changes: object) -> str:
        with self.session() as session:
            bot = create_bot(session, self.account_id, {**VALID_BOT, "symbol": symbol,
                                                        "name": f"bot-{new_id()[-6:]}"})
            bot.stage = stage.value
            for key, value in changes.items():
                setattr(bot, key, value)
            session.commit()
            return bot.id

    def start(self, bot_id: str, settings: Settings | None = None) -> svc.RunnerLaunch:
        return self._do(svc.start_runner, bot_id, settings)

    def restart(self, bot_id: str, settings: Settings | None = None) -> svc.RunnerLaunch:
        return self._do(svc.restart_runner, bot_id, settings)

    def _do(self, operation: Callable[..., svc.RunnerLaunch], bot_id: str,
            settings: Settings | None) -> svc.RunnerLaunch:
        with self.session() as session:
            bot = session.get(Bot, bot_id)
            assert bot is not None
            launch = operation(session, bot, settings=settings or self.settings,
                               store=self.store, actor=ACTOR, now=utcnow(), trace_id="t-1")
            session.commit()
            return launch

    def stop(self, bot_id: str) -> str:
        with self.session() as session:
            bot = session.get(Bot, bot_id)
            assert bot is not None
            row = svc.stop_runner(session, bot, actor=ACTOR, now=utcnow(), reason="test stop")
            session.commit()
            return str(row.status)

    def refusal(self, bot_id: str, settings: Settings | None = None,
                restart: bool = False) -> str:
        try:
            (self.restart if restart else self.start)(bot_id, settings)
        except DomainError as exc:
            assert exc.fix, "every refusal says what to do"
            return f"{exc.status} {exc.code}"
        raise AssertionError("expected a refusal")

    def run_loops(self) -> None:
        for name in ("supervisor", "timeout_worker"):
            assert trigger_task(self.engine, self.settings, name)["ok"]

    def bars(self, symbol: str = "MES") -> None:
        write_synthetic(self.store, symbol, 2)

    def jobs(self, bot_id: str) -> list[BotJob]:
        with self.session() as session:
            return list(session.scalars(sa.select(BotJob).where(BotJob.bot_id == bot_id)
                                        .order_by(BotJob.created_at, BotJob.id)))


def make_fleet(engine: Engine, settings: Settings) -> Fleet:
    with Session(engine) as session:
        account, _ = create_account(session, f"{new_id()}@example.com", "correct horse battery")
        session.commit()
        return Fleet(engine, settings, BarStore.from_settings(settings), account.id)


def make_ready(fleet: Fleet) -> Fleet:
    """Bars for MES and the loops alive: a PAPER bot may start."""
    fleet.bars()
    fleet.run_loops()
    return fleet


def open_breaker(fleet: Fleet, bot_id: str, opened_ago: timedelta = timedelta(0)) -> None:
    now = utcnow()
    policy = breaker_policy(fleet.settings)
    with write_transaction(fleet.engine) as conn:
        lock_breaker(conn, bot_id, now)
        opened = now - opened_ago
        save_breaker(conn, bot_id, Breaker((opened,) * 3, opened), now=now, policy=policy)
