"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from botwarden import __version__
from botwarden.api.errors import install_error_handlers
from botwarden.api.guard import assert_every_mutation_guarded
from botwarden.api.metrics import MetricsMiddleware
from botwarden.api.ratelimit import RateLimiter
from botwarden.api.routers import (
    auth,
    autonomy,
    bots,
    health,
    integrations,
    jobs,
    kill,
    market_context,
    policy,
    reconcile,
    record,
    research,
    runners,
    stages,
    users,
)
from botwarden.api.routers.integrations import start_integration_checks
from botwarden.api.tracing import TraceIdMiddleware
from botwarden.config import Settings, get_settings
from botwarden.logging import configure_logging
from botwarden.store.db import make_engine, make_session_factory
from botwarden.trading.jobs import install_execution_hooks
from botwarden.workers.background import start_background
from botwarden.workers.registry import HANDLER_MODULES, load_modules

ROUTERS = [health.router, auth.router, users.router, bots.router, kill.router, policy.router]
ROUTERS += [integrations.router, market_context.router]
ROUTERS += [record.router]
ROUTERS += [research.router]
ROUTERS += [stages.router, autonomy.router, jobs.router]
ROUTERS += [runners.router, reconcile.router]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if settings.is_production and "insecure" in settings.secret_key.get_secret_value():
        raise RuntimeError("BOTWARDEN_SECRET_KEY must be set in production")
    engine = make_engine(settings.database_url)
    limiter = RateLimiter.from_settings(settings)  # shared by every process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Workers and loops run in this process unless turned off (`serve --no-workers`,
        # or separate `botwarden worker` processes on the same database).
        background = start_background(settings) if settings.run_workers else None
        if settings.integration_checks:
            start_integration_checks(app)
        try:
            yield
        finally:
            flusher = getattr(app.state, "integrations_flusher", None)
            if flusher is not None:
                flusher.set()
            if background is not None:
                background.stop()
            engine.dispose()
            limiter.close()

    app = FastAPI(title="Botwarden", version=__version__, lifespan=lifespan,
                  description="Run a fleet of futures trading bots autonomously and safely.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.rate_limiter = limiter  # the guard charges it on rate-limited actions
    app.add_middleware(TraceIdMiddleware)
    app.add_middleware(MetricsMiddleware)  # outermost: times the whole request
    install_error_handlers(app)
    # Even in a process without workers (`serve --no-workers`), a HARD kill through the API
    # acts on the market, and every scheduled task can be triggered by name.
    load_modules(HANDLER_MODULES)
    install_execution_hooks()
    for router in ROUTERS:
        app.include_router(router)
    assert_every_mutation_guarded(app)
    return app
