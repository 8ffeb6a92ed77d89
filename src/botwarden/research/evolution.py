"""Evolution (domain.md, "Research") on Optuna's NSGA-II sampler, driven by ask/tell one
generation at a time. No genetic algorithm is written here: selection, crossover, elitism
and mutation are Optuna's; this module maps the domain's rates onto its settings, evaluates
the individuals in parallel and records generations and lineage.

- One study per strategy kind (the run's), so crossover only ever mixes parameters of one
  strategy type.
- Mutation rate 0.15: `mutation_prob=0.15`, the chance that each parameter of a child is
  mutated.
- Mutation strength 0.2, decaying x0.95 a generation: NSGA-II itself has no strength
  setting, but Optuna (5.0+) takes a mutation operator (`BaseMutation`); `StrengthMutation`
  moves a parameter by a normal step whose standard deviation is `strength` times the
  parameter's range, and the strength is set to 0.2 x 0.95^g before generation g is asked.
- Elitism 10%: NSGA-II's survival step is elitist by construction: each generation's
  parents are the best `population` individuals of the previous parents and their
  children together (non-dominated rank, then crowding), so the best 10% - indeed every
  individual still among the best `population` - always survives. There is no separate
  elite-share setting; `elite` in each generation's record lists its top 10% for display.
- Crossover: Optuna's default for NSGA-II, uniform crossover (probability 0.9, each
  parameter swapped with probability 0.5).
- Fitness (domain.research.evolution_fitness) is measured out of sample: the data is split
  in time into a train part and a held-out test part (the last `test_fraction`). Optuna is
  told the train fitness, so the test part never steers the search; each individual's
  recorded `fitness` is its test (out-of-sample) fitness. The champion is the valid
  individual with the best train fitness, reported with its out-of-sample fitness.
- Invalid parameter sets (fast >= slow, say) are infeasible under an Optuna constraint,
  with fitness 0, and are not backtested.
- Lineage: Optuna records, per generation, the parent population it bred that generation
  from (its `parent` cache); each individual's `parents` are the trial numbers of that
  population. Which two parents a given child came from is not exposed by the sampler, so
  it is not claimed. The first generation is random and has no parents.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.samplers import NSGAIISampler
from optuna.samplers.nsgaii import BaseMutation

from botwarden.domain.bars import F64
from botwarden.domain.errors import DomainError
from botwarden.domain.research import evolution_fitness
from botwarden.research.evaluation import EvalTask, evaluate_task
from botwarden.research.executors import Executor, gather, split
from botwarden.research.market import DataRef
from botwarden.research.spec import RunSpec
from botwarden.research.strategies import get_spec
from botwarden.research.sweep import SHOWN_METRICS, TASKS_PER_WORKER

MUTATION_PROB = 0.15
MUTATION_STRENGTH = 0.2
STRENGTH_DECAY = 0.95
ELITE_SHARE = 0.10
DEFAULT_TEST_FRACTION = 0.3
SPACE_SPREAD = 4  # default search range: base value / 4 .. base value x 4, within the schema


class StrengthMutation(BaseMutation):
    """A normal step with standard deviation `strength` x the parameter's range (Optuna
    clips the result to the range and rounds integers)."""

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def mutation(self, param: float, rng: np.random.RandomState, study: optuna.Study,
                 search_space_bounds: F64) -> float:
        low, high = search_space_bounds
        return float(param + rng.normal(0.0, self.strength * (high - low)))


@dataclass(frozen=True, slots=True)
class Bound:
    low: int
    high: int


def schema_bounds(kind: str) -> dict[str, Bound]:
    """The integer parameters of `kind` with their schema bounds (ge/le)."""
    out = {}
    for name, field in get_spec(kind).params_model.model_fields.items():
        if field.annotation is not int:
            continue
        low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
        high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
        if low is not None and high is not None:
            out[name] = Bound(int(low), int(high))
    return out


def search_space(kind: str, base: Mapping[str, Any],
                 overrides: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Bound]:
    """The ranges evolved: `overrides` ({name: (low, high)}, inside the schema's bounds) or,
    by default, every integer parameter from its base value / 4 to x 4."""
    bounds = schema_bounds(kind)
    if overrides:
        unknown = set(overrides) - set(bounds)
        if unknown:
            raise DomainError("INVALID_REQUEST",
                              f"{kind} has no evolvable parameter {', '.join(sorted(unknown))}",
                              f"Evolvable: {', '.join(sorted(bounds))}.", status=422)
        space = {}
        for name, (low, high) in overrides.items():
            b = bounds[name]
            if not b.low <= low < high <= b.high:
                raise DomainError("INVALID_REQUEST",
                                  f"range {low}..{high} of {name} is empty or outside "
                                  f"{b.low}..{b.high}", "Give low < high within the bounds.",
                                  status=422)
            space[name] = Bound(low, high)
        return space
    space = {}
    for name, b in bounds.items():
        value = int(base.get(name, b.low))
        low = max(b.low, math.ceil(value / SPACE_SPREAD))
        high = min(b.high, value * SPACE_SPREAD)
        if low < high:
            space[name] = Bound(low, high)
    return space


def _elite(numbers_and_scores: list[tuple[int, float]]) -> list[int]:
    ordered = sorted(numbers_and_scores, key=lambda p: (-p[1], p[0]))
    return [n for n, _ in ordered[:max(1, math.ceil(ELITE_SHARE * len(ordered)))]]


def run_evolution(
    ref: DataRef, spec: RunSpec, space: Mapping[str, Bound], executor: Executor, *,
    generations: int, population: int, seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    on_generation: Callable[[int, list[dict[str, Any]]], None] | None = None,
    check: Callable[[], None] = lambda: None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    if not space:
        raise DomainError("INVALID_REQUEST", f"{spec.kind} has nothing to evolve around "
                          f"{spec.params}", "Give a search space with low < high.", status=422)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        mutation = StrengthMutation(MUTATION_STRENGTH)
        sampler = NSGAIISampler(population_size=population, mutation=mutation,
                                mutation_prob=MUTATION_PROB, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                study_name=f"evolution-{spec.kind}")
    split_ns = ref.start_ns + int((ref.end_ns - ref.start_ns) * (1.0 - test_fraction))
    segments = ((ref.start_ns, split_ns), (split_ns, ref.end_ns))
    kind = get_spec(spec.kind)
    # Where Optuna's genetic samplers keep their own bookkeeping (BaseGASampler): each
    # trial's generation, and each generation's parent population (trial ids).
    generation_key = NSGAIISampler._get_generation_key()
    parent_key = NSGAIISampler._get_parent_cache_key_prefix()
    history: list[dict[str, Any]] = []
    everyone: list[dict[str, Any]] = []
    for g in range(generations):
        check()
        mutation.strength = MUTATION_STRENGTH * STRENGTH_DECAY ** g
        trials = [study.ask() for _ in range(population)]
        candidates: list[dict[str, Any] | None] = []
        for trial in trials:
            params = dict(spec.params)
            for name, b in space.items():
                params[name] = trial.suggest_int(name, b.low, b.high)
            try:
                candidates.append(kind.bind(params).params.model_dump())
            except DomainError:
                candidates.append(None)
        valid = [c for c in candidates if c is not None]
        chunks = split(valid, executor.workers * TASKS_PER_WORKER)
        tasks = [EvalTask(ref, spec.kind, tuple(chunk), segments, spec.config,
                          spec.flatten_minutes) for chunk in chunks]
        results = iter([row for result in gather(executor, evaluate_task, tasks, check=check)
                        for row in result])
        number_of = {t._trial_id: t.number for t in study.get_trials(deepcopy=False)}
        parent_ids = study._storage.get_study_system_attrs(study._study_id).get(
            f"{parent_key}{g}", [])
        parents = sorted(number_of[i] for i in parent_ids if i in number_of)
        individuals = []
        for trial, candidate in zip(trials, candidates, strict=True):
            individual: dict[str, Any]
            if candidate is None:
                individual = {"params": {**spec.params, **trial.params}, "valid": False,
                              "train_fitness": 0.0, "fitness": 0.0, "train": None, "test": None}
            else:
                train, test = next(results)
                individual = {"params": candidate, "valid": True,
                              "train_fitness": evolution_fitness(train),
                              "fitness": evolution_fitness(test),
                              "train": {k: train.get(k) for k in SHOWN_METRICS},
                              "test": {k: test.get(k) for k in SHOWN_METRICS}}
            trial.set_constraint("valid", 0.0 if individual["valid"] else 1.0)
            study.tell(trial, individual["train_fitness"])
            stored = study._storage.get_trial_system_attrs(trial._trial_id)
            individual.update(trial_number=trial.number, parents=parents,
                              generation=int(stored.get(generation_key, g)))
            individuals.append(individual)
        fitnesses = [i["fitness"] for i in individuals]
        history.append({
            "generation": g, "strength": mutation.strength, "individuals": len(individuals),
            "valid": sum(i["valid"] for i in individuals), "parents": parents,
            "best_fitness": max(fitnesses), "mean_fitness": sum(fitnesses) / len(fitnesses),
            "best_train_fitness": max(i["train_fitness"] for i in individuals),
            "elite": _elite([(i["trial_number"], i["train_fitness"]) for i in individuals]),
        })
        everyone.extend(individuals)
        if on_generation is not None:
            on_generation(g, individuals)
        if progress is not None:
            progress((g + 1) / generations)
    return _outcome(everyone, history, spec, space, generations, population, seed,
                    test_fraction, split_ns)


def _outcome(everyone: list[dict[str, Any]], history: list[dict[str, Any]], spec: RunSpec,
             space: Mapping[str, Bound], generations: int, population: int, seed: int,
             test_fraction: float, split_ns: int) -> dict[str, Any]:
    from botwarden.data.calendar import to_datetime

    valid = [i for i in everyone if i["valid"]]
    champion = max(valid, key=lambda i: (i["train_fitness"], -i["trial_number"]),
                   default=None)
    best_oos = max(everyone, key=lambda i: (i["fitness"], -i["trial_number"]))
    return {
        "settings": {
            "sampler": "optuna.samplers.NSGAIISampler", "population": population,
            "generations": generations, "seed": seed, "mutation_prob": MUTATION_PROB,
            "mutation_strength": MUTATION_STRENGTH, "strength_decay": STRENGTH_DECAY,
            "crossover": "uniform", "crossover_prob": 0.9, "swapping_prob": 0.5,
            "elitism": "NSGA-II elitist survival (parents and children ranked together)",
            "test_fraction": test_fraction, "test_start": to_datetime(split_ns).isoformat(),
            "space": {name: [b.low, b.high] for name, b in space.items()},
        },
        "generations": history,
        "champion": None if champion is None else {
            k: champion[k] for k in ("trial_number", "generation", "params", "fitness",
                                     "train_fitness", "train", "test")},
        "best_out_of_sample": {k: best_oos[k] for k in ("trial_number", "generation",
                                                        "params", "fitness")},
        "metrics": {
            "individuals": len(everyone), "valid_individuals": len(valid),
            "generations": generations, "population": population,
            "champion_fitness": champion["fitness"] if champion else None,
            "champion_train_fitness": champion["train_fitness"] if champion else None,
            "best_fitness": best_oos["fitness"],
        },
    }
