"""RunnerCore's own figures: a fill on a session's first bar counts for that session's day,
not for the day before (the daily loss limit and the bands read the day's figure)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botwarden.data.calendar import get_calendar
from botwarden.data.providers.base import Bar
from botwarden.domain.instruments import get_instrument
from botwarden.domain.ledger import Book
from botwarden.domain.trading import Side
from botwarden.research.strategies import build_strategy
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.fill_ledger import AppliedFill
from botwarden.trading.runner_core import Money, RunnerCore


class HeldFills:
    """The order manager as RunnerCore sees it on a bar without orders: these fills come."""

    def __init__(self, fills: list[AppliedFill]) -> None:
        self.fills = fills
        self.books: dict[str, Book] = {}
        self.unsettled = False

    def on_fills(self, reports: Sequence[FillReport], *, new: bool = False) -> list[Any]:
        fills, self.fills = self.fills, []
        return fills

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def transitions_deferred(self) -> Iterator[None]:
        yield

    def position(self, symbol: str) -> int:
        return 0


def _bar(at: datetime) -> Bar:
    return Bar("MES", "1m", int(at.timestamp() * 1e9), 5000.0, 5001.0, 4999.0, 5000.0, 10.0)


def _core(fills: list[AppliedFill], *, before: Decimal, day: int) -> tuple[RunnerCore, Money]:
    """A core whose order manager hands over `fills`; the day's realised is -30, the days
    before's `before`, on trading day `day`."""
    money = Money(capital=Decimal(50_000), realized_before_today=before,
                  daily_realized=Decimal(-30), equity_peak=Decimal(50_000) + before - 30,
                  account_equity=Decimal(50_000), account_peak=Decimal(50_000), session=day)
    core = RunnerCore("bot-1", build_strategy("sma_cross", {"fast": 1, "slow": 2}),
                      get_instrument("MES"), get_calendar(), HeldFills(fills),  # type: ignore[arg-type]
                      None, money)
    return core, money


def test_a_fill_on_a_sessions_first_bar_counts_for_that_day() -> None:
    calendar = get_calendar()
    first_bar = calendar.next_open(datetime(2026, 3, 3, 22, 30, tzinfo=UTC))
    day_before = calendar.session_of(first_bar - timedelta(hours=2))
    assert day_before is not None and calendar.session_of(first_bar) != day_before
    exit_fill = FillReport("f-1", "exit-1", "b-1", "MES", Side.SELL, 1, Decimal("5000"),
                           Decimal("0.62"), first_bar)
    core, money = _core([AppliedFill(exit_fill, Book(), Decimal("12.50"))],
                        before=Decimal(100), day=day_before.toordinal())
    core.on_bar(_bar(first_bar), lambda _bar: [exit_fill])
    assert money.daily_realized == Decimal("12.50")  # the new day's, from its first bar
    assert money.realized_before_today == Decimal(70)  # the day before closed at -30
    session = calendar.session_of(first_bar)
    assert session is not None and money.session == session.toordinal()


def test_a_fill_between_bars_counts_for_the_day_of_its_time() -> None:
    calendar = get_calendar()
    first_bar = calendar.next_open(datetime(2026, 3, 3, 22, 30, tzinfo=UTC))
    last_bar = first_bar - timedelta(hours=2)  # the day before's last bar...
    day_before = calendar.session_of(last_bar - timedelta(minutes=30))
    assert day_before is not None
    opened = first_bar + timedelta(seconds=20)  # ...and a stop filled at the next open
    stop_fill = FillReport("f-2", "bot-1-x:MSL", "b-2", "MES", Side.SELL, 1, Decimal("4990"),
                           Decimal("0.62"), opened)
    core, money = _core([AppliedFill(stop_fill, Book(), Decimal("-40"))],
                        before=Decimal(0), day=day_before.toordinal())
    core.last_bar = _bar(last_bar - timedelta(minutes=1))
    assert core.on_fills_between_bars([]) == []
    assert len(core.on_fills_between_bars([stop_fill])) == 1
    assert money.daily_realized == Decimal("-40")  # the new day's loss, not the day before's
    assert money.realized_before_today == Decimal(-30)
