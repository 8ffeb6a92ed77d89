"""Vectorised validation of imported 1-minute bars: every row is checked at once with polars,
every bad row is named with its first failing rule, and every good row is kept.

Input frame columns: `line` (where the row came from: a file line or a record number), `ts`
(Int64 ns since the epoch, null when the time did not parse), `open`, `high`, `low`, `close`,
`volume` (Float64, null when missing or not a number), and optionally `problem` (a reason
the reader already found, such as extra fields on a CSV line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np
import polars as pl

from botwarden.data.calendar import NS_PER_MINUTE, label_sessions
from botwarden.domain.bars import F64, Bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import Instrument, get_instrument

PRICES = ("open", "high", "low", "close")
VALUES = (*PRICES, "volume")
DUPLICATE_CONFLICT = "duplicate time with conflicting values"
# A float price is on the grid when it is within this many ticks of a whole tick: far below
# any real mistake (a tick is at least 0.01), far above float rounding noise.
_GRID_TOLERANCE_TICKS = 1e-6


@dataclass(frozen=True, slots=True)
class Rejection:
    location: int
    reason: str


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows_read: int
    rows_accepted: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    examples: tuple[Rejection, ...] = ()
    duplicates_dropped: int = 0
    outside_session: int = 0
    location_label: str = "line"

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def summary(self) -> str:
        """Readable sentences: counts per reason and the first few bad rows."""
        parts = [f"{self.rows_accepted} of {self.rows_read} rows accepted"]
        if self.rows_rejected:
            reasons = ", ".join(f"{n} {why}" for why, n in self.rejected_by_reason.items())
            first = ", ".join(
                f"{self.location_label} {r.location} ({r.reason})" for r in self.examples
            )
            parts[0] += f", {self.rows_rejected} rejected: {reasons}"
            parts.append(f"First rejected: {first}")
        if self.duplicates_dropped:
            parts.append(f"{self.duplicates_dropped} exact duplicate row(s) merged")
        if self.outside_session:
            parts.append(
                f"Warning: {self.outside_session} bar(s) fall outside the exchange "
                "sessions; check the file's time zone"
            )
        return ". ".join(parts) + "."


def validate_bars(
    frame: pl.DataFrame,
    symbol: str,
    *,
    location_label: str = "line",
    max_examples: int = 5,
) -> tuple[Bars, ValidationReport]:
    """Split `frame` into valid bars (sorted, unique times, prices snapped exactly onto the
    tick grid) and a report of the rejected rows."""
    instrument = get_instrument(symbol)
    if "problem" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("problem"))
    checked = frame.with_columns(_first_failure(instrument).alias("reason"))
    checked = _reject_conflicting_duplicates(checked)
    good = checked.filter(pl.col("reason").is_null())
    unique = good
    if not bool((good.get_column("ts").diff().drop_nulls() > 0).all()):
        unique = good.unique(subset=["ts"], keep="first", maintain_order=True).sort("ts")
    bars = _to_bars(instrument, unique)
    outside = int((~label_sessions(bars.ts, instrument.calendar).in_session).sum())

    bad = checked.filter(pl.col("reason").is_not_null())
    by_reason = bad.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    examples = bad.sort("line").head(max_examples)
    return bars, ValidationReport(
        rows_read=frame.height,
        rows_accepted=len(bars),
        rejected_by_reason=dict(zip(by_reason["reason"], by_reason["len"], strict=True)),
        examples=tuple(
            Rejection(int(line), str(reason))
            for line, reason in zip(examples["line"], examples["reason"], strict=True)
        ),
        duplicates_dropped=good.height - unique.height,
        outside_session=outside,
        location_label=location_label,
    )


def _reject_conflicting_duplicates(checked: pl.DataFrame) -> pl.DataFrame:
    """Same time twice with different values: no way to know which row is right, so every
    row of that time is rejected. Identical repeats are left for the caller to merge."""
    if not checked.get_column("ts").is_duplicated().any():  # the usual case: nothing to do
        return checked
    passed = checked.filter(pl.col("reason").is_null())
    repeated = passed.filter(pl.col("ts").is_duplicated())
    conflicting = (
        repeated.unique(subset=["ts", *VALUES])
        .group_by("ts")
        .len()
        .filter(pl.col("len") > 1)
        .get_column("ts")
    )
    return checked.with_columns(
        pl.when(pl.col("reason").is_null() & pl.col("ts").is_in(conflicting.implode()))
        .then(pl.lit(DUPLICATE_CONFLICT))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )


def _first_failure(instrument: Instrument) -> pl.Expr:
    """The first rule each row breaks, as text; null when it breaks none."""
    per_tick = _ticks_per_unit(instrument)
    tick = instrument.tick_size
    rules: list[tuple[pl.Expr, str]] = [
        (pl.col("problem").is_not_null(), ""),
        (pl.col("ts").is_null(), "time missing or not parseable"),
        (pl.col("ts") % NS_PER_MINUTE != 0, "time not on a whole minute"),
    ]
    rules += [
        (pl.col(name).is_null() | ~pl.col(name).is_finite(), f"{name} missing or not a number")
        for name in VALUES
    ]
    rules += [(pl.col(name) <= 0, f"{name} price not positive") for name in PRICES]
    rules += [
        (_off_grid(pl.col(name), per_tick), f"{name} off the {tick} tick grid") for name in PRICES
    ]
    rules += [
        (pl.col("high") < pl.max_horizontal("open", "close"), "high below open/close"),
        (pl.col("low") > pl.min_horizontal("open", "close"), "low above open/close"),
        (pl.col("volume") < 0, "volume negative"),
    ]
    # A reader's own finding (rules[0]) is reported as it stands.
    chain: Any = pl.when(rules[0][0]).then(pl.col("problem"))
    for condition, reason in rules[1:]:
        chain = chain.when(condition).then(pl.lit(reason))
    return cast(pl.Expr, chain.otherwise(pl.lit(None, dtype=pl.String)))


def _off_grid(price: pl.Expr, per_tick: int) -> pl.Expr:
    ticks = price * per_tick
    return (ticks - ticks.round(0)).abs() > _GRID_TOLERANCE_TICKS


def _ticks_per_unit(instrument: Instrument) -> int:
    """1 / tick size as an exact integer (4 for 0.25, 100 for 0.01): dividing whole ticks by it
    gives the float nearest the decimal price, which multiplying by 0.01 would not."""
    per_tick = Decimal(1) / instrument.tick_size
    if per_tick != per_tick.to_integral_value():
        raise DomainError(
            "UNSUPPORTED_TICK_SIZE",
            f"{instrument.symbol}'s tick size {instrument.tick_size} does not divide 1",
            "Extend the tick-grid snapping for this instrument.",
            status=422,
        )
    return int(per_tick)


def snap_to_grid(prices: F64, instrument: Instrument) -> F64:
    """Prices moved exactly onto the tick grid (the nearest float to each decimal price)."""
    per_tick = _ticks_per_unit(instrument)
    return np.round(np.asarray(prices, dtype=np.float64) * per_tick) / per_tick


def _to_bars(instrument: Instrument, frame: pl.DataFrame) -> Bars:
    def values(name: str) -> F64:
        return np.asarray(frame.get_column(name).to_numpy(), dtype=np.float64)

    open_, high, low, close = (snap_to_grid(values(name), instrument) for name in PRICES)
    ts = np.asarray(frame.get_column("ts").to_numpy(), dtype=np.int64)
    return Bars(instrument.symbol, "1m", ts, open_, high, low, close, values("volume"))
