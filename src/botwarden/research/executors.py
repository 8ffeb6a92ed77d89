"""Where research tasks run: in this process, on a local process pool (the default), or on
a Dask cluster when `BOTWARDEN_DASK_SCHEDULER` names one.

Every executor has one method, `run(fn, tasks, on_result=..., check=...)`: it calls
`on_result(index, result)` as each task finishes (in any order; the index says which) and
calls `check()` at least once a second while it waits, so a job can beat its heartbeat and
stop: when `check` raises, the tasks not started yet are cancelled and the error goes up.
Results are assembled by index, so the three executors give identical answers.

- The process pool is shared by the whole process and lives until it exits: its workers
  keep the bars they loaded (research.market.load_ref) from one task and one job to the
  next. It starts processes with `forkserver` (safe in a threaded server, unlike `fork`;
  `spawn` where forkserver is missing); the fork server preloads the research stack, the
  compiled kernels and the exchange calendar once (research.worker_preload), so a new worker
  is ready in milliseconds instead of seconds.
- Dask workers must see the same bar store (BOTWARDEN_DATA_DIR on a shared filesystem):
  tasks carry a reference to the bars, never the bars.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from botwarden.config import Settings

T = TypeVar("T")
R = TypeVar("R")
POLL_SECONDS = 0.5
PRELOAD_MODULE = "botwarden.research.worker_preload"


def _no_check() -> None:
    return None


class Executor(Protocol):
    name: str

    @property
    def workers(self) -> int: ...

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *,
            on_result: Callable[[int, R], None],
            check: Callable[[], None] = _no_check) -> None: ...


class SerialExecutor:
    """In this process, one task after another."""

    name = "serial"

    @property
    def workers(self) -> int:
        return 1

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *,
            on_result: Callable[[int, R], None],
            check: Callable[[], None] = _no_check) -> None:
        for index, task in enumerate(tasks):
            check()
            on_result(index, fn(task))
        check()


_pools: dict[int, cf.ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([PRELOAD_MODULE])
        return context
    return multiprocessing.get_context("spawn")


def ignore_interrupts() -> None:
    """A pool worker leaves Ctrl-C to the process that owns the pool: a terminal sends it
    to the whole process group, and a worker that took it died printing a KeyboardInterrupt
    traceback at every `make run` stopped by hand. The owner shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def shared_pool(workers: int) -> cf.ProcessPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context(),
                                          initializer=ignore_interrupts)
            _pools[workers] = pool
        return pool


def _discard_pool(workers: int, pool: cf.ProcessPoolExecutor) -> None:
    with _pools_lock:
        if _pools.get(workers) is pool:
            del _pools[workers]
    pool.shutdown(wait=False, cancel_futures=True)


class ProcessPoolExecutor:
    """A local pool of `workers` processes, shared across runs of this process."""

    name = "process-pool"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._workers = workers

    @property
    def workers(self) -> int:
        return self._workers

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *,
            on_result: Callable[[int, R], None],
            check: Callable[[], None] = _no_check) -> None:
        pool = shared_pool(self._workers)
        futures: dict[cf.Future[R], int] = {}
        try:
            for index, task in enumerate(tasks):
                futures[pool.submit(fn, task)] = index
            pending = set(futures)
            while pending:
                check()
                done, pending = cf.wait(pending, timeout=POLL_SECONDS,
                                        return_when=cf.FIRST_COMPLETED)
                for future in done:
                    on_result(futures[future], future.result())
            check()
        except BrokenProcessPool:
            _discard_pool(self._workers, pool)  # a worker died: the next run gets a new pool
            raise
        finally:
            for future in futures:
                future.cancel()


class DaskExecutor:
    """Tasks on a Dask cluster, through a client opened for each run. `scheduler` is an
    address ("tcp://host:8786") or a cluster object (a LocalCluster in tests)."""

    name = "dask"

    def __init__(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        self._workers = 0

    @property
    def workers(self) -> int:
        return self._workers or 1

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *,
            on_result: Callable[[int, R], None],
            check: Callable[[], None] = _no_check) -> None:
        from distributed import Client, as_completed

        # distributed's Client and as_completed have no annotations (untyped third-party API)
        with Client(self._scheduler, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            self._workers = sum(int(w.get("nthreads", 1))
                                for w in client.scheduler_info()["workers"].values())
            futures = client.map(fn, list(tasks), pure=False)
            index = {future.key: i for i, future in enumerate(futures)}
            try:
                finished = as_completed(futures, loop=client.loop)  # type: ignore[no-untyped-call]
                while not finished.is_empty():  # type: ignore[no-untyped-call]
                    check()
                    batch = finished.next_batch(block=False)  # type: ignore[no-untyped-call]
                    if not batch:
                        time.sleep(0.02)
                    for future in batch:
                        on_result(index[future.key], future.result())
                check()
            finally:
                client.cancel(futures)


def make_executor(settings: Settings, workers: int | None = None) -> Executor:
    """Dask when the settings name a scheduler; else a process pool of `workers`
    processes (default: the setting, 0 meaning one per core), in-process for one."""
    if settings.dask_scheduler:
        return DaskExecutor(settings.dask_scheduler)
    count = workers or settings.research_workers or os.cpu_count() or 1
    return SerialExecutor() if count <= 1 else ProcessPoolExecutor(count)


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` in at most `parts` contiguous chunks of near-equal size, in order."""
    count = max(1, min(parts, len(items)))
    base, extra = divmod(len(items), count)
    chunks, start = [], 0
    for k in range(count):
        end = start + base + (1 if k < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return [c for c in chunks if c]


def gather(executor: Executor, fn: Callable[[T], R], tasks: Sequence[T], *,
           check: Callable[[], None] = _no_check,
           progress: Callable[[float], None] | None = None,
           weights: Sequence[int] | None = None) -> list[R]:
    """Every task's result, in task order; `progress` gets the finished share (by `weights`,
    default one per task) after each task."""
    results: list[R | None] = [None] * len(tasks)
    sizes = list(weights) if weights is not None else [1] * len(tasks)
    total = sum(sizes) or 1
    done = 0

    def collect(index: int, result: R) -> None:
        nonlocal done
        results[index] = result
        done += sizes[index]
        if progress is not None:
            progress(done / total)

    executor.run(fn, tasks, on_result=collect, check=check)
    return results  # type: ignore[return-value]  # every slot was filled by `collect`
