"""The kill service's writes when another process wrote first: a kill event is dated after
the bot's last one, and a kill decided on a stale copy of the bot reads the committed state
under the row's lock (no second KILL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillMode, KillState, TriggerCode
from botwarden.services import kill as kill_service
from botwarden.store.models import Bot, KillEvent
from tests.trading.runner_support import make_bot

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _kill(session: Session, bot: Bot, mode: KillMode = KillMode.SOFT) -> KillEvent:
    return kill_service.kill_bot(session, bot, mode=mode, trigger=TriggerCode.MANUAL_KILL,
                                 reason="test", actor="test")


def _trail(engine: Engine, bot_id: str) -> list[tuple[str, datetime]]:
    """The bot's events as GET kill-events orders them (newest first), reversed."""
    with Session(engine) as session:
        events = session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot_id)
                                 .order_by(KillEvent.created_at.desc(), KillEvent.id.desc())
                                 ).all()
        return [(e.event_type, e.created_at) for e in reversed(events)]


def test_the_trail_keeps_its_order_when_a_later_event_read_an_earlier_clock(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step's process read its clock behind the one before (a resurrect that read it
    before the kill's commit, then waited for the bot's row): the trail still lists the
    steps in the order they committed, 1 us apart, and the last one is the bot's state."""
    _, bot_id = make_bot(engine)
    clocks = iter([T0, T0 - timedelta(seconds=1), T0 - timedelta(seconds=2)])
    steps = [lambda s, b: _kill(s, b),
             lambda s, b: kill_service.resurrect_bot(s, b, reason="back", actor="test",
                                                     step_up=False),
             lambda s, b: _kill(s, b, KillMode.HARD)]
    for step in steps:
        monkeypatch.setattr(kill_service, "utcnow", lambda now=next(clocks): now)
        with Session(engine) as session:
            bot = session.get(Bot, bot_id)
            assert bot is not None
            step(session, bot)
            session.commit()
    trail = _trail(engine, bot_id)
    assert [kind for kind, _ in trail] == ["KILL", "RESURRECT", "KILL"]
    assert [at for _, at in trail] == [T0, T0 + timedelta(microseconds=1),
                                       T0 + timedelta(microseconds=2)]
    with Session(engine) as session:
        assert session.get(Bot, bot_id).kill_state == KillState.HARD_KILLED.value  # type: ignore[union-attr]


def test_a_kill_on_a_stale_copy_of_the_bot_answers_already_killed(engine: Engine) -> None:
    """A second process loaded the bot before the first one's kill committed: its kill reads
    the committed state under the row's lock and refuses, not a second KILL over the first."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions take turns by BEGIN IMMEDIATE")
    _, bot_id = make_bot(engine)
    with Session(engine) as late, Session(engine) as first:
        stale = late.get(Bot, bot_id)
        assert stale is not None and stale.kill_state == KillState.NONE.value
        first_bot = first.get(Bot, bot_id)
        assert first_bot is not None
        _kill(first, first_bot, KillMode.HARD)
        first.commit()
        with pytest.raises(DomainError) as refused:
            _kill(late, stale)
        assert refused.value.code == "ALREADY_KILLED"
        late.rollback()
    assert [kind for kind, _ in _trail(engine, bot_id)] == ["KILL"]
    with Session(engine) as session:
        assert session.get(Bot, bot_id).kill_state == KillState.HARD_KILLED.value  # type: ignore[union-attr]
