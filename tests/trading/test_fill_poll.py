"""Polling a real broker's fills for one bot (fill_poll): the overlap that catches a fill
listed late, each fill handed over once, and only the bot's own orders' fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from botwarden.domain.orders import client_id_prefix
from botwarden.domain.trading import Side
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.fill_poll import FillPoll

BOT = "0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6"
OTHER_BOT = "0192f3a4b5c6d7e8f9ffffffffffffff"
T0 = datetime(2025, 12, 1, 15, 0, tzinfo=UTC)


def fill(fill_id: str, at: datetime, bot_id: str = BOT) -> FillReport:
    return FillReport(fill_id, f"{client_id_prefix(bot_id)}1764601200-e", "1", "MES",
                      Side.BUY, 1, Decimal("6850.25"), None, at)


class ListedFills:
    """A broker whose list of fills grows as the test says; records each `since` asked."""

    def __init__(self) -> None:
        self.listed: list[FillReport] = []
        self.asked: list[datetime | None] = []

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        self.asked.append(since)
        return [f for f in self.listed if since is None or f.at >= since]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_fill_listed_late_is_still_taken_once() -> None:
    broker, clock = ListedFills(), Clock()
    poll = FillPoll(broker, BOT, clock, overlap=timedelta(minutes=5))  # type: ignore[arg-type]
    broker.listed.append(fill("a", T0 - timedelta(seconds=30)))
    assert [f.fill_id for f in poll()] == ["a"]
    clock.now = T0 + timedelta(minutes=1)
    # "b" happened before the previous poll but the broker lists it only now.
    broker.listed.append(fill("b", T0 - timedelta(seconds=1)))
    assert [f.fill_id for f in poll()] == ["b"]  # "a" is not handed over again
    assert broker.asked == [None, T0 - timedelta(minutes=5)]
    clock.now = T0 + timedelta(minutes=2)
    assert poll() == []


def test_fills_older_than_the_window_are_forgotten() -> None:
    broker, clock = ListedFills(), Clock()
    poll = FillPoll(broker, BOT, clock, overlap=timedelta(minutes=5))  # type: ignore[arg-type]
    broker.listed.append(fill("a", T0))
    poll()
    clock.now = T0 + timedelta(minutes=20)
    assert poll() == []
    assert poll._handed == {}  # "a" can no longer be listed: nothing kept for it


def test_only_the_bots_own_fills_are_taken() -> None:
    broker, clock = ListedFills(), Clock()
    poll = FillPoll(broker, BOT, clock)  # type: ignore[arg-type]
    mine = fill("mine", T0)
    broker.listed += [mine, fill("theirs", T0, OTHER_BOT),
                      FillReport("manual", "tradovate:8812347800", "8812347800", "MES",
                                 Side.SELL, 1, Decimal("6851"), None, T0)]
    assert poll() == [mine]


class SignallingFills(ListedFills):
    """A broker that says when it learnt of a fill (as Tradovate's user sync does)."""

    def __init__(self) -> None:
        super().__init__()
        self.revision: int | None = None

    def fill_revision(self) -> int | None:
        return self.revision


def test_between_bars_it_asks_only_when_the_broker_learnt_of_a_fill() -> None:
    broker, clock = SignallingFills(), Clock()
    poll = FillPoll(broker, BOT, clock)  # type: ignore[arg-type]
    broker.listed.append(fill("a", T0))
    assert poll.between_bars() == [] and broker.asked == []  # it cannot tell: not asked
    broker.revision = 1
    assert [f.fill_id for f in poll.between_bars()] == ["a"]
    assert poll.between_bars() == [] and len(broker.asked) == 1  # nothing new: not asked
    broker.listed.append(fill("b", T0 + timedelta(seconds=5)))
    broker.revision = 2
    assert [f.fill_id for f in poll.between_bars()] == ["b"]
    assert poll() == []  # the next bar's poll hands neither over again


def test_a_broker_without_the_signal_is_asked_with_bars_only() -> None:
    broker = ListedFills()
    broker.listed.append(fill("a", T0))
    poll = FillPoll(broker, BOT, Clock())  # type: ignore[arg-type]
    assert poll.between_bars() == [] and broker.asked == []
