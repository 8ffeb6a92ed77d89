"""Fixtures for the market-data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from botwarden.data.bar_store import BarStore


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "data")
