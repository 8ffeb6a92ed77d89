"""`botwarden worker`: a worker process with the scheduler's loops."""

from __future__ import annotations

import signal
import threading

import typer

from botwarden.config import get_settings
from botwarden.domain.jobs import JobType
from botwarden.logging import configure_logging, get_logger
from botwarden.runtime import freeze_startup_heap
from botwarden.workers.background import start_background
from botwarden.workers.registry import HANDLER_MODULES


def _parse_types(values: list[str] | None) -> frozenset[JobType] | None:
    if values is None:
        return None
    names = [n.strip().upper() for v in values for n in v.split(",") if n.strip()]
    try:
        return frozenset(JobType(n) for n in names)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; job types are {', '.join(JobType)}") from exc


def worker_command(
    database_url: str | None = typer.Option(None, help="Defaults to BOTWARDEN_DATABASE_URL."),
    concurrency: int | None = typer.Option(
        None, min=1, help="Threads for short jobs (default BOTWARDEN_WORKER_CONCURRENCY)."),
    types: list[str] | None = typer.Option(
        None, help="Job types to run, e.g. BACKTEST,SWEEP (default: every registered type; "
                   "an empty value runs none, leaving only the loops)."),
    handlers: list[str] | None = typer.Option(
        None, help="Modules to import that register job handlers or scheduled tasks, "
                   "instead of the built-in list."),
    scheduler: bool = typer.Option(True, help="Also run the self-healing loops."),
) -> None:
    """Run jobs until SIGTERM or Ctrl-C; then finish or release them and exit."""
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    configure_logging(settings.log_level, settings.log_json)
    handle = start_background(settings, types=_parse_types(types), concurrency=concurrency,
                              with_scheduler=scheduler,
                              handler_modules=HANDLER_MODULES if handlers is None else handlers)
    freeze_startup_heap()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    get_logger("botwarden.workers").info("worker_ready",
                                         worker_id=handle.worker.id if handle.worker else None)
    while not stop.wait(1.0):
        pass
    handle.stop()


if __name__ == "__main__":  # `python -m botwarden.workers.cli`: skips the other commands' imports
    typer.run(worker_command)
