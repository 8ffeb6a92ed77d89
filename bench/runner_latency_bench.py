"""Bar-to-order latency inside a runner: from the moment a bar is handed to
`RunnerCore.on_bar` until the paper broker's `submit` returned, the order's intent
persisted before it (the bar's transaction: the broker's match, the risk check, the intents'
traces and rows, committed) included. The bar's fills are written after its orders are sent
(fill_intake), so they are not in the samples. On PostgreSQL a bar whose gate is unchanged
since the runner last read it commits its intents in one statement of their own
(guarded_intents), with the same lock and checks.

    uv run python bench/runner_latency_bench.py [--bars 5000] [--pg-url postgresql://...]
                                                [--scenarios bracket,plain] [--speed 1200]
                                                [--backends sqlite,postgresql] [--no-steps]
                                                [--cpu N]

A PAPER bot (sma_cross fast=1 slow=2, the runner tests' limits: 1 contract; a capital so
large that the post-trade monitor's loss bands never stop it) runs as a real RUNNER job in
this process (`Runner(ctx).run()`, replay at full speed) on a crafted price path: closes
alternate one tick up, one tick down, on the real session minutes of synthetic MES days
(written as the synthetic dataset into a temporary data dir), so the strategy reverses on
nearly every bar: an exit and an entry, about 1.9 orders a bar. Scenario `bracket`: entries
carry the runner tests' stop-loss (12 ticks) and profit target (24 ticks), so each reversal
first adopts the last entry's two legs and cancels them; `plain`: no bracket. SQLite: a
temporary file; PostgreSQL (--pg-url): a database made for each run on that server and
dropped after it. Unpaced by default (bars back to back, the runner state saved with each:
the most samples a second, on warm CPU caches); `--speed` paces the replay as a live runner
is paced (1200: twenty 1-minute bars a second), each bar then starting on colder caches.

Each scenario runs twice. First with two timers only, on the bar's hand-off and on each
submit: the latency figure. On PostgreSQL a third timer, on the guarded statement, splits
the first order of each bar into that one round trip and the rest, each at p50 and p99.
Then with every step timed, to show where that time goes (the step timers add their own
cost: about 0.1 ms at the median, more at p99).
Instrumentation only (no production code changed): the bench wraps, on their classes,
`RunnerCore.on_bar` (the bar hand-off), the paper broker's calls and book saves, the order
manager's steps, its transactions (the bar's BEGIN and COMMIT apart) and every statement's
time in the database driver, timing each with time.perf_counter_ns (and the thread's CPU
time). A sample is one order: its submit's return minus its bar's hand-off. Printed per
backend and scenario: p50/p99/max over every order and over the first order of each bar;
every step's exclusive time before the submit returned ("other": what no label covers,
the order manager's and the runner's own Python); transactions per bar; drift from the
first to the last tenth of the run; per bar, outside the samples, the runner-state save
after on_bar and the kill-state read after it; the load average. Target: p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.synth import SYNTHETIC_PROVIDER, synthesize
from botwarden.domain.instruments import get_instrument
from botwarden.runtime import freeze_startup_heap
from botwarden.store.db import normalise_url
from botwarden.store.hot_sql import HotStatement
from botwarden.store.migrate import upgrade
from botwarden.trading import (
    bar_transaction,
    fill_intake,
    guarded_intents,
    intents,
    order_store,
    runner_job,
)
from botwarden.trading.brokers import PaperBroker, SqlStateStore
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.runner_core import RunnerCore
from botwarden.workers.worker import worker_engine

ROOT = Path(__file__).resolve().parents[1]
END = date(2025, 6, 26)  # a Thursday: the days before it are whole sessions
PARAMS = {"fast": 1, "slow": 2}  # fast SMA = the close: the sign of each close-to-close move
# The zigzag loses a few dollars a round trip; on this capital the post-trade monitor's
# daily-loss bands (a few percent of it) are never reached, so the bot keeps trading.
BOT_CAPITAL = 10_000_000
_INHERITED = object()
WARMUP_BARS = 20  # samples of the first bars (JIT cache load, first queries) are left out


# ---- the price path ---------------------------------------------------------------------


def zigzag(n: int) -> Any:
    """`n` bars on real MES session minutes whose closes alternate one tick up and down:
    an SMA(1) / SMA(2) cross on every bar."""
    minutes = synthesize("MES", 6, seed=7, end=END)
    if len(minutes) < n:
        raise SystemExit(f"at most {len(minutes)} bars: lower --bars")
    tick = float(get_instrument("MES").tick_size)
    close = 5000.0 + tick * (np.arange(n) % 2)
    open_ = np.concatenate(([close[0]], close[:-1]))
    return replace(minutes.slice(0, n), open=open_, close=close,
                   high=np.maximum(open_, close), low=np.minimum(open_, close))


GUARDED = "SQL statement: guarded intents (one round trip)"


# ---- instrumentation --------------------------------------------------------------------


@dataclass
class Step:
    """One label's time within a bar so far: exclusive wall and CPU (this thread) time,
    inclusive wall time (outermost call only), calls."""

    wall: int = 0
    cpu: int = 0
    inclusive: int = 0
    calls: int = 0


@dataclass(frozen=True)
class Sample:
    wall: int  # ns from the bar's hand-off to the submit's return
    cpu: int  # this thread's CPU ns over the same span
    index: int  # the order's place in its bar (0: the first)
    steps: dict[str, Step]  # what had finished by then


class Recorder:
    """Timed spans on one thread. Each bar (the on_bar span) is a window; every submit that
    returns inside it is a sample: its latency from the bar's hand-off, and the time of
    each step that finished before it, by label."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [label, wall, cpu, child wall, child cpu]
        self.bar: list[int] | None = None  # [wall, cpu] at the hand-off
        self.bar_index = -1
        self.orders_in_bar = 0
        self.steps: dict[str, Step] = defaultdict(Step)
        self.samples: list[Sample] = []
        self.bars_with_orders: list[dict[str, int]] = []  # calls per label, whole bar
        self.per_bar: dict[str, list[int]] = defaultdict(list)  # steps outside on_bar
        self.missing: list[str] = []  # steps that could not be wrapped

    def enter(self, label: str) -> None:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        if label == "on_bar":
            self.bar, self.bar_index, self.orders_in_bar = [wall, cpu], self.bar_index + 1, 0
            self.steps.clear()
        self.stack.append([label, wall, cpu, 0, 0])

    def leave(self) -> None:
        label, wall0, cpu0, child_wall, child_cpu = self.stack.pop()
        wall, cpu = time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
        if self.stack:
            self.stack[-1][3] += wall
            self.stack[-1][4] += cpu
        if self.bar is None:
            if self.bar_index >= WARMUP_BARS:
                self.per_bar[label].append(wall - child_wall)
            return
        step = self.steps[label]
        step.wall += wall - child_wall
        step.cpu += cpu - child_cpu
        step.calls += 1
        if all(frame[0] != label for frame in self.stack):
            step.inclusive += wall
        if label == "broker submit":
            if self.bar_index >= WARMUP_BARS:
                self.samples.append(Sample(
                    wall0 + wall - self.bar[0], time.thread_time_ns() - self.bar[1],
                    self.orders_in_bar, {k: replace(v) for k, v in self.steps.items()}))
            self.orders_in_bar += 1
        if label == "on_bar":
            if self.orders_in_bar and self.bar_index >= WARMUP_BARS:
                self.bars_with_orders.append({k: v.calls for k, v in self.steps.items()})
            self.bar = None

    @contextmanager
    def span(self, label: str) -> Iterator[None]:
        self.enter(label)
        try:
            yield
        finally:
            self.leave()


def instrument(recorder: Recorder, detailed: bool = True) -> Callable[[], None]:
    """Wrap the runner's steps on their classes, for this process only; returns the undo.
    Not `detailed`: the bar's hand-off and the submits only (the latency as it is without
    the step timers, which add their own time to it)."""
    undo: list[Callable[[], None]] = []

    def restore() -> None:
        for step in reversed(undo):
            step()

    def patch(owner: Any, name: str, value: Any) -> None:
        own = vars(owner).get(name, _INHERITED)
        setattr(owner, name, value)
        undo.append(lambda: delattr(owner, name) if own is _INHERITED
                    else setattr(owner, name, own))

    def wrap(owner: Any, names: str, label: str) -> None:
        """`names`: the method's name, or its names over time ("adopt|_adopt")."""
        name = next((n for n in names.split("|") if hasattr(owner, n)), None)
        if name is None:  # renamed in the trading layer: its time shows as "other"
            recorder.missing.append(f"{getattr(owner, '__name__', owner)}.{names}")
            return
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with recorder.span(label):
                return original(*args, **kwargs)

        patch(owner, name, timed)

    wrap(RunnerCore, "on_bar", "on_bar")
    wrap(PaperBroker, "submit", "broker submit")
    # The one round trip before a send on PostgreSQL, timed in both modes: the floor under
    # bar-to-order there (its span costs about 1.6 us a bar, warm).
    wrap(guarded_intents, "_run", GUARDED)
    if not detailed:
        return restore
    wrap(RunnerCore, "target_for", "strategy kernel")
    wrap(HotStatement, "_run", "SQL statements: hot path (driver)")
    wrap(PaperBroker, "cancel", "broker cancel")
    wrap(PaperBroker, "query_order", "broker query_order")
    wrap(PaperBroker, "on_bar", "broker on_bar (matching)")
    wrap(SqlStateStore, "save", "paper book save")
    wrap(SqlStateStore, "append", "paper book change saved")
    wrap(OrderManager, "place_chain|place", "place")
    wrap(OrderManager, "on_fills", "fills applied")
    wrap(OrderManager, "settle|_settle", "order status after ack")
    wrap(OrderManager, "_acked", "order status after ack")
    wrap(fill_intake, "adopt_exits", "bracket legs adopted")
    wrap(fill_intake, "sync_bracket", "bracket sync")
    wrap(OrderManager, "cancel", "cancel bracket legs")
    wrap(intents, "check_order", "risk check")
    wrap(guarded_intents, "_json", "guarded intents: rows as JSON")
    wrap(order_store, "applied_fill_ids", "read the bot's applied fill ids")
    transaction = bar_transaction.write_transaction
    opening_bar = [False]

    @contextmanager
    def labelled_transaction(engine: Any) -> Iterator[Any]:
        if opening_bar[0]:  # the bar's one transaction: its BEGIN and COMMIT timed apart
            with transaction(engine) as conn:
                yield conn
            return
        parent = recorder.stack[-1][0] if recorder.stack else ""
        with recorder.span("intent transaction" if parent == "place" else f"{parent}: tx"), \
                transaction(engine) as conn:
            yield conn

    # Every order manager transaction (fills, intents, deferred statuses) is opened by
    # bar_transaction, through that module's name.
    patch(bar_transaction, "write_transaction", labelled_transaction)
    connect = bar_transaction.OneTransaction.connection

    def bar_connection(self: Any) -> Any:
        if self._conn is not None:
            return connect(self)
        opening_bar[0] = True
        try:
            with recorder.span("bar transaction: BEGIN"):
                return connect(self)
        finally:
            opening_bar[0] = False

    patch(bar_transaction.OneTransaction, "connection", bar_connection)
    wrap(bar_transaction.OneTransaction, "end", "bar transaction: COMMIT")

    # Every statement's time in the database driver (the rest of a statement's cost is
    # SQLAlchemy's and ours, under the step that ran it).
    runner_thread = threading.get_ident()  # not the WAL checkpointer's nor the state writer's

    def before(*_: Any) -> None:
        if threading.get_ident() == runner_thread:
            recorder.enter("SQL statements: in the driver")

    def after(*_: Any) -> None:
        if threading.get_ident() == runner_thread:
            recorder.leave()

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    undo.append(lambda: (sa.event.remove(sa.engine.Engine, "before_cursor_execute", before),
                         sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)))

    # Runner.process = on_bar, then the limit check, the runner state's save (at once: this
    # runner is unpaced) and the heartbeat; then the kill state (the state writer's copy,
    # read from the database only when that is stale). Per bar, outside the samples.
    wrap(runner_job.Runner, "process", "runner state save (after on_bar)")
    wrap(runner_job.Runner, "kill_state", "kill state (writer's copy, else read)")
    return restore


# ---- one run ----------------------------------------------------------------------------


def run(label: str, url: str, data_dir: Path, recorder: Recorder, bracket: bool,
        speed: float | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.trading.runner_support import (
        first_bar_iso,
        make_bot,
        runner_context,
        runner_payload,
    )

    settings = Settings(database_url=url, data_dir=data_dir, run_workers=False,
                        demo_data=False, integration_checks=False, log_json=False,
                        log_level="WARNING")
    engine = worker_engine(settings, settings.worker_concurrency)
    try:
        risk: dict[str, Any] = {"capital_usd": BOT_CAPITAL}
        if not bracket:
            risk.update(stop_loss_ticks=None, profit_target_ticks=None)
        account_id, bot_id = make_bot(engine, params=PARAMS, risk=risk)
        payload = runner_payload(bot_id, start=first_bar_iso(settings), speed=speed)
        ctx = runner_context(engine, settings, account_id, bot_id, payload)
        freeze_startup_heap()  # as the worker processes do once started
        load_before = os.getloadavg()
        started = time.perf_counter()
        result = runner_job.Runner(ctx).run()
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()
        server_cpu = backends_cpu_seconds(engine.url.database) \
            if engine.dialect.name == "postgresql" else None
        with engine.connect() as conn:
            orders = conn.execute(sa.text("SELECT count(*) FROM orders WHERE bot_id = :b "
                                          "AND parent_client_order_id IS NULL"),
                                  {"b": bot_id}).scalar_one()
    finally:
        engine.dispose()
    return {"label": label, "result": result, "elapsed": elapsed, "orders": orders,
            "load": (load_before, load_after), "server_cpu": server_cpu}


def backends_cpu_seconds(database: str | None) -> float | None:
    """CPU seconds of the PostgreSQL backends serving `database`, when the server runs on
    this machine (read before the engine lets its connections go); None when none is seen."""
    total, seen = 0.0, False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if title.startswith("postgres: ") and f" {database} " in title:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                seen = True
        except OSError:  # the process went meanwhile
            continue
    return total if seen else None


def ms(ns: float) -> str:
    return f"{ns / 1e6:7.3f} ms"


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mean_step(samples: list[Sample], label: str) -> float:
    """Mean wall ns of `label` per call, over the samples that include it."""
    steps = [s.steps[label] for s in samples if label in s.steps]
    calls = sum(step.calls for step in steps)
    return sum(step.wall for step in steps) / calls if calls else 0.0


def floor(samples: list[Sample]) -> None:
    """The first order of each bar that ran the guarded statement: that statement's wall
    time (pool, driver, round trip, the server's work) apart from the rest of bar-to-order
    (the runner's Python, the broker), each at its own p50 and p99."""
    firsts = [s for s in samples if s.index == 0 and GUARDED in s.steps]
    if not firsts:
        return
    statement = [s.steps[GUARDED].wall for s in firsts]
    rest = [s.wall - s.steps[GUARDED].wall for s in firsts]
    print(f"  of the first order of a bar, n={len(firsts)}: the guarded statement alone p50 "
          f"{ms(pct(statement, .5))}  p99 {ms(pct(statement, .99))}; the rest p50 "
          f"{ms(pct(rest, .5))}  p99 {ms(pct(rest, .99))}")


def report(outcome: dict[str, Any], recorder: Recorder, detailed: bool) -> None:
    samples = recorder.samples
    result = outcome["result"]
    timers = "with every step timed (the timers' own cost included)" if detailed else \
        "as it runs (only the hand-off and the submits timed)"
    print(f"\n{outcome['label']}, {timers}: {result['bars']} bars, "
          f"{result['orders_sent']} orders sent "
          f"({outcome['orders']} order rows besides bracket legs), ended "
          f"{result['ended']}, {outcome['elapsed']:.1f} s; load average "
          f"{outcome['load'][0][0]:.2f} before, {outcome['load'][1][0]:.2f} after "
          f"({os.cpu_count()} cores)")
    if outcome["server_cpu"] is not None:
        print(f"  the PostgreSQL backends' CPU: {outcome['server_cpu'] / result['bars'] * 1e3:.2f}"
              f" ms per bar, on the same {os.cpu_count()} cores as the runner")
    if not samples:
        print("  no order was sent: nothing to measure")
        return
    for name, first_only, cpu in (("every order", False, False),
                                  ("first order of a bar", True, False),
                                  ("every order, CPU time", False, True)):
        values = [s.cpu if cpu else s.wall for s in samples if not first_only or s.index == 0]
        print(f"  bar-to-order, {name:<22} n={len(values):5d}  p50 {ms(pct(values, .5))}  "
              f"p99 {ms(pct(values, .99))}  max {ms(max(values))}")
    if not detailed:
        print("  target: p99 < 2 ms (wall). CPU time: this thread's, over the same span (what "
              "it costs without waiting for a core or the database)")
        floor(samples)
        return
    n, total = len(samples), sum(s.wall for s in samples)
    total_cpu = sum(s.cpu for s in samples)
    for label, name in (("bar transaction: COMMIT", "the bar transaction's commit"),
                        ("broker submit", "broker submit (book change held)")):
        spent = sum(s.steps[label].inclusive for s in samples if label in s.steps)
        print(f"  {name:<44} {spent / n / 1e3:8.1f} us per order, {spent / total:6.1%} "
              "of bar-to-order (inclusive)")
    steps: dict[str, Step] = defaultdict(Step)
    for sample in samples:
        for label, step in sample.steps.items():
            steps[label].wall += step.wall
            steps[label].cpu += step.cpu
            steps[label].calls += step.calls
    steps["other (runner, order manager: Python)"] = Step(
        total - sum(v.wall for v in steps.values()),
        total_cpu - sum(v.cpu for v in steps.values()))
    print(f"  by step, exclusive, mean per order:  {'calls':>5} {'wall us':>9} {'share':>6} "
          f"{'CPU us':>9} {'share':>6}")
    for label, step in sorted(steps.items(), key=lambda kv: -kv[1].wall):
        print(f"    {label:<36}{step.calls / n:5.1f} {step.wall / n / 1e3:9.1f} "
              f"{step.wall / total:6.1%} {step.cpu / n / 1e3:9.1f} {step.cpu / total_cpu:6.1%}")
    bars = recorder.bars_with_orders
    if bars:
        def per_bar(labels: tuple[str, ...]) -> float:
            return sum(sum(b.get(k, 0) for k in labels) for b in bars) / len(bars)

        manager_tx = tuple({k for b in bars for k in b if k.endswith(": tx")}
                           | {"intent transaction", "bar transaction: BEGIN"})
        print(f"  a bar with orders: {per_bar(manager_tx):.1f} order manager transactions, "
              f"{per_bar(('paper book save', 'paper book change saved')):.1f} paper book "
              f"saves, then 1 runner state save; {per_bar(('broker submit',)):.1f} submits, "
              f"{per_bar(('broker cancel',)):.1f} cancels")
    tenth = max(1, n // 10)
    early, late = samples[:tenth], samples[-tenth:]
    fills_tx = "fills applied: tx"
    print(f"  drift over the run, first vs last tenth of the orders: bar-to-order p50 "
          f"{ms(statistics.median(s.wall for s in early))} -> "
          f"{ms(statistics.median(s.wall for s in late))}; fills transaction mean "
          f"{ms(mean_step(early, fills_tx))} -> {ms(mean_step(late, fills_tx))}")
    if recorder.missing:
        print(f"  not found, so not timed apart: {', '.join(recorder.missing)}")
    for label, values in recorder.per_bar.items():
        print(f"  per bar, outside the samples: {label:<34} p50 "
              f"{ms(statistics.median(values))}  p99 {ms(pct(values, .99))}")


# ---- the machine ----------------------------------------------------------------------


def cache_probe(gap: float, rounds: int = 200) -> str:
    """What idling costs on this machine, apart from our code: a fixed pure-Python workload
    over 4,000 small dicts (about 1.4 MB with their values; some 0.3 ms, like a bar's
    path), timed back to back and after sleeping `gap` seconds (a
    paced runner's wait for its next bar). On a shared host, other tenants evict the CPU
    caches while a thread sleeps, and the same work then takes several times as long; the
    runner's bar path, a larger working set, pays that on every paced bar."""
    objects = [{"a": i, "b": str(i), "c": (i, i + 1)} for i in range(4000)]

    def work() -> int:
        return sum(o["a"] + len(o["b"]) + o["c"][1] for o in objects)

    def median_us(pause: float) -> float:
        spans = []
        for _ in range(rounds):
            if pause:
                time.sleep(pause)
            start = time.perf_counter_ns()
            work()
            spans.append(time.perf_counter_ns() - start)
        return statistics.median(spans) / 1e3

    warm = median_us(0.0)
    cold = median_us(gap)
    return (f"machine: a fixed Python workload over 1.4 MB takes p50 {warm:.0f} us back to back, "
            f"{cold:.0f} us after {gap * 1e3:.0f} ms idle (x{cold / warm:.1f}): the cost of "
            f"cold caches here, whatever the code")


def round_trip_probe(url: str, rounds: int = 3000) -> str:
    """The floor under a statement on this server: `SELECT 1` on a connection of its own,
    p50 and p99. On the 2-core Firecracker VM of issue 6's figures, a round trip between two
    processes on different cores took p50 110-146 us, p99 350-410 us, and on one core (both
    pinned with taskset) 21 us and 48 us: waking the other core is most of it."""
    import psycopg

    plain = sa.engine.make_url(normalise_url(url)).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
        spans = []
        for n in range(rounds + 300):
            start = time.perf_counter_ns()
            conn.execute("SELECT 1").fetchone()
            if n >= 300:  # the first ones warm the connection up
                spans.append(time.perf_counter_ns() - start)
    spans.sort()
    return (f"server: a SELECT 1 round trip takes p50 {spans[len(spans) // 2] / 1e3:.0f} us, "
            f"p99 {spans[int(len(spans) * 0.99)] / 1e3:.0f} us (the floor under the guarded "
            f"statement)")


# ---- databases --------------------------------------------------------------------------


@contextmanager
def pg_database(server_url: str, purpose: str = "latency") -> Iterator[str]:
    """A migrated database made on the server of `server_url`, dropped afterwards."""
    url = sa.engine.make_url(normalise_url(server_url))
    name = f"botwarden_bench_{purpose}_{os.getpid()}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        bench_url = url.set(database=name).render_as_string(hide_password=False)
        upgrade(bench_url)
        yield bench_url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=5000,
                        help="bars replayed (about 1.9 orders each; 5000 puts about 99 samples "
                             "above the p99, 1500 only 29; at most 5520)")
    parser.add_argument("--pg-url", help="a PostgreSQL server (any database on it)")
    parser.add_argument("--speed", type=float, default=None,
                        help="replay speed (60: one 1-minute bar a second); default: unpaced, "
                             "bars back to back and the runner state saved with each")
    parser.add_argument("--scenarios", default="bracket,plain",
                        help="bracket: entries carry a stop-loss and a profit target (each "
                             "reversal cancels both legs first); plain: no bracket")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="which of sqlite and postgresql (postgresql needs --pg-url)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="run on this CPU only (to measure with the PostgreSQL server "
                             "pinned to the same one: see round_trip_probe)")
    parser.add_argument("--no-steps", action="store_true",
                        help="the latency figure only, without the run with every step timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-latency-") as tmp:
        data_dir = Path(tmp) / "data"
        BarStore(data_dir).write(zigzag(args.bars), dataset=SYNTHETIC_DATASET,
                                 provider=SYNTHETIC_PROVIDER, synthetic=True)
        chosen = args.backends.split(",")
        backends: list[tuple[str, Callable[[], Any]]] = []
        if "sqlite" in chosen:
            backends.append(("sqlite", lambda: _sqlite(Path(tmp))))
        if args.pg_url and "postgresql" in chosen:
            backends.append(("postgresql", lambda: pg_database(args.pg_url)))
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        print(f"bar-to-order latency: PAPER runner, sma_cross {PARAMS}, {args.bars} zigzag "
              f"bars at full replay speed; the first {WARMUP_BARS} bars are not sampled")
        # The gap a paced runner idles between bars (1-minute bars at --speed), else 50 ms.
        print(cache_probe(60 / args.speed if args.speed else 0.05))
        if args.pg_url and "postgresql" in chosen:
            print(round_trip_probe(args.pg_url))
        if args.cpu is not None:
            print(f"this process runs on CPU {args.cpu} only (--cpu)")
        for label, database in backends:
            for scenario in args.scenarios.split(","):
                # The figure, then where its time goes.
                for detailed in (False,) if args.no_steps else (False, True):
                    with database() as url:
                        recorder = Recorder()
                        undo = instrument(recorder, detailed)
                        try:
                            outcome = run(f"{label}, {scenario}", url, data_dir, recorder,
                                          bracket=scenario == "bracket", speed=args.speed)
                        finally:
                            undo()
                        report(outcome, recorder, detailed)


@contextmanager
def _sqlite(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'bench.db'}"
    upgrade(url)
    yield url


if __name__ == "__main__":
    main()
