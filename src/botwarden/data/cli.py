"""`botwarden data ...`: import, synthesise and inspect market data. Thin: every command calls
the data layer and prints its result. The data layer (pandas, polars, pyarrow, calendars) is
imported inside the commands so that other `botwarden` commands start fast."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from botwarden.config import get_settings
from botwarden.domain.errors import DomainError

if TYPE_CHECKING:
    from botwarden.data.bar_store import BarStore, MergeResult

app = typer.Typer(
    help="Market data: import, synthesise and inspect 1-minute bars.", no_args_is_help=True
)
# Piped output has no terminal width; rich would fold tables to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
T = TypeVar("T")

DATA_DIR = typer.Option(None, "--data-dir", help="Defaults to BOTWARDEN_DATA_DIR.")


def _store(data_dir: Path | None) -> BarStore:
    from botwarden.data.bar_store import BarStore

    return BarStore(data_dir or get_settings().data_dir)


def _run(action: Callable[[], T]) -> T:
    """Run a data-layer call; a refusal prints its reason and fix and exits with status 1."""
    try:
        return action()
    except DomainError as error:
        console.print(f"[red]{error.code}[/red]: {error.message}")
        if error.fix:
            console.print(f"fix: {error.fix}")
        raise typer.Exit(1) from None


def _merge_line(merge: MergeResult) -> str:
    return (
        f"{merge.inserted} inserted, {merge.updated} updated, {merge.unchanged} unchanged "
        f"({merge.files_written} file(s) written)"
    )


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A CSV or Databento DBN (.dbn, .dbn.zst) file."),
    symbol: str = typer.Option(..., "--symbol", help="Registry symbol, e.g. MES."),
    file_format: str | None = typer.Option(
        None, "--format", help="csv or dbn (default: from the file name)."
    ),
    dataset: str | None = typer.Option(
        None,
        help="Dataset to store into (default: CSV, or the DBN file's dataset such as GLBX.MDP3).",
    ),
    contract: str | None = typer.Option(
        None, help="DBN: the instrument to keep when the file holds several, e.g. MESM4."
    ),
    tz: str = typer.Option("UTC", "--tz", help="CSV: zone of times written without offset."),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Import 1-minute bars; malformed rows are reported and skipped, good rows kept.
    Re-importing the same file changes nothing."""
    from botwarden.data.importing import import_file

    store = _store(data_dir)
    report = _run(
        lambda: import_file(
            store,
            file,
            symbol,
            file_format=file_format,
            dataset=dataset,
            contract=contract,
            naive_tz=tz,
        )
    )
    check = report.validation
    colour = "yellow" if check.rows_rejected or check.outside_session else "green"
    console.print(
        f"[{colour}]{report.symbol} <- {file.name} ({report.dataset}, {report.provider})[/{colour}]"
    )
    console.print(check.summary())
    console.print(_merge_line(report.merge))
    if check.rows_accepted == 0:
        raise typer.Exit(1)


@app.command("synth")
def synth_command(
    symbol: str = typer.Option(..., "--symbol", help="Registry symbol, e.g. MES."),
    days: int = typer.Option(..., "--days", min=1, help="Calendar days of sessions."),
    seed: int = typer.Option(0, help="Same seed, same bars."),
    end: datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%d"],
        help="Last trading date (default: the last session closed by now).",
    ),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Write seeded synthetic 1-minute bars into the SYNTH dataset."""
    from botwarden.data.synth import write_synthetic

    store = _store(data_dir)
    last: date | None = end.date() if end else None
    merge = _run(lambda: write_synthetic(store, symbol, days, seed=seed, end=last))
    console.print(
        f"[green]{symbol.upper()}[/green] synthetic bars (seed {seed}): {_merge_line(merge)}"
    )


@app.command("info")
def info_command(
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol."),
    min_gap: int = typer.Option(5, help="Count gaps of at least this many minutes."),
    show_gaps: int = typer.Option(0, "--show-gaps", help="List the N largest gaps."),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Stored series: dataset, provider, range, rows, and minutes missing inside sessions
    (vendors skip minutes without trades, so short overnight gaps are normal)."""
    from botwarden.data.gaps import find_gaps

    store = _store(data_dir)
    series = _run(lambda: store.series(symbol))
    if not series:
        console.print(
            f"no bars under {store.root}; try `botwarden data synth --symbol MES --days 90`"
        )
        return
    table = Table(title=f"Bars in {store.root}", box=box.SIMPLE_HEAD)
    for column in (
        "series",
        "provider",
        "first bar UTC",
        "last bar UTC",
        "bars",
        "missing",
        f"gaps>={min_gap}m",
    ):
        table.add_column(column, no_wrap=True, justify="left" if column[0] in "spfl" else "right")
    largest = []
    for info in series:
        ts = store.load(info.symbol, dataset=info.dataset.name).ts
        gaps = find_gaps(ts)
        big = find_gaps(ts, min_minutes=min_gap)
        provider = info.dataset.provider + ("*" if info.dataset.synthetic else "")
        table.add_row(
            f"{info.dataset.name}/{info.symbol}",
            provider,
            _when(info.first_ts),
            _when(info.last_ts),
            f"{info.rows:,}",
            f"{gaps.missing_minutes:,}",
            f"{len(big):,}",
        )
        largest += [(info, gap) for gap in big.largest(show_gaps)]
    console.print(table)
    if any(info.dataset.synthetic for info in series):
        console.print("* synthetic bars: not market data")
    for info, gap in largest:
        console.print(
            f"{info.dataset.name} {info.symbol}: {gap.minutes} min missing from "
            f"{gap.start:%Y-%m-%d %H:%M} to {gap.end:%H:%M} UTC "
            f"(session {gap.session})"
        )


def _when(ns: int) -> str:
    from botwarden.data.calendar import to_datetime

    return f"{to_datetime(ns):%Y-%m-%d %H:%M}"
