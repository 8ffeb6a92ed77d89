"""Which handler runs which job type.

A package that brings a job type registers its handler with one call at import time:

    from botwarden.workers.registry import register_handler
    register_handler(JobType.BACKTEST, run_backtest)

and adds its module to HANDLER_MODULES, which every worker imports at start. A handler
receives a JobContext and returns the job's result (a JSON object, or None)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from botwarden.domain.jobs import JobType

if TYPE_CHECKING:
    from botwarden.workers.context import JobContext

JobHandler = Callable[["JobContext"], dict[str, Any] | None]

# Modules whose import registers the production handlers (research, trading, promotion)
# and scheduled tasks (the risk monitor).
HANDLER_MODULES: tuple[str, ...] = ("botwarden.research.jobs", "botwarden.trading.jobs",
                                     "botwarden.services.risk_monitor")


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[JobType, JobHandler] = {}

    def register(self, job_type: JobType, handler: JobHandler, *, replace: bool = False) -> None:
        if job_type in self._handlers and not replace:
            raise ValueError(f"a handler for {job_type} is already registered")
        self._handlers[job_type] = handler

    def get(self, job_type: JobType) -> JobHandler | None:
        return self._handlers.get(job_type)

    @property
    def types(self) -> frozenset[JobType]:
        return frozenset(self._handlers)


handlers = HandlerRegistry()


def register_handler(job_type: JobType, handler: JobHandler, *, replace: bool = False) -> None:
    handlers.register(job_type, handler, replace=replace)


def load_modules(modules: Iterable[str]) -> None:
    """Import modules that register handlers or scheduled tasks."""
    for name in modules:
        importlib.import_module(name)
