"""Migrations run up and down on every backend, and the append-only triggers hold."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from botwarden.store.db import make_engine
from botwarden.store.migrate import downgrade, upgrade
from botwarden.store.models import Base


def test_down_to_base_and_up_again(database_url: str) -> None:
    downgrade(database_url, "base")
    engine = make_engine(database_url)
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_kill_events_are_append_only(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (id, name, gate_profile, starting_capital, "
                             "kill_switch_engaged, created_at) VALUES "
                             "('a1', 'acct', 'standard', '50000', false, CURRENT_TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO bots (id, account_id, name, strategy_kind, "
                             "strategy_params, symbol, timeframe, stage, is_trading_enabled, "
                             "kill_state, trading_state, created_at) VALUES ('b1', 'a1', 'bot', "
                             "'sma_cross', '{}', 'MES', '1m', 'TRIALS', false, 'NONE', 'ACTIVE', "
                             "CURRENT_TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO kill_events (id, bot_id, account_id, event_type, "
                             "state, trigger_code, reason, actor, metadata, created_at) VALUES "
                             "('k1', 'b1', 'a1', 'KILL', 'HARD_KILLED', 'MANUAL_KILL', 'r', 'u', "
                             "'{}', CURRENT_TIMESTAMP)")
    for statement in ("UPDATE kill_events SET reason = 'x'", "DELETE FROM kill_events"):
        with pytest.raises(sa.exc.DatabaseError), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    # Deleting the bot takes its events with it (the only way a row may leave).
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM bots WHERE id = 'b1'")
        assert conn.exec_driver_sql("SELECT count(*) FROM kill_events").scalar() == 0


def test_orphan_jobs_and_trades_are_impossible(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO bot_jobs (id, account_id, bot_id, job_type, status, "
                             "priority, payload, progress, attempts, max_attempts, created_at) "
                             "VALUES ('j1', 'nope', 'nobot', 'RUNNER', 'QUEUED', 0, '{}', 0, 0, 3, "
                             "CURRENT_TIMESTAMP)")
