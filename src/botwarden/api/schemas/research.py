"""Request and response bodies of the research routes (api.md, "Research")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Timeframe = Literal["1m", "5m", "15m"]
RankBy = Literal["score", "sharpe", "net_pnl", "profit", "win_rate", "profit_factor",
                 "expectancy", "consistency", "max_drawdown_pct"]
GridValues = Annotated[list[int | float], Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategyIn(_In):
    """Without `bot_id`: the strategy to run. With `bot_id`, the bot's strategy is used:
    `kind` may repeat it, `params` must stay empty."""

    kind: str | None = Field(default=None, min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class GridStrategyIn(StrategyIn):
    grid: dict[str, GridValues] | None = Field(
        default=None, max_length=8,
        description="parameter -> values to try (at most 200 each, 10,000 combinations)")


class ExecutionIn(_In):
    """Overrides of the execution settings; a bot's risk config supplies the rest."""

    size: int = Field(default=1, ge=1, le=100, description="contracts per position")
    slippage_ticks: int | None = Field(default=None, ge=0, le=100, description="default 1")
    commission_per_side: Decimal | None = Field(default=None, ge=0, le=100,
                                                description="default: the instrument's")
    flatten_before_close_minutes: int | None = Field(
        default=None, ge=0, le=240,
        description="default 15 (the bot's risk config for a bot; 0: off)")
    stop_loss_ticks: int | None = Field(default=None, ge=0, le=100_000)
    profit_target_ticks: int | None = Field(default=None, ge=0, le=100_000)


class RunIn(_In):
    """The research target: a bot (`bot_id`), or a strategy on a symbol and timeframe."""

    bot_id: str | None = Field(default=None, max_length=64)
    strategy: StrategyIn | None = None
    symbol: str | None = Field(default=None, min_length=1, max_length=16,
                               description="default MES")
    timeframe: Timeframe | None = Field(default=None, description="default 1m")
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    dataset: str | None = Field(default=None, min_length=1, max_length=64)
    execution: ExecutionIn = Field(default_factory=ExecutionIn)


class BacktestIn(RunIn):
    pass


class WindowsIn(_In):
    count: int = Field(10, ge=1, le=100)
    days: int = Field(30, ge=1, le=3650)


class SweepIn(RunIn):
    """A parameter grid (`strategy.grid`), or rolling windows (`windows`, the default when
    no grid is given: 10 windows of 30 days)."""

    strategy: GridStrategyIn | None = None
    windows: WindowsIn | None = None
    rank_by: RankBy = "score"


class MatrixIn(RunIn):
    pass


class WalkForwardIn(RunIn):
    """Fixed parameters by default; with `strategy.grid`, each window picks the best
    combination on its train days."""

    strategy: GridStrategyIn | None = None
    train_days: int = Field(365, ge=1, le=3650)
    test_days: int = Field(90, ge=1, le=3650)
    step_days: int = Field(90, ge=1, le=3650)


class StressIn(RunIn):
    paths: int = Field(1000, ge=10, le=20_000, description="bootstrap paths")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_drawdown_pct: float | None = Field(
        None, gt=0, le=100, description="drawdown limit; default the bot's, else 20")


class EvolutionIn(_In):
    bot_id: str = Field(min_length=1, max_length=64)
    generations: int = Field(10, ge=1, le=100)
    population: int = Field(20, ge=2, le=200)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    test_fraction: float = Field(0.3, ge=0.1, le=0.5,
                                 description="share of the range held out to score fitness")
    space: dict[str, tuple[int, int]] | None = Field(
        default=None, max_length=8, description="parameter -> [low, high] to search")
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    dataset: str | None = Field(default=None, min_length=1, max_length=64)
    execution: ExecutionIn = Field(default_factory=ExecutionIn)


class Accepted(BaseModel):
    id: str
    job_id: str
    kind: str
    status: str


class StrategyOut(BaseModel):
    kind: str
    params: dict[str, Any]


class ProvenanceOut(BaseModel):
    provider: str | None
    dataset: str | None
    range_start: datetime | None
    range_end: datetime | None
    data_hash: str | None


class RunOut(BaseModel):
    id: str
    kind: str
    status: str
    job_id: str | None
    job_status: str | None
    bot_id: str | None
    strategy: StrategyOut
    symbol: str
    timeframe: str
    provenance: ProvenanceOut
    metrics: dict[str, Any] | None
    passed: bool | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None


class RunDetail(RunOut):
    request: dict[str, Any]
    result: dict[str, Any] | None
    # the parts api.md names, lifted out of `result` for each kind
    trades: list[dict[str, Any]] | None = None
    equity: list[dict[str, Any]] | None = None
    results: list[dict[str, Any]] | None = None
    cells: list[dict[str, Any]] | None = None
    consistency: float | None = None


class IndividualOut(BaseModel):
    trial_number: int
    generation: int
    params: dict[str, Any]
    fitness: float
    metrics: dict[str, Any]
    parents: list[int]


class GenerationOut(BaseModel):
    generation: int
    individuals: list[IndividualOut]
    best_fitness: float
    mean_fitness: float
    parents: list[int]


class PopulationOut(RunOut):
    generations_done: int
    best_fitness: float | None


class PopulationDetail(PopulationOut):
    request: dict[str, Any]
    result: dict[str, Any] | None
    generations: list[GenerationOut]
