"""Risk (issue 6): two bots of one account racing on the account limit never exceed it
together. The account's cap (accounts.max_contracts) is 3; two real processes, each a bot
with its own engine, order manager and paper broker, start each round together (a barrier)
and try to open 2 entries of 1 or 2 contracts, then fill, cancel or exit. After the entries
of every round the parent checks the tables (held + working entry contracts across the
account) and both brokers' books: neither ever exceeds the cap, and they agree. Every
refusal is MAX_POSITION with the account's message. On both databases (the order manager
locks the account row FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE serialises on SQLite)."""

from __future__ import annotations

import multiprocessing
import queue
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.domain.jobs import JobType
from botwarden.domain.orders import OPEN
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.trading.order_store import accounts, bots, orders, positions, runner_states
from tests.trading.account_race_support import BARRIER_SECONDS, Attempt, race
from tests.trading.runner_support import make_bot

CAP = 3
ROUNDS = 40


def _racing_bots(engine: Engine) -> tuple[str, list[tuple[str, str]]]:
    account_id, first = make_bot(engine)
    _, second = make_bot(engine, account_id=account_id)
    racers = []
    with write_transaction(engine) as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == account_id)
                     .values(max_contracts=CAP, starting_capital=Decimal(50_000)))
        for bot_id in (first, second):
            job_id = job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                                          actor="test", bot_id=bot_id, now=utcnow())
            conn.execute(sa.insert(runner_states).values(bot_id=bot_id, job_id=job_id,
                                                         state={}, updated_at=utcnow()))
            racers.append((bot_id, job_id))
    return account_id, racers


def _account_contracts(engine: Engine, account_id: str) -> int:
    """Held plus working entry contracts of every bot of the account, read in one
    transaction straight from the tables (not through order_store)."""
    with engine.connect() as conn, conn.begin():
        bot_ids = sa.select(bots.c.id).where(bots.c.account_id == account_id)
        held = conn.execute(sa.select(positions.c.qty).where(
            positions.c.bot_id.in_(bot_ids))).scalars().all()
        working = conn.execute(sa.select(orders.c.qty, orders.c.filled_qty).where(
            orders.c.bot_id.in_(bot_ids), orders.c.status.in_([s.value for s in OPEN]),
            orders.c.reduce_only.is_(False), orders.c.parent_client_order_id.is_(None))).all()
    return sum(abs(q) for q in held) + sum(q - f for q, f in working)


def _next(reports: Any, kind: str) -> tuple[Any, ...]:
    report = reports.get(timeout=BARRIER_SECONDS)
    assert report[0] != "error", f"racer {report[1]} failed:\n{report[2]}"
    assert report[0] == kind, report
    return tuple(report)


def test_two_bots_never_exceed_the_account_cap_together(engine: Engine,
                                                        database_url: str) -> None:
    account_id, racers = _racing_bots(engine)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(racers) + 1)
    reports = ctx.Queue()
    processes = [ctx.Process(target=race, args=(database_url, index, bot_id, job_id, ROUNDS,
                                                barrier, reports))
                 for index, (bot_id, job_id) in enumerate(racers)]
    for process in processes:
        process.start()
    seen: list[tuple[int, int, int]] = []  # (round, in the tables, in the brokers)
    attempts: dict[int, list[Attempt]] = {}
    try:
        for round_ in range(ROUNDS):
            barrier.wait(BARRIER_SECONDS)  # go
            books = [_next(reports, "book") for _ in racers]
            barrier.wait(BARRIER_SECONDS)  # both racers placed their entries
            seen.append((round_, _account_contracts(engine, account_id),
                         sum(held + working for *_, held, working in books)))
            barrier.wait(BARRIER_SECONDS)  # the tables are read: tidy up
        for _ in racers:
            _, index, placed = _next(reports, "attempts")
            attempts[index] = placed
    finally:
        for process in processes:
            process.join(timeout=BARRIER_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        while True:  # a racer's error report, if the loop above stopped on a broken barrier
            try:
                report = reports.get_nowait()
            except queue.Empty:
                break
            assert report[0] != "error", f"racer {report[1]} failed:\n{report[2]}"
    assert all(p.exitcode == 0 for p in processes)

    over = [(r, tables, brokers) for r, tables, brokers in seen if max(tables, brokers) > CAP]
    assert not over, f"the account cap of {CAP} was exceeded (round, tables, brokers): {over}"
    assert all(tables == brokers for _, tables, brokers in seen), seen
    everything = [a for placed in attempts.values() for a in placed]
    refused = [a for a in everything if not a.allowed]
    assert {a.code for a in refused} == {"MAX_POSITION"}, refused
    assert all(f"over the account cap of {CAP}" in a.message for a in refused), refused
    # The race was real: the cap bit, both bots got entries through in the same rounds,
    # and their place() calls ran at the same time.
    first, second = attempts.values()
    both = {a.round for a in first if a.allowed} & {b.round for b in second if b.allowed}
    overlapping = sum(1 for a in first for b in second
                      if a.started < b.ended and b.started < a.ended)
    assert len(refused) >= 10 and len(both) >= 3 and overlapping >= 10, (
        len(refused), len(both), overlapping)
    assert max(tables for _, tables, _ in seen) == CAP
