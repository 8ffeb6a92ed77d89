"""Research end to end on the demo data `make run` serves: a real `botwarden serve`, a real
worker process running the research handlers on its process pool, and only HTTP in between.
A sweep, a matrix, a walk-forward, a stress test and an evolution of one bot run as jobs,
and the bot's promotion-evaluation then shows their figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.synth import ensure_demo_data
from tests.api.conftest import VALID_BOT
from tests.e2e.servers import serve
from tests.workers.processes import wait_registered, worker_processes


def _poll(client: httpx.Client, path: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(path).raise_for_status().json()
        if body["status"] in ("COMPLETED", "FAILED", "CANCELED", "TIMEOUT"):
            return body
        assert time.monotonic() < deadline, f"{path} still {body['status']}"
        time.sleep(0.2)


def test_research_jobs_through_the_api_feed_promotion(
        database_url: str, engine: Engine, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    written = ensure_demo_data(Settings(data_dir=data_dir))  # what `make run` starts with
    assert written["MES"] > 0
    env = {"BOTWARDEN_DATA_DIR": str(data_dir), "BOTWARDEN_RESEARCH_WORKERS": "2"}
    with serve(database_url, tmp_path, env=env) as server, \
            worker_processes(database_url, tmp_path, 1, types="BACKTEST,SWEEP,MATRIX,EVOLVE",
                             modules=("botwarden.research.jobs",),
                             env={"DATA_DIR": str(data_dir), "RESEARCH_WORKERS": "2"}) as procs:
        wait_registered(engine, procs)
        anon = httpx.Client(base_url=server.url, timeout=30)
        credentials = {"email": "quant@example.com", "password": "correct horse battery"}
        assert anon.post("/api/auth/register", json=credentials).status_code == 201
        token = anon.post("/api/auth/login", json=credentials).raise_for_status().json()["token"]
        client = httpx.Client(base_url=server.url, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        bot_id = client.post("/api/bots", json=VALID_BOT).raise_for_status().json()["id"]
        posts = {
            "backtest-sweep": {"bot_id": bot_id, "strategy": {"grid": {"fast": [3, 5, 8],
                                                                       "slow": [20, 40]}}},
            "backtest-matrix": {"bot_id": bot_id},
            "walk-forward": {"bot_id": bot_id},
            "stress-test": {"bot_id": bot_id, "paths": 200},
        }
        queued = {route: client.post(f"/api/{route}", json=body).raise_for_status().json()
                  for route, body in posts.items()}
        evolution = client.post("/api/evolution/trigger", json={
            "bot_id": bot_id, "generations": 2, "population": 4}).raise_for_status().json()
        runs = {route: _poll(client, f"/api/{route}/{q['id']}") for route, q in queued.items()}
        population = _poll(client, f"/api/genetics/populations/{evolution['id']}")
        for run in [*runs.values(), population]:
            assert run["status"] == "COMPLETED", (run["error"], server.log_tail(),
                                                  procs[0].log.read_text()[-3000:])
            assert run["provenance"]["dataset"] == "SYNTH" and run["provenance"]["data_hash"]
        assert len(runs["backtest-sweep"]["results"]) == 6
        assert len(runs["backtest-matrix"]["cells"]) == 6
        assert runs["walk-forward"]["metrics"]["windows"] >= 3
        assert len(population["generations"]) == 2
        evaluation = client.get(f"/api/bots/{bot_id}/promotion-evaluation").json()
        gates = {g["id"]: g for g in evaluation["gates"]}
        assert gates["min_trades"]["actual"] is not None and evaluation["evidence"]
        backtests = client.get("/api/research/runs",
                               params={"bot_id": bot_id, "kind": "BACKTEST"}).json()
        assert len(backtests) == 6  # one per run of the bot, and the evolution's champion
