"""`botwarden backtest`: one backtest from a CSV file or the bar store, as JSON or a table."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import DEFAULT_SYMBOL, get_instrument

if TYPE_CHECKING:
    from botwarden.domain.bars import Bars
    from botwarden.research.engine import BacktestResult

# The research stack (numba, numpy) is imported when the command runs, not when the
# `botwarden` entry point loads, so other subcommands start fast.
STRATEGY_KINDS = ("sma_cross", "ema_cross", "rsi_reversion", "donchian_breakout",
                  "vwap_reversion", "opening_range")

JSON_METRICS = ("trades", "net_pnl", "final_equity", "win_rate", "profit_factor", "expectancy",
                "sharpe", "max_drawdown_pct")


@dataclass(frozen=True)
class _Contract:
    symbol: str
    tick_size: Decimal
    point_value: Decimal
    commission: Decimal


def _decimal(name: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=name) from None


def _contract(symbol: str | None, point_value: str | None, tick_size: str | None,
              commission: str | None) -> _Contract:
    custom_pv = _decimal("--point-value", point_value)
    custom_tick = _decimal("--tick-size", tick_size)
    fee = _decimal("--commission-per-unit", commission)
    if (custom_pv is None) != (custom_tick is None):
        raise typer.BadParameter("give --point-value and --tick-size together")
    if custom_pv is not None and custom_tick is not None:
        if symbol is not None:
            raise typer.BadParameter("give --symbol or --point-value/--tick-size, not both")
        return _Contract("CUSTOM", custom_tick, custom_pv, fee if fee is not None else Decimal(0))
    instrument = get_instrument(symbol or DEFAULT_SYMBOL)
    return _Contract(instrument.symbol, instrument.tick_size, instrument.point_value,
                     fee if fee is not None else instrument.commission_per_side)


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="-p")
        params[name.strip()] = value.strip()
    return params


def backtest_command(
    strategy: str = typer.Option(..., "--strategy", help=f"One of: {', '.join(STRATEGY_KINDS)}."),
    param: list[str] = typer.Option([], "-p", "--param", help="Strategy parameter NAME=VALUE."),
    data: Path | None = typer.Option(None, "--data", help="CSV: time,open,high,low,close,volume."),
    symbol: str | None = typer.Option(None, help="Instrument (default MES); without --data, "
                                                 "its bars come from the bar store."),
    point_value: str | None = typer.Option(None, help="Contract point value (with --tick-size)."),
    tick_size: str | None = typer.Option(None, help="Contract tick size (with --point-value)."),
    timeframe: str = typer.Option("1m", help="Bar store timeframe."),
    start: datetime | None = typer.Option(None, help="Bar store range start (UTC)."),
    end: datetime | None = typer.Option(None, help="Bar store range end (UTC, exclusive)."),
    size: int = typer.Option(1, help="Contracts per position."),
    commission_per_unit: str | None = typer.Option(None, help="Fee per contract per side "
                                                              "(default: the instrument's)."),
    slippage_ticks: int = typer.Option(0, help="Ticks against us on market and stop fills."),
    cash: str = typer.Option("100000", help="Starting equity."),
    stop_loss_ticks: int = typer.Option(0, help="Stop-loss distance in ticks (0: none)."),
    profit_target_ticks: int = typer.Option(0, help="Profit target in ticks (0: none)."),
    flatten_minutes: int = typer.Option(0, help="Flatten this many minutes before each session "
                                                "close (0: hold through)."),
    output: str = typer.Option("table", "--format", help="json or table."),
) -> None:
    """Backtest one strategy on one bar series."""
    from botwarden.research.engine import ExecutionConfig, bar_duration_ns, run_backtest
    from botwarden.research.sessions import flatten_window, sessions_from_gaps
    from botwarden.research.strategies import build_strategy

    if output not in ("json", "table"):
        raise typer.BadParameter("json or table", param_hint="--format")
    try:
        contract = _contract(symbol, point_value, tick_size, commission_per_unit)
        config = ExecutionConfig(
            contract.tick_size, contract.point_value, contract.commission, size=size,
            slippage_ticks=slippage_ticks, cash=_decimal("--cash", cash) or Decimal(0),
            stop_loss_ticks=stop_loss_ticks, profit_target_ticks=profit_target_ticks,
        )
        built = build_strategy(strategy, _params(param))
        if data is not None:
            from botwarden.research.csv_bars import read_csv_bars

            bars = read_csv_bars(data, contract.symbol)
            sessions = sessions_from_gaps(bars.ts)
            days, closes = None, None  # days: UTC dates
        else:
            bars, sessions, closes = _from_bar_store(contract.symbol, timeframe, start, end)
            days = sessions  # calendar session ids are trading dates
        flatten = None
        if flatten_minutes > 0:
            flatten = (flatten_window(bars.ts, sessions, bar_duration_ns(bars), flatten_minutes)
                       if closes is None else bars.ts >= closes - flatten_minutes * 60_000_000_000)
        result = run_backtest(bars, built, config, sessions=sessions, days=days,
                              flatten=flatten, record_equity=False)
    except DomainError as exc:
        typer.echo(f"error {exc.code}: {exc.message}\n{exc.fix}", err=True)
        raise typer.Exit(2) from None
    if output == "json":
        sys.stdout.write(json.dumps(result_json(result)) + "\n")
    else:
        _print_table(result, built.kind, contract.symbol)


def _from_bar_store(symbol: str, timeframe: str, start: datetime | None,
                    end: datetime | None) -> tuple[Bars, Any, Any]:
    """Bars of `symbol` from the store, with calendar session ids and session closes."""
    import numpy as np

    from botwarden.config import get_settings
    from botwarden.data.bar_store import BarStore
    from botwarden.data.calendar import get_calendar

    bars = BarStore.from_settings(get_settings()).load(symbol, start, end, timeframe)
    calendar = get_calendar(get_instrument(symbol).calendar)
    index = calendar.locate(bars.ts)
    inside = index >= 0
    sessions = np.where(inside, calendar.days[np.clip(index, 0, None)], -1).astype(np.int64)
    closes = np.where(inside, calendar.closes[np.clip(index, 0, None)], np.iinfo(np.int64).max)
    return bars, sessions, closes


def result_json(result: BacktestResult) -> dict[str, Any]:
    metrics = result.metrics.as_dict()
    return {
        "trades": [
            {key: value for key, value in trade.as_json().items() if key != "exit_reason"}
            for trade in result.trades()
        ],
        "metrics": {name: metrics[name] for name in JSON_METRICS},
    }


def _print_table(result: BacktestResult, kind: str, symbol: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{kind} on {symbol}")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for name, value in result.metrics.as_dict().items():
        shown = str(value)
        if value is None:
            shown = "n/a"
        elif isinstance(value, float):
            shown = f"{value:,.4f}"
        summary.add_row(name, shown)
    for code, count in result.denials.items():
        summary.add_row(f"denied {code}", str(count))
    console.print(summary)
    trades = result.trades()
    listing = Table(title=f"trades ({len(trades)}; first and last 10)" if len(trades) > 20
                    else f"trades ({len(trades)})")
    for column in ("entry", "exit", "side", "qty", "entry price", "exit price", "pnl", "reason"):
        listing.add_column(column)
    shown_trades = trades if len(trades) <= 20 else trades[:10] + trades[-10:]
    for trade in shown_trades:
        listing.add_row(trade.entry_time.isoformat(), trade.exit_time.isoformat(), trade.side,
                        str(trade.qty), str(trade.entry_price), str(trade.exit_price),
                        f"{trade.pnl:,.2f}", trade.exit_reason)
    console.print(listing)
