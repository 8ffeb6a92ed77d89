"""`capital_usd`: the optional per-bot capital in a risk config."""

from __future__ import annotations

from decimal import Decimal

import pytest

from botwarden.domain.errors import DomainError
from botwarden.domain.risk_limits import loosens, parse_risk_limits

BASE = {"max_contracts_per_order": 1, "max_position_contracts": 2,
        "max_daily_loss_usd": "500", "max_drawdown_pct": "10"}


def test_capital_is_optional_and_exact() -> None:
    assert parse_risk_limits(BASE).capital_usd is None
    limits = parse_risk_limits({**BASE, "capital_usd": "12500.25"})
    assert limits.capital_usd == Decimal("12500.25")
    assert parse_risk_limits(limits.to_json()) == limits
    assert parse_risk_limits(parse_risk_limits(BASE).to_json()).capital_usd is None


@pytest.mark.parametrize("bad", ["0", "-1", "lots", True])
def test_capital_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(DomainError) as raised:
        parse_risk_limits({**BASE, "capital_usd": bad})
    assert raised.value.code == "INVALID_REQUEST" and "capital_usd" in raised.value.message


def test_more_capital_loosens_less_does_not() -> None:
    small = parse_risk_limits({**BASE, "capital_usd": "10000"})
    big = parse_risk_limits({**BASE, "capital_usd": "20000"})
    assert loosens(small, big)
    assert not loosens(big, small)
