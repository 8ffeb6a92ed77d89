"""Runner control on the store: the safe-start refusals in order, the RUNNER job and its
payload, one unfinished runner per bot (in the service and in the database), restart,
stop and the listing."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.data.bar_store import SYNTHETIC_DATASET
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobType
from botwarden.domain.kill import KillMode, TriggerCode
from botwarden.domain.stages import Stage
from botwarden.ids import new_id
from botwarden.services import kill as kill_service
from botwarden.services import runners as svc
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import (
    Account,
    Bot,
    BotJob,
    Position,
    RunnerState,
)
from tests.services.runner_fleet import (
    ACTOR,
    TRADOVATE_KEYS,
    Fleet,
    open_breaker,
)


def test_refusals_come_in_order_each_with_its_code(fleet: Fleet) -> None:
    """One bot with every obstacle at once; removing them one by one shows each check in
    its place."""
    bot_id = fleet.bot(Stage.TRIALS)
    with fleet.session() as session:
        account = session.get(Account, fleet.account_id)
        kill_service.engage_kill_switch(session, account, reason="test", actor=ACTOR)
        session.commit()
    assert fleet.refusal(bot_id) == "409 BOT_KILLED"  # the account switch
    with fleet.session() as session:
        kill_service.release_kill_switch(session.get(Account, fleet.account_id))
        session.commit()
    assert fleet.refusal(bot_id) == "409 BOT_KILLED"  # the bot stays hard-killed
    with fleet.session() as session:
        kill_service.resurrect_bot(session, session.get(Bot, bot_id), reason="test",
                                   actor=ACTOR, step_up=True)
        session.commit()
    assert fleet.refusal(bot_id) == "409 STAGE_NOT_ELIGIBLE"
    _set(fleet, bot_id, stage=Stage.CANARY.value)
    assert fleet.refusal(bot_id) == "409 LIVE_TRADING_DISABLED"
    _set(fleet, bot_id, is_trading_enabled=True)
    assert fleet.refusal(bot_id) == "424 INTEGRATION_KEY_MISSING"  # no Tradovate keys
    half = fleet.settings.model_copy(update={"tradovate_username": "u",
                                             "tradovate_password": SecretStr("p")})
    assert fleet.refusal(bot_id, half) == "424 INTEGRATION_KEY_MISSING"  # no API key
    keyed = fleet.settings.model_copy(update=TRADOVATE_KEYS)
    assert fleet.refusal(bot_id, keyed) == "424 DATA_UNAVAILABLE"  # no bars
    fleet.bars()
    assert fleet.refusal(bot_id, keyed) == "409 AUTONOMY_BLOCKED"  # no loops ran
    fleet.run_loops()
    open_breaker(fleet, bot_id)
    assert fleet.refusal(bot_id, keyed) == "409 CIRCUIT_OPEN"
    assert fleet.refusal(bot_id, keyed, restart=True) == "409 CIRCUIT_OPEN"
    # Half-open: one trial start is allowed.
    open_breaker(fleet, bot_id, timedelta(seconds=fleet.settings.breaker_half_open_seconds + 1))
    launch = fleet.start(bot_id, keyed)
    assert launch.payload["mode"] == "CANARY" and launch.payload["broker"] == "tradovate"
    assert len(fleet.jobs(bot_id)) == 1


def _set(fleet: Fleet, bot_id: str, **values: object) -> None:
    with fleet.session() as session:
        bot = session.get(Bot, bot_id)
        for key, value in values.items():
            setattr(bot, key, value)
        session.commit()


def test_start_queues_a_runner_job_with_the_exact_payload(ready: Fleet) -> None:
    bot_id = ready.bot(Stage.SHADOW)
    launch = ready.start(bot_id)
    (job,) = ready.jobs(bot_id)
    expected = {"bot_id": bot_id, "mode": "SHADOW", "broker": "shadow", "provider": "replay",
                "dataset": SYNTHETIC_DATASET, "symbol": "MES", "timeframe": "1m",
                "speed": 60.0, "start": None}
    assert launch.payload == expected and job.payload == expected
    assert (job.id, job.job_type, job.status, job.account_id, job.trace_id) == (
        launch.job_id, "RUNNER", "QUEUED", ready.account_id, "t-1")
    with ready.session() as session:
        events = job_store.job_events(session, job.id)
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [(None, "QUEUED", ACTOR)]


@pytest.mark.parametrize(("stage", "mode", "broker"), [
    (Stage.PAPER, "PAPER", "paper"), (Stage.SHADOW, "SHADOW", "shadow"),
    (Stage.LIVE, "LIVE", "tradovate")])
def test_the_stage_decides_mode_and_broker(ready: Fleet, stage: Stage, mode: str,
                                           broker: str) -> None:
    keyed = ready.settings.model_copy(update={**TRADOVATE_KEYS, "runner_replay_speed": None})
    bot_id = ready.bot(stage, is_trading_enabled=stage is Stage.LIVE)
    payload = ready.start(bot_id, keyed).payload
    assert (payload["mode"], payload["broker"], payload["speed"]) == (mode, broker, None)


def test_a_second_start_is_refused_and_the_database_holds_one_active_runner(
        ready: Fleet) -> None:
    bot_id = ready.bot()
    first = ready.start(bot_id)
    with pytest.raises(DomainError) as raised:
        ready.start(bot_id)
    assert (raised.value.code, raised.value.status) == ("RUNNER_ALREADY_ACTIVE", 409)
    assert "restart" in raised.value.fix and raised.value.details == {"job_id": first.job_id}
    # The database refuses a second unfinished runner whoever writes it...
    with pytest.raises(sa.exc.IntegrityError), ready.session() as session:
        job_store.create_job(session, account_id=ready.account_id, job_type=JobType.RUNNER,
                             actor=ACTOR, now=utcnow(), bot_id=bot_id)
    # ...and accepts one once the first has ended; research jobs are not limited.
    assert ready.stop(bot_id) == "CANCELED"
    with ready.session() as session:
        for job_type in (JobType.RUNNER, JobType.BACKTEST, JobType.BACKTEST):
            job_store.create_job(session, account_id=ready.account_id, job_type=job_type,
                                 actor=ACTOR, now=utcnow(), bot_id=bot_id)
        session.commit()
    assert len(ready.jobs(bot_id)) == 4


def test_racing_starts_make_one_runner(ready: Fleet) -> None:
    bot_id = ready.bot()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait()
        try:
            with write_transaction(ready.engine) as conn, Session(bind=conn) as session:
                bot = session.get(Bot, bot_id)
                assert bot is not None
                svc.start_runner(session, bot, settings=ready.settings, store=ready.store,
                                 actor=ACTOR, now=utcnow())
                session.flush()
            outcomes.append("started")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["RUNNER_ALREADY_ACTIVE"] * 3 + ["started"]
    assert len(ready.jobs(bot_id)) == 1


def test_restart_cancels_the_old_job_and_queues_a_new_one(ready: Fleet) -> None:
    bot_id = ready.bot()
    first = ready.start(bot_id)
    second = ready.restart(bot_id)
    assert second.replaced_job_id == first.job_id and second.job_id != first.job_id
    assert second.payload == first.payload
    old, new = ready.jobs(bot_id)
    assert (old.id, old.status, old.status_reason_code) == (first.job_id, "CANCELED",
                                                            "CANCELED_BY_USER")
    assert "restarted" in (old.status_reason or "") and old.completed_at is not None
    assert (new.id, new.status) == (second.job_id, "QUEUED")
    # Restart runs the same checks: a killed bot is refused and its runner left alone.
    with ready.session() as session:
        kill_service.kill_bot(session, session.get(Bot, bot_id), mode=KillMode.SOFT,
                              trigger=TriggerCode.MANUAL_KILL, reason="test", actor=ACTOR)
        session.commit()
    assert ready.refusal(bot_id, restart=True) == "409 BOT_KILLED"
    assert [j.status for j in ready.jobs(bot_id)] == ["CANCELED", "QUEUED"]


def test_restart_without_a_runner_starts_one(ready: Fleet) -> None:
    bot_id = ready.bot()
    launch = ready.restart(bot_id)
    assert launch.replaced_job_id is None
    assert [j.status for j in ready.jobs(bot_id)] == ["QUEUED"]


def test_restart_of_a_runner_that_ended_meanwhile(ready: Fleet) -> None:
    bot_id = ready.bot()
    first = ready.start(bot_id)
    with ready.session() as session:
        job_store.cancel_job(session, first.job_id, account_id=None, actor=ACTOR, now=utcnow())
        session.commit()
    assert ready.restart(bot_id).replaced_job_id is None


def test_stop_cancels_and_a_second_stop_is_refused(ready: Fleet) -> None:
    bot_id = ready.bot()
    launch = ready.start(bot_id)
    assert ready.stop(bot_id) == "CANCELED"
    (job,) = ready.jobs(bot_id)
    assert (job.id, job.status_reason) == (launch.job_id, "test stop")
    with pytest.raises(DomainError) as raised:
        ready.stop(bot_id)
    assert (raised.value.code, raised.value.status) == ("RUNNER_NOT_ACTIVE", 409)


def test_stop_needs_no_safe_start(ready: Fleet) -> None:
    """A killed bot's runner can always be stopped."""
    bot_id = ready.bot()
    ready.start(bot_id)
    with ready.session() as session:
        kill_service.kill_bot(session, session.get(Bot, bot_id), mode=KillMode.HARD,
                              trigger=TriggerCode.MANUAL_KILL, reason="test", actor=ACTOR)
        session.commit()
    assert [j.status for j in ready.jobs(bot_id)] == ["QUEUED"]
    assert ready.stop(bot_id) == "CANCELED"


def test_listing(ready: Fleet) -> None:
    alpha, beta = ready.bot(name="alpha"), ready.bot(Stage.SHADOW, name="beta")
    idle = ready.bot(name="idle")  # never started: not listed
    first = ready.start(alpha)
    second = ready.restart(alpha)
    beta_job = ready.start(beta).job_id
    ready.stop(beta)
    beat = utcnow() - timedelta(seconds=12)
    bar_time = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    with ready.session() as session:
        session.get(BotJob, second.job_id).last_heartbeat_at = beat
        session.add(Position(bot_id=alpha, symbol="MES", qty=-2, avg_price=Decimal("5012.25"),
                             realized_pnl=Decimal("37.50")))
        session.add(RunnerState(bot_id=alpha, job_id=second.job_id, last_bar_time=bar_time))
        session.commit()

    with ready.session() as session:
        active = svc.list_runners(session, ready.account_id, now=utcnow())
        everything = svc.list_runners(session, ready.account_id, now=utcnow(),
                                      include_finished=True)
        only_beta = svc.list_runners(session, ready.account_id, now=utcnow(),
                                     include_finished=True, bot_id=beta)
        stranger = svc.list_runners(session, new_id(), now=utcnow(), include_finished=True)
    (view,) = active
    assert (view.job_id, view.bot_id, view.bot_name, view.stage, view.mode, view.broker,
            view.provider, view.status, view.active, view.attempts) == (
        second.job_id, alpha, "alpha", "PAPER", "PAPER", "paper", "replay", "QUEUED", True, 0)
    assert view.last_heartbeat_at == beat and 12 <= view.heartbeat_age_seconds < 60
    assert view.last_bar_time == bar_time
    assert [(p.symbol, p.qty, p.avg_price, p.realized_pnl) for p in view.positions] == [
        ("MES", -2, Decimal("5012.25"), Decimal("37.50"))]
    # Each bot's last ended runner joins the unfinished ones, a bot's unfinished one first.
    assert [(v.bot_name, v.job_id, v.status) for v in everything] == [
        ("alpha", second.job_id, "QUEUED"), ("alpha", first.job_id, "CANCELED"),
        ("beta", beta_job, "CANCELED")]
    assert [v.job_id for v in only_beta] == [beta_job]
    assert idle not in {v.bot_id for v in everything} and stranger == []


def test_the_database_index_is_the_last_word(ready: Fleet, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """Were the service's own check to miss a runner (another writer racing it), the
    index refuses the second one with the same answer, and the caller's transaction stays
    usable (the insert ran in a savepoint)."""
    bot_id = ready.bot()
    ready.start(bot_id)
    monkeypatch.setattr(svc, "active_runner", lambda session, bot_id: None)
    with ready.session() as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        with pytest.raises(DomainError) as raised:
            svc.start_runner(session, bot, settings=ready.settings, store=ready.store,
                             actor=ACTOR, now=utcnow())
        assert raised.value.code == "RUNNER_ALREADY_ACTIVE"
        session.add(Position(bot_id=bot_id, symbol="MES"))
        session.commit()
    assert len(ready.jobs(bot_id)) == 1

