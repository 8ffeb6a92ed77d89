"""Shared fixtures. Every test that takes `database_url` runs on SQLite and, when
BOTWARDEN_TEST_DATABASE_URL names one, on PostgreSQL too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from botwarden.config import Settings
from botwarden.store.db import make_engine, make_session_factory, normalise_url
from botwarden.store.migrate import upgrade
from botwarden.store.models import Base

# argon2 at its production cost takes ~0.1 s a hash and the suite creates many users; the
# cost is a setting, kept minimal in tests only.
os.environ.setdefault("BOTWARDEN_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("BOTWARDEN_PASSWORD_HASH_MEMORY_KIB", "8")
os.environ.setdefault("BOTWARDEN_PASSWORD_HASH_PARALLELISM", "1")

PG_URL = os.environ.get("BOTWARDEN_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_migrated() -> str | None:
    if not PG_URL:
        return None
    url = normalise_url(PG_URL)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    upgrade(url)
    return url


def _truncate_pg(url: str) -> None:
    engine = sa.create_engine(url)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path
) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "botwarden.db"
        shutil.copy(_sqlite_template, path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("_pg_migrated")
        _truncate_pg(url)
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        data_dir=tmp_path / "data",
        run_workers=False,
        integration_checks=False,
        demo_data=False,
        demo_fleet=False,
        log_json=False,
        # Tests make far more mutations a minute than people do; the tests of the limits
        # themselves (tests/api/test_ratelimit.py) set small ones.
        rate_limit_user_per_minute=1_000_000,
        rate_limit_global_per_minute=1_000_000,
    )
