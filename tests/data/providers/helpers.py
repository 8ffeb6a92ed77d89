"""Test doubles for provider tests: a settable clock, recorded vendor responses, and a
registry without a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations import IntegrationRegistry, StatusPolicy

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 12, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sleeps:
    """Records requested sleeps instead of sleeping (sync and async), advancing a clock."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.calls: list[float] = []
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self(seconds)


def memory_registry(tmp_path: Path, clock: FakeClock, store: BarStore | None = None,
                    **settings: Any) -> IntegrationRegistry:
    """A registry that keeps everything in memory (no database)."""
    config = Settings(env="test", data_dir=tmp_path / "data", log_json=False,
                      database_url=f"sqlite:///{tmp_path}/unused.db", **settings)
    return IntegrationRegistry(config, None, clock=clock, store=store,
                               policy=StatusPolicy(degrade_after=3, storm_threshold=5))
