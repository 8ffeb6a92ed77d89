"""Replay provider throughput: a year of 1-minute bars played as a live feed at full speed,
as `Bar`s through the async stream a runner consumes, with the integration registry
observing (telemetry per chunk), and the Python heap peak for half a year vs a year.

    uv run python bench/replay_bench.py

Target (issue 4): at least 200,000 bars/s with memory flat in the length of the replay.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.integrations import IntegrationRegistry
from botwarden.data.providers.replay import ReplayProvider
from botwarden.data.synth import write_synthetic


async def drain(replay: ReplayProvider, end: datetime | None = None) -> int:
    count = 0
    async for _ in replay.stream_bars("MES", end=end):
        count += 1
    return count


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(env="test", data_dir=root / "data", log_json=False,
                            database_url=f"sqlite:///{root}/unused.db")
        store = BarStore.from_settings(settings)
        written = write_synthetic(store, "MES", 365, seed=7, end=date(2025, 6, 30))
        registry = IntegrationRegistry(settings, None, store=store)

        for label, observer in (("no observer", None), ("registry observing", registry)):
            replay = ReplayProvider(store, observer=observer)
            asyncio.run(drain(replay))  # warm: calendar, file cache
            start = time.perf_counter()
            bars = asyncio.run(drain(replay))
            elapsed = time.perf_counter() - start
            print(f"replay full speed ({label}): {bars:,} bars in {elapsed:.3f} s = "
                  f"{bars / elapsed:,.0f} bars/s (target >= 200,000)")

        replay = ReplayProvider(store)
        for label, end in (("half a year", datetime(2025, 1, 1, tzinfo=UTC)), ("a year", None)):
            tracemalloc.start()
            bars = asyncio.run(drain(replay, end))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"heap peak replaying {label} ({bars:,} bars): {peak / 1e6:.1f} MB")
        print(f"(store: {written.inserted:,} synthetic MES bars)")


if __name__ == "__main__":
    main()
