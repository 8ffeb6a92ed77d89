"""The post-trade risk monitor, and the kill engine acting by itself.

Every `risk_monitor_interval_seconds` (and on every bar, when a runner calls `monitor_bot`
for its own bot) each watched bot - a PAPER, SHADOW, CANARY or LIVE bot, not hard-killed,
with a runner or exposure - is read from the store into a `BotWatch` and passed to the
detectors. What they decide is written in one transaction per bot, under the bot's row
lock and re-decided there against the kill state as it is then:

- a kill through `services.kill.kill_bot` (actor `risk_monitor`, the trigger, and the
  figures and facts as metadata), or an escalation of a SOFT kill to HARD;
- otherwise the trading state the bands call for (ACTIVE, REDUCING) on a bot not killed;
- an equity snapshot, at most one a minute per bot.

After the commit, a HARD kill runs the execution hooks (cancel, flatten, verify). Flatten
before the close and stale data are returned as actions: the bot's runner acts on them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings, get_settings
from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillMode, KillState
from botwarden.domain.kill_detectors import Detection, Thresholds, detect
from botwarden.domain.stages import Stage
from botwarden.domain.trading import TradingState
from botwarden.ids import new_id
from botwarden.logging import get_logger
from botwarden.services import kill as kill_service
from botwarden.services.bot_watch import (
    ACTIVE_RUNNER,
    WORKING,
    Gathered,
    gather_watch,
    last_snapshot_at,
)
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, BotJob, EquitySnapshot, Order, Position
from botwarden.workers.tasks import LoopContext, register_task

log = get_logger("botwarden.risk_monitor")

ACTOR = "risk_monitor"
TASK_NAME = "risk_monitor"
MONITORED_STAGES = (Stage.PAPER.value, Stage.SHADOW.value, Stage.CANARY.value,
                    Stage.LIVE.value)
WATCHED_KILL_STATES = (KillState.NONE.value, KillState.SOFT_KILLED.value)
SNAPSHOT_EVERY = timedelta(minutes=1)


def watched_bot_ids(engine: Engine) -> list[str]:
    """Bots the monitor checks: in a runner stage, not hard-killed, and with an unfinished
    runner, a position or a working order."""
    has_runner = sa.exists().where(BotJob.bot_id == Bot.id, BotJob.job_type == "RUNNER",
                                   BotJob.status.in_(ACTIVE_RUNNER))
    has_position = sa.exists().where(Position.bot_id == Bot.id, Position.qty != 0)
    has_orders = sa.exists().where(Order.bot_id == Bot.id, Order.status.in_(WORKING))
    with engine.connect() as conn:
        return list(conn.execute(
            sa.select(Bot.id).where(Bot.stage.in_(MONITORED_STAGES),
                                    Bot.kill_state.in_(WATCHED_KILL_STATES),
                                    sa.or_(has_runner, has_position, has_orders))
            .order_by(Bot.id)).scalars())


def monitor_bot(engine: Engine, bot_id: str, now: datetime, *, settings: Settings | None = None,
                thresholds: Thresholds | None = None, actor: str = ACTOR) -> dict[str, Any]:
    """Check one bot now and act on it. The answer names the kill made (if any), the
    trading state, the actions for the runner (FLATTEN_BEFORE_CLOSE, STALE_DATA), whether a
    snapshot was written, and what the halt hooks reported."""
    settings = settings or get_settings()
    thresholds = thresholds or Thresholds()
    with engine.connect() as conn:
        gathered = gather_watch(conn, bot_id, now, settings=settings, thresholds=thresholds)
    if gathered is None:
        return {"bot_id": bot_id, "checked": False, "why": "no such bot"}
    if gathered.watch.stage.value not in MONITORED_STAGES:
        return {"bot_id": bot_id, "checked": False, "why": f"stage {gathered.watch.stage}"}
    if gathered.watch.kill_state.value not in WATCHED_KILL_STATES:
        return {"bot_id": bot_id, "checked": False,
                "why": f"already {gathered.watch.kill_state.value}"}
    detection = detect(gathered.watch, thresholds)
    snapshot_due = _snapshot_due(gathered.last_snapshot_at, now)
    wants_write = (detection.kill is not None or snapshot_due
                   or detection.trading_state.value != gathered.watch.trading_state.value)
    outcome: dict[str, Any] = {"kill": None, "trading_state_changed": False, "snapshot": False}
    trace_id = new_id()
    if wants_write:
        outcome, detection = _write(engine, gathered, now, thresholds, actor, trace_id)
    halted = None
    if outcome["kill"] is not None and outcome["kill"]["mode"] == KillMode.HARD.value:
        halted = _halt(engine, bot_id, trace_id)
    return {
        "bot_id": bot_id, "checked": True, **outcome,
        "trading_state": detection.trading_state.value,
        "actions": [a.value for a in detection.actions],
        "warnings": list(detection.warnings),
        "fired": [f.trigger.value for f in detection.fired],
        "figures": gathered.figures.to_json(),
        "halt": halted,
    }


def _snapshot_due(last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= SNAPSHOT_EVERY


def _write(engine: Engine, gathered: Gathered, now: datetime, thresholds: Thresholds,
           actor: str, trace_id: str) -> tuple[dict[str, Any], Detection]:
    """One transaction: lock the bot, re-decide on its current kill state, write."""
    outcome: dict[str, Any] = {"kill": None, "trading_state_changed": False, "snapshot": False}
    figures = gathered.figures
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        bot = session.scalars(sa.select(Bot).where(Bot.id == gathered.watch.bot_id)
                              .with_for_update()).one()
        watch = replace(gathered.watch, kill_state=KillState(bot.kill_state),
                        trading_state=TradingState(bot.trading_state))
        detection = detect(watch, thresholds)
        if detection.kill is not None:
            decision = detection.kill
            try:
                event = kill_service.kill_bot(
                    session, bot, mode=decision.mode, trigger=decision.trigger,
                    reason=decision.reason, actor=actor, trace_id=trace_id,
                    escalate=watch.kill_state is KillState.SOFT_KILLED,
                    metadata={"figures": figures.to_json(), "facts": watch.to_json(),
                              "fired": [{"trigger": f.trigger.value, "mode": f.mode.value,
                                         "reason": f.reason} for f in detection.fired],
                              "warnings": list(detection.warnings)})
            except DomainError as exc:  # a kill committed between our read and our lock
                if exc.code != "ALREADY_KILLED":
                    raise
            else:
                outcome["kill"] = {"trigger": decision.trigger.value,
                                   "mode": decision.mode.value, "state": event.state,
                                   "reason": decision.reason}
        elif (watch.kill_state is KillState.NONE
              and detection.trading_state is not watch.trading_state):
            bot.trading_state = detection.trading_state.value
            bot.updated_at = now
            outcome["trading_state_changed"] = True
        if _snapshot_due(last_snapshot_at(session, bot.id), now):
            session.add(EquitySnapshot(bot_id=bot.id, at=now, equity=figures.equity,
                                       realized_pnl=figures.realized_pnl,
                                       unrealized_pnl=figures.unrealized))
            outcome["snapshot"] = True
        session.flush()
    if outcome["kill"] is not None:
        log.warning("bot_killed_by_monitor", bot_id=gathered.watch.bot_id, **outcome["kill"])
    return outcome, detection


def _halt(engine: Engine, bot_id: str, trace_id: str) -> list[dict[str, Any]] | dict[str, str]:
    """After the kill's commit: the trading layer cancels, flattens and verifies. A hook
    that fails is logged and reported; the kill stands either way."""
    try:
        with Session(engine) as session:
            bot = session.get(Bot, bot_id)
            if bot is None:
                return []
            results = kill_service.run_halt_hooks(session, bot, trace_id)
            session.commit()
            return results
    except Exception as exc:  # noqa: BLE001 - the loop must go on to the next bot
        log.exception("halt_hooks_failed", bot_id=bot_id)
        return {"error": repr(exc)}


def run_risk_monitor(ctx: LoopContext) -> dict[str, Any]:
    """The scheduled loop: every watched bot, one transaction each."""
    now = ctx.clock()
    killed: list[str] = []
    counts = {"checked": 0, "reducing": 0, "snapshots": 0, "flatten_before_close": 0,
              "stale_data": 0, "errors": 0}
    for bot_id in watched_bot_ids(ctx.engine):
        try:
            result = monitor_bot(ctx.engine, bot_id, now, settings=ctx.settings,
                                 actor=ctx.actor)
        except Exception:  # noqa: BLE001 - one bot's failure must not blind the others
            log.exception("risk_monitor_bot_failed", bot_id=bot_id)
            counts["errors"] += 1
            continue
        if not result["checked"]:
            continue
        counts["checked"] += 1
        counts["snapshots"] += int(result["snapshot"])
        counts["reducing"] += int(result["trading_state"] == TradingState.REDUCING.value)
        counts["flatten_before_close"] += int("FLATTEN_BEFORE_CLOSE" in result["actions"])
        counts["stale_data"] += int("STALE_DATA" in result["actions"])
        if result["kill"] is not None:
            killed.append(bot_id)
    return {**counts, "bots_killed": len(killed), "killed": killed}


register_task(TASK_NAME, run_risk_monitor, attrgetter("risk_monitor_interval_seconds"))
