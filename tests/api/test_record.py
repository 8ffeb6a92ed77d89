from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.clock import utcnow
from botwarden.store.models import BotJob, Order, Trace, TradeLog
from tests.api.conftest import ApiUser


def _seed(app: FastAPI, user: ApiUser, bot_id: str) -> None:
    now = utcnow()
    with app.state.session_factory() as session:
        job = BotJob(account_id=user.account_id, bot_id=bot_id, job_type="RUNNER",
                     status="RUNNING")
        session.add(job)
        session.flush()
        for source, pnl, invalid in (("PAPER", "12.50", False), ("SHADOW", "-2.25", False),
                                     ("LIVE", "40", False), ("TEST", "999", False),
                                     ("PAPER", "1000", True)):
            session.add(TradeLog(bot_id=bot_id, bot_instance_id=job.id, source_type=source,
                                 symbol="MES", side="LONG", qty=1,
                                 entry_time=now - timedelta(minutes=5), exit_time=now,
                                 entry_price=Decimal("5000"), exit_price=Decimal("5002.5"),
                                 pnl=Decimal(pnl), is_invalid=invalid))
        session.add(Order(bot_id=bot_id, job_id=job.id, client_order_id="c-1", broker="paper",
                          mode="PAPER", symbol="MES", side="BUY", qty=1, order_type="MARKET",
                          status="UNRESOLVED"))
        session.add(Trace(bot_id=bot_id, job_id=job.id, kind="NO_TRADE", bar_time=now,
                          decision="ENTER_LONG", reason_code="OUTSIDE_SESSION"))
        session.commit()


def test_trading_record_and_pnl(app: FastAPI, client: TestClient, user: ApiUser,
                                bot_id: str) -> None:
    _seed(app, user, bot_id)
    h = user.headers
    trades = client.get(f"/api/bots/{bot_id}/trades", headers=h).json()
    assert sorted(t["source_type"] for t in trades) == ["LIVE", "PAPER", "SHADOW"]
    assert len(client.get(f"/api/bots/{bot_id}/trades?source_type=TEST", headers=h).json()) == 1
    bot = client.get(f"/api/bots/{bot_id}", headers=h).json()
    assert Decimal(bot["live_pnl"]) == Decimal("40") and Decimal(bot["sim_pnl"]) == Decimal("10.25")
    orders = client.get(f"/api/bots/{bot_id}/orders", headers=h).json()
    assert [o["status"] for o in orders] == ["UNRESOLVED"]
    traces = client.get(f"/api/bots/{bot_id}/no-trade-traces", headers=h).json()
    assert traces[0]["reason_code"] == "OUTSIDE_SESSION"
    assert client.get(f"/api/bots/{bot_id}/decision-traces", headers=h).json() == []
    assert client.get(f"/api/bots/{bot_id}/positions", headers=h).json() == []
    assert client.get(f"/api/bots/{bot_id}/equity", headers=h).json() == []
    sanity = client.get("/api/data-sanity", headers=h).json()
    assert sanity["test_source_trades"] == 1 and sanity["invalid_trades"] == 1
    assert sanity["orphaned_jobs"] == 0 and sanity["trades_without_context"] == 0
    assert sanity["unresolved_orders"] == 1 and sanity["clean"] is False


def test_clean_account(client: TestClient, user: ApiUser, bot_id: str) -> None:
    sanity = client.get("/api/data-sanity", headers=user.headers).json()
    assert sanity["clean"] is True
