"""A runner's status follows two sources, its feed and its broker's fills: DEGRADED while
either is, RUNNING again only when both are well, each move with its source's code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from botwarden.domain.jobs import JobStatus
from botwarden.trading.runner_core import BROKER_UNAVAILABLE, RunnerCore
from botwarden.trading.runner_health import RunnerHealth
from botwarden.workers.context import JobContext


@dataclass
class Job:
    status: JobStatus = JobStatus.RUNNING
    moves: list[tuple[str, str]] = field(default_factory=list)

    def set_status(self, status: JobStatus, code: str, _why: str) -> None:
        self.status = status
        self.moves.append((status.value, code))


@dataclass
class Feed:
    ok: bool = True
    active: str = "replay"

    def health(self) -> str:
        return "OK" if self.ok else "DEGRADED"


@dataclass
class Core:
    fills_unknown: str | None = None


def test_degraded_while_either_source_is() -> None:
    job, feed, core = Job(), Feed(), Core()
    health = RunnerHealth(cast(JobContext, job))
    fake_core = cast(RunnerCore, cast(Any, core))
    feed.ok = False
    health.follow_feed(feed)
    core.fills_unknown = "DISCONNECTED: connection refused"
    health.follow_broker(fake_core)
    feed.ok = True
    health.follow_feed(feed)  # the feed is back, the broker is not: still DEGRADED
    assert job.status is JobStatus.DEGRADED
    core.fills_unknown = None
    health.follow_broker(fake_core)
    assert job.moves == [("DEGRADED", "DATA_FEED_DEGRADED"), ("RUNNING", "BROKER_RECOVERED")]
    core.fills_unknown = "TIMEOUT: no answer"
    health.follow_broker(fake_core)
    assert job.moves[-1] == ("DEGRADED", BROKER_UNAVAILABLE)
