"""A runner job's status, RUNNING or DEGRADED, from two sources: its feed's health (the
failover feed falls back to a backup provider) and its broker's fills (a bar whose fills
could not be read, RunnerCore's blind bar). DEGRADED while either is; each move is a job
run event with the code of the source that moved it."""

from __future__ import annotations

from typing import Any

from botwarden.domain.jobs import JobStatus
from botwarden.trading.brokers.base import BrokerDisconnected, BrokerTimeout
from botwarden.trading.fill_poll import FillPoll
from botwarden.trading.runner_core import BROKER_UNAVAILABLE, RunnerCore
from botwarden.workers.context import JobContext, LeaseLost


class RunnerHealth:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.degraded = False  # the job's status is DEGRADED
        self.feed_degraded = False
        self.broker_blind = False  # the broker's fills could not be read (RunnerCore)

    def follow_feed(self, feed: Any) -> None:
        # FailoverProvider.health is a method: read its answer, not the bound method (whose
        # text is never "OK", which left every runner DEGRADED from its first watchdog tick).
        health = getattr(feed, "health", None)
        if callable(health):
            health = health()
        degraded = health is not None and str(getattr(health, "value", health)) != "OK"
        if degraded != self.feed_degraded:
            self.feed_degraded = degraded
            self._update("DATA_FEED_DEGRADED" if degraded else "DATA_FEED_RECOVERED",
                         f"feed {getattr(feed, 'active', '?')}")

    def fills_between_bars(self, core: RunnerCore, poll: FillPoll) -> None:
        """On the watchdog tick: the fills the broker learnt of since the last bar; while a
        read failed, asked for every tick, so the runner sees again within a second."""
        try:
            reports = poll() if core.fills_unknown else poll.between_bars()
        except (BrokerTimeout, BrokerDisconnected) as error:
            core.fills_unknown = f"{error.code}: {error.message}"
        else:
            core.fills_unknown, core.blind_bars = None, 0
            core.on_fills_between_bars(reports)
        self.follow_broker(core)

    def follow_broker(self, core: RunnerCore) -> None:
        blind = core.fills_unknown is not None
        if blind != self.broker_blind:
            self.broker_blind = blind
            self._update(BROKER_UNAVAILABLE if blind else "BROKER_RECOVERED",
                         core.fills_unknown or "the broker's fills are read again")

    def _update(self, code: str, why: str) -> None:
        degraded = self.feed_degraded or self.broker_blind
        if degraded != self.degraded:
            self.set_status(JobStatus.DEGRADED if degraded else JobStatus.RUNNING, code, why)

    def set_status(self, status: JobStatus, code: str, why: str) -> None:
        try:
            self.ctx.set_status(status, code, why)
            self.degraded = status is JobStatus.DEGRADED
        except LeaseLost:
            raise
        except ValueError:
            pass
