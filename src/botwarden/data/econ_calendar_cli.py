"""`botwarden calendar ...`: load economic calendar events into the database."""

from __future__ import annotations

from pathlib import Path

import typer

from botwarden.config import get_settings
from botwarden.data.econ_calendar import CalendarFileError
from botwarden.data.econ_calendar_store import import_file, sync_builtin
from botwarden.store.db import make_engine

app = typer.Typer(help="Economic calendar: the built-in US release dates and your own files.",
                  no_args_is_help=True)


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="CSV or JSON: at | date+time[+tz], name, country, impact"),
) -> None:
    """Add (or update) the events of FILE; importing the same file twice changes nothing."""
    engine = make_engine(get_settings().database_url)
    try:
        result = import_file(engine, file)
    except CalendarFileError as exc:
        typer.echo(f"error: {file.name}: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(f"{file.name}: {result.inserted} added, {result.updated} updated")


@app.command("sync-builtin")
def sync_command() -> None:
    """Bring the built-in 2025-2026 US release dates into the database."""
    engine = make_engine(get_settings().database_url)
    try:
        result = sync_builtin(engine)
    finally:
        engine.dispose()
    typer.echo(f"built-in events: {result.inserted} added, {result.updated} updated, "
               f"{result.removed} removed")
