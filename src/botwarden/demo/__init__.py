"""Demos. `make run` starts the demo fleet (fleet.py): on the embedded database, outside
production, the demo account (account.py) and a dozen bots that research, backtest, climb to
PAPER and SHADOW through the gates, and trade replayed MES and MNQ bars. `botwarden demo`
holds the command-line side (cli.py).

`start_demo` is what `botwarden serve` calls: the account now (so the banner can name the
login), the fleet in a background thread that works through the store and the jobs while
the server's workers run them."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import typer

from botwarden.config import Settings
from botwarden.demo.account import banner, demo_allowed, ensure_demo_account
from botwarden.store.db import make_engine

__all__ = ["DemoHandle", "demo_allowed", "start_demo"]


@dataclass
class DemoHandle:
    thread: threading.Thread
    stop_event: threading.Event

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def start_demo(settings: Settings, *, host: str, port: int) -> DemoHandle | None:
    """The demo account (created if missing) and its fleet's thread; None when the demo is
    not allowed (production, another database, or `BOTWARDEN_DEMO_FLEET=false`)."""
    if not demo_allowed(settings):
        return None
    from botwarden.demo.fleet import Fleet

    engine = make_engine(settings.database_url)
    account = ensure_demo_account(engine, settings)
    if account is None:
        engine.dispose()
        return None
    typer.echo(banner(host, port))
    stop = threading.Event()
    fleet = Fleet(engine, settings)

    def work() -> None:
        try:
            fleet.run(stop)
        finally:
            engine.dispose()

    thread = threading.Thread(target=work, name="demo-fleet", daemon=True)
    thread.start()
    return DemoHandle(thread, stop)
