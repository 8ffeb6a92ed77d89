"""Risk (issue 6): hypothesis generates 10,000 order sequences; no breaching order reaches
the broker, and every refusal names a breached rule, with a fix and its traces.

A sequence is a bot's limits (sometimes none), its account (a cap on the account's
contracts, a neighbour bot holding and working some), its kill, trading and stage states,
and up to 14 steps: orders (random side, size, type, price, system flatten, reused client
ids, broker rejections) each with the market and money facts of its moment (stale bars,
closed session, the pre-close window, news, daily PnL, drawdown, account equity), bars that
fill, cancels, and changes of the bot's states. Each decision is judged by an oracle written
from domain.md's table (tests/trading/risk_oracle.py), never by `check_order`:
allowed <=> the oracle finds no breach, and a refusal's code is one the oracle found.

The 10,000 sequences are split (one sequence through the database costs ~100 times one
through the pure engine, and a single 10,000-example database test would take minutes):
- MODEL_SEQUENCES through `domain.risk.check_order`, fed as the order manager feeds it;
- MANAGER_SEQUENCES through the real `OrderManager.place` (risk check inside the write
  transaction, kill state, account switch and account cap read from the store), sending
  to a paper broker behind a recorder that asks the oracle at the moment each request
  arrives. These run on SQLite only (a module-scoped database from the migrated template,
  whatever the `database_url` parameters are): the order manager's PostgreSQL path is the
  same code, and the account race (test_account_race.py) covers its locking on both.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from sqlalchemy.engine import Engine

from botwarden.store.db import make_engine
from botwarden.trading.order_store import orders, traces
from tests.trading.risk_drivers import ManagerRun, ModelRun
from tests.trading.risk_harness import BrokerSide, Judged
from tests.trading.risk_sequences import REGRESSIONS, OrderSequence, sequences

MODEL_SEQUENCES = 8_500
MANAGER_SEQUENCES = 1_500
assert MODEL_SEQUENCES + MANAGER_SEQUENCES == 10_000


def assert_judged(judged: list[Judged], side: BrokerSide) -> None:
    for j in judged:
        what = f"{j.wanted} -> {j.code}; oracle: {sorted(j.expected)}"
        if j.allowed:
            assert not j.expected, "a breaching order was allowed: " + what
        else:
            assert j.code in j.expected, "refused for a rule the oracle does not see: " + what
            assert j.fix, "a refusal without a fix: " + what
    for client_order_id, found in side.breaches_at_send:
        assert not found, f"{client_order_id} reached the broker breaching {sorted(found)}"
    assert [x.client_order_id for x in side.sent] == [
        j.wanted.client_order_id for j in judged if j.allowed]


@settings(max_examples=MODEL_SEQUENCES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seq=sequences)
@example(seq=REGRESSIONS[0])
@example(seq=REGRESSIONS[1])
@example(seq=REGRESSIONS[2])
def test_check_order_over_sequences(seq: OrderSequence) -> None:
    run = ModelRun(seq).run()
    assert_judged(run.judged, run.side)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory,
                  _sqlite_template: Path) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("risk-sequences") / "botwarden.db"
    shutil.copy(_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _recorded(engine: Engine, bot_id: str) -> tuple[Counter[tuple[str, str, str, str]],
                                                     set[str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(traces.c.kind, traces.c.decision, traces.c.reason_code,
                                      traces.c.detail).where(traces.c.bot_id == bot_id)).all()
        order_ids = set(conn.execute(sa.select(orders.c.client_order_id)
                                     .where(orders.c.bot_id == bot_id)).scalars())
    return Counter((r.kind, r.decision, r.reason_code, r.detail["order"]["client_order_id"])
                   for r in rows), order_ids


def _expected_traces(judged: list[Judged]) -> Counter[tuple[str, str, str, str]]:
    expected: Counter[tuple[str, str, str, str]] = Counter()
    for j in judged:
        cid = j.wanted.client_order_id
        expected["DECISION", "ORDER" if j.allowed else "DENIED", j.code, cid] += 1
        if not j.allowed:
            expected["NO_TRADE", "NO_TRADE", j.code, cid] += 1
    return expected


@settings(max_examples=MANAGER_SEQUENCES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seq=sequences)
@example(seq=REGRESSIONS[0])
@example(seq=REGRESSIONS[1])
@example(seq=REGRESSIONS[2])
def test_order_manager_over_sequences(sqlite_engine: Engine, seq: OrderSequence) -> None:
    run = ManagerRun(sqlite_engine, seq).run()
    assert_judged(run.judged, run.side)
    assert [r.client_order_id for r in run.broker.received] == [
        x.client_order_id for x in run.side.sent]
    recorded, order_ids = _recorded(sqlite_engine, run.bot_id)
    assert recorded == _expected_traces(run.judged), "every decision is one trace (two if refused)"
    assert order_ids == {j.wanted.client_order_id for j in run.judged if j.allowed}
