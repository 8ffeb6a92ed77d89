from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from botwarden.store.types import UTCDateTime

DIALECT = sqlite.dialect()


def _general(value: datetime) -> str:
    """What SQLAlchemy's own path stores: our UTC conversion, then SQLite's DATETIME."""
    converted = UTCDateTime().process_bind_param(value, DIALECT)
    process = sa.DateTime(timezone=True).dialect_impl(DIALECT).bind_processor(DIALECT)
    assert process is not None
    return process(converted)  # type: ignore[no-any-return]


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                               timezone(timedelta(hours=9, minutes=30))])))
def test_the_sqlite_fast_path_stores_what_sqlalchemy_would(value: datetime) -> None:
    process = UTCDateTime().bind_processor(DIALECT)
    assert process is not None
    assert process(value) == _general(value)
    assert process(value) == _general(value)  # the reused text of the same value too


def test_the_sqlite_fast_path_refuses_naive_datetimes_and_passes_none() -> None:
    process = UTCDateTime().bind_processor(DIALECT)
    assert process is not None
    assert process(None) is None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2025, 1, 1))
