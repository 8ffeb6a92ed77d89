"""What each research kind computes from its stored run, without touching the database:
`COMPUTE[kind](record, data_dir, executor, hooks) -> Outcome`.

Evidence for the promotion gates: the gates read BACKTEST runs of a bot's current
configuration (services/evidence.py). So every run made for a bot also records, as a
BACKTEST run, the backtest of the bot's configuration over the run's whole range on its
own timeframe (a walk-forward or a sweep of a bot thus gives its TRIALS gates figures to
show); an evolution also records its champion's backtest over the held-out test part, which
becomes the bot's evidence once the bot adopts the champion's parameters. Each such
BACKTEST run is `passed` when it meets every TRIALS gate a single backtest can meet (all
but the autonomy score and the last-three-backtests rule), in the account's gate profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botwarden.data.provenance import Provenance
from botwarden.domain.gates import (
    MarketDataProof,
    Performance,
    StageEvidence,
    evaluate_gates,
    gate_profile,
)
from botwarden.domain.stages import Stage
from botwarden.research import evolution, lab, matrix, stress, sweep, walk_forward
from botwarden.research.executors import Executor
from botwarden.research.market import MarketBars, open_series, remember
from botwarden.research.spec import RunSpec, spec_from_json
from botwarden.store.models import ResearchRun

Hooks = dict[str, Any]  # check(), progress(fraction), on_generation(g, individuals)
NOT_PER_BACKTEST = frozenset({"autonomy_score", "recent_backtests_passed"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The parts of a research_runs row a computation needs."""

    id: str
    kind: str
    bot_id: str | None
    spec: RunSpec
    options: dict[str, Any]
    gate_profile: str

    @classmethod
    def of(cls, run: ResearchRun, profile: str) -> RunRecord:
        request = run.request or {}
        spec = spec_from_json(run.strategy_kind, run.params, run.symbol, run.timeframe,
                              request["execution"], request.get("range") or {})
        return cls(run.id, run.kind, run.bot_id, spec, dict(request.get("options") or {}),
                   profile)


@dataclass(frozen=True, slots=True)
class Evidence:
    role: str
    params: dict[str, Any]
    provenance: Provenance
    metrics: dict[str, Any]
    result: dict[str, Any]
    passed: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    provenance: Provenance
    metrics: dict[str, Any]
    result: dict[str, Any]
    passed: bool | None = None
    evidence: list[Evidence] = field(default_factory=list)


def backtest_passes(metrics: dict[str, Any], provenance: Provenance, profile: str) -> bool:
    proof = MarketDataProof(provenance.provider, provenance.dataset, provenance.range_start,
                            provenance.range_end, provenance.synthetic)
    evaluation = evaluate_gates(Stage.TRIALS, StageEvidence(Performance.from_mapping(metrics),
                                                            proof), gate_profile(profile))
    return all(g.passed for g in evaluation.gates if g.id not in NOT_PER_BACKTEST)


def _backtest_evidence(record: RunRecord, market: MarketBars, provenance: Provenance,
                       spec: RunSpec, role: str) -> Evidence:
    result = lab.backtest(market, spec)
    metrics = result.metrics.as_dict()
    return Evidence(role, spec.params, provenance, metrics,
                    lab.backtest_document(market, result),
                    backtest_passes(metrics, provenance, record.gate_profile))


def _baseline(record: RunRecord, market: MarketBars, provenance: Provenance) -> list[Evidence]:
    if record.bot_id is None:
        return []
    return [_backtest_evidence(record, market, provenance, record.spec, "bot_configuration")]


def _open(record: RunRecord, data_dir: Path) -> tuple[MarketBars, Provenance, Any]:
    s = record.spec
    market, provenance, ref = open_series(data_dir, s.symbol, s.timeframe, s.start, s.end,
                                          s.dataset)
    remember(ref, market)  # an in-process executor reuses the bars already loaded
    return market, provenance, ref


def compute_backtest(record: RunRecord, data_dir: Path, executor: Executor,
                     hooks: Hooks) -> Outcome:
    market, provenance, _ = _open(record, data_dir)
    hooks["check"]()
    evidence = _backtest_evidence(record, market, provenance, record.spec, "backtest")
    return Outcome(provenance, evidence.metrics, evidence.result, evidence.passed)


def compute_stress(record: RunRecord, data_dir: Path, executor: Executor,
                   hooks: Hooks) -> Outcome:
    market, provenance, _ = _open(record, data_dir)
    hooks["check"]()
    result = stress.run_stress(market, record.spec, paths=int(record.options.get("paths", 1000)),
                               seed=int(record.options.get("seed", 0)))
    return Outcome(provenance, result.pop("metrics"), result, result["passed"],
                   _baseline(record, market, provenance))


def compute_sweep(record: RunRecord, data_dir: Path, executor: Executor, hooks: Hooks) -> Outcome:
    market, provenance, ref = _open(record, data_dir)
    options, spec = record.options, record.spec
    rank_by = options.get("rank_by", "score")
    if options.get("grid"):
        combos, skipped = sweep.expand_grid(spec.kind, spec.params, options["grid"])
        result = sweep.run_grid(ref, spec, combos, executor, rank_by=rank_by,
                                check=hooks["check"], progress=hooks["progress"])
        result["skipped"] = skipped
    else:
        windows = options.get("windows") or {}
        bounds, note = sweep.rolling_windows(
            ref.start_ns, ref.end_ns, int(windows.get("count", sweep.DEFAULT_WINDOWS)),
            int(windows.get("days", sweep.DEFAULT_WINDOW_DAYS)))
        result = sweep.run_windows(ref, spec, bounds, executor, rank_by=rank_by,
                                   check=hooks["check"], progress=hooks["progress"])
        result["note"] = note
    return Outcome(provenance, result["summary"], result, None,
                   _baseline(record, market, provenance))


def compute_walk_forward(record: RunRecord, data_dir: Path, executor: Executor,
                         hooks: Hooks) -> Outcome:
    market, provenance, ref = _open(record, data_dir)
    options, spec = record.options, record.spec
    plan = walk_forward.plan(ref, int(options.get("train_days", 365)),
                             int(options.get("test_days", 90)), int(options.get("step_days", 90)))
    combos = None
    if options.get("grid"):
        combos, _ = sweep.expand_grid(spec.kind, spec.params, options["grid"])
    result = walk_forward.run_walk_forward(ref, spec, plan, executor, combos=combos,
                                           check=hooks["check"], progress=hooks["progress"])
    return Outcome(provenance, result["metrics"], result, result["passed"],
                   _baseline(record, market, provenance))


def compute_matrix(record: RunRecord, data_dir: Path, executor: Executor, hooks: Hooks) -> Outcome:
    spec = record.spec
    minutes, minute_provenance, _ = open_series(data_dir, spec.symbol, "1m", spec.start,
                                                spec.end, spec.dataset)
    cells = matrix.plan_cells(data_dir, spec, minutes)
    hooks["check"]()
    result = matrix.run_matrix(cells, spec, executor, check=hooks["check"],
                               progress=hooks["progress"])
    source = matrix.provenance_of(minute_provenance, cells)
    provenance = Provenance(minute_provenance.provider, minute_provenance.dataset,
                            minute_provenance.synthetic, spec.symbol, "1m",
                            source["range_start"], source["range_end"], 0, source["data_hash"])
    evidence: list[Evidence] = []
    if record.bot_id is not None:
        market, own, _ = open_series(data_dir, spec.symbol, spec.timeframe,
                                     source["range_start"], minutes.end_ns, spec.dataset)
        evidence = _baseline(record, market, own)
    return Outcome(provenance, result["summary"], result, None, evidence)


def compute_evolution(record: RunRecord, data_dir: Path, executor: Executor,
                      hooks: Hooks) -> Outcome:
    market, provenance, ref = _open(record, data_dir)
    options, spec = record.options, record.spec
    space = evolution.search_space(spec.kind, spec.params, options.get("space"))
    result = evolution.run_evolution(
        ref, spec, space, executor, generations=int(options.get("generations", 10)),
        population=int(options.get("population", 20)), seed=int(options.get("seed", 0)),
        test_fraction=float(options.get("test_fraction", evolution.DEFAULT_TEST_FRACTION)),
        on_generation=hooks.get("on_generation"), check=hooks["check"],
        progress=hooks["progress"])
    evidence = _baseline(record, market, provenance)
    champion = result["champion"]
    if record.bot_id is not None and champion is not None:
        test_start = result["settings"]["test_start"]
        held_out, held_provenance, _ = open_series(data_dir, spec.symbol, spec.timeframe,
                                                   datetime.fromisoformat(test_start),
                                                   ref.end_ns, provenance.dataset)
        evidence.append(_backtest_evidence(record, held_out, held_provenance,
                                           spec.with_params(champion["params"]),
                                           "evolution_champion_out_of_sample"))
    return Outcome(provenance, result.pop("metrics"), result, None, evidence)


COMPUTE: dict[str, Callable[[RunRecord, Path, Executor, Hooks], Outcome]] = {
    "BACKTEST": compute_backtest, "STRESS": compute_stress, "SWEEP": compute_sweep,
    "WALK_FORWARD": compute_walk_forward, "MATRIX": compute_matrix,
    "EVOLUTION": compute_evolution,
}
