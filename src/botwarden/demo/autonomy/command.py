"""The Typer command of `botwarden demo autonomy`."""

from __future__ import annotations

from pathlib import Path

import typer

from botwarden.logging import configure_logging


def autonomy_command(
    database_url: str | None = typer.Option(
        None, help="Database to use (default: a scratch SQLite file in the work directory)."),
    work_dir: Path | None = typer.Option(
        None, help="Where the bars, the SQLite file and the worker logs go (default: a new "
                   "temporary directory)."),
    speed: float = typer.Option(600.0, min=60.0, help="Replay speed: 600 plays ten 1-minute "
                                                      "bars a second."),
    storm_calls: int = typer.Option(4, min=1, max=15,
                                    help="Calls the primary feed refuses with 429."),
    timeout: float = typer.Option(300.0, min=60.0, help="Seconds for the whole scenario."),
) -> None:
    """Play the autonomy scenario on real workers; exit 0 only if the store shows it all.

    A 429 storm with failover, backoff and failback; a daily-loss kill that flattens the bot;
    a SIGKILLed worker whose runner comes back reconciled without a duplicate order. Prints
    the timeline read back from the store and a PASS/FAIL line per expected event."""
    from botwarden.demo.autonomy.scenario import Demo, DemoOptions

    configure_logging("WARNING", False)
    options = DemoOptions(database_url=database_url, work_dir=work_dir, speed=speed,
                          storm_calls=storm_calls, timeout_seconds=timeout)
    raise typer.Exit(Demo(options, out=typer.echo).run())
