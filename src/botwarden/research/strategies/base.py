"""The one strategy code path that backtests and live runners share.

A strategy is a numba kernel with one signature for every kind:

    kernel(state: float64[:], params: float64[:], open, high, low, close: int64[:] (ticks),
           volume: float64[:], session: int64[:], out: int8[:]) -> None

It reads bars in order from where `state` left off, writes one target position per bar
into `out` (-1 short, 0 flat, +1 long, decided at that bar's close) and updates `state` in
place. A backtest calls it once on the whole arrays; a runner calls it on arrays of length
one with the state it stored. Because the same kernel makes the same arithmetic in the same
order either way, both paths decide identically; the state is a flat float64 vector that
survives JSON exactly (every float64 round-trips through `repr`), so a restarted runner
resumes where it stopped.

Prices reach kernels as integer ticks (`research.ticks.to_ticks`), so crosses and
breakouts compare exact integers: float noise never breaks a tie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from botwarden.domain.bars import F64, I64
from botwarden.domain.errors import DomainError
from botwarden.research.ticks import TickBars

STATE_FORMAT_VERSION = 1


class StrategyParams(BaseModel):
    """Base of every strategy's parameter schema: typed, bounded (ge/le), immutable. The
    field order is the order of the kernel's `params` vector."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_vector(self) -> F64:
        return np.array(
            [float(getattr(self, name)) for name in type(self).model_fields], dtype=np.float64
        )


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """One kind of strategy: its schema, kernel and how big its state and warm-up are."""

    kind: str
    title: str
    description: str
    params_model: type[StrategyParams]
    kernel: Callable[..., None]
    state_size: Callable[[Any], int]
    warmup: Callable[[Any], int]
    uses_sessions: bool

    def bind(self, params: dict[str, Any] | StrategyParams | None = None) -> Strategy:
        """Validate `params` against the schema (defaults fill the gaps)."""
        if isinstance(params, StrategyParams):
            params = params.model_dump()
        try:
            model = self.params_model.model_validate(params or {})
        except ValidationError as exc:
            raise DomainError(
                "INVALID_STRATEGY_PARAMS",
                f"invalid parameters for {self.kind}: {exc.errors(include_url=False)}",
                f"See the bounds in the {self.kind} parameter schema.",
                status=422,
            ) from exc
        return Strategy(self, model)

    def catalogue_entry(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "params_schema": self.params_model.model_json_schema(),
        }


class Strategy:
    """A strategy kind bound to validated parameters."""

    __slots__ = ("spec", "params", "_vector")

    def __init__(self, spec: StrategySpec, params: StrategyParams) -> None:
        self.spec = spec
        self.params = params
        self._vector = params.to_vector()

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def warmup(self) -> int:
        """Bars the strategy must see before its first decision can be other than flat."""
        return self.spec.warmup(self.params)

    def initial_state(self) -> F64:
        return np.zeros(self.spec.state_size(self.params), dtype=np.float64)

    def run(
        self, bars: TickBars, state: F64, sessions: I64 | None = None
    ) -> npt.NDArray[np.int8]:
        """Targets (int8, one per bar) for `bars`, continuing from `state` (updated in place).

        `sessions` is an int64 session id per bar (from the exchange calendar); strategies
        that reset per session require it."""
        size = self.spec.state_size(self.params)
        if state.dtype != np.float64 or state.shape != (size,):
            raise ValueError(f"state of {self.kind} must be float64[{size}]")
        if sessions is None:
            if self.spec.uses_sessions:
                raise ValueError(f"{self.kind} resets per session: pass session ids")
            sessions = np.zeros(len(bars), dtype=np.int64)
        elif sessions.shape != (len(bars),):
            raise ValueError("one session id per bar is needed")
        out = np.empty(len(bars), dtype=np.int8)
        self.spec.kernel(
            state,
            self._vector,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            np.ascontiguousarray(sessions, dtype=np.int64),
            out,
        )
        return out

    def state_to_json(self, state: F64) -> str:
        """The state with the kind and parameters it belongs to, as strict JSON."""
        document = {
            "version": STATE_FORMAT_VERSION,
            "kind": self.kind,
            "params": self.params.model_dump(),
            "state": [float(x) for x in state],
        }
        return json.dumps(document, allow_nan=False)

    def state_from_json(self, text: str) -> F64:
        """A stored state, refused unless it was written by this kind with these parameters."""
        document = json.loads(text)
        if document.get("version") != STATE_FORMAT_VERSION or document.get("kind") != self.kind:
            raise DomainError(
                "STRATEGY_STATE_MISMATCH",
                f"stored state is not a version-{STATE_FORMAT_VERSION} {self.kind} state",
                "Start from initial_state() and warm up on history.",
            )
        if document.get("params") != self.params.model_dump():
            raise DomainError(
                "STRATEGY_STATE_MISMATCH",
                "stored state was made with other parameters",
                "Start from initial_state() and warm up on history.",
            )
        state = np.array(document["state"], dtype=np.float64)
        if state.shape != (self.spec.state_size(self.params),):
            raise DomainError("STRATEGY_STATE_MISMATCH", "stored state has the wrong length")
        return state
