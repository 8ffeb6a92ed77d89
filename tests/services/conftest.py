"""Fixtures of the runner-service tests: a fleet of bots, and the same fleet ready to run."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from tests.services.runner_fleet import Fleet, make_fleet, make_ready


@pytest.fixture
def fleet(engine: Engine, settings: Settings) -> Fleet:
    return make_fleet(engine, settings)


@pytest.fixture
def ready(fleet: Fleet) -> Fleet:
    return make_ready(fleet)
