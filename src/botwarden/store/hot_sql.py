"""Statements on a runner's bar, run on the database driver's own cursor.

SQLAlchemy still does the work that matters: it compiles the statement (once per dialect
and set of parameter names: its SQL, the order of its parameters) and its column types
convert the values both ways (JSON, UTC datetimes, decimals, booleans, PostgreSQL's JSONB
adapters). What a `HotStatement` skips is the execution context SQLAlchemy builds around
every execute (30-70 us a statement in the runner latency bench: more than SQLite takes to
run one), on the path from a bar to its orders. Driver errors come back as SQLAlchemy's
own exception classes (an `IntegrityError` is still `sqlalchemy.exc.IntegrityError`), so
callers catch what they would have caught. The statement runs in whatever transaction
`conn` has open.

On PostgreSQL a `Pipeline` (psycopg's pipeline mode) sends statements without waiting for
each one's answer: a runner's bar sends its BEGIN with its gate query, then its intents with
their COMMIT, one round trip each. Inside one, only hot statements and the commit may run
(SQLAlchemy's own execution reads a result's description, which psycopg leaves empty there
until the results come back).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Executable

Row = Mapping[str, Any]
Convert = Callable[[Any], Any] | None


@dataclass
class _Prepared:
    sql: str
    names: tuple[str, ...]  # the statement's parameters, in its order
    convert: tuple[Convert, ...]  # each one's type's bind processor
    positional: bool
    dialect: Dialect
    # A query's rows: their tuple type and each column's result processor, worked out at
    # its first run (a PostgreSQL processor depends on the type the driver reports).
    row_type: Any = None
    row_convert: tuple[Convert, ...] = field(default_factory=tuple)

    def args(self, row: Row) -> Any:
        values = [row[name] if conv is None else conv(row[name])
                  for name, conv in zip(self.names, self.convert, strict=True)]
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


class HotStatement:
    """An INSERT, UPDATE, DELETE or SELECT. One that needs more than compiled SQL and bound
    values (a column's Python-side default the caller left out, an expanding IN) runs
    through SQLAlchemy's own execution instead (the rowcount is then SQLAlchemy's)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared | None] = {}

    def execute(self, conn: Connection, rows: Row | Sequence[Row]) -> int:
        """Run once for a mapping, or once per row for a sequence (the driver's
        executemany). Returns the driver's rowcount (in a pipeline: after its answer)."""
        return int(self._run(conn, rows, query=False))

    def send(self, conn: Connection, rows: Row | Sequence[Row]) -> None:
        """As `execute`, for a caller that needs no count: in a pipeline it goes with the
        next statement that waits (its errors too)."""
        self._run(conn, rows, query=False, counted=False)

    def first(self, conn: Connection, params: Row) -> Any:
        """A query's first row (a named tuple of converted values), or None."""
        return self._run(conn, params, query=True)

    def _run(self, conn: Connection, rows: Row | Sequence[Row], *, query: bool,
             counted: bool = True) -> Any:
        batch: Sequence[Row] | None = None if isinstance(rows, Mapping) else rows
        if batch is not None and not batch:
            return 0  # no rows: nothing to run
        first = rows if isinstance(rows, Mapping) else rows[0]
        prepared = self._prepare(conn.dialect, tuple(first))
        if prepared is None:
            result = conn.execute(self.statement, rows)
            return result.first() if query else result.rowcount
        dbapi = conn.dialect.loaded_dbapi
        args: Any = rows
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            if batch is not None:
                args = [prepared.args(row) for row in batch]
                cursor.executemany(prepared.sql, args)
            else:
                args = prepared.args(first)
                cursor.execute(prepared.sql, args)
            if query:
                return self._first_row(cursor, prepared)  # a fetch waits for its answer
            if counted and id(raw) in _pipelines:
                _pipelines[id(raw)].sync()
            return cursor.rowcount
        except Exception as error:  # a driver's error, or a value its type refused
            raise exc.DBAPIError.instance(prepared.sql, args, error, dbapi.Error,
                                          dialect=conn.dialect) from error
        finally:
            cursor.close()

    def _prepare(self, dialect: Dialect, keys: tuple[str, ...]) -> _Prepared | None:
        key = (dialect.name, keys)
        if key not in self._prepared:
            self._prepared[key] = _prepare(self.statement, dialect, keys)
        return self._prepared[key]

    def _first_row(self, cursor: Any, prepared: _Prepared) -> Any:
        raw = cursor.fetchone()
        if raw is None:
            return None
        if prepared.row_type is None:
            columns = list(self.statement.selected_columns)  # type: ignore[attr-defined]
            dialect = prepared.dialect
            prepared.row_convert = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                for column, described in zip(columns, cursor.description, strict=True))
            prepared.row_type = namedtuple(  # type: ignore[misc]
                "HotRow", [column.key for column in columns])
        return prepared.row_type._make(
            value if conv is None else conv(value)
            for value, conv in zip(raw, prepared.row_convert, strict=True))


def _prepare(statement: Executable, dialect: Dialect, keys: tuple[str, ...],
             ) -> _Prepared | None:
    """None: the statement needs SQLAlchemy's execution with these keys."""
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect, column_keys=list(keys))
    if compiled.positional:
        names = tuple(compiled.positiontup)
    else:
        names = tuple(dict.fromkeys(compiled.bind_names.values()))
    convert = []
    for name in names:
        bind = compiled.binds[name]
        if bind.expanding or name not in keys:
            return None
        convert.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
    return _Prepared(compiled.string, names, tuple(convert), compiled.positional, dialect)


_pipelines: dict[int, Any] = {}  # driver connection id -> its open psycopg pipeline


class Pipeline:
    """psycopg's pipeline mode on `conn`'s driver connection, from `open` to `close`
    (nothing on another database). `commit` commits `conn`'s transaction inside it: what
    was sent goes with the COMMIT, in one round trip."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._raw: Any = None
        self._scope: Any = None  # psycopg's pipeline() context: it yields the pipeline

    def open(self) -> Pipeline:
        if self.conn.dialect.name == "postgresql" and self._scope is None:
            self._raw = self.conn.connection.dbapi_connection
            self._scope = self._raw.pipeline()
            _pipelines[id(self._raw)] = self._scope.__enter__()
        return self

    @property
    def is_open(self) -> bool:
        return self._scope is not None

    def commit(self) -> None:
        """Commit `conn`'s transaction. In pipeline mode the COMMIT is queued and the
        pipeline left: leaving sends the one Sync that answers the COMMIT with everything
        the pipeline held, one round trip where a commit inside it and then leaving took
        two. A refusal comes back as SQLAlchemy's exception, with the pipeline left and the
        transaction rolled back."""
        if self._scope is not None:
            dbapi = self.conn.dialect.loaded_dbapi
            try:
                self._raw.execute("COMMIT")
                self.close()
            except dbapi.Error as error:
                self._raw.rollback()
                raise exc.DBAPIError.instance("COMMIT", None, error, dbapi.Error,
                                              dialect=self.conn.dialect) from error
        self.conn.commit()  # SQLAlchemy's side; the driver's transaction is over already

    def close(self, error: BaseException | None = None) -> None:
        """Leave pipeline mode, waiting for what is still unanswered. After an `error` the
        transaction is rolled back on the driver's connection: a statement refused in the
        pipeline leaves it aborted with its COMMIT never run, and SQLAlchemy, which saw its
        commit fail, would return the connection to its pool that way."""
        scope, self._scope = self._scope, None
        if scope is None:
            return
        del _pipelines[id(self._raw)]
        try:
            scope.__exit__(None if error is None else type(error), error, None)
        finally:
            if error is not None:
                self._raw.rollback()
