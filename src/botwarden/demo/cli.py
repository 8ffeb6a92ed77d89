"""`botwarden demo ...`: the demo fleet's standing, read from the store."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
import typer
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import get_settings
from botwarden.demo import records
from botwarden.demo.account import DEMO_EMAIL
from botwarden.demo.actor import VIA
from botwarden.services import promotion
from botwarden.store.db import make_engine
from botwarden.store.models import Account, AuditLog, Bot, User

app = typer.Typer(help="The demo fleet that `make run` starts, and other demos.",
                  no_args_is_help=True)


def fleet_status(session: Session) -> list[dict[str, Any]]:
    """Each demo bot: strategy, stage, the evidence of each promotion, the gates of its
    next one, and its runner."""
    user = session.scalars(sa.select(User).where(User.email == DEMO_EMAIL)).first()
    if user is None:
        return []
    account = session.get(Account, user.account_id)
    assert account is not None
    changes: dict[str, list[dict[str, Any]]] = {}
    for row in session.scalars(sa.select(AuditLog).where(
            AuditLog.account_id == account.id, AuditLog.action == "STAGE_CHANGE",
            AuditLog.decision == "ALLOW").order_by(AuditLog.created_at)):
        if (row.detail or {}).get("via") == VIA and row.target_id:
            changes.setdefault(row.target_id, []).append({
                "to": row.detail.get("to_stage"), "at": row.created_at.isoformat(),
                "evidence": row.detail.get("evidence"), "figures": row.detail.get("figures")})
    out = []
    bots = session.scalars(sa.select(Bot).where(Bot.account_id == account.id)
                           .order_by(Bot.created_at)).all()
    for bot in bots:
        evaluation, evidence = promotion.evaluate(session, bot, account, now=utcnow())
        jobs = records.runner_jobs(session, bot.id)
        live = jobs.live
        out.append({
            "name": bot.name, "symbol": bot.symbol, "strategy": bot.strategy_kind,
            "params": bot.strategy_params, "stage": bot.stage, "kill_state": bot.kill_state,
            "promotions": changes.get(bot.id, []),
            "next_gates": {"profile": evaluation.profile, "eligible": evaluation.eligible,
                           "evidence": evidence.source, "figures": records.figures(evaluation),
                           "failing": [g.id for g in evaluation.failing]},
            "runner": None if live is None else {"job_id": live.id, "status": live.status,
                                                 "mode": (live.payload or {}).get("mode")},
        })
    return out


@app.command("fleet")
def fleet_command(
    database_url: str | None = typer.Option(None, help="Defaults to BOTWARDEN_DATABASE_URL."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of lines."),
) -> None:
    """Where each bot of the demo fleet stands: its stage, the evidence that promoted it,
    the gates of its next stage and its runner."""
    engine = make_engine(database_url or get_settings().database_url)
    try:
        with Session(engine) as session:
            status = fleet_status(session)
    finally:
        engine.dispose()
    if not status:
        typer.echo(f"no demo fleet here ({DEMO_EMAIL} does not exist)", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(status, indent=2, default=str))
        return
    for bot in status:
        runner = bot["runner"] or {}
        last = bot["promotions"][-1]["figures"] if bot["promotions"] else \
            bot["next_gates"]["figures"]
        typer.echo(f"{bot['name']:14} {bot['stage']:7} {bot['strategy']:18} "
                   f"{json.dumps(bot['params']):42} runner={runner.get('status', '-'):9} "
                   f"{json.dumps(last)}")
