"""The `botwarden` command. Subcommands stay thin and call the layers."""

from __future__ import annotations

import typer

from botwarden.config import get_settings
from botwarden.domain.trading import Role

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


user_app = typer.Typer(help="Users and accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    email: str = typer.Option(..., help="The user's email (its login)."),
    password: str = typer.Option(..., help="At least 8 characters."),
    role: Role = typer.Option(Role.ADMIN, case_sensitive=False,
                              help="viewer, trader or admin; a new account's user is admin."),
    account_id: str | None = typer.Option(None, help="Add to this account; default: a new one."),
    database_url: str | None = typer.Option(None, help="Defaults to BOTWARDEN_DATABASE_URL."),
) -> None:
    """Create a user (and, without --account-id, its new account); print their ids as JSON."""
    import json

    import sqlalchemy as sa

    from botwarden.domain.errors import DomainError
    from botwarden.services.accounts import enroll
    from botwarden.store.db import make_engine, make_session_factory

    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    engine = make_engine(settings.database_url)
    try:
        if not sa.inspect(engine).has_table("users"):
            typer.echo("error: the database has no schema; run `botwarden db upgrade` first",
                       err=True)
            raise typer.Exit(1)
        with make_session_factory(engine)() as session:
            user = enroll(session, email, password, role, account_id, settings)
            session.commit()
    except DomainError as exc:
        typer.echo(f"error: {exc.message.rstrip('.')}. {exc.fix}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(json.dumps({"user_id": user.id, "account_id": user.account_id,
                           "email": user.email, "role": user.role}))


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
    if settings.demo_data and not settings.is_production:
        from botwarden.data.synth import ensure_demo_data

        ensure_demo_data(settings)
    from botwarden.demo import start_demo
    from botwarden.runtime import freeze_startup_heap

    bind_host, bind_port = host or settings.host, port or settings.port
    demo = start_demo(settings, host=bind_host, port=bind_port)  # None unless allowed
    application = create_app(settings)
    freeze_startup_heap()
    try:
        uvicorn.run(application, host=bind_host, port=bind_port, log_level="warning",
                    access_log=False)
    finally:
        if demo is not None:
            demo.stop()


# --- sub-applications of other areas register below, one line each ---
from botwarden.research.cli import backtest_command  # noqa: E402

app.command("backtest")(backtest_command)
from botwarden.data.cli import app as data_app  # noqa: E402

app.add_typer(data_app, name="data")
from botwarden.workers.cli import worker_command  # noqa: E402

app.command("worker")(worker_command)
from botwarden.data.econ_calendar_cli import app as calendar_app  # noqa: E402

app.add_typer(calendar_app, name="calendar")
from botwarden.research.commands import evolve_command, matrix_command, sweep_command  # noqa: E402

app.command("sweep")(sweep_command)
app.command("matrix")(matrix_command)
app.command("evolve")(evolve_command)
from botwarden.demo.cli import app as demo_app  # noqa: E402

app.add_typer(demo_app, name="demo")
from botwarden.demo.autonomy.command import autonomy_command  # noqa: E402

demo_app.command("autonomy")(autonomy_command)
