"""`botwarden sweep`, `botwarden matrix` and `botwarden evolve`: the research jobs' own code
on bars from the bar store, run from a terminal with a progress bar (on stderr, so that
`--format json` leaves stdout holding only the JSON)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import typer

from botwarden.domain.errors import DomainError

STRATEGY_HELP = "Strategy kind (see `GET /api/strategies`), e.g. sma_cross."


def _pairs(pairs: list[str], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint=option)
        out[name.strip()] = value.strip()
    return out


def _number(text: str, option: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=option) from None
    return int(value) if value.is_integer() else value


def _decimal(text: str | None, option: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=option) from None


class _Common:
    """The options every research command shares, turned into a run spec and its bars."""

    def __init__(self, strategy: str, param: list[str], symbol: str, timeframe: str,
                 start: datetime | None, end: datetime | None, dataset: str | None, size: int,
                 slippage_ticks: int, commission_per_unit: str | None, cash: str,
                 flatten_minutes: int, workers: int | None) -> None:
        from botwarden.config import get_settings
        from botwarden.research.executors import make_executor
        from botwarden.research.spec import build_spec

        self.settings = get_settings()
        self.spec = build_spec(
            kind=strategy, params=dict(_pairs(param, "-p")), symbol=symbol,
            timeframe=timeframe, cash=_decimal(cash, "--cash") or Decimal(100_000), size=size,
            slippage_ticks=slippage_ticks,
            commission_per_side=_decimal(commission_per_unit, "--commission-per-unit"),
            flatten_minutes=flatten_minutes, start=_aware(start), end=_aware(end),
            dataset=dataset)
        self.executor = make_executor(self.settings, workers)

    def open(self, timeframe: str | None = None) -> Any:
        from botwarden.research.market import open_series, remember

        s = self.spec
        market, provenance, ref = open_series(self.settings.data_dir, s.symbol,
                                              timeframe or s.timeframe, s.start, s.end, s.dataset)
        remember(ref, market)
        return market, provenance, ref


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _with_progress(title: str, work: Any, quiet: bool) -> Any:
    """Run `work(progress)` under a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress("[bold]{task.description}", BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, disable=quiet) as bar:
        task = bar.add_task(title, total=1.0)
        result = work(lambda fraction: bar.update(task, completed=fraction))
        bar.update(task, completed=1.0)
    return result


def _emit(document: dict[str, Any], output: str, table: Any) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(document, default=str) + "\n")
    else:
        from rich.console import Console

        Console().print(table(document))


def _fail(exc: DomainError) -> None:
    typer.echo(f"error {exc.code}: {exc.message}\n{exc.fix}", err=True)
    raise typer.Exit(2) from None


COMMON = {
    "param": typer.Option([], "-p", "--param", help="Strategy parameter NAME=VALUE."),
    "symbol": typer.Option("MES", help="Instrument; its bars come from the bar store."),
    "timeframe": typer.Option("1m", help="1m, 5m or 15m (resampled from 1m)."),
    "start": typer.Option(None, help="Range start (UTC)."),
    "end": typer.Option(None, help="Range end (UTC, exclusive)."),
    "dataset": typer.Option(None, help="Bar store dataset (default: the symbol's only one)."),
    "size": typer.Option(1, help="Contracts per position."),
    "slippage_ticks": typer.Option(1, help="Ticks against us on market and stop fills."),
    "commission_per_unit": typer.Option(None, help="Fee per contract per side "
                                                   "(default: the instrument's)."),
    "cash": typer.Option("100000", help="Starting equity."),
    "flatten_minutes": typer.Option(15, help="Flatten this many minutes before each session "
                                             "close (0: hold through)."),
    "workers": typer.Option(None, help="Processes (default BOTWARDEN_RESEARCH_WORKERS; "
                                       "Dask when BOTWARDEN_DASK_SCHEDULER is set)."),
    "output": typer.Option("table", "--format", help="json or table."),
}


def _metrics_table(title: str, rows: list[tuple[str, dict[str, Any], Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("", "score", "trades", "net PnL", "win %", "PF", "Sharpe", "max DD %"):
        table.add_column(column, justify="right" if column else "left")
    for label, m, score in rows:
        pf = m.get("profit_factor")
        table.add_row(label, "" if score is None else f"{score:.3f}", str(m.get("trades")),
                      f"{m.get('net_pnl', 0):,.2f}", f"{m.get('win_rate', 0):.1f}",
                      "n/a" if pf is None else f"{pf:.2f}", f"{m.get('sharpe', 0):.2f}",
                      f"{m.get('max_drawdown_pct', 0):.2f}")
    return table


def sweep_command(
    strategy: str = typer.Option(..., "--strategy", help=STRATEGY_HELP),
    grid: list[str] = typer.Option([], "--grid", help="NAME=V1,V2,... (repeat per "
                                                      "parameter); without it, rolling windows."),
    windows: int = typer.Option(10, help="Rolling windows (without --grid)."),
    window_days: int = typer.Option(30, help="Days per rolling window."),
    rank_by: str = typer.Option("score", help="score (tournament) or a metric name."),
    top: int = typer.Option(20, help="Rows shown in the table."),
    param: list[str] = COMMON["param"], symbol: str = COMMON["symbol"],
    timeframe: str = COMMON["timeframe"], start: datetime | None = COMMON["start"],
    end: datetime | None = COMMON["end"], dataset: str | None = COMMON["dataset"],
    size: int = COMMON["size"], slippage_ticks: int = COMMON["slippage_ticks"],
    commission_per_unit: str | None = COMMON["commission_per_unit"], cash: str = COMMON["cash"],
    flatten_minutes: int = COMMON["flatten_minutes"], workers: int | None = COMMON["workers"],
    output: str = COMMON["output"],
) -> None:
    """Sweep a parameter grid, or one parameter set over rolling windows, ranked."""
    from botwarden.research import sweep

    if rank_by not in sweep.RANK_METRICS:
        raise typer.BadParameter(f"one of {', '.join(sweep.RANK_METRICS)}", param_hint="--rank-by")
    try:
        common = _Common(strategy, param, symbol, timeframe, start, end, dataset, size,
                         slippage_ticks, commission_per_unit, cash, flatten_minutes, workers)
        _, _, ref = common.open()
        spec = common.spec
        if grid:
            values = {name: [_number(v, "--grid") for v in text.split(",") if v.strip()]
                      for name, text in _pairs(grid, "--grid").items()}
            combos, skipped = sweep.expand_grid(spec.kind, spec.params, values)
            result = _with_progress(
                f"{len(combos)} combinations on {common.executor.name}",
                lambda p: sweep.run_grid(ref, spec, combos, common.executor, rank_by=rank_by,
                                         progress=p), output == "json")
            result["skipped"] = skipped
        else:
            bounds, note = sweep.rolling_windows(ref.start_ns, ref.end_ns, windows, window_days)
            result = _with_progress(
                f"{len(bounds)} windows on {common.executor.name}",
                lambda p: sweep.run_windows(ref, spec, bounds, common.executor,
                                            rank_by=rank_by, progress=p), output == "json")
            result["note"] = note
    except DomainError as exc:
        _fail(exc)

    def table(document: dict[str, Any]) -> Any:
        rows = [(json.dumps(r["params"]) if "params" in r else
                 f"#{r['window']['number']} {r['window']['start'][:10]}", r["metrics"], r["score"])
                for r in document["results"][:top]]
        count = len(document["results"])
        return _metrics_table(f"{strategy} sweep: {count} results ranked by {rank_by} "
                              f"(top {min(top, count)})", rows)

    _emit(result, output, table)


def matrix_command(
    strategy: str = typer.Option(..., "--strategy", help=STRATEGY_HELP),
    param: list[str] = COMMON["param"], symbol: str = COMMON["symbol"],
    start: datetime | None = COMMON["start"], end: datetime | None = COMMON["end"],
    dataset: str | None = COMMON["dataset"], size: int = COMMON["size"],
    slippage_ticks: int = COMMON["slippage_ticks"],
    commission_per_unit: str | None = COMMON["commission_per_unit"], cash: str = COMMON["cash"],
    flatten_minutes: int = COMMON["flatten_minutes"], workers: int | None = COMMON["workers"],
    output: str = COMMON["output"],
) -> None:
    """The 6-cell matrix (1m, 5m, 15m x 30, 90 days) and its consistency."""
    from botwarden.research import matrix

    try:
        common = _Common(strategy, param, symbol, "1m", start, end, dataset, size,
                         slippage_ticks, commission_per_unit, cash, flatten_minutes, workers)
        minutes, _, _ = common.open("1m")
        cells = matrix.plan_cells(common.settings.data_dir, common.spec, minutes)
        result = _with_progress(f"6 cells on {common.executor.name}",
                                lambda p: matrix.run_matrix(cells, common.spec, common.executor,
                                                            progress=p), output == "json")
    except DomainError as exc:
        _fail(exc)

    def table(document: dict[str, Any]) -> Any:
        rows = [(f"{c['timeframe']} x {c['horizon_days']} d", c["metrics"], None)
                for c in document["cells"]]
        return _metrics_table(f"{strategy} matrix: consistency {document['consistency']:.2f}",
                              rows)

    _emit(result, output, table)


def evolve_command(
    strategy: str = typer.Option(..., "--strategy", help=STRATEGY_HELP),
    generations: int = typer.Option(10, min=1, max=100),
    population: int = typer.Option(20, min=2, max=200),
    seed: int = typer.Option(0, min=0),
    test_fraction: float = typer.Option(0.3, min=0.1, max=0.5,
                                        help="Share of the range held out for fitness."),
    space: list[str] = typer.Option([], "--space", help="NAME=LOW:HIGH to search "
                                                        "(default: base value /4 .. x4)."),
    param: list[str] = COMMON["param"], symbol: str = COMMON["symbol"],
    timeframe: str = COMMON["timeframe"], start: datetime | None = COMMON["start"],
    end: datetime | None = COMMON["end"], dataset: str | None = COMMON["dataset"],
    size: int = COMMON["size"], slippage_ticks: int = COMMON["slippage_ticks"],
    commission_per_unit: str | None = COMMON["commission_per_unit"], cash: str = COMMON["cash"],
    flatten_minutes: int = COMMON["flatten_minutes"], workers: int | None = COMMON["workers"],
    output: str = COMMON["output"],
) -> None:
    """Evolve the strategy's parameters with Optuna's NSGA-II (fitness out of sample)."""
    from botwarden.research import evolution

    try:
        common = _Common(strategy, param, symbol, timeframe, start, end, dataset, size,
                         slippage_ticks, commission_per_unit, cash, flatten_minutes, workers)
        ranges = {}
        for name, text in _pairs(space, "--space").items():
            low, sep, high = text.partition(":")
            if not sep:
                raise typer.BadParameter(f"{text!r} is not LOW:HIGH", param_hint="--space")
            ranges[name] = (int(_number(low, "--space")), int(_number(high, "--space")))
        bounds = evolution.search_space(common.spec.kind, common.spec.params, ranges or None)
        _, _, ref = common.open()
        result = _with_progress(
            f"{generations} generations x {population} on {common.executor.name}",
            lambda p: evolution.run_evolution(ref, common.spec, bounds, common.executor,
                                              generations=generations, population=population,
                                              seed=seed, test_fraction=test_fraction,
                                              progress=p), output == "json")
    except DomainError as exc:
        _fail(exc)

    def table(document: dict[str, Any]) -> Any:
        from rich.table import Table

        out = Table(title=f"{strategy} evolution; champion {document['champion']}")
        for column in ("generation", "valid", "best OOS fitness", "mean OOS fitness",
                       "best train fitness", "strength"):
            out.add_column(column, justify="right")
        for g in document["generations"]:
            out.add_row(str(g["generation"]), str(g["valid"]), f"{g['best_fitness']:.4f}",
                        f"{g['mean_fitness']:.4f}", f"{g['best_train_fitness']:.4f}",
                        f"{g['strength']:.4f}")
        return out

    _emit(result, output, table)
