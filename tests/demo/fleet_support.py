"""A small demo fleet on a temporary SQLite database: a short seeded history, a few slots,
an in-process worker that runs the fleet's research and paper-trading jobs, and the
self-healing loops run by hand (the safe-start checks want them alive)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.demo.account import DemoAccount, ensure_demo_account
from botwarden.demo.fleet import Fleet
from botwarden.demo.plan import FleetShape, FleetSlot
from botwarden.domain.stages import Stage
from botwarden.store.db import make_engine
from botwarden.store.models import AuditLog, Bot, BotJob, ResearchRun
from botwarden.workers.registry import HANDLER_MODULES, load_modules
from botwarden.workers.scheduler import trigger_task
from botwarden.workers.worker import Worker

# A seeded 20-day history (14 sessions) on which the MNQ VWAP fades below clear the demo
# TRIALS gates on their three backtests, and the 90-tick one its PAPER gates on its two
# sessions of paper trading (searched once with the backtest engine; same seed, same bars).
SEED, DAYS, END = 28, 20, date(2026, 5, 20)
SHADOW_SLOT = FleetSlot("mnq-fade-90", "MNQ", "vwap_reversion", {"band_ticks": (90,)}, 600, 600,
                        Stage.SHADOW)
PAPER_SLOT = FleetSlot("mnq-fade-120", "MNQ", "vwap_reversion", {"band_ticks": (120,)}, 600,
                       600)
TREND_SLOT = FleetSlot("mnq-cross", "MNQ", "sma_cross", {"fast": (5,), "slow": (30,)}, 40, 80)
SHAPE = FleetShape(slots=(SHADOW_SLOT, PAPER_SLOT, TREND_SLOT), live_sessions=1,
                   paper_sessions=2, window_shifts=(2, 1, 0))


@dataclass
class DemoWorld:
    settings: Settings
    engine: Engine
    account: DemoAccount

    def fleet(self, *, start_live: bool = False, shape: FleetShape = SHAPE) -> Fleet:
        return Fleet(self.engine, self.settings, shape=shape, start_live=start_live)

    def run_loops(self) -> None:
        for name in ("supervisor", "timeout_worker"):
            assert trigger_task(self.engine, self.settings, name)["ok"]

    def settle(self, fleet: Fleet, *, max_steps: int = 40) -> int:
        """Step the fleet and run its jobs here until it has nothing left to do."""
        load_modules(HANDLER_MODULES)
        worker = Worker(self.settings, engine=self.engine, concurrency=1)
        for steps in range(1, max_steps + 1):
            self.run_loops()
            if fleet.step():
                return steps
            worker.run_available()
        raise AssertionError(f"the fleet did not settle in {max_steps} steps: {fleet.notes}")

    def bot(self, name: str) -> Bot:
        with Session(self.engine) as session:
            bot = session.scalars(sa.select(Bot).where(Bot.name == name)).one()
            session.expunge(bot)
            return bot

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return {model.__tablename__: int(session.scalar(
                sa.select(sa.func.count()).select_from(model)) or 0)
                for model in (Bot, ResearchRun, BotJob, AuditLog)}


def demo_settings(tmp_path: Path, template: Path, **overrides: object) -> Settings:
    path = tmp_path / "botwarden.db"
    shutil.copy(template, path)
    values: dict[str, object] = dict(
        env="development", database_url=f"sqlite:///{path}", data_dir=tmp_path / "data",
        run_workers=False, integration_checks=False, demo_data=False, demo_fleet=True,
        research_workers=1, log_json=False, password_hash_time_cost=1,
        password_hash_memory_kib=8, password_hash_parallelism=1)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def demo_world(tmp_path: Path, template: Path) -> Iterator[DemoWorld]:
    settings = demo_settings(tmp_path, template)
    store = BarStore.from_settings(settings)
    for symbol in ("MES", "MNQ"):
        write_synthetic(store, symbol, DAYS, seed=SEED, end=END)
    engine = make_engine(settings.database_url)
    account = ensure_demo_account(engine, settings)
    assert account is not None
    yield DemoWorld(settings, engine, account)
    engine.dispose()
