"""A HotStatement writes and reads exactly what SQLAlchemy's own execution would (the
column types convert both ways), in the connection's transaction, with SQLAlchemy's
exception classes; what it cannot run on the driver's cursor runs through SQLAlchemy."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from botwarden.store.hot_sql import HotStatement, Pipeline
from botwarden.store.types import JSONType, Money, UTCDateTime

metadata = sa.MetaData()
table = sa.Table(
    "hot_sql_probe", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40), nullable=False, unique=True),
    sa.Column("at", UTCDateTime, nullable=True),
    sa.Column("amount", Money, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("doc", JSONType, nullable=True),
    sa.Column("note", sa.String(40), nullable=True, default="defaulted"),
)
INSERT = HotStatement(table.insert())
UPDATE = HotStatement(table.update().where(table.c.id == sa.bindparam("key"))
                      .values(flag=sa.bindparam("new_flag")))
SELECT = HotStatement(sa.select(table.c.name, table.c.at, table.c.amount, table.c.flag,
                                table.c.doc.label("document"))
                      .where(table.c.id == sa.bindparam("key")))
ids = itertools.count(1)


@contextmanager
def _through_sqlalchemy(engine: Engine) -> Iterator[list[str]]:
    """The statements SQLAlchemy's own execution ran meanwhile (a hot one runs none)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


@pytest.fixture
def probe(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)


def _row(**values: Any) -> dict[str, Any]:
    n = next(ids)
    return {"id": n, "name": f"row-{n}", "at": None, "amount": None, "flag": False,
            "doc": None, "note": None} | values


def _read(engine: Engine, key: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.id == key)).one()


# PostgreSQL's JSONB keeps no NUL in text and turns a float past 2**53 into an integer:
# values as the platform's documents hold them (prices, sizes, names).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | texts
    | st.floats(-1e6, 1e6, allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.none() | st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
                                   timezones=st.just(UTC)),
       amount=st.none() | st.decimals(min_value=-10**10, max_value=10**10, places=8),
       flag=st.booleans(), doc=json_values)
def test_a_row_written_hot_reads_back_as_one_written_by_sqlalchemy(
        probe: Engine, at: datetime | None, amount: Decimal | None, flag: bool, doc: Any) -> None:
    hot, plain = _row(at=at, amount=amount, flag=flag, doc=doc), _row(at=at, amount=amount,
                                                                     flag=flag, doc=doc)
    with probe.begin() as conn:
        assert INSERT.execute(conn, hot) == 1
        conn.execute(table.insert(), plain)
        read_hot = SELECT.first(conn, {"key": hot["id"]})
        read_plain = conn.execute(SELECT.statement, {"key": plain["id"]}).one()
    assert _read(probe, hot["id"])[2:] == _read(probe, plain["id"])[2:]
    assert tuple(read_hot)[1:] == tuple(read_plain)[1:]
    assert read_hot.document == doc and read_hot.flag is flag
    assert read_hot.at == at and read_hot.amount == amount


def test_many_rows_one_call_and_an_update_counts_what_it_matched(probe: Engine) -> None:
    rows = [_row(at=datetime(2025, 6, 2, 14, 30, tzinfo=UTC) + timedelta(minutes=i))
            for i in range(3)]
    with probe.begin() as conn, _through_sqlalchemy(probe) as slow:
        assert INSERT.execute(conn, rows) == 3
        assert UPDATE.execute(conn, {"key": rows[1]["id"], "new_flag": True}) == 1
        assert UPDATE.execute(conn, {"key": -1, "new_flag": True}) == 0
        assert SELECT.first(conn, {"key": -1}) is None
    assert slow == []  # all of them on the driver's cursor
    assert [_read(probe, r["id"]).flag for r in rows] == [False, True, False]


def test_it_runs_in_the_connections_transaction(probe: Engine) -> None:
    row = _row()
    with probe.connect() as conn:
        with conn.begin() as tx:
            INSERT.execute(conn, row)
            assert SELECT.first(conn, {"key": row["id"]}).name == row["name"]
            tx.rollback()
        assert SELECT.first(conn, {"key": row["id"]}) is None


def test_a_driver_error_is_sqlalchemys_integrity_error_and_names_the_statement(
        probe: Engine) -> None:
    first = _row()
    with probe.begin() as conn:
        INSERT.execute(conn, first)
    with pytest.raises(sa.exc.IntegrityError) as raised, probe.begin() as conn:
        INSERT.execute(conn, _row(name=first["name"]))
    assert "hot_sql_probe" in str(raised.value)
    with pytest.raises(sa.exc.StatementError), probe.begin() as conn:  # a type refuses it
        INSERT.execute(conn, _row(at=datetime(2025, 1, 1)))  # naive: refused by UTCDateTime


def test_what_needs_more_than_bound_values_runs_through_sqlalchemy(probe: Engine) -> None:
    row = _row()
    del row["note"]  # the column's Python-side default applies
    with probe.begin() as conn, _through_sqlalchemy(probe) as slow:
        INSERT.execute(conn, row)
    assert len(slow) == 1
    assert _read(probe, row["id"]).note == "defaulted"
    expanding = HotStatement(sa.select(table.c.id, table.c.name).where(
        table.c.id.in_(sa.bindparam("keys", expanding=True))))
    with probe.begin() as conn:
        assert expanding.first(conn, {"keys": [-1, row["id"]]}).name == row["name"]
        assert expanding.first(conn, {"keys": [-1]}) is None


def test_in_a_pipeline_what_needs_an_answer_waits_for_it_and_the_commit_takes_the_rest(
        probe: Engine) -> None:
    rows = [_row(), _row()]
    with probe.connect() as conn:
        conn.begin()
        pipeline = Pipeline(conn).open()
        assert pipeline.is_open is (probe.dialect.name == "postgresql")
        INSERT.send(conn, rows)  # on PostgreSQL: not answered yet
        assert UPDATE.execute(conn, {"key": rows[0]["id"], "new_flag": True}) == 1
        assert SELECT.first(conn, {"key": rows[1]["id"]}).flag is False
        with pytest.raises(sa.exc.IntegrityError):  # refused: PostgreSQL says so at the commit
            INSERT.send(conn, _row(name=rows[0]["name"]))
            pipeline.commit()
        pipeline.close(RuntimeError("the commit failed"))
    with probe.connect() as conn:  # rolled back, and the connection is clean
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
        conn.rollback()
        conn.begin()
        pipeline = Pipeline(conn).open()
        INSERT.send(conn, rows)
        pipeline.commit()  # the COMMIT and the pipeline's Sync go in one round trip
        assert not pipeline.is_open and conn.connection.dbapi_connection is not None
        if probe.dialect.name == "postgresql":
            import psycopg

            raw = conn.connection.dbapi_connection
            assert raw.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        pipeline.close()
    assert [_read(probe, r["id"]).flag for r in rows] == [False, False]
