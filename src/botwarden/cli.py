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


# --- sub-applications of other areas register below, one line each ---
