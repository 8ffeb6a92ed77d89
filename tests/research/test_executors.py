"""The three executors give identical results; a check that raises stops a run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from botwarden.config import Settings
from botwarden.research import evolution, sweep
from botwarden.research.executors import (
    DaskExecutor,
    ProcessPoolExecutor,
    SerialExecutor,
    gather,
    make_executor,
    split,
)
from botwarden.research.market import DataRef, open_series
from tests.research.jobs_support import CRAFTED, crafted_spec, sawtooth


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> DataRef:
    data_dir = tmp_path_factory.mktemp("executors")
    sawtooth(data_dir, days=6, leg=17)
    return open_series(data_dir, "MES", "1m", dataset=CRAFTED)[2]


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        yield cluster


def test_serial_pool_and_dask_sweeps_are_identical(ref: DataRef, dask_cluster: object) -> None:
    spec = crafted_spec()
    combos, _ = sweep.expand_grid(spec.kind, spec.params, {"period": list(range(2, 40, 3))})
    serial = sweep.run_grid(ref, spec, combos, SerialExecutor())
    pool = sweep.run_grid(ref, spec, combos, ProcessPoolExecutor(2))
    dask = sweep.run_grid(ref, spec, combos, DaskExecutor(dask_cluster))
    assert serial["results"] == pool["results"] == dask["results"]
    assert len(serial["results"]) == len(combos)


def test_evolution_is_the_same_on_every_executor(ref: DataRef, dask_cluster: object) -> None:
    spec = crafted_spec()
    space = {"period": evolution.Bound(2, 60)}
    runs = [evolution.run_evolution(ref, spec, space, executor, generations=2, population=6,
                                    seed=4)
            for executor in (SerialExecutor(), ProcessPoolExecutor(2),
                             DaskExecutor(dask_cluster))]
    assert runs[0]["generations"] == runs[1]["generations"] == runs[2]["generations"]
    assert runs[0]["champion"] == runs[1]["champion"] == runs[2]["champion"]


class Stop(Exception):
    pass


@pytest.mark.parametrize("make", [SerialExecutor, lambda: ProcessPoolExecutor(2)])
def test_a_raising_check_stops_the_run(make: object) -> None:
    executor = make()  # type: ignore[operator]
    seen: list[int] = []
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1
        if seen:
            raise Stop

    with pytest.raises(Stop):
        gather(executor, abs, list(range(-200, 0)), check=check,
               progress=lambda _: seen.append(1))
    assert 1 <= len(seen) < 200


def test_progress_reaches_one_and_results_keep_task_order() -> None:
    fractions: list[float] = []
    out = gather(SerialExecutor(), abs, [-3, -1, -2], progress=fractions.append,
                 weights=[2, 1, 1])
    assert out == [3, 1, 2] and fractions == [0.5, 0.75, 1.0]


def test_make_executor_follows_the_settings(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, research_workers=1)
    assert isinstance(make_executor(base), SerialExecutor)
    assert isinstance(make_executor(base.model_copy(update={"research_workers": 3})),
                      ProcessPoolExecutor)
    assert make_executor(base, workers=2).workers == 2
    dask = make_executor(base.model_copy(update={"dask_scheduler": "tcp://127.0.0.1:8786"}))
    assert isinstance(dask, DaskExecutor)


def test_split_keeps_order_and_sizes() -> None:
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split([1], 8) == [[1]]
    assert split([], 4) == []


def test_the_pool_is_shared_and_safe_from_threads(ref: DataRef) -> None:
    spec = crafted_spec()
    combos, _ = sweep.expand_grid(spec.kind, spec.params, {"period": [3, 7, 11, 19]})
    results: list[object] = []

    def work() -> None:
        results.append(sweep.run_grid(ref, spec, combos, ProcessPoolExecutor(2))["results"])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 3 and results[0] == results[1] == results[2]


def test_pool_workers_leave_ctrl_c_to_the_process_that_owns_them() -> None:
    handlers: list[object] = []
    ProcessPoolExecutor(1).run(signal.getsignal, [signal.SIGINT],
                               on_result=lambda _index, handler: handlers.append(handler))
    assert handlers == [signal.SIG_IGN]
