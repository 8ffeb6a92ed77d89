"""The demo's evidence, read back from the store as timeline events: job status changes,
integration events and refused calls, kill events, the kill's flatten orders and fills,
worker rows, and, once the runners are done, the agreement of our book with the paper
broker's. Nothing here is taken from a process's memory or its logs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import as_utc, utcnow
from botwarden.demo.autonomy.timeline import Event
from botwarden.domain.jobs import JobType
from botwarden.domain.trading import Side
from botwarden.store.models import (
    BotJob,
    Fill,
    IntegrationEvent,
    IntegrationTelemetry,
    JobRunEvent,
    KillEvent,
    Order,
    Position,
    Worker,
)
from botwarden.trading.broker_factory import account_key
from botwarden.trading.brokers.sim_state import DEFAULT_HISTORY_LIMIT, SimState, load_state
from botwarden.trading.brokers.state_store import load_stored

KILL_FLATTEN = "KILL_FLATTEN"


@dataclass
class Cast:
    """Who the demo is about: only their rows are read."""

    since: datetime
    symbol: str
    bots: dict[str, str] = field(default_factory=dict)  # bot id -> label
    feed_names: tuple[str, ...] = ()  # the failover chain's providers and the feed itself
    workers: dict[int, str] = field(default_factory=dict)  # pid -> label
    killed_pids: set[int] = field(default_factory=set)

    def label(self, bot_id: str | None) -> str:
        return self.bots.get(bot_id or "", bot_id or "?")


def _event(at: datetime, source: str, subject: str, kind: str, text: str = "") -> Event:
    return Event(as_utc(at), source, subject, kind, text)


def read_events(engine: Engine, cast: Cast) -> list[Event]:
    with Session(engine) as conn:
        return [*job_events(conn, cast), *integration_events(conn, cast),
                *kill_events(conn, cast), *flatten_events(conn, cast), *worker_events(conn, cast)]


def read_final_checks(engine: Engine, cast: Cast) -> list[Event]:
    """Once the runners are done: each bot's book against its paper broker's, how its
    runner ended, and the calls the feed's providers refused."""
    with Session(engine) as conn:
        out = refused_calls(conn, cast)
        for bot_id in cast.bots:
            out += book_checks(conn, cast, bot_id)
            out += runner_results(conn, cast, bot_id)
        return out


# --- jobs -------------------------------------------------------------------------------


def _runner_jobs(conn: Session, cast: Cast) -> dict[str, str]:
    rows = conn.execute(sa.select(BotJob.id, BotJob.bot_id).where(
        BotJob.bot_id.in_(list(cast.bots)), BotJob.job_type == JobType.RUNNER.value)).all()
    return {row.id: row.bot_id for row in rows}


def job_events(conn: Session, cast: Cast) -> list[Event]:
    """Each status change of the bots' RUNNER jobs; a claim after a lost lease by another
    worker than the one that lost it is also a RECLAIMED event."""
    jobs = _runner_jobs(conn, cast)
    rows = conn.execute(sa.select(JobRunEvent).where(JobRunEvent.job_id.in_(list(jobs)))
                        .order_by(JobRunEvent.created_at, JobRunEvent.id)).scalars().all()
    out = []
    holder: dict[str, str] = {}  # job id -> the worker that claimed it last
    lost: dict[str, str] = {}  # job id -> the worker whose lease expired
    for row in rows:
        label = cast.label(jobs[row.job_id])
        transition = f"{row.from_status or 'NEW'}->{row.to_status}"
        kind = f"{transition} {row.reason_code}" if row.reason_code else transition
        text = f"job {row.job_id[:8]} by {row.actor}" + (f": {row.reason}" if row.reason else "")
        if row.reason_code == "LEASE_EXPIRED" and row.job_id in holder:
            lost[row.job_id] = holder[row.job_id]
        if row.to_status == "RUNNING" and row.from_status == "QUEUED":
            if row.job_id in lost and lost[row.job_id] != row.actor:
                kind = "RECLAIMED"
                text = (f"QUEUED->RUNNING: job {row.job_id[:8]} lost by "
                        f"{lost.pop(row.job_id)}, claimed by {row.actor}")
            holder[row.job_id] = row.actor
        out.append(_event(row.created_at, "job_run_events", label, kind, text))
    return out


def runner_results(conn: Session, cast: Cast, bot_id: str) -> list[Event]:
    """How the bot's runner jobs ended, from their stored results."""
    rows = conn.execute(sa.select(BotJob.id, BotJob.status, BotJob.result,
                                  BotJob.completed_at)
                        .where(BotJob.bot_id == bot_id, BotJob.job_type == JobType.RUNNER.value,
                               BotJob.result.is_not(None))).all()
    out = []
    for row in rows:
        result = row.result or {}
        at = row.completed_at or utcnow()
        label = cast.label(bot_id)
        ended = result.get("ended")
        if ended == "HALTED" and result.get("flat"):
            out.append(_event(at, "bot_jobs", label, "HALTED_FLAT",
                              f"job {row.id[:8]} {row.status}: halted and flat after "
                              f"{result.get('bars')} bars"))
        reconciled = result.get("reconcile_at_start") or {}
        final = reconciled.get("final_state") or {}
        if row.status == "COMPLETED" and final.get("in_agreement") and not reconciled.get(
                "killed"):
            actions = [a.get("kind") for a in reconciled.get("actions", [])]
            out.append(_event(at, "bot_jobs", label, "RECONCILED_AT_START",
                              f"job {row.id[:8]} ended {ended}: reconcile at start found "
                              f"drift={reconciled.get('drift_found')}, actions={actions}, "
                              f"position {final.get('position')} = broker "
                              f"{final.get('broker_position')}"))
    return out


# --- integrations -----------------------------------------------------------------------


def integration_events(conn: Session, cast: Cast) -> list[Event]:
    rows = conn.execute(sa.select(IntegrationEvent).where(
        IntegrationEvent.name.in_(list(cast.feed_names)),
        IntegrationEvent.created_at >= cast.since)
        .order_by(IntegrationEvent.created_at)).scalars().all()
    return [_event(row.created_at, "integration_events", row.name, row.code or row.to_status,
                   f"{row.from_status or 'NEW'}->{row.to_status}: {row.detail or ''}")
            for row in rows]


def refused_calls(conn: Session, cast: Cast) -> list[Event]:
    """Telemetry minutes in which a feed provider refused calls (429s), per operation: the
    probes refused while the backup served are the backoff at work."""
    rows = conn.execute(sa.select(IntegrationTelemetry).where(
        IntegrationTelemetry.provider.in_(list(cast.feed_names)),
        IntegrationTelemetry.bucket_start >= cast.since.replace(second=0, microsecond=0),
        IntegrationTelemetry.calls > IntegrationTelemetry.ok_calls)).scalars().all()
    now = utcnow()  # minute buckets carry no instant of their own: dated when read
    return [_event(now, "integration_telemetry", row.provider, f"REFUSED:{row.operation}",
                   f"{row.calls - row.ok_calls} of {row.calls} {row.operation} calls refused "
                   f"in the minute from {as_utc(row.bucket_start):%H:%M}")
            for row in rows]


# --- kills ------------------------------------------------------------------------------


def kill_events(conn: Session, cast: Cast) -> list[Event]:
    rows = conn.execute(sa.select(KillEvent).where(KillEvent.bot_id.in_(list(cast.bots)))
                        .order_by(KillEvent.created_at)).scalars().all()
    out = []
    for row in rows:
        facts = (row.metadata_ or {}).get("facts") or {}
        position = facts.get("position")
        where = f" (position {position})" if position is not None else ""
        # "risk_monitor" (its scheduled loop) or "risk_monitor:<job>" (a runner calling it
        # on a bar): the kind names the family, the text the actor.
        family = row.actor.split(":", 1)[0]
        out.append(_event(row.created_at, "kill_events", cast.label(row.bot_id),
                          f"{row.trigger_code} by {family}",
                          f"{row.event_type} -> {row.state} by {row.actor}: "
                          f"{row.reason}{where}"))
    return out


def flatten_events(conn: Session, cast: Cast) -> list[Event]:
    """The kill's flatten orders and their fills (the fill's wall time of recording; its
    `filled_at` is the replayed market's time)."""
    orders = conn.execute(sa.select(Order).where(Order.bot_id.in_(list(cast.bots)),
                                                 Order.reason == KILL_FLATTEN)).scalars().all()
    out = []
    for order in orders:
        out.append(_event(order.created_at, "orders", cast.label(order.bot_id),
                          f"{KILL_FLATTEN} {order.status}",
                          f"{order.side} {order.qty} {order.symbol} {order.order_type} "
                          f"{order.client_order_id}"))
        for fill in conn.execute(sa.select(Fill).where(Fill.order_id == order.id)).scalars():
            out.append(_event(fill.created_at, "fills", cast.label(order.bot_id),
                              f"{KILL_FLATTEN} FILL",
                              f"{fill.side} {fill.qty} @ {fill.price} ({fill.fill_id})"))
    return out


# --- workers ----------------------------------------------------------------------------


def worker_events(conn: Session, cast: Cast) -> list[Event]:
    rows = conn.execute(sa.select(Worker).where(Worker.pid.in_(list(cast.workers)),
                                                Worker.started_at >= cast.since)).scalars().all()
    out = []
    for row in rows:
        label = cast.workers[row.pid]
        out.append(_event(row.started_at, "workers", label, "STARTED",
                          f"{row.id} types {','.join(row.job_types) or 'none (loops only)'}"))
        if row.status == "STOPPED" and row.stopped_at is not None:
            kind = "RETIRED_SILENT" if row.pid in cast.killed_pids else "STOPPED"
            why = ("its last heartbeat; found silent and marked STOPPED by the supervisor"
                   if row.pid in cast.killed_pids else "signed off")
            out.append(_event(row.stopped_at, "workers", label, kind, f"{row.id} {why}"))
    return out


# --- our book against the broker's ------------------------------------------------------


def broker_state(conn: Session, bot_id: str) -> SimState | None:
    stored = load_stored(conn.connection(), account_key("paper", bot_id))
    return None if stored is None else load_state(stored, DEFAULT_HISTORY_LIMIT)


def book_checks(conn: Session, cast: Cast, bot_id: str) -> list[Event]:
    """Orders once, fills once, and the same position on both sides. Each check that holds
    is an event; one that fails is an event of another kind, naming what differs."""
    now = utcnow()
    label = cast.label(bot_id)
    state = broker_state(conn, bot_id)
    if state is None:
        return [_event(now, "paper_broker_state", label, "NO_BROKER_BOOK",
                       "the paper broker has no book for this bot")]
    orders = conn.execute(sa.select(Order.client_order_id, Order.status).where(
        Order.bot_id == bot_id)).all()
    fills = conn.execute(sa.select(Fill.fill_id, Fill.side, Fill.qty).where(
        Fill.bot_id == bot_id)).all()
    ours_qty = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(Position.qty), 0))
                                .where(Position.bot_id == bot_id,
                                       Position.symbol == cast.symbol)).scalar_one())
    return [_orders_once(now, label, orders, state), _fills_once(now, label, fills, state),
            _positions_agree(now, label, ours_qty, fills, state, cast.symbol)]


def _orders_once(now: datetime, label: str, orders: Any, state: SimState) -> Event:
    ours = Counter(o.client_order_id for o in orders)
    twice = sorted(cid for cid, n in ours.items() if n > 1)
    unknown = sorted(cid for cid in state.orders if cid not in ours)
    if twice or unknown:
        return _event(now, "orders", label, "DUPLICATE_OR_UNKNOWN_ORDERS",
                      f"ours twice: {twice}; at the broker but not ours: {unknown}")
    return _event(now, "orders", label, "ORDERS_ONCE",
                  f"{len(ours)} client order ids, each once; the paper broker holds "
                  f"{len(state.orders)} (its retained history), each one of ours")


def _fills_once(now: datetime, label: str, fills: Any, state: SimState) -> Event:
    ours = Counter(f.fill_id for f in fills)
    twice = sorted(fid for fid, n in ours.items() if n > 1)
    missing = sorted(fid for fid in state.fills if fid not in ours)
    if twice or missing:
        return _event(now, "fills", label, "FILLS_NOT_ONCE",
                      f"applied twice: {twice}; broker fills never applied: {missing}")
    return _event(now, "fills", label, "FILLS_ONCE",
                  f"{len(ours)} fills applied, each once; all {len(state.fills)} fills the "
                  f"paper broker retains are among them")


def _positions_agree(now: datetime, label: str, ours_qty: int, fills: Any, state: SimState,
                     symbol: str) -> Event:
    from_fills = sum(f.qty if f.side == Side.BUY.value else -f.qty for f in fills)
    broker_qty = state.book(symbol).qty
    text = f"ours {ours_qty}, from our fills {from_fills}, paper broker {broker_qty}"
    if ours_qty == broker_qty == from_fills:
        return _event(now, "positions", label, "POSITION_AGREES", text)
    return _event(now, "positions", label, "POSITION_DIFFERS", text)
