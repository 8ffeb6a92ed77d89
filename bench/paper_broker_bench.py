"""Paper broker costs: what a runner pays per bar and per order, with the broker's book saved
to the database after every change.

    uv run python bench/paper_broker_bench.py            # SQLite file (and PostgreSQL when
                                                         # BOTWARDEN_BENCH_DATABASE_URL is set)

A simulated bot trades one market order every 10 bars (filled at the next bar's open, with a
stop-loss / profit-target bracket). Printed: on_bar and submit latency p50/p99, bars per
second through one broker; with the default history (100 finished orders kept in the row)
and with 1,000.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from botwarden.data.providers.base import Bar
from botwarden.domain.trading import OrderType, Side
from botwarden.store.db import make_engine
from botwarden.store.migrate import upgrade
from botwarden.trading.brokers import (
    Bracket,
    MemoryStateStore,
    OrderRequest,
    PaperBroker,
    SqlStateStore,
    StateStore,
)

NS_MINUTE = 60_000_000_000


def bars(n: int) -> list[Bar]:
    out, price = [], 4500.0
    for i in range(n):
        price += 0.25 * ((i * 7919) % 5 - 2)
        out.append(Bar("MES", "1m", (i + 1) * NS_MINUTE, price, price + 1.0, price - 1.0,
                       price + 0.25, 10.0))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def run(label: str, store: StateStore, n: int, history: int = 0) -> None:
    broker = PaperBroker(f"bench-{label}-{history}-{uuid.uuid4().hex[:8]}", store, slippage_ticks=1,
                         history_limit=max(history, 100))
    stream = bars(n + history * 2)
    for i in range(history):  # finished orders already in the row
        broker.submit(OrderRequest(f"h{i}", "MES", Side.BUY if i % 2 else Side.SELL, 1,
                                   OrderType.MARKET))
        broker.on_bar("MES", stream[i])
    stream = stream[history:]
    submit_times, bar_times = [], []
    started = time.perf_counter()
    for i, bar in enumerate(stream[:n]):
        if i % 10 == 0:
            for order in broker.open_orders("MES"):
                broker.cancel(order.client_order_id)
            position = broker.position("MES").qty
            side = Side.SELL if position > 0 else Side.BUY
            t0 = time.perf_counter()
            broker.submit(OrderRequest(f"o{i}", "MES", side, abs(position) + 1,
                                       OrderType.MARKET, bracket=Bracket(8, 12)))
            submit_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        broker.on_bar("MES", bar)
        bar_times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    kept = max(history, 100)
    print(f"{label:<12} {kept:>5} finished orders kept: on_bar p50 {pct(bar_times, .5):8.1f} us "
          f"p99 {pct(bar_times, .99):8.1f} us | submit p50 {pct(submit_times, .5):8.1f} us "
          f"p99 {pct(submit_times, .99):8.1f} us | {n / elapsed:8.0f} bars/s incl. orders")


def main() -> None:
    run("memory", MemoryStateStore(), 5_000)
    run("memory", MemoryStateStore(), 2_000, history=1_000)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        run("sqlite", SqlStateStore(engine), 2_000)
        run("sqlite", SqlStateStore(engine), 1_000, history=1_000)
        engine.dispose()
    pg = os.environ.get("BOTWARDEN_BENCH_DATABASE_URL")
    if pg:
        upgrade(pg)
        engine = make_engine(pg)
        run("postgresql", SqlStateStore(engine), 2_000)
        run("postgresql", SqlStateStore(engine), 1_000, history=1_000)
        engine.dispose()
    print(f"(one broker in one process; machine has {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
