"""The demo fleet: its bots created, researched, promoted and started by the demo user,
through the same services (and the same action policy) as the API, on real evidence.

Each bot of the plan (demo/plan.py) walks this path, one step at a time:

1. research: a parameter sweep of its slot over the research history (a SWEEP research run,
   as `POST /api/backtest-sweep`); the chosen parameters (demo/selection.py) make the bot
   (services.bots, as `POST /api/bots`, with its full risk config);
2. TRIALS: three backtests of the bot (BACKTEST runs, as `POST /api/strategy-lab/backtests`),
   then the stage change to PAPER through services.promotion (as `PATCH .../stage`): the
   stage machine evaluates the gates on that evidence and refuses if any fails;
3. PAPER: paper trading at full speed on replayed history (a RUNNER job in PAPER mode with
   an `end`, after the safe-start checks), whose trades are the bot's own PAPER evidence;
   a bot bound for SHADOW then changes stage on the PAPER gates;
4. live: its runner through services.runners.start_runner (as `POST /api/runners/start`),
   replaying the rest of the history at one bar a second; it resumes where the paper
   trading stopped (runner_states).

Every step is found again from the store, so the fleet is idempotent: a restart finds
what exists, waits for what is under way and starts only what is missing (runners that
stopped with the server are requeued by the worker and resume by themselves). A bot whose
evidence fails a gate stays where it is, and the fleet says which gates failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.demo import records
from botwarden.demo.account import DEMO_EMAIL
from botwarden.demo.actor import DemoActor
from botwarden.demo.plan import FleetShape, FleetSlot, Timeline, plan_timeline
from botwarden.demo.selection import choose, trades_needed
from botwarden.demo.staging import paper_live_start, run_in_start
from botwarden.domain.errors import DomainError
from botwarden.domain.gates import gate_profile
from botwarden.domain.jobs import TERMINAL, JobType
from botwarden.domain.kill import KillState
from botwarden.domain.stage_machine import Route
from botwarden.domain.stages import Stage
from botwarden.logging import get_logger
from botwarden.policy import Action
from botwarden.services import bots as bot_service
from botwarden.services import promotion
from botwarden.services import research as research_service
from botwarden.services import runners as runner_service
from botwarden.services.runner_facts import replay_dataset
from botwarden.store import jobs as job_store
from botwarden.store.models import Account, Bot, BotJob, ResearchRun, User

log = get_logger("botwarden.demo")
WAITING, DONE = False, True
# Refusals a moment cures: the self-healing loops start with the server.
RETRIED_REFUSALS = frozenset({"AUTONOMY_BLOCKED", "RUNNER_ALREADY_ACTIVE"})


@dataclass
class Fleet:
    engine: Engine
    settings: Settings
    shape: FleetShape = field(default_factory=FleetShape)
    start_live: bool = True  # tests stop before the live runners
    clock: Clock = utcnow
    notes: dict[str, str] = field(default_factory=dict)  # the last word on each bot
    started: float = field(default_factory=time.monotonic)
    _timeline: Timeline | None = None
    _given_up: set[str] = field(default_factory=set)
    _kept: set[str] = field(default_factory=set)  # bound for SHADOW, its PAPER gates failed
    _sweep_room: int = 0

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, poll_seconds: float = 1.0) -> bool:
        """Step until every bot is settled (True) or `stop` is set (False)."""
        while not stop.is_set():
            pause = poll_seconds
            try:
                if self.step():
                    log.info("demo_fleet_settled", elapsed_s=self._elapsed(), bots=self.notes)
                    return True
            except Exception:  # a hiccup (a locked database, a lost race): try again later
                log.exception("demo_fleet_step_failed", elapsed_s=self._elapsed())
                pause = poll_seconds * 10
            stop.wait(pause)
        return False

    def step(self) -> bool:
        """Advance every bot as far as it can go now; True when none has anything left."""
        actor = self._actor()
        if actor is None:
            return DONE
        timeline = self._plan()
        if timeline is None:
            return DONE
        self._sweep_room = self.shape.max_pending_sweeps - self._pending_sweeps(actor)
        settled = True
        for slot in self.shape.slots:
            if slot.name in self._given_up:
                continue
            try:
                settled &= self._advance(actor, timeline, slot)
            except DomainError as exc:
                self._note(slot, f"stopped: {exc.code}: {exc.message}", event="demo_fleet_refused")
                self._given_up.add(slot.name)
        return settled

    # --- set-up ------------------------------------------------------------------------------

    def _actor(self) -> DemoActor | None:
        with Session(self.engine) as session:
            user = session.scalars(sa.select(User).where(User.email == DEMO_EMAIL)).first()
            return DemoActor.of(user) if user is not None else None

    def _plan(self) -> Timeline | None:
        if self._timeline is None:
            store = BarStore.from_settings(self.settings)
            replayed = {s: replay_dataset(store, s) for s in {x.symbol for x in self.shape.slots}}
            if any(d != self.shape.dataset for d in replayed.values()):
                log.warning("demo_fleet_needs_demo_data", replay_datasets=replayed,
                            wanted=self.shape.dataset)
                return None
            try:
                self._timeline = plan_timeline(store, self.shape)
            except DomainError as exc:
                log.warning("demo_fleet_no_plan", code=exc.code, reason=exc.message, fix=exc.fix)
                return None
            t = self._timeline
            log.info("demo_fleet_timeline", research=f"{t.history_start}..{t.paper_start}",
                     paper=f"{t.paper_start}..{t.shadow_live_start}",
                     live_from=str(t.shadow_live_start), paper_bots_live_from=str(
                         t.paper_live_start), history_end=str(t.history_end))
        return self._timeline

    # --- one bot -------------------------------------------------------------------------

    def _advance(self, actor: DemoActor, timeline: Timeline, slot: FleetSlot) -> bool:
        with Session(self.engine, expire_on_commit=False) as session:
            bot = session.scalars(sa.select(Bot).where(
                Bot.account_id == actor.account_id, Bot.name == slot.name)).first()
        if bot is None:
            return self._research(actor, timeline, slot)
        stage = Stage(bot.stage)
        if stage is Stage.TRIALS:
            return self._trials(actor, timeline, slot, bot)
        if stage in (Stage.PAPER, Stage.SHADOW):
            return self._trading(actor, timeline, slot, bot)
        self._note(slot, f"{stage.value}: left to its owner")
        return DONE

    def _research(self, actor: DemoActor, timeline: Timeline, slot: FleetSlot) -> bool:
        body = records.sweep_body(slot, timeline.history_start, timeline.paper_start,
                                  self.shape.dataset)
        with records.writing(self.engine) as session:
            account = self._account(session, actor)
            found = records.find_run(session, actor.account_id, "SWEEP", body, None)
            if found is None:
                if self._sweep_room <= 0:
                    return WAITING
                actor.authorize(session, Action.RESEARCH_RUN, detail={"bot": slot.name})
                research_service.create_run(session, account, "SWEEP", body, actor=actor.label,
                                            now=self.clock(), trace_id=None)
                session.commit()
                self._sweep_room -= 1
                self._note(slot, "sweep queued", event="demo_fleet_sweep_queued")
                return WAITING
            if found.pending:
                return WAITING
            if found.status != "COMPLETED":
                raise DomainError("DEMO_RESEARCH_FAILED", f"its sweep ended {found.status}",
                                  "See GET /api/research/runs?kind=SWEEP.")
            profile = gate_profile(account.gate_profile)
            needed = trades_needed(profile, slot.aims_for,
                                   research_sessions=timeline.research_sessions,
                                   paper_sessions=timeline.paper_sessions,
                                   margin=self.shape.trades_margin)
            choice = choose((found.run.result or {}).get("results") or [],
                            records.run_proof(found.run), profile, min_trades=needed,
                            expectancy_margin=self.shape.expectancy_margin)
            if choice is None:
                raise DomainError("DEMO_RESEARCH_FAILED", "its sweep has no result rows",
                                  "See GET /api/research/runs?kind=SWEEP.")
            actor.authorize(session, Action.BOT_CREATE, detail={"bot": slot.name})
            bot = bot_service.create_bot(session, actor.account_id, {
                "name": slot.name, "symbol": slot.symbol, "timeframe": "1m",
                "strategy": {"kind": slot.kind, "params": choice.params},
                "risk_config": slot.risk_config()})
            session.commit()
        self._note(slot, f"created with {choice.params}: {choice.reason}",
                   event="demo_fleet_bot_created", bot_id=bot.id, sweep=found.run.id,
                   sweep_metrics={k: choice.metrics.get(k) for k in
                                  ("trades", "win_rate", "profit_factor", "expectancy")})
        return WAITING

    def _trials(self, actor: DemoActor, timeline: Timeline, slot: FleetSlot, bot: Bot) -> bool:
        with records.writing(self.engine) as session:
            account = self._account(session, actor)
            states, queued = [], 0
            for start, end in timeline.backtest_windows:
                body = records.backtest_body(bot.id, start, end, self.shape.dataset)
                found = records.find_run(session, actor.account_id, "BACKTEST", body, bot.id)
                if found is None:
                    actor.authorize(session, Action.RESEARCH_RUN, detail={"bot": slot.name})
                    research_service.create_run(session, account, "BACKTEST", body,
                                                actor=actor.label, now=self.clock(),
                                                trace_id=None)
                    queued += 1
                else:
                    states.append(found)
            if queued:
                session.commit()
                self._note(slot, f"{queued} backtests queued", event="demo_fleet_backtests")
                return WAITING
            if any(s.pending for s in states):
                return WAITING
            if any(s.status != "COMPLETED" for s in states):
                self._note(slot, "stays in TRIALS: a backtest did not complete")
                return DONE
            return self._promote(session, actor, account, slot, bot, Stage.PAPER)

    def _promote(self, session: Session, actor: DemoActor, account: Account, slot: FleetSlot,
                 bot: Bot, target: Stage) -> bool:
        """The stage change on the gates, or a note of the gates that failed."""
        bot = session.get(Bot, bot.id) or bot
        evaluation, evidence = promotion.evaluate(session, bot, account, now=self.clock())
        figures = records.figures(evaluation)
        if not evaluation.eligible:
            self._note(slot, f"stays in {bot.stage}: gates not met: "
                       f"{', '.join(records.failing(evaluation))}", event="demo_fleet_gates",
                       evidence=evidence.source, figures=figures, profile=evaluation.profile)
            return DONE
        row = actor.authorize(session, Action.STAGE_CHANGE, bot=bot,
                              params={"stage": target.value})
        change = promotion.change_stage(session, bot, account, Route.STAGE_PATCH,
                                        target=target, now=self.clock(), actor=actor.label)
        t = change.transition
        row.detail = {**row.detail, "from_stage": t.from_stage.value,
                      "to_stage": t.to_stage.value, "transition": t.kind.value,
                      "canceled_jobs": list(change.canceled_jobs),
                      "gate_profile": evaluation.profile, "evidence": evidence.source,
                      "figures": figures}
        session.commit()
        self._note(slot, f"promoted {t.from_stage.value} -> {t.to_stage.value} on "
                   f"{evidence.source}", event="demo_fleet_promoted", figures=figures,
                   profile=evaluation.profile)
        return WAITING

    def _trading(self, actor: DemoActor, timeline: Timeline, slot: FleetSlot, bot: Bot) -> bool:
        if bot.kill_state != KillState.NONE.value:
            self._note(slot, f"{bot.stage}, {bot.kill_state}: left to the kill engine")
            return DONE
        with Session(self.engine) as session:
            jobs = records.runner_jobs(session, bot.id)
        if jobs.active is not None:
            if jobs.active is not jobs.live:
                return WAITING
            self._note(slot, f"{bot.stage}: its runner is {jobs.active.status}")
            return DONE
        if jobs.fast_forward is None and jobs.live is None and bot.stage == Stage.PAPER.value:
            return self._fast_forward(actor, timeline, slot, bot)
        if slot.aims_for is Stage.SHADOW and bot.stage == Stage.PAPER.value and \
                jobs.live is None and slot.name not in self._kept:
            with records.writing(self.engine) as session:
                account = self._account(session, actor)
                if self._promote(session, actor, account, slot, bot, Stage.SHADOW) is WAITING:
                    return WAITING
            self._kept.add(slot.name)  # stays in PAPER: it goes live there
        if not self.start_live:
            return DONE
        last = records.ended(jobs.live) if jobs.live is not None else None
        if last in ("REPLAY_EXHAUSTED", "HALTED"):
            self._note(slot, f"{bot.stage}: its live replay ended ({last})")
            return DONE
        return self._start_live(actor, slot, bot)

    def _fast_forward(self, actor: DemoActor, timeline: Timeline, slot: FleetSlot,
                      bot: Bot) -> bool:
        if slot.aims_for is Stage.SHADOW:
            start, end = timeline.paper_start, timeline.shadow_live_start
        else:  # found before taking the write lock: it runs a backtest
            with Session(self.engine) as session:
                end = paper_live_start(session, self.settings, bot,
                                       self._account(session, actor), timeline,
                                       self.shape.dataset)
            start = run_in_start(end, timeline)
        with records.writing(self.engine) as session:
            if runner_service.active_runner(session, bot.id) is not None:
                return WAITING
            payload = self._safe_start(session, bot)
            if payload is None:
                return WAITING
            actor.authorize(session, Action.RUNNER_START, bot=bot,
                            detail={"fast_forward": {"start": start.isoformat(),
                                                     "end": end.isoformat()}})
            # Paper trading on history at full speed: the same runner, stopping at `end`.
            payload.update(dataset=self.shape.dataset, speed=None, start=start.isoformat(),
                           end=end.isoformat())
            job_id = job_store.create_job(session, account_id=bot.account_id,
                                          job_type=JobType.RUNNER, actor=actor.label,
                                          now=self.clock(), payload=payload, bot_id=bot.id)
            session.commit()
        self._note(slot, f"paper trading {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC at "
                   "full speed", event="demo_fleet_fast_forward", job_id=job_id)
        return WAITING

    def _start_live(self, actor: DemoActor, slot: FleetSlot, bot: Bot) -> bool:
        with records.writing(self.engine) as session:
            if self._safe_start(session, bot) is None:
                return WAITING
            actor.authorize(session, Action.RUNNER_START, bot=bot)
            try:
                launch = runner_service.start_runner(
                    session, bot, settings=self.settings,
                    store=BarStore.from_settings(self.settings), actor=actor.label,
                    now=self.clock())
            except DomainError as exc:
                actor.record_refusal(session, Action.RUNNER_START, bot=bot, code=exc.code)
                if exc.code in RETRIED_REFUSALS:
                    return WAITING
                raise
            session.commit()
        self._note(slot, f"{bot.stage} runner started ({launch.mode.value}, broker "
                   f"{launch.mode.broker})", event="demo_fleet_runner_started",
                   job_id=launch.job_id)
        return DONE

    def _safe_start(self, session: Session, bot: Bot) -> dict[str, Any] | None:
        """The runner payload once the safe-start checks pass; None while a refusal that a
        moment cures stands (the self-healing loops start with the server); any other
        refusal is raised."""
        verdict, payload = runner_service.preflight(
            session, bot, settings=self.settings, store=BarStore.from_settings(self.settings),
            now=self.clock())
        if verdict.refusal is not None and verdict.refusal.code in RETRIED_REFUSALS:
            return None
        verdict.raise_if_refused()
        return payload

    # --- helpers -----------------------------------------------------------------------------

    def _pending_sweeps(self, actor: DemoActor) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(
                sa.select(sa.func.count()).select_from(ResearchRun)
                .join(BotJob, BotJob.id == ResearchRun.job_id)
                .where(ResearchRun.account_id == actor.account_id, ResearchRun.kind == "SWEEP",
                       BotJob.status.not_in([s.value for s in TERMINAL]))) or 0)

    def _account(self, session: Session, actor: DemoActor) -> Account:
        account = session.get(Account, actor.account_id)
        assert account is not None
        return account

    def _elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def _note(self, slot: FleetSlot, note: str, *, event: str | None = None,
              **extra: Any) -> None:
        if self.notes.get(slot.name) != note and event is not None:
            log.info(event, bot=slot.name, note=note, elapsed_s=self._elapsed(), **extra)
        self.notes[slot.name] = note
