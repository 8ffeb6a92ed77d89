"""`botwarden demo autonomy`: what the original system could not do, played on real worker
processes and read back from the store.

1. Set-up: a scratch database and data directory (migrated; seeded synthetic MES bars over a
   fixed window, so every run replays the same market), a demo-profile account, and two
   bots brought to PAPER through backtests and the stage machine's gates.
2. A loops-only worker (supervisor, timeout worker, risk monitor) and a runner worker start.
   The loss bot's runner streams a replay whose primary answers 429s, with a backup feed.
3. The feed fails over, backs off the primary, probes it, fails back; the job goes
   RUNNING -> DEGRADED -> RUNNING.
4. The session turns into a losing stretch: the risk monitor kills the bot on its daily loss
   and the runner flattens it.
5. The crash bot's runner worker is SIGKILLed mid-trading; the supervisor requeues the
   runner, a new worker process claims it, it reconciles and trades on; no order is doubled.
6. The timeline read from the store, a PASS/FAIL line per expected event; exit 0 only when
   every expected event was seen.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.synth import DEMO_SEED, write_synthetic
from botwarden.demo.autonomy import evidence, expected, seeding, timeline
from botwarden.demo.autonomy.processes import WorkerProcess, start_worker, worker_env
from botwarden.demo.autonomy.stretch import StrategyReplay
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import TERMINAL, JobType
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.services.runner_facts import dead_loops
from botwarden.services.runners import preflight
from botwarden.store import jobs as job_store
from botwarden.store.db import make_engine, write_transaction
from botwarden.store.migrate import upgrade
from botwarden.store.models import Bot, BotJob, Fill, Position

SYMBOL = "MES"
# A fixed window of seeded synthetic history: the same bars, gates and losing stretch on
# every run, whatever the date.
DATA_END = date(2025, 5, 30)
DATA_DAYS = 45
# A mean-reversion strategy that meets the demo profile's TRIALS gates on these bars and
# holds its positions for a while (so the daily-loss kill finds one open to flatten).
STRATEGY = ("vwap_reversion", {"band_ticks": 48})
RISK = {"max_contracts_per_order": 1, "max_position_contracts": 1, "max_daily_loss_usd": 1000,
        "max_drawdown_pct": 50, "news_blackout_minutes": 0}
CAPITAL = 50_000
CRASH_BARS = 300  # the crash bot replays this many minutes of its session
RUNNER_WORKER_ARGS = ["--no-scheduler", "--types", "RUNNER,RECONCILE"]
TERMINAL_STATUSES = tuple(s.value for s in TERMINAL)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    database_url: str | None = None  # default: a SQLite file in the work directory
    work_dir: Path | None = None  # default: a new temporary directory
    speed: float = 600.0  # replay speed: 600 plays ten 1-minute bars a second
    storm_calls: int = 4  # calls the primary refuses with 429 (the first stream, then probes)
    probe_seconds: float = 1.0  # how long the feed leaves the primary alone between probes
    timeout_seconds: float = 300.0  # the whole scenario, set-up included


class DemoAbort(Exception):
    """A step that cannot go on (its prerequisite failed); the verdict reports the rest."""


@dataclass
class Demo:
    options: DemoOptions
    out: Callable[[str], None] = print
    seed_bot: Callable[..., str] = seeding.paper_bot
    actions: list[timeline.Event] = field(default_factory=list)  # what the demo itself did
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.options.timeout_seconds
        self.work = self.options.work_dir or Path(tempfile.mkdtemp(prefix="botwarden-autonomy-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.work / "data"
        self.database_url = self.options.database_url or f"sqlite:///{self.work}/botwarden.db"
        self.settings = Settings(database_url=self.database_url, data_dir=self.data_dir)
        self.cast = evidence.Cast(since=utcnow(), symbol=SYMBOL,
                                  feed_names=(expected.PRIMARY, expected.BACKUP,
                                              expected.DATA_FEED))
        self.engine: Engine | None = None

    # --- running ----------------------------------------------------------------------

    def run(self) -> int:
        self.say(f"work directory {self.work}; database {self.database_url}")
        try:
            self.prepare_store()
            self.start_workers()
            self.seed_bots()
            if not self.wait_for("the supervisor and timeout loops to run", self._loops_alive,
                                 60.0):
                raise DemoAbort("the scheduler loops never ran")
            self.storm_and_loss()
            self.crash_and_resume()
        except (DemoAbort, DomainError) as exc:
            self.say(f"stopped early: {exc}")
        finally:
            for worker in self.workers.values():  # all at once, then wait for each
                worker.terminate()
            for worker in self.workers.values():
                worker.stop()
        return self.report()

    def say(self, message: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {message}")

    def act(self, subject: str, kind: str, text: str) -> None:
        self.actions.append(timeline.Event(utcnow(), "demo", subject, kind, text))
        self.say(f"{subject}: {kind} {text}")

    @property
    def db(self) -> Engine:
        assert self.engine is not None
        return self.engine

    # --- 1. set-up --------------------------------------------------------------------

    def prepare_store(self) -> None:
        self.say("migrating the database; writing seeded synthetic MES bars")
        upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        store = BarStore(self.data_dir)
        if not any(s.dataset.name == SYNTHETIC_DATASET for s in store.series(SYMBOL)):
            write_synthetic(store, SYMBOL, DATA_DAYS, seed=DEMO_SEED, end=DATA_END)

    def seed_bots(self) -> None:
        account_id = seeding.demo_account(self.db, name="Autonomy demo", capital=CAPITAL)
        kind, params = STRATEGY
        self.say("bringing two bots to PAPER: 3 backtests each, then the TRIALS gates")
        ids = {}
        for label in (expected.LOSS_BOT, expected.CRASH_BOT):
            spec = seeding.BotSpec(label, kind, params, RISK, SYMBOL)
            ids[label] = self.seed_bot(self.db, self.settings, account_id, spec)
            self.cast.bots[ids[label]] = label
        self.loss_bot, self.crash_bot = ids[expected.LOSS_BOT], ids[expected.CRASH_BOT]
        replay = StrategyReplay(self.data_dir, kind=kind, params=params,
                                limits=parse_risk_limits(RISK), capital=Decimal(CAPITAL),
                                symbol=SYMBOL)
        # The storm and the failback take a few seconds: the losing stretch comes later.
        first_bar = int(self.options.speed / 60 * 8)
        self.stretch = replay.losing_stretch(first_bar=max(first_bar, 40), last_bar=600,
                                             hold_bars=20, margin=Decimal(5),
                                             min_limit=Decimal(10))
        seeding.tighten_daily_loss(self.db, self.loss_bot, self.stretch.loss_limit)
        self.say(f"{expected.LOSS_BOT}: max_daily_loss_usd tightened to "
                 f"{self.stretch.loss_limit}; its session from "
                 f"{self.stretch.session_open:%Y-%m-%d %H:%M} UTC loses that much about "
                 f"{self.stretch.breach_bar} bars in, with a position open")
        self.busy = replay.busy_session(within_bars=250, min_entries=2,
                                        exclude=frozenset({self.stretch.session_open}))

    # --- 2. processes -----------------------------------------------------------------

    def start_workers(self) -> None:
        """A loops-only worker (supervisor, timeout worker, risk monitor and the other
        registered loops) and a worker for runners (and the reconciles the loops queue). The
        demo's own backtests run in this process meanwhile."""
        self.say("starting `botwarden worker` processes: loops only, and a runner worker")
        self._spawn("loops-worker", ["--types", ""])
        self._spawn(expected.FIRST_RUNNER_WORKER, RUNNER_WORKER_ARGS)

    def _spawn(self, label: str, args: list[str]) -> WorkerProcess:
        worker = start_worker(label, args, worker_env(self.database_url, self.data_dir),
                              self.work)
        self.workers[label] = worker
        self.cast.workers[worker.pid] = label
        self.act(label, "SPAWNED", f"pid {worker.pid}: botwarden worker {' '.join(args)}")
        return worker

    def _loops_alive(self) -> bool:
        with Session(self.db) as session:
            return not dead_loops(session, utcnow())

    # --- 3 and 4. the storm, the failover, the loss -----------------------------------

    def storm_and_loss(self) -> None:
        extra = {"start": self.stretch.session_open.isoformat(),
                 "faults": {"kind": "RATE_LIMIT", "calls": self.options.storm_calls,
                            "retry_after": 0.2},
                 "backup": expected.BACKUP, "probe_seconds": self.options.probe_seconds}
        job_id = self.start_runner(self.loss_bot, extra)
        self.say(f"{expected.LOSS_BOT}: runner job {job_id[:8]} queued; its primary feed "
                 f"will refuse {self.options.storm_calls} calls with 429")
        self.wait_for(f"{expected.LOSS_BOT}'s runner to end", lambda: self._ended(job_id),
                      120.0)

    def start_runner(self, bot_id: str, extra: dict[str, Any]) -> str:
        """The safe-start checks (services.runners.preflight), then the RUNNER job with the
        payload they give plus the demo's replay settings."""
        with write_transaction(self.db) as conn, Session(bind=conn) as session:
            bot = session.get(Bot, bot_id)
            assert bot is not None
            verdict, payload = preflight(session, bot, settings=self.settings,
                                         store=BarStore(self.data_dir), now=utcnow())
            if not verdict.allowed or payload is None:
                assert verdict.refusal is not None
                raise verdict.refusal.error()
            payload = {**payload, "speed": self.options.speed, **extra}
            return job_store.create_job(session, account_id=bot.account_id,
                                        job_type=JobType.RUNNER, actor="autonomy-demo",
                                        now=utcnow(), payload=payload, bot_id=bot.id)

    def _status(self, job_id: str) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(sa.select(BotJob.status).where(BotJob.id == job_id)).scalar()

    def _ended(self, job_id: str) -> bool:
        return self._status(job_id) in TERMINAL_STATUSES

    # --- 5. SIGKILL -------------------------------------------------------------------

    def crash_and_resume(self) -> None:
        end = self.busy.session_open + timedelta(minutes=CRASH_BARS)
        job_id = self.start_runner(self.crash_bot, {"start": self.busy.session_open.isoformat(),
                                                    "end": end.isoformat()})
        self.say(f"{expected.CRASH_BOT}: runner job {job_id[:8]} queued for {CRASH_BARS} bars")
        if self.wait_for(f"{expected.CRASH_BOT}'s runner to be claimed",
                         lambda: self._status(job_id) == "RUNNING", 30.0):
            # A second worker stands by (started now, so the first one took the runner).
            self._spawn("runner-worker-2", RUNNER_WORKER_ARGS)
        trading = self.wait_for(f"{expected.CRASH_BOT} to hold a position",
                                self._holding, 60.0)
        if not trading:
            self.say(f"{expected.CRASH_BOT} holds no position yet: killing its worker anyway")
        victim = self.workers[expected.FIRST_RUNNER_WORKER]
        self.cast.killed_pids.add(victim.pid)
        self.act(expected.FIRST_RUNNER_WORKER, "SIGKILL",
                 f"pid {victim.pid}, hosting {expected.CRASH_BOT}'s runner mid-trading")
        victim.sigkill()
        if "runner-worker-2" not in self.workers:
            self._spawn("runner-worker-2", RUNNER_WORKER_ARGS)
        self.wait_for(f"{expected.CRASH_BOT}'s runner to come back and finish",
                      lambda: self._ended(job_id), 150.0)

    def _holding(self) -> bool:
        with self.db.connect() as conn:
            qty = conn.execute(sa.select(Position.qty).where(
                Position.bot_id == self.crash_bot)).scalar()
            fills = conn.execute(sa.select(sa.func.count()).select_from(Fill).where(
                Fill.bot_id == self.crash_bot)).scalar_one()
        return bool(qty) and fills >= 1

    # --- waiting and the verdict ------------------------------------------------------

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> bool:
        self.say(f"waiting for {what} (at most {timeout:.0f} s)")
        until = min(time.monotonic() + timeout, self.deadline)
        while time.monotonic() < until:
            if check():
                return True
            dead = [w.label for w in self.workers.values()
                    if not w.alive and w.pid not in self.cast.killed_pids]
            if dead:
                raise DemoAbort(f"worker process {', '.join(dead)} exited; see its log in "
                                f"{self.work}")
            time.sleep(0.25)
        self.say(f"gave up waiting for {what}")
        return False

    def report(self) -> int:
        events: list[timeline.Event] = list(self.actions)
        if self.engine is not None:
            events += evidence.read_events(self.engine, self.cast)
            events += evidence.read_final_checks(self.engine, self.cast)
            self.engine.dispose()
        verdicts = timeline.judge(expected.EXPECTED, events)
        self.out("")
        self.out("Timeline (read back from the store; 'demo' lines are the demo's own acts):")
        for line in timeline.render_timeline(events, start=self.cast.since):
            self.out(line)
        self.out("")
        self.out("Expected events:")
        for line in timeline.render_verdicts(verdicts):
            self.out(line)
        self.out("")
        self.out(f"{timeline.summary(verdicts)} in {time.monotonic() - self.started:.0f} s; "
                 f"worker logs in {self.work}")
        return timeline.exit_code(verdicts)
