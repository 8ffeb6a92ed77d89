"""The strategy catalogue: every built-in kind, by name."""

from __future__ import annotations

from typing import Any

from botwarden.domain.errors import DomainError
from botwarden.research.strategies import (
    crosses,
    donchian_breakout,
    opening_range,
    rsi_reversion,
    vwap_reversion,
)
from botwarden.research.strategies.base import Strategy, StrategyParams, StrategySpec

STRATEGIES: dict[str, StrategySpec] = {
    spec.kind: spec
    for spec in (
        crosses.SMA_CROSS,
        crosses.EMA_CROSS,
        rsi_reversion.SPEC,
        donchian_breakout.SPEC,
        vwap_reversion.SPEC,
        opening_range.SPEC,
    )
}


def get_spec(kind: str) -> StrategySpec:
    try:
        return STRATEGIES[kind]
    except KeyError:
        raise DomainError(
            "UNKNOWN_STRATEGY",
            f"unknown strategy kind {kind!r}",
            f"Use one of {', '.join(sorted(STRATEGIES))}.",
            status=422,
        ) from None


def build_strategy(kind: str, params: dict[str, Any] | None = None) -> Strategy:
    """The strategy `kind` bound to validated `params`."""
    return get_spec(kind).bind(params)


def catalogue() -> list[dict[str, Any]]:
    """Every kind with its JSON parameter schema (for GET /api/strategies)."""
    return [spec.catalogue_entry() for spec in STRATEGIES.values()]


__all__ = ["STRATEGIES", "Strategy", "StrategyParams", "StrategySpec", "build_strategy",
           "catalogue", "get_spec"]
