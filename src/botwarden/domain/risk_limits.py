"""A bot's risk limits: validated server-side, fail closed on a missing required limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from botwarden.domain.errors import DomainError

# Limits without which no order may ever be sent (domain.md: NO_LIMIT_CONFIGURED).
REQUIRED = ("max_contracts_per_order", "max_position_contracts", "max_daily_loss_usd",
            "max_drawdown_pct")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_contracts_per_order: int
    max_position_contracts: int
    max_daily_loss_usd: Decimal
    max_drawdown_pct: Decimal
    max_daily_loss_pct: Decimal = Decimal(5)
    stop_loss_ticks: int | None = None
    profit_target_ticks: int | None = None
    max_orders_per_minute: int = 30
    max_orders_per_second: int = 5
    price_collar_pct: Decimal = Decimal(1)
    flatten_before_close_minutes: int = 15
    news_blackout_minutes: int = 10
    flatten_intraday: bool = True
    # The bot's allocated capital, the base of its % limits and bands; None: the account's
    # starting capital.
    capital_usd: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


_INT_FIELDS = {"max_contracts_per_order", "max_position_contracts", "stop_loss_ticks",
               "profit_target_ticks", "max_orders_per_minute", "max_orders_per_second",
               "flatten_before_close_minutes", "news_blackout_minutes"}
_BOOL_FIELDS = {"flatten_intraday"}
_POSITIVE = {"max_contracts_per_order", "max_position_contracts", "max_daily_loss_usd",
             "max_drawdown_pct", "max_daily_loss_pct", "stop_loss_ticks", "profit_target_ticks",
             "max_orders_per_minute", "max_orders_per_second", "price_collar_pct",
             "capital_usd"}
_PERCENT = {"max_drawdown_pct", "max_daily_loss_pct", "price_collar_pct"}
# When a bigger value means more risk; the others (none so far) would be the reverse. More
# capital is more risk too: it is the base the % limits and bands are taken of.
LOOSER_WHEN_HIGHER = tuple(f.name for f in fields(RiskLimits) if f.name not in _BOOL_FIELDS)


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if name in _INT_FIELDS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("must be a whole number")
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a number") from None


def parse_risk_limits(raw: Mapping[str, Any] | None) -> RiskLimits:
    """Validate a risk config. Missing required limits are a NO_LIMIT_CONFIGURED denial;
    malformed values are INVALID_REQUEST naming each field."""
    raw = raw or {}
    known = {f.name for f in fields(RiskLimits)}
    problems = [f"{k}: unknown limit" for k in raw if k not in known]
    values: dict[str, Any] = {}
    for name in known & set(raw):
        try:
            value = _coerce(name, raw[name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if value is not None and name in _POSITIVE and value <= 0:
            problems.append(f"{name}: must be greater than 0")
        elif value is not None and name in _PERCENT and value > 100:
            problems.append(f"{name}: must be at most 100")
        elif value is not None and name in {"flatten_before_close_minutes",
                                            "news_blackout_minutes"} and value < 0:
            problems.append(f"{name}: must be 0 or more")
        values[name] = value
    if problems:
        raise DomainError("INVALID_REQUEST", "invalid risk config: " + "; ".join(problems),
                          "Correct the named limits.", status=422)
    missing = [name for name in REQUIRED if values.get(name) is None]
    if missing:
        raise DomainError(
            "NO_LIMIT_CONFIGURED",
            "risk config lacks required limits: " + ", ".join(missing),
            "Set " + ", ".join(missing) + " in risk_config; orders are refused without them.",
            status=422,
            details={"missing": missing},
        )
    if values["max_contracts_per_order"] > values["max_position_contracts"]:
        raise DomainError("INVALID_REQUEST",
                          "max_contracts_per_order exceeds max_position_contracts",
                          "Lower max_contracts_per_order.", status=422)
    return RiskLimits(**{k: v for k, v in values.items() if v is not None})


def loosens(old: RiskLimits, new: RiskLimits) -> bool:
    """True when any limit allows more risk than before (a raised cap, a removed stop,
    intraday flattening turned off)."""
    for name in LOOSER_WHEN_HIGHER:
        before, after = getattr(old, name), getattr(new, name)
        if name == "stop_loss_ticks" and before is not None and after is None:
            return True
        if before is not None and after is not None and after > before:
            return True
    return old.flatten_intraday and not new.flatten_intraday
