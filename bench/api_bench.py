"""API throughput: requests/s and p50/p99 latency at 32 concurrent clients for an
authenticated read (GET /api/bots) and a guarded, audited mutation (PATCH /api/bots/{id}), on
SQLite and PostgreSQL, each beside a bare FastAPI endpoint doing the same token lookup and the
same query (the floor). Prints figures; asserts nothing.

Each server is a real uvicorn process (1 worker); the load comes from wrk in another process
(`apt-get install wrk`). Rate limits are set out of reach. PostgreSQL: a database made
for the run on BOTWARDEN_TEST_DATABASE_URL's server, or a throwaway cluster when it is unset.

    uv run python bench/api_bench.py [--seconds 10] [--clients 32] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BOT = {"name": "bench", "strategy": {"kind": "sma_cross", "params": {"fast": 5, "slow": 20}},
       "symbol": "MES", "timeframe": "1m",
       "risk_config": {"max_contracts_per_order": 1, "max_position_contracts": 2,
                       "max_daily_loss_usd": "500", "max_drawdown_pct": "10"}}
BOTS_PER_ACCOUNT = 10


# ---- the floor: the same token lookup and queries, without the app around them ----


def floor_app() -> Any:
    """uvicorn --factory target: the bare endpoints, on BOTWARDEN_DATABASE_URL. They do the
    database work of the app's endpoints (token lookup, the bots, their PnL and autonomy
    scores; the update and its commit) with none of the app around it: no middleware, no
    dependency injection, no policy, audit or rate limit, no response models."""
    import sqlalchemy as sa
    from fastapi import FastAPI, Header, HTTPException

    from botwarden.clock import utcnow
    from botwarden.services import bots as bot_service
    from botwarden.services.evidence import autonomy_scores
    from botwarden.services.tokens import token_digest
    from botwarden.store.db import make_engine, make_session_factory
    from botwarden.store.models import Account, ApiToken, Bot, RiskConfig, User

    engine = make_engine(os.environ["BOTWARDEN_DATABASE_URL"])
    sessions = make_session_factory(engine)
    app = FastAPI()

    def account_of(session: Any, authorization: str) -> str:
        row = session.execute(
            sa.select(ApiToken.id, ApiToken.expires_at, ApiToken.revoked_at, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(authorization.removeprefix("Bearer ")))
        ).first()
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            raise HTTPException(401)
        return str(row.User.account_id)

    def described(session: Any, bots: list[Any], with_risk: bool) -> list[dict[str, Any]]:
        pnl = bot_service.pnl_by_bot(session, [b.id for b in bots])
        account = session.get(Account, bots[0].account_id) if bots else None
        scores = autonomy_scores(session, bots, account, now=utcnow()) if account else {}
        risks = {b.id: session.get(RiskConfig, b.id) for b in bots} if with_risk else {}
        return [{"id": b.id, "name": b.name, "stage": b.stage, "live_pnl": str(pnl[b.id][0]),
                 "sim_pnl": str(pnl[b.id][1]),
                 "autonomy_score": scores[b.id].score if b.id in scores else None,
                 "risk_config": risks[b.id].config if risks.get(b.id) else None}
                for b in bots]

    @app.get("/floor/bots")
    def list_bots(authorization: str = Header()) -> list[dict[str, Any]]:
        with sessions() as session:
            account_id = account_of(session, authorization)
            bots = list(session.scalars(sa.select(Bot).where(Bot.account_id == account_id)
                                        .order_by(Bot.created_at)).all())
            return described(session, bots, with_risk=False)

    @app.patch("/floor/bots/{bot_id}")
    def update_bot(bot_id: str, body: dict[str, Any],
                   authorization: str = Header()) -> dict[str, Any]:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":  # as the app's mutations: lock at BEGIN
                conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
            with sessions(bind=conn) as session:
                account_id = account_of(session, authorization)
                bot = session.get(Bot, bot_id)
                if bot is None or bot.account_id != account_id:
                    raise HTTPException(404)
                bot.name = body["name"]
                bot.updated_at = utcnow()
                session.commit()
                return described(session, [bot], with_risk=True)[0]

    return app


# ---- the load generator: wrk, in its own process ----

# httpx's async client could not generate the load: on this 2-core machine it fell from ~330
# requests/s at 4 connections to ~140 at 32, whichever server it hit. wrk (Debian package
# `wrk`) holds 32 connections at a fraction of a core.
WRK_SCRIPT = """
local token, method = os.getenv("BENCH_TOKEN"), os.getenv("BENCH_METHOD")
wrk.method = method
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
local n = 0
if method == "PATCH" then
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, '{"name": "bench-' .. n .. '"}')
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "failed": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def run_load(url: str, method: str, token: str, seconds: float, clients: int,
             script: Path) -> dict[str, Any]:
    """A 2 s warm-up, then the measured run; -> req/s, p50/p99 ms, failed requests."""
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_METHOD": method}
    for duration in (2, seconds):
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{int(duration)}s",
                              "--timeout", "30s", "-s", str(script), url],
                             env=env, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return {"rps": figures["requests"] / (figures["duration_us"] / 1e6),
            "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
            "failed": figures["failed"]}


# ---- servers and databases ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn(factory: str, env: dict[str, str], app_dir: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir", str(app_dir),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log",
         "--log-level", "warning"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{factory} exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 404):
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{factory} not ready") from None
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'bench.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    import sqlalchemy as sa

    from botwarden.store.db import normalise_url

    server_url = os.environ.get("BOTWARDEN_TEST_DATABASE_URL")
    with (nullcontext_url(server_url) if server_url else throwaway_cluster()) as url:
        name = f"botwarden_bench_{os.getpid()}"
        admin = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            yield str(sa.engine.make_url(url).set(database=name).render_as_string(False))
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()


@contextmanager
def nullcontext_url(url: str) -> Iterator[str]:
    yield url


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """initdb + pg_ctl in a temporary folder, like scripts/dev-postgres.sh, removed after."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise RuntimeError("no PostgreSQL found: install it or set BOTWARDEN_TEST_DATABASE_URL")
    pg_bin, folder, port = bins[-1], Path(tempfile.mkdtemp(prefix="bw-bench-pg-")), free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run([*as_pg, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A",
                    "trust", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
                    "-w", "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c max_connections=200", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def seed(database_url: str) -> tuple[str, str]:
    """Migrate; one account with BOTS_PER_ACCOUNT bots and a token. -> (token, a bot id)."""
    from botwarden.ids import new_id
    from botwarden.services import bots as bot_service
    from botwarden.services.accounts import create_account, issue_token
    from botwarden.store.db import make_engine, make_session_factory
    from botwarden.store.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        _, user = create_account(session, f"{new_id()}@example.com", "bench password")
        bots = [bot_service.create_bot(session, user.account_id, {**BOT, "name": f"bench-{i}"})
                for i in range(BOTS_PER_ACCOUNT)]
        token = issue_token(session, user, timedelta(hours=2)).token
        session.commit()
        bot_id = bots[0].id
    engine.dispose()
    return token, bot_id


def bench_backend(backend: str, seconds: float, clients: int) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="bw-bench-"))
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    database = sqlite_database(workdir) if backend == "sqlite" else postgres_database()
    rows = []
    try:
        with database as url:
            token, bot_id = seed(url)
            env = {"BOTWARDEN_DATABASE_URL": url, "BOTWARDEN_RUN_WORKERS": "false",
                   "BOTWARDEN_RATE_LIMIT_USER_PER_MINUTE": str(10**9),
                   "BOTWARDEN_RATE_LIMIT_GLOBAL_PER_MINUTE": str(10**9),
                   "BOTWARDEN_DATA_DIR": str(workdir / "data")}
            with uvicorn("botwarden.api.app:create_app", env, ROOT) as real, \
                    uvicorn("api_bench:floor_app", env, ROOT / "bench") as floor:
                for label, method, path in (("GET /api/bots", "GET", "/bots"),
                                            ("PATCH /api/bots/{id}", "PATCH", f"/bots/{bot_id}")):
                    for server, base, prefix in (("floor", floor, "/floor"),
                                                 ("app", real, "/api")):
                        result = run_load(base + prefix + path, method, token, seconds, clients,
                                          script)
                        rows.append({"backend": backend, "endpoint": label, "server": server,
                                     **result})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def report(rows: list[dict[str, Any]], clients: int) -> None:
    print(f"\n{clients} concurrent clients; 'of floor' is the app's throughput / the floor's")
    print(f"{'backend':<11}{'endpoint':<22}{'server':<7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'failed':>8}{'of floor':>10}")
    floors = {(r["backend"], r["endpoint"]): r["rps"] for r in rows if r["server"] == "floor"}
    for r in rows:
        share = (f"{r['rps'] / floors[(r['backend'], r['endpoint'])]:.0%}"
                 if r["server"] == "app" else "")
        print(f"{r['backend']:<11}{r['endpoint']:<22}{r['server']:<7}{r['rps']:>9.0f}"
              f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['failed']:>8}{share:>10}")
    print("targets: the read >= 50% of its floor, the mutation >= 25%, no request failed")


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("the load generator is wrk: apt-get install wrk")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        rows += bench_backend(backend, args.seconds, args.clients)
    report(rows, args.clients)


if __name__ == "__main__":
    main()
