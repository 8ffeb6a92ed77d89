"""The strategy catalogue as the control plane sees it: kinds and bounded parameters.

Bots are validated against this at creation; research and runners resolve the same kind
to its engine implementation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from botwarden.domain.errors import DomainError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrossParams(_Params):
    fast: int = Field(10, ge=2, le=500, description="fast moving-average length, bars")
    slow: int = Field(30, ge=3, le=2000, description="slow moving-average length, bars")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> CrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


class RsiParams(_Params):
    period: int = Field(14, ge=2, le=200)
    oversold: float = Field(30, ge=1, le=49)
    overbought: float = Field(70, ge=51, le=99)


class DonchianParams(_Params):
    period: int = Field(20, ge=2, le=1000)


class VwapParams(_Params):
    threshold_ticks: int = Field(8, ge=1, le=1000, description="distance from VWAP to enter")


class OpeningRangeParams(_Params):
    range_minutes: int = Field(30, ge=1, le=240)


CATALOGUE: dict[str, tuple[type[_Params], str]] = {
    "sma_cross": (CrossParams, "Simple moving-average cross, stop-and-reverse."),
    "ema_cross": (CrossParams, "Exponential moving-average cross, stop-and-reverse."),
    "rsi_reversion": (RsiParams, "RSI mean reversion: long when oversold, short when overbought."),
    "donchian_breakout": (DonchianParams, "Donchian channel breakout."),
    "vwap_reversion": (VwapParams, "Reversion to the session VWAP."),
    "opening_range_breakout": (OpeningRangeParams, "Breakout of the session's opening range."),
}


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    entry = CATALOGUE.get(kind)
    if entry is None:
        raise DomainError("UNKNOWN_STRATEGY", f"unknown strategy kind {kind!r}",
                          f"Use one of {', '.join(sorted(CATALOGUE))} (GET /api/strategies).",
                          status=422)
    try:
        return entry[0](**params).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}"
                             for e in exc.errors())
        raise DomainError("INVALID_REQUEST", f"invalid parameters for {kind}: {problems}",
                          "See GET /api/strategies for each parameter's bounds.",
                          status=422) from None


def describe() -> list[dict[str, Any]]:
    return [{"kind": kind, "description": doc, "params_schema": model.model_json_schema()}
            for kind, (model, doc) in sorted(CATALOGUE.items())]
