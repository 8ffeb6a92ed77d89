"""The strategy catalogue as the control plane sees it: kinds and bounded parameters.

There is one source: each strategy's own parameter schema in research/strategies (the
Pydantic model its kernel reads). Bots are validated here at creation with the same schema
that research and runners bind, so a bot can never hold parameters its engine would refuse.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from botwarden.domain.errors import DomainError
from botwarden.research.strategies import STRATEGIES, StrategyParams

CATALOGUE: dict[str, tuple[type[StrategyParams], str]] = {
    kind: (spec.params_model, spec.description) for kind, spec in STRATEGIES.items()
}


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters normalised by the kind's schema (defaults filled in); a bad kind or
    parameter is a 422 naming each problem."""
    spec = STRATEGIES.get(kind)
    if spec is None:
        raise DomainError("UNKNOWN_STRATEGY", f"unknown strategy kind {kind!r}",
                          f"Use one of {', '.join(sorted(STRATEGIES))} (GET /api/strategies).",
                          status=422)
    if not isinstance(params, dict):
        raise DomainError("INVALID_REQUEST", f"parameters of {kind} must be an object",
                          "See GET /api/strategies for each parameter's bounds.", status=422)
    try:
        return spec.params_model.model_validate(params).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}"
                             for e in exc.errors())
        raise DomainError("INVALID_REQUEST", f"invalid parameters for {kind}: {problems}",
                          "See GET /api/strategies for each parameter's bounds.",
                          status=422) from None


def describe() -> list[dict[str, Any]]:
    """Every kind with its title, description and JSON parameter schema, by kind."""
    return [{"kind": kind, "title": spec.title, "description": spec.description,
             "params_schema": spec.params_model.model_json_schema(),
             "defaults": spec.params_model().model_dump()}
            for kind, spec in sorted(STRATEGIES.items())]
