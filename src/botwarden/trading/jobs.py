"""What a worker imports to trade: the RUNNER job's handler and the kill engine's
execution hook (cancel and flatten when no runner is alive to do it), the RECONCILE job and
the loop that reconciles DEGRADED runners."""

from __future__ import annotations

from botwarden.services.kill import register_execution_hooks
from botwarden.trading import halt_sweep, reconcile_jobs, runner_job  # noqa: F401  (register)
from botwarden.trading.halt import RunnerlessHalt

_installed = False


def install_execution_hooks() -> None:
    global _installed
    if not _installed:
        register_execution_hooks(RunnerlessHalt())
        _installed = True


install_execution_hooks()
