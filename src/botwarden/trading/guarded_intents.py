"""PostgreSQL: a runner's bar persists its intents in one round trip, judged on the gate it
read last, committed only if that gate still holds.

The usual way (`OrderManager.place_chain`) reads the bot's gate (kill state, trading state,
stage, live-trading flag, its account's kill switch, cap and capital, the runner's fence)
locked, in the intents' transaction, then judges the intents and inserts their traces and
rows, and commits: two round trips. On the 2-core host a round trip costs about 130 us of
wall time and 60 us of the runner's CPU, and psycopg's pipeline mode writes to the socket
once per statement queued.

Here the chain is judged on the gate the manager saw last (`OrderManager.gate_seen`), and
one statement, in a transaction of its own, locks and reads the gate as the usual way does,
inserts the traces and the order rows only if every column of the gate is still the one
they were judged on, and returns the gate. Accepted: the intents are committed before they
are sent, under the same lock, exactly as by the usual way. Refused (a kill, the account's
switch, a stage or trading-state change, the fence moved to another runner): nothing was
written; the manager forgets what it held of the chain and the usual way judges it again on
the gate as it is now, which writes the denial and its reason, or raises FenceLost.

Used only where the bar's transaction has not begun (nothing of the bar is written before
its intents, which commit first in any case), on an account without a contract cap (the
cap's count of the account's open contracts is read in the transaction), and by a runner
(a fence).
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from botwarden.trading import intents
from botwarden.trading.order_store import NewOrder

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager, RiskContext

# The gate's columns, as order_store's gate query names them (`judge` reads them by name).
GATE_COLUMNS = ("kill_state", "trading_state", "stage", "is_trading_enabled", "account_id",
                "kill_switch_engaged", "max_contracts", "starting_capital", "fence_owner")
Gate = namedtuple("Gate", GATE_COLUMNS)  # type: ignore[misc]

_EXPECTED = ", ".join(f"%(seen_{name})s" for name in GATE_COLUMNS)
# Every row's columns are in its JSON (order_row, trace_row): a key left out would be NULL,
# not the column's default. A data-modifying WITH query runs whether or not it is read.
_STATEMENT = f"""
WITH gate AS (
    SELECT b.kill_state, b.trading_state, b.stage, b.is_trading_enabled, b.account_id,
           a.kill_switch_engaged, a.max_contracts, a.starting_capital,
           r.job_id AS fence_owner
    FROM bots AS b
    JOIN accounts AS a ON a.id = b.account_id
    JOIN runner_states AS r ON r.bot_id = b.id
    WHERE b.id = %(bot_id)s
    FOR UPDATE OF r, b
), unchanged AS (
    SELECT FROM gate
    WHERE ({", ".join(GATE_COLUMNS)}) IS NOT DISTINCT FROM ({_EXPECTED})
), new_traces AS (
    INSERT INTO traces
    SELECT * FROM jsonb_populate_recordset(NULL::traces, %(traces)s::jsonb)
    WHERE EXISTS (SELECT FROM unchanged)
), new_orders AS (
    INSERT INTO orders
    SELECT * FROM jsonb_populate_recordset(NULL::orders, %(orders)s::jsonb)
    WHERE EXISTS (SELECT FROM unchanged)
)
SELECT {", ".join(GATE_COLUMNS)}, EXISTS (SELECT FROM unchanged) AS accepted FROM gate
"""

def usable(manager: OrderManager) -> bool:
    batch, gate = manager.batch, manager.gate_seen
    return (batch is not None and not batch.opened and gate is not None
            and gate.max_contracts is None and manager.job_id is not None
            and gate.fence_owner == manager.job_id
            and manager.engine.dialect.name == "postgresql")


def persist(manager: OrderManager, chain: Sequence[NewOrder], ctx: RiskContext,
            system_flatten: bool, now: datetime,
            ) -> tuple[intents.Judged, intents.Refusal | None] | None:
    """The chain judged on the gate seen last and committed with its traces, as
    `intents.judge_chain` returns it; None when the gate changed (nothing was written,
    nothing is held)."""
    gate = manager.gate_seen
    assert gate is not None and gate.max_contracts is None
    before = intents.HeldBefore.of(manager)
    rows = intents.Rows()
    judged, refused = intents.judge_chain(manager, None, gate, chain, ctx, system_flatten,
                                          now, rows)  # without a cap nothing is read
    params: dict[str, Any] = {f"seen_{name}": getattr(gate, name) for name in GATE_COLUMNS}
    params.update(bot_id=manager.bot_id, traces=_json(rows.traces), orders=_json(rows.orders))
    found = _run(manager.engine, params)
    # None: the bot, its account or its runner state is gone (the usual way says so).
    manager.gate_seen = None if found is None else Gate(*found[:-1])
    if found is None or not found[-1]:
        before.forget(manager, [stored for stored, _ in judged])
        return None
    return judged, refused


def _run(engine: Engine, params: dict[str, Any]) -> Any:
    """The statement, in a transaction of its own (autocommit): one round trip, on a pooled
    driver connection (SQLAlchemy's Connection and its BEGIN and COMMIT, pure Python here,
    cost more than the statement's sending)."""
    dbapi = engine.dialect.loaded_dbapi
    pooled = engine.raw_connection()
    try:
        raw = pooled.driver_connection
        assert raw is not None
        raw.autocommit = True  # a pooled connection is idle: no transaction to end
        try:
            return raw.execute(_STATEMENT, params).fetchone()
        finally:
            raw.autocommit = False
    except dbapi.Error as error:
        if engine.dialect.is_disconnect(error, pooled.dbapi_connection, None):
            pooled.invalidate(error)  # not handed out again, as SQLAlchemy's execute does
        raise exc.DBAPIError.instance(_STATEMENT, params, error, dbapi.Error,
                                      dialect=engine.dialect) from error
    finally:
        pooled.close()


# orjson: a bar's rows in 3 us where json.dumps took 29 (80 on the runner's colder caches).
# Datetimes pass through to _plain, which refuses a naive one; keys and numpy scalars as
# json.dumps takes them; what orjson refuses and json.dumps writes (an integer beyond 64
# bits, a subclass of float) goes through json.dumps.
_JSON_OPTIONS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
                 | orjson.OPT_SERIALIZE_NUMPY)


def _json(rows: list[dict[str, Any]]) -> str:
    try:
        return orjson.dumps(rows, default=_plain, option=_JSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(rows, default=_plain, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
