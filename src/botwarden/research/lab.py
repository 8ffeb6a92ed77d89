"""One backtest of a run spec with everything a person looks at: metrics, the trade list,
the daily equity curve, denied orders, and the exact ledger's check of the float engine."""

from __future__ import annotations

from typing import Any

import numpy as np

from botwarden.data.calendar import to_datetime
from botwarden.research.engine import BacktestResult, run_backtest
from botwarden.research.ledger import ledger_final_equity, ledger_mismatches
from botwarden.research.market import MarketBars
from botwarden.research.spec import RunSpec
from botwarden.research.strategies import build_strategy

MAX_STORED_TRADES = 5000  # the newest are kept beyond that; the metrics count them all


def backtest(market: MarketBars, spec: RunSpec) -> BacktestResult:
    strategy = build_strategy(spec.kind, spec.params)
    return run_backtest(market.bars, strategy, spec.config, sessions=market.sessions,
                        days=market.days, flatten=market.flatten(spec.flatten_minutes),
                        record_equity=False)


def daily_equity_points(market: MarketBars, result: BacktestResult) -> list[dict[str, Any]]:
    """Each trading day's closing equity, stamped with that day's last bar."""
    days = market.days
    last = np.flatnonzero(np.append(days[1:] != days[:-1], True))
    return [{"time": to_datetime(int(market.bars.ts[i])).isoformat(), "equity": float(e)}
            for i, e in zip(last, result.daily_equity, strict=True)]


def backtest_document(market: MarketBars, result: BacktestResult) -> dict[str, Any]:
    trades = result.trades()
    kept = trades[-MAX_STORED_TRADES:]
    position = result.open_position
    return {
        "trades": [t.as_json() for t in kept],
        "trades_total": len(trades),
        "trades_truncated": len(kept) < len(trades),
        "equity": daily_equity_points(market, result),
        "denials": result.denials,
        "open_position": None if position is None else {
            "side": position.side, "qty": position.qty,
            "entry_time": position.entry_time.isoformat(),
            "entry_price": str(position.entry_price), "mark_price": str(position.mark_price)},
        "ledger": {
            "net_pnl": str(sum((t.pnl for t in trades), start=result.config.cash * 0)),
            "final_equity": str(ledger_final_equity(result)),
            "mismatches": ledger_mismatches(result),
        },
    }
