"""The `botwarden` command. Subcommands stay thin and call the layers."""

from __future__ import annotations

import typer

from botwarden.config import get_settings

app = typer.Typer(help="Botwarden: run a fleet of futures trading bots autonomously and safely.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    database_url: str | None = typer.Option(None, help="Defaults to BOTWARDEN_DATABASE_URL."),
) -> None:
    """Migrate the database to the newest schema."""
    from botwarden.store.migrate import upgrade

    url = database_url or get_settings().database_url
    upgrade(url)
    typer.echo("database at head")


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Defaults to BOTWARDEN_HOST (127.0.0.1)."),
    port: int = typer.Option(None, help="Defaults to BOTWARDEN_PORT (8000)."),
    database_url: str | None = typer.Option(None, help="Defaults to BOTWARDEN_DATABASE_URL."),
    workers: bool = typer.Option(True, "--workers/--no-workers",
                                 help="Also run job workers and the scheduler in-process."),
    migrate: bool = typer.Option(True, "--migrate/--no-migrate",
                                 help="Bring the schema to head before serving."),
) -> None:
    """Serve the REST API (and, by default, the workers and loops) on one process."""
    import uvicorn

    from botwarden.api.app import create_app

    base = get_settings()
    overrides: dict[str, object] = {"run_workers": workers and base.run_workers}
    if database_url:
        overrides["database_url"] = database_url
    settings = base.model_copy(update=overrides)
    if migrate:
        from botwarden.store.migrate import upgrade

        upgrade(settings.database_url)
    application = create_app(settings)
    uvicorn.run(application, host=host or settings.host, port=port or settings.port,
                log_level="warning", access_log=False)


# --- sub-applications of other areas register below, one line each ---
from botwarden.research.cli import backtest_command  # noqa: E402

app.command("backtest")(backtest_command)
from botwarden.data.cli import app as data_app  # noqa: E402

app.add_typer(data_app, name="data")
