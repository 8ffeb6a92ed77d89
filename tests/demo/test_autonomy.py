"""`botwarden demo autonomy`: the timeline checker alone, and the scenario once end to end on
real worker processes (SQLite).

Set BOTWARDEN_SKIP_AUTONOMY_DEMO=1 to skip the end-to-end run (about two minutes)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.data.providers.base import Bar
from botwarden.demo.autonomy import evidence, timeline
from botwarden.demo.autonomy.expected import EXPECTED
from botwarden.demo.autonomy.timeline import Event, Expected, exit_code, judge
from botwarden.domain.trading import OrderType, Side
from botwarden.trading.order_store import NewOrder
from tests.trading.runner_support import (
    NOW,
    flat_bar,
    make_bot,
    paper_manager,
    risk_context,
)

T0 = datetime(2025, 5, 7, 22, 0, tzinfo=UTC)


def story(expectations: tuple[Expected, ...] = EXPECTED) -> list[Event]:
    """One event meeting each expectation, a second apart, in the listed order."""
    return [Event(T0 + timedelta(seconds=i), e.source, e.subject or "any", e.kind)
            for i, e in enumerate(expectations)]


def test_expectations_name_earlier_ones_only() -> None:
    names: set[str] = set()
    for expected in EXPECTED:
        assert expected.after is None or expected.after in names, expected.name
        assert expected.name not in names
        names.add(expected.name)


def test_every_expected_event_seen_exits_0() -> None:
    verdicts = judge(EXPECTED, story())
    assert all(v.passed for v in verdicts)
    assert exit_code(verdicts) == 0
    assert timeline.summary(verdicts).startswith("autonomy demo: PASS")


@given(st.sampled_from(EXPECTED))
def test_a_missing_event_exits_1_and_is_named(missing: Expected) -> None:
    events = [e for e, x in zip(story(), EXPECTED, strict=True) if x is not missing]
    verdicts = judge(EXPECTED, events)
    assert exit_code(verdicts) == 1
    failed = [v.expected.name for v in verdicts if not v.passed]
    assert missing.name in failed
    assert f"FAIL  {missing.name}" in "\n".join(timeline.render_verdicts(verdicts))
    assert missing.name in timeline.summary(verdicts)


def test_an_event_before_the_one_it_must_follow_does_not_count() -> None:
    failover = Expected("failover", "", "integration_events", "FAILOVER", "data_feed")
    failback = Expected("failback", "", "integration_events", "FAILBACK", "data_feed",
                        after="failover")
    events = [Event(T0, "integration_events", "data_feed", "FAILBACK"),
              Event(T0 + timedelta(seconds=1), "integration_events", "data_feed", "FAILOVER")]
    verdicts = judge([failover, failback], events)
    assert [v.passed for v in verdicts] == [True, False]
    assert exit_code(verdicts) == 1
    events.append(Event(T0 + timedelta(seconds=2), "integration_events", "data_feed",
                        "FAILBACK"))
    assert exit_code(judge([failover, failback], events)) == 0


def test_unmet_prerequisite_fails_what_follows() -> None:
    first = Expected("first", "", "kill_events", "DAILY_LOSS_BREACH by risk_monitor", "bot")
    then = Expected("then", "", "fills", "KILL_FLATTEN FILL", "bot", after="first")
    events = [Event(T0, "fills", "bot", "KILL_FLATTEN FILL")]
    assert [v.passed for v in judge([first, then], events)] == [False, False]


def test_subject_source_and_alternative_kinds() -> None:
    requeued = Expected("requeued", "", "job_run_events", "RUNNING->QUEUED LEASE_EXPIRED",
                        "crash-bot", also=("DEGRADED->QUEUED LEASE_EXPIRED",))
    wrong_bot = Event(T0, "job_run_events", "loss-bot", "RUNNING->QUEUED LEASE_EXPIRED")
    wrong_table = Event(T0, "bot_jobs", "crash-bot", "RUNNING->QUEUED LEASE_EXPIRED")
    assert exit_code(judge([requeued], [wrong_bot, wrong_table])) == 1
    other_kind = Event(T0, "job_run_events", "crash-bot", "DEGRADED->QUEUED LEASE_EXPIRED")
    assert exit_code(judge([requeued], [other_kind])) == 0


def test_no_expectation_is_no_pass() -> None:
    assert exit_code(judge([], story())) == 1


def test_timeline_is_rendered_in_time_order() -> None:
    late = Event(T0 + timedelta(seconds=5), "kill_events", "loss-bot", "LATE", "b")
    early = Event(T0, "integration_events", "data_feed", "EARLY", "a")
    lines = timeline.render_timeline([late, early], start=T0)
    assert "EARLY" in lines[0] and lines[0].lstrip().startswith("+0.0s")
    assert "LATE" in lines[1] and "+5.0s" in lines[1]
    assert timeline.render_timeline([]) == ["(no events)"]


@pytest.mark.skipif(os.environ.get("BOTWARDEN_SKIP_AUTONOMY_DEMO") == "1",
                    reason="BOTWARDEN_SKIP_AUTONOMY_DEMO=1")
def test_autonomy_demo_end_to_end(tmp_path: Path) -> None:
    from botwarden.demo.autonomy.scenario import Demo, DemoOptions

    lines: list[str] = []
    code = Demo(DemoOptions(work_dir=tmp_path / "demo", timeout_seconds=280),
                out=lines.append).run()
    output = "\n".join(lines)
    assert code == 0, output
    for expected in EXPECTED:
        assert f"PASS  {expected.name}" in output, output
    # The timeline shows the story's key events as read from the store.
    for kind in ("FAILOVER", "FAILBACK", "DAILY_LOSS_BREACH by risk_monitor",
                 "KILL_FLATTEN FILL", "RECLAIMED", "RECONCILED_AT_START"):
        assert f" {kind}" in output, kind


# --- the book checks read from the store --------------------------------------------------

def _bar(price: float) -> Bar:
    return flat_bar(NOW, price)


def _checks(engine: Engine, bot_id: str) -> list[Event]:
    cast = evidence.Cast(since=T0, symbol="MES", bots={bot_id: "crash-bot"})
    with Session(engine) as session:
        return evidence.book_checks(session, cast, bot_id)


BOOK_EXPECTATIONS = [e for e in EXPECTED
                     if e.source in ("orders", "fills", "positions") and e.subject == "crash-bot"]


def test_book_checks_pass_when_each_fill_was_applied_once(engine: Engine,
                                                          settings: Settings) -> None:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    manager.place(NewOrder("ev-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    manager.on_fills(manager.broker.on_bar("MES", _bar(5000.0)))
    events = _checks(engine, bot_id)
    assert {e.kind for e in events} == {"ORDERS_ONCE", "FILLS_ONCE", "POSITION_AGREES"}
    assert exit_code(judge(BOOK_EXPECTATIONS, events)) == 0


def test_book_checks_name_a_broker_fill_we_never_applied(engine: Engine,
                                                         settings: Settings) -> None:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    manager.place(NewOrder("ev-2", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    fills = manager.broker.on_bar("MES", _bar(5000.0))  # filled at the broker; never applied
    events = _checks(engine, bot_id)
    kinds = {e.kind for e in events}
    assert {"ORDERS_ONCE", "FILLS_NOT_ONCE", "POSITION_DIFFERS"} == kinds
    assert fills[0].fill_id in next(e.text for e in events if e.kind == "FILLS_NOT_ONCE")
    assert exit_code(judge(BOOK_EXPECTATIONS, events)) == 1


def test_the_command_is_registered() -> None:
    from typer.testing import CliRunner

    from botwarden.cli import app

    result = CliRunner().invoke(app, ["demo", "autonomy", "--help"])
    assert result.exit_code == 0, result.output
    assert "--database-url" in result.output and "--storm-calls" in result.output
