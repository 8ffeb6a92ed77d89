"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from sqlalchemy.sql.type_api import _BindProcessorType


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite would otherwise return naive datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> _BindProcessorType[datetime] | None:
        """On SQLite, the text SQLAlchemy's DATETIME stores, in one step: a runner's bar
        binds a dozen datetimes before its order is sent, most of them the same `now`
        (the last one's text is reused). Identical to the general path (a test says so)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        last: list[tuple[datetime | None, str | None]] = [(None, None)]

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            seen, text = last[0]  # one tuple, replaced whole: safe across threads
            if value is seen:
                return text
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            at = value if value.tzinfo is UTC else value.astimezone(UTC)
            text = (f"{at.year:04d}-{at.month:02d}-{at.day:02d} "
                    f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{at.microsecond:06d}")
            last[0] = (value, text)
            return text

        return process


class Money(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC on PostgreSQL, text on SQLite (which has no exact decimal)."""

    impl = sa.Numeric(24, 8)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(24, 8))

    def process_bind_param(self, value: Decimal | int | str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)) if not isinstance(value, Decimal) else value


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
