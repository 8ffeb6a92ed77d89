"""Research through the API as jobs: each kind is queued by its route, run by a worker in
this process, read back, and fed to the bot's promotion-evaluation; plus isolation and
refusals. On SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.domain.research import evolution_fitness
from botwarden.research import jobs as research_jobs
from botwarden.store.jobs import cancel_job
from botwarden.store.models import Bot, EvolutionIndividual
from botwarden.workers.registry import HandlerRegistry
from botwarden.workers.worker import Worker
from tests.api.conftest import VALID_BOT, ApiUser
from tests.research.jobs_support import (
    IMPORTED,
    sawtooth,
    write_imported_days,
    write_synthetic_days,
)

GRID = {"fast": [3, 5, 8], "slow": [5, 20, 40]}  # 7 valid: fast must stay below slow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Research jobs computed in the test's own process: quick, and the pool has its own
    tests (tests/research/test_executors.py)."""
    write_synthetic_days(settings.data_dir, days=12)
    return settings.model_copy(update={"research_workers": 1})


def run_jobs(app: FastAPI) -> int:
    """Run every queued job now, in this thread, with the research handlers."""
    registry = HandlerRegistry()
    for job_type in (JobType.BACKTEST, JobType.SWEEP, JobType.MATRIX, JobType.EVOLVE):
        registry.register(job_type, research_jobs.handle)
    return Worker(app.state.settings, engine=app.state.engine, registry=registry).run_available()


def queue(client: TestClient, user: ApiUser, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) >= {"id", "job_id"}
    return accepted  # type: ignore[no-any-return]


def get(client: TestClient, user: ApiUser, path: str) -> dict[str, Any]:
    response = client.get(path, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def gates(client: TestClient, user: ApiUser, bot_id: str) -> dict[str, dict[str, Any]]:
    body = get(client, user, f"/api/bots/{bot_id}/promotion-evaluation")
    return {g["id"]: g for g in body["gates"]}


def set_stage(app: FastAPI, bot_id: str, stage: str) -> None:
    with app.state.session_factory() as session:
        session.execute(sa.update(Bot).where(Bot.id == bot_id).values(stage=stage))
        session.commit()


def assert_provenance(run: dict[str, Any]) -> None:
    p = run["provenance"]
    assert p["provider"] == "synthetic" and p["dataset"] == "SYNTH"
    assert p["range_start"] < p["range_end"] and len(p["data_hash"]) == 64


def evidence_backtests(client: TestClient, user: ApiUser, bot_id: str) -> list[dict[str, Any]]:
    return list(get(client, user, f"/api/research/runs?bot_id={bot_id}&kind=BACKTEST"))


def test_catalogue_is_the_strategies_own_schemas(client: TestClient, user: ApiUser) -> None:
    entries = {e["kind"]: e for e in get(client, user, "/api/strategies")}
    assert set(entries) == {"sma_cross", "ema_cross", "rsi_reversion", "donchian_breakout",
                            "vwap_reversion", "opening_range"}
    assert set(entries["rsi_reversion"]["params_schema"]["properties"]) == {
        "period", "lower", "upper"}
    assert entries["sma_cross"]["defaults"] == {"fast": 10, "slow": 30}
    rsi_bot = {**VALID_BOT, "strategy": {"kind": "rsi_reversion", "params": {"lower": 25}}}
    created = client.post("/api/bots", json=rsi_bot, headers=user.headers)
    assert created.status_code == 201, created.text
    assert created.json()["strategy"]["params"] == {"period": 14, "lower": 25, "upper": 70}


def test_backtest_of_a_bot_becomes_its_trials_evidence(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    before = gates(client, user, bot_id)
    assert before["min_trades"]["actual"] is None
    accepted = queue(client, user, "/api/strategy-lab/backtests", {"bot_id": bot_id})
    queued = get(client, user, f"/api/strategy-lab/backtests/{accepted['id']}")
    assert queued["status"] == "QUEUED" and queued["job_status"] == "QUEUED"
    assert run_jobs(app) == 1
    run = get(client, user, f"/api/strategy-lab/backtests/{accepted['id']}")
    assert run["status"] == "COMPLETED" and run["job_status"] == "COMPLETED", run["error"]
    assert_provenance(run)
    assert run["metrics"]["trades"] == len(run["trades"]) > 0
    assert run["equity"] and {"time", "equity"} <= set(run["equity"][0])
    assert run["result"]["ledger"]["mismatches"] == []
    assert run["strategy"] == {"kind": "sma_cross", "params": {"fast": 5, "slow": 20}}
    assert run["passed"] is False  # synthetic data never proves a strategy
    after = gates(client, user, bot_id)
    assert after["min_trades"]["actual"] == run["metrics"]["trades"]
    assert after["real_market_data"]["actual"] is False
    assert after["recent_backtests_passed"]["actual"] == 0


def test_grid_sweep_ranks_results_and_gives_the_bot_evidence(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    accepted = queue(client, user, "/api/backtest-sweep",
                     {"bot_id": bot_id, "strategy": {"grid": GRID}})
    run_jobs(app)
    run = get(client, user, f"/api/backtest-sweep/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    assert_provenance(run)
    results = run["results"]
    assert len(results) == 7 and len(run["result"]["skipped"]) == 2
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert run["metrics"]["best_params"] == results[0]["params"]
    evidence = evidence_backtests(client, user, bot_id)
    assert len(evidence) == 1 and evidence[0]["job_id"] == accepted["job_id"]
    assert evidence[0]["strategy"]["params"] == {"fast": 5, "slow": 20}
    assert gates(client, user, bot_id)["min_sharpe"]["actual"] is not None


def test_window_sweep_consistency(client: TestClient, user: ApiUser, app: FastAPI) -> None:
    body = {"strategy": {"kind": "ema_cross", "params": {"fast": 8, "slow": 21}},
            "timeframe": "5m", "windows": {"count": 4, "days": 5}, "rank_by": "net_pnl"}
    accepted = queue(client, user, "/api/backtest-sweep", body)
    run_jobs(app)
    run = get(client, user, f"/api/backtest-sweep/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    windows = run["results"]
    assert len(windows) == 4 and run["timeframe"] == "5m"
    pnl = [w["metrics"]["net_pnl"] for w in windows]
    assert pnl == sorted(pnl, reverse=True)
    profitable = sum(w["metrics"]["profit"] > 0 for w in windows)
    assert run["metrics"]["consistency"] == profitable / 4
    assert run["bot_id"] is None  # not a bot's run: no evidence recorded for anyone
    assert get(client, user, "/api/research/runs?kind=BACKTEST") == []


def test_matrix_has_six_cells_and_their_consistency(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    accepted = queue(client, user, "/api/backtest-matrix", {"bot_id": bot_id})
    run_jobs(app)
    run = get(client, user, f"/api/backtest-matrix/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    cells = run["cells"]
    assert sorted((c["timeframe"], c["horizon_days"]) for c in cells) == sorted(
        (tf, h) for tf in ("1m", "5m", "15m") for h in (30, 90))
    assert all("of 90 days" in c["note"] for c in cells if c["horizon_days"] == 90)
    assert run["consistency"] == sum(c["profitable"] for c in cells) / 6
    assert run["metrics"]["consistency"] == run["consistency"]
    assert_provenance(run)
    assert gates(client, user, bot_id)["min_trades"]["actual"] is not None


def test_walk_forward_feeds_the_shadow_gates(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    write_imported_days(app.state.settings.data_dir, days=12)  # the one real dataset
    set_stage(app, bot_id, "SHADOW")
    before = gates(client, user, bot_id)
    assert before["walk_forward_consistency"]["actual"] is None
    accepted = queue(client, user, "/api/walk-forward", {"bot_id": bot_id})
    run_jobs(app)
    run = get(client, user, f"/api/walk-forward/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    assert run["provenance"]["dataset"] == IMPORTED
    plan = run["result"]["plan"]
    assert plan["scaled"] and "scaled" in plan["note"] and plan["windows"] >= 3
    metrics = run["metrics"]
    assert metrics["windows"] == len(run["results"]) == plan["windows"]
    after = gates(client, user, bot_id)
    assert after["walk_forward_consistency"]["actual"] == metrics["consistency"]
    assert after["overfit_ratio"]["actual"] == metrics["overfit_ratio"]
    if metrics["overfit_ratio"] is None:  # no out-of-sample edge: undefined, and it fails
        assert metrics["out_of_sample_sharpe"] <= 0 and not after["overfit_ratio"]["passed"]


def test_stress_test_feeds_the_canary_gate(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    write_imported_days(app.state.settings.data_dir, days=12)
    set_stage(app, bot_id, "CANARY")
    assert gates(client, user, bot_id)["stress_test"]["actual"] is None
    accepted = queue(client, user, "/api/stress-test", {"bot_id": bot_id, "paths": 200})
    run_jobs(app)
    run = get(client, user, f"/api/stress-test/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    scenarios = run["result"]["scenarios"]
    assert {s["name"] for s in scenarios} == {"costs_x2", "slippage_x3", "bootstrap",
                                              "volatility_x1.5", "volatility_x2"}
    assert run["passed"] == all(s["passed"] for s in scenarios)
    assert run["result"]["drawdown_limit_pct"] == 10.0  # the bot's risk config
    assert gates(client, user, bot_id)["stress_test"]["actual"] is run["passed"]
    assert run["provenance"]["dataset"] == IMPORTED


def test_evolution_stores_generations_fitness_and_lineage(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    accepted = queue(client, user, "/api/evolution/trigger",
                     {"bot_id": bot_id, "generations": 3, "population": 4, "seed": 5})
    run_jobs(app)
    population = get(client, user, f"/api/genetics/populations/{accepted['id']}")
    assert population["status"] == "COMPLETED", population["error"]
    generations = population["generations"]
    assert [g["generation"] for g in generations] == [0, 1, 2]
    assert population["generations_done"] == 3
    seen: set[int] = set()
    for generation in generations:
        members = generation["individuals"]
        assert len(members) == 4
        assert set(generation["parents"]) <= seen  # bred from earlier generations only
        assert (generation["parents"] == []) is (generation["generation"] == 0)
        for member in members:
            assert member["parents"] == generation["parents"]
            if member["metrics"]["valid"]:
                assert member["fitness"] == pytest.approx(
                    evolution_fitness(member["metrics"]["test"]))
            else:
                assert member["fitness"] == 0 and member["metrics"]["test"] is None
        seen |= {m["trial_number"] for m in members}
    settings = population["result"]["settings"]
    assert settings["mutation_prob"] == 0.15 and settings["mutation_strength"] == 0.2
    strengths = [g["strength"] for g in population["result"]["generations"]]
    assert strengths == pytest.approx([0.2, 0.19, 0.1805])
    listed = get(client, user, f"/api/genetics/populations?bot_id={bot_id}")
    assert [p["id"] for p in listed] == [accepted["id"]]
    roles = {get(client, user, f"/api/research/runs/{r['id']}")["request"]["source"]["role"]
             for r in evidence_backtests(client, user, bot_id)}
    assert roles == {"bot_configuration", "evolution_champion_out_of_sample"}


def test_another_accounts_runs_are_not_found(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI,
        make_user: Callable[..., ApiUser]) -> None:
    ids = {
        "strategy-lab/backtests": queue(client, user, "/api/strategy-lab/backtests",
                                        {"bot_id": bot_id})["id"],
        "backtest-sweep": queue(client, user, "/api/backtest-sweep",
                                {"bot_id": bot_id, "strategy": {"grid": GRID}})["id"],
        "backtest-matrix": queue(client, user, "/api/backtest-matrix", {"bot_id": bot_id})["id"],
        "walk-forward": queue(client, user, "/api/walk-forward", {"bot_id": bot_id})["id"],
        "stress-test": queue(client, user, "/api/stress-test", {"bot_id": bot_id})["id"],
        "genetics/populations": queue(client, user, "/api/evolution/trigger",
                                      {"bot_id": bot_id, "generations": 1,
                                       "population": 2})["id"],
    }
    intruder = make_user()
    for route, run_id in ids.items():
        for path in (f"/api/{route}/{run_id}", f"/api/research/runs/{run_id}"):
            answer = client.get(path, headers=intruder.headers)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "NOT_FOUND"
        assert get(client, intruder, f"/api/{route}") == []
    assert get(client, intruder, "/api/research/runs") == []
    # a kind's route does not show another kind's run, even to its owner
    wrong = client.get(f"/api/backtest-matrix/{ids['backtest-sweep']}", headers=user.headers)
    assert wrong.status_code == 404
    for path, body in (("/api/strategy-lab/backtests", {"bot_id": bot_id}),
                       ("/api/evolution/trigger", {"bot_id": bot_id})):
        refused = client.post(path, json=body, headers=intruder.headers)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "NOT_FOUND"


def test_a_cancelled_or_failed_job_shows_on_its_run(
        client: TestClient, user: ApiUser, app: FastAPI) -> None:
    body = {"strategy": {"kind": "sma_cross"}, "symbol": "MNQ"}  # no MNQ bars stored
    failed = queue(client, user, "/api/strategy-lab/backtests", body)
    cancelled = queue(client, user, "/api/strategy-lab/backtests",
                      {"strategy": {"kind": "sma_cross"}})
    with app.state.session_factory() as session:
        cancel_job(session, cancelled["job_id"], account_id=user.account_id, actor="test",
                   now=utcnow())
        session.commit()
    run_jobs(app)
    shown = get(client, user, f"/api/strategy-lab/backtests/{failed['id']}")
    assert shown["status"] == "FAILED" and shown["error"].startswith("NO_DATA")
    assert shown["job_status"] == "FAILED"
    shown = get(client, user, f"/api/strategy-lab/backtests/{cancelled['id']}")
    assert shown["status"] == "CANCELED" and "CANCELED_BY_USER" in shown["error"]


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/api/strategy-lab/backtests", {}, "INVALID_REQUEST"),
    ("/api/strategy-lab/backtests", {"strategy": {"kind": "nope"}}, "UNKNOWN_STRATEGY"),
    ("/api/strategy-lab/backtests",
     {"strategy": {"kind": "sma_cross", "params": {"fast": 30, "slow": 10}}}, "INVALID_REQUEST"),
    ("/api/strategy-lab/backtests", {"strategy": {"kind": "sma_cross"}, "symbol": "XYZ"},
     "UNKNOWN_SYMBOL"),
    ("/api/strategy-lab/backtests",
     {"strategy": {"kind": "sma_cross"}, "start": "2026-03-02T00:00:00Z",
      "end": "2026-03-01T00:00:00Z"}, "INVALID_REQUEST"),
    ("/api/backtest-sweep",
     {"strategy": {"kind": "sma_cross", "grid": {"fast": list(range(1, 101)),
                                                 "slow": list(range(2, 200))}}},
     "INVALID_REQUEST"),
    ("/api/backtest-sweep",
     {"strategy": {"kind": "sma_cross", "grid": {"fast": [5]}}, "windows": {"count": 2}},
     "INVALID_REQUEST"),
    ("/api/backtest-sweep", {"strategy": {"kind": "sma_cross", "grid": {"speed": [5]}}},
     "INVALID_REQUEST"),
])
def test_bad_requests_are_refused_up_front(client: TestClient, user: ApiUser, path: str,
                                           body: dict[str, Any], code: str) -> None:
    response = client.post(path, json=body, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_a_bots_run_keeps_the_bots_own_configuration(
        client: TestClient, user: ApiUser, bot_id: str) -> None:
    for extra in ({"strategy": {"kind": "ema_cross"}}, {"strategy": {"params": {"fast": 7}}},
                  {"symbol": "MNQ"}):
        response = client.post("/api/strategy-lab/backtests", json={"bot_id": bot_id, **extra},
                                headers=user.headers)
        assert response.status_code == 422, extra


def test_evolution_individuals_are_rewritten_on_a_retry(
        client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> None:
    accepted = queue(client, user, "/api/evolution/trigger",
                     {"bot_id": bot_id, "generations": 1, "population": 2})
    with app.state.session_factory() as session:  # left over from a lost first attempt
        session.add(EvolutionIndividual(run_id=accepted["id"], generation=0, trial_number=99,
                                        params={}, fitness=9.0, metrics={}, parents=[]))
        session.commit()
    run_jobs(app)
    population = get(client, user, f"/api/genetics/populations/{accepted['id']}")
    numbers = [m["trial_number"] for g in population["generations"] for m in g["individuals"]]
    assert numbers == [0, 1]


def test_walk_forward_on_an_edge_shows_a_finite_overfit_ratio(
        client: TestClient, user: ApiUser, app: FastAPI) -> None:
    sawtooth(app.state.settings.data_dir, days=12, jitter=12, dataset=IMPORTED)
    bot = {**VALID_BOT, "strategy": {"kind": "donchian_breakout", "params": {"period": 5}}}
    bot_id = client.post("/api/bots", json=bot, headers=user.headers).json()["id"]
    set_stage(app, bot_id, "SHADOW")
    accepted = queue(client, user, "/api/walk-forward",
                     {"bot_id": bot_id, "execution": {"slippage_ticks": 0}})
    run_jobs(app)
    run = get(client, user, f"/api/walk-forward/{accepted['id']}")
    assert run["status"] == "COMPLETED", run["error"]
    metrics = run["metrics"]
    assert metrics["out_of_sample_sharpe"] > 0 and metrics["consistency"] > 0.5
    after = gates(client, user, bot_id)
    assert after["overfit_ratio"]["actual"] == pytest.approx(metrics["overfit_ratio"])
    assert after["walk_forward_consistency"]["actual"] == metrics["consistency"]
    assert after["walk_forward_consistency"]["passed"] is True
