"""The demo fleet on a temporary SQLite database: its bots climb to PAPER and SHADOW only
through research runs, the gates and the stage machine, as the demo user (policy and audit
rows); a bot whose evidence fails stays where it is; the standard profile refuses the same
synthetic evidence; a second pass changes nothing; the live runners resume where the paper
trading on history stopped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.data.bar_store import BarStore
from botwarden.demo.actor import VIA
from botwarden.demo.cli import fleet_status
from botwarden.demo.fleet import Fleet
from botwarden.demo.plan import FleetShape, plan_timeline
from botwarden.domain.jobs import JobType
from botwarden.domain.stages import Stage
from botwarden.services import promotion
from botwarden.store.models import (
    Account,
    AuditLog,
    BotJob,
    ResearchRun,
    RunnerState,
    TradeLog,
)
from tests.demo.fleet_support import PAPER_SLOT, SHADOW_SLOT, TREND_SLOT, DemoWorld, demo_world


@pytest.fixture
def world(tmp_path: Path, _sqlite_template: Path) -> Iterator[DemoWorld]:
    with demo_world(tmp_path, _sqlite_template) as made:
        yield made


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory,
            _sqlite_template: Path) -> Iterator[tuple[DemoWorld, Fleet]]:
    """The three-bot fleet, settled once for the module (its paper trading takes a while):
    the tests below read it, and the last one starts its live runners."""
    with demo_world(tmp_path_factory.mktemp("fleet"), _sqlite_template) as made:
        fleet = made.fleet()
        made.settle(fleet)
        yield made, fleet


def _gates(world: DemoWorld, name: str) -> dict[str, object]:
    with Session(world.engine) as session:
        bot = world.bot(name)
        account = session.get(Account, bot.account_id)
        assert account is not None
        evaluation, evidence = promotion.evaluate(session, session.merge(bot), account,
                                                  now=utcnow())
        return {"profile": evaluation.profile, "eligible": evaluation.eligible,
                "evidence": evidence.source, **{g.id: g for g in evaluation.gates}}


def test_fleet_climbs_through_the_gates_on_its_own_evidence(
        settled: tuple[DemoWorld, Fleet]) -> None:
    world, fleet = settled
    shadow, paper, trend = (world.bot(s.name) for s in (SHADOW_SLOT, PAPER_SLOT, TREND_SLOT))
    assert (shadow.stage, paper.stage, trend.stage) == ("SHADOW", "PAPER", "TRIALS")
    assert trend.strategy_params == {"fast": 5, "slow": 30}
    with Session(world.engine) as session:
        runs = session.scalars(sa.select(ResearchRun)).all()
        assert sorted(r.kind for r in runs if r.bot_id is None) == ["SWEEP"] * 3
        for bot in (shadow, paper):  # three passing backtests of its own configuration
            backtests = [r for r in runs if r.bot_id == bot.id and r.kind == "BACKTEST"]
            assert len(backtests) == 3 and all(r.passed and r.dataset == "SYNTH"
                                               for r in backtests)
        changes = session.scalars(sa.select(AuditLog).where(
            AuditLog.action == "STAGE_CHANGE").order_by(AuditLog.created_at)).all()
        moves = sorted((c.target_id, c.detail["from_stage"], c.detail["to_stage"])
                       for c in changes)
        assert moves == sorted([(shadow.id, "TRIALS", "PAPER"), (paper.id, "TRIALS", "PAPER"),
                                (shadow.id, "PAPER", "SHADOW")])
        for change in changes:  # the demo user acted, through the policy, on the demo gates
            assert change.decision == "ALLOW" and change.actor == f"user:{world.account.user_id}"
            assert change.detail["via"] == VIA and change.detail["gate_profile"] == "demo"
            assert change.detail["figures"]["trades"] >= 20
        # The SHADOW bot's PAPER evidence: its own paper trades on replayed history.
        paper_trades = session.scalars(sa.select(TradeLog).where(
            TradeLog.bot_id == shadow.id, TradeLog.source_type == "PAPER")).all()
        assert len(paper_trades) >= 20
        fast_forward = session.scalars(sa.select(BotJob).where(
            BotJob.bot_id == shadow.id, BotJob.job_type == JobType.RUNNER.value,
            BotJob.status == "COMPLETED")).one()
        assert fast_forward.status == "COMPLETED" and fast_forward.payload["speed"] is None
        assert fast_forward.result["ended"] == "REPLAY_EXHAUSTED"
        assert {t.bot_instance_id for t in paper_trades} == {fast_forward.id}
    trend_gates = _gates(world, TREND_SLOT.name)
    assert trend_gates["profile"] == "demo" and not trend_gates["eligible"]
    synthetic = trend_gates["real_market_data"]
    assert synthetic.passed and "synthetic accepted: demo profile" in synthetic.detail  # type: ignore[attr-defined]
    assert not trend_gates["positive_net_pnl"].passed  # type: ignore[attr-defined]
    assert "stays in TRIALS" in fleet.notes[TREND_SLOT.name]


def test_the_paper_bot_goes_live_just_before_its_first_signal(
        settled: tuple[DemoWorld, Fleet]) -> None:
    world, fleet = settled
    timeline = plan_timeline(BarStore.from_settings(world.settings), fleet.shape)
    with Session(world.engine) as session:
        job = session.scalars(sa.select(BotJob).where(
            BotJob.bot_id == world.bot(PAPER_SLOT.name).id,
            BotJob.job_type == JobType.RUNNER.value, BotJob.status == "COMPLETED")).one()
    start, end = (datetime.fromisoformat(job.payload[k]) for k in ("start", "end"))
    assert timeline.shadow_live_start <= start < end <= start + timedelta(minutes=60)
    assert timeline.paper_live_start <= end <= timeline.paper_live_start + timedelta(days=1)
    # Its backtest trades at `end` + 15 bars: live orders come within a quarter minute.
    assert end > timeline.paper_live_start


def test_the_standard_profile_refuses_the_same_synthetic_evidence(world: DemoWorld) -> None:
    with Session(world.engine) as session:
        account = session.get(Account, world.account.account_id)
        assert account is not None
        account.gate_profile = "standard"
        session.commit()
    fleet = world.fleet(shape=FleetShape(slots=(SHADOW_SLOT,), live_sessions=1,
                                         paper_sessions=2, window_shifts=(2, 1, 0)))
    world.settle(fleet)
    assert world.bot(SHADOW_SLOT.name).stage == Stage.TRIALS.value
    gates = _gates(world, SHADOW_SLOT.name)
    assert gates["profile"] == "standard"
    market = gates["real_market_data"]
    assert not market.passed and "required: real market data recorded" in market.detail  # type: ignore[attr-defined]
    with Session(world.engine) as session:
        backtests = session.scalars(sa.select(ResearchRun).where(
            ResearchRun.kind == "BACKTEST")).all()
        assert len(backtests) == 3 and not any(r.passed for r in backtests)
        assert session.scalar(sa.select(sa.func.count()).select_from(AuditLog).where(
            AuditLog.action == "STAGE_CHANGE")) == 0
    assert "stays in TRIALS" in fleet.notes[SHADOW_SLOT.name]


def test_second_pass_changes_nothing_and_live_runners_resume_after_the_paper_run(
        settled: tuple[DemoWorld, Fleet]) -> None:
    world, _ = settled
    before = world.counts()
    again = world.fleet()  # a restart: a new fleet finds everything in the store
    assert world.settle(again) == 1
    assert world.counts() == before
    live = world.fleet(start_live=True)
    world.run_loops()
    assert live.step()  # starts both runners through services.runners, then it is settled
    with Session(world.engine) as session:
        runners = {j.bot_id: j for j in session.scalars(sa.select(BotJob).where(
            BotJob.job_type == JobType.RUNNER.value, BotJob.status == "QUEUED"))}
        for slot, mode in ((SHADOW_SLOT, "SHADOW"), (PAPER_SLOT, "PAPER")):
            bot = world.bot(slot.name)
            payload = runners[bot.id].payload
            assert (payload["mode"], payload["broker"]) == (mode, mode.lower())
            assert payload["start"] is None and "end" not in payload  # resumes from its state
            finished = session.scalars(sa.select(BotJob).where(
                BotJob.bot_id == bot.id, BotJob.job_type == JobType.RUNNER.value,
                BotJob.status == "COMPLETED")).one()
            state = session.get(RunnerState, bot.id)
            assert state is not None and state.last_bar_time is not None
            end = datetime.fromisoformat(finished.payload["end"])
            # The last bar paper-traded is the last one before `end`: the live replay, which
            # resumes after it, starts at `end`.
            assert state.last_bar_time < end
            between = BarStore.from_settings(world.settings).load(
                slot.symbol, state.last_bar_time + timedelta(minutes=1), end, "1m",
                dataset="SYNTH")
            assert len(between) == 0
        starts = session.scalars(sa.select(AuditLog).where(
            AuditLog.action == "RUNNER_START", AuditLog.decision == "ALLOW")).all()
        assert len(starts) == 4 and all(a.detail["via"] == VIA for a in starts)
    assert world.fleet(start_live=True).step()  # running already: nothing to start
    assert world.counts()["bot_jobs"] == before["bot_jobs"] + 2
    with Session(world.engine) as session:
        status = {b["name"]: b for b in fleet_status(session)}
    assert status[SHADOW_SLOT.name]["stage"] == "SHADOW"
    assert [p["to"] for p in status[SHADOW_SLOT.name]["promotions"]] == ["PAPER", "SHADOW"]
    assert status[PAPER_SLOT.name]["runner"]["mode"] == "PAPER"
