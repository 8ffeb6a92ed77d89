"""The safe-start checks a runner start or restart must pass (issue 6, "Runner"). Pure.

The checks run in a fixed order and the first one that fails decides, so a caller always
hears about the most fundamental obstacle first (a killed bot is reported as killed, not as
missing data):

1. kill state: the account kill switch, then the bot's own kill state (BOT_KILLED, 409);
2. stage: only PAPER, SHADOW, CANARY and LIVE have a runner (STAGE_NOT_ELIGIBLE, 409);
3. live-trading flag: CANARY and LIVE refuse while it is OFF (LIVE_TRADING_DISABLED, 409);
4. integrations for the stage: the real broker for CANARY and LIVE, the data provider for
   every stage (INTEGRATION_KEY_MISSING, 424);
5. autonomy prerequisites: market data to trade on (DATA_UNAVAILABLE, 424), then the
   supervisor loops that heal and time out runners (AUTONOMY_BLOCKED, 409);
6. the bot's circuit breaker (CIRCUIT_OPEN, 409).

Authentication is not a fact here: nothing reaches these checks without a principal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillState
from botwarden.domain.stages import REAL_MONEY_STAGES, RUNNER_STAGES, Stage

REAL_BROKER = "tradovate"


class RunnerMode(StrEnum):
    PAPER = "PAPER"
    SHADOW = "SHADOW"
    CANARY = "CANARY"
    LIVE = "LIVE"

    @property
    def broker(self) -> str:
        """The broker a runner of this mode sends its orders to (domain.md, stage table)."""
        return _BROKERS[self]


_BROKERS: dict[RunnerMode, str] = {
    RunnerMode.PAPER: "paper",
    RunnerMode.SHADOW: "shadow",
    RunnerMode.CANARY: REAL_BROKER,
    RunnerMode.LIVE: REAL_BROKER,
}


class StartCheck(StrEnum):
    KILL_STATE = "kill_state"
    STAGE = "stage"
    LIVE_TRADING = "live_trading"
    INTEGRATIONS = "integrations"
    AUTONOMY = "autonomy"
    CIRCUIT_BREAKER = "circuit_breaker"


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFacts:
    """Everything the checks look at, gathered by the caller. No defaults: a fact that was
    not gathered is a type error, not a silent pass."""

    bot_id: str
    symbol: str
    kill_state: KillState
    account_kill_switch_engaged: bool
    stage: Stage
    is_trading_enabled: bool
    provider: str  # the data provider the runner will stream from
    provider_configured: bool
    provider_down: bool
    broker_configured: bool  # the real broker (Tradovate), needed by CANARY and LIVE
    broker_down: bool
    data_available: bool  # bars of `symbol` the provider can serve
    dead_loops: tuple[str, ...]  # supervisor loops that have not run within 3 intervals
    breaker_open_until: datetime | None  # None: the breaker is CLOSED or HALF_OPEN


@dataclass(frozen=True, slots=True)
class Refusal:
    check: StartCheck
    code: str
    message: str
    fix: str
    status: int

    def error(self) -> DomainError:
        return DomainError(self.code, self.message, self.fix, status=self.status,
                           details={"check": self.check.value})


@dataclass(frozen=True, slots=True)
class StartVerdict:
    refusal: Refusal | None
    passed: tuple[StartCheck, ...]  # the checks that passed, in order

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise self.refusal.error()


def mode_for_stage(stage: Stage) -> RunnerMode:
    """The runner mode of a stage; TRIALS and RETIRED have no runner."""
    if stage not in RUNNER_STAGES:
        refusal = _stage(stage, "{id}")
        assert refusal is not None
        raise refusal.error()
    return RunnerMode(stage.value)


def check_start(facts: StartFacts) -> StartVerdict:
    """The first failing check, in the order of the module docstring, or an allowed
    verdict naming every check that passed."""
    passed: list[StartCheck] = []
    for check, rule in _RULES:
        refusal = rule(facts)
        if refusal is not None:
            return StartVerdict(refusal, tuple(passed))
        passed.append(check)
    return StartVerdict(None, tuple(passed))


# --- the checks, each a pure function of the facts ----------------------------------------


def _kill_state(f: StartFacts) -> Refusal | None:
    if f.account_kill_switch_engaged:
        return Refusal(StartCheck.KILL_STATE, "BOT_KILLED",
                       "the account kill switch is engaged: every bot of the account is halted",
                       "An admin releases it (POST /api/kill-switch/release, 2FA step-up), "
                       f"then resurrect the bot (POST /api/bots/{f.bot_id}/resurrect).", 409)
    if f.kill_state is not KillState.NONE:
        return Refusal(StartCheck.KILL_STATE, "BOT_KILLED", f"bot is {f.kill_state.value}",
                       f"Resurrect the bot first (POST /api/bots/{f.bot_id}/resurrect"
                       + ("; QUARANTINED needs a 2FA step-up)."
                          if f.kill_state is KillState.QUARANTINED else ")."), 409)
    return None


def _stage(stage: Stage, bot_id: str) -> Refusal | None:
    if stage is Stage.RETIRED:
        return Refusal(StartCheck.STAGE, "STAGE_NOT_ELIGIBLE",
                       "bot is RETIRED; a retired bot never runs again",
                       "Create a new bot (POST /api/bots) with this configuration.", 409)
    if stage not in RUNNER_STAGES:
        return Refusal(StartCheck.STAGE, "STAGE_NOT_ELIGIBLE",
                       f"a {stage.value} bot has no runner: it only runs research",
                       "Graduate the bot to PAPER once its gates pass "
                       f"(POST /api/bots/{bot_id}/graduate).", 409)
    return None


def _live_trading(f: StartFacts) -> Refusal | None:
    if f.stage in REAL_MONEY_STAGES and not f.is_trading_enabled:
        return Refusal(StartCheck.LIVE_TRADING, "LIVE_TRADING_DISABLED",
                       f"live trading is OFF for this {f.stage.value} bot",
                       f'Enable it with POST /api/bots/{f.bot_id}/trading {{"enabled": true}} '
                       "(2FA step-up), then start again.", 409)
    return None


def _integrations(f: StartFacts) -> Refusal | None:
    if f.stage in REAL_MONEY_STAGES and not f.broker_configured:
        return Refusal(StartCheck.INTEGRATIONS, "INTEGRATION_KEY_MISSING",
                       f"a {f.stage.value} runner trades through {REAL_BROKER}, which is not "
                       "configured",
                       "Set BOTWARDEN_TRADOVATE_USERNAME, BOTWARDEN_TRADOVATE_PASSWORD (and the "
                       "API key: BOTWARDEN_TRADOVATE_CID, BOTWARDEN_TRADOVATE_SEC), restart the "
                       "server, and check GET /api/integrations.", 424)
    if f.stage in REAL_MONEY_STAGES and f.broker_down:
        return Refusal(StartCheck.INTEGRATIONS, "INTEGRATION_KEY_MISSING",
                       f"{REAL_BROKER} is DOWN: its credentials or entitlement were refused",
                       f"Check the keys, then POST /api/integrations/{REAL_BROKER}/verify until "
                       "GET /api/integrations shows it OK.", 424)
    if not f.provider_configured:
        return Refusal(StartCheck.INTEGRATIONS, "INTEGRATION_KEY_MISSING",
                       f"data provider {f.provider!r} is not configured",
                       f"Configure {f.provider}'s key (GET /api/integrations names the setting), "
                       "or set BOTWARDEN_RUNNER_PROVIDER=replay to replay stored bars.", 424)
    return None


def _autonomy(f: StartFacts) -> Refusal | None:
    if f.provider_down:
        return Refusal(StartCheck.AUTONOMY, "DATA_UNAVAILABLE",
                       f"data provider {f.provider!r} is DOWN",
                       f"See GET /api/integrations for its last error; fix it and POST "
                       f"/api/integrations/{f.provider}/verify, then start again.", 424)
    if not f.data_available:
        return Refusal(StartCheck.AUTONOMY, "DATA_UNAVAILABLE",
                       f"no {f.symbol} bars for {f.provider!r} to serve",
                       f"Load bars: `botwarden data import FILE --symbol {f.symbol}` (real data) "
                       f"or `botwarden data synth --symbol {f.symbol} --days 90` (a demo).", 424)
    if f.dead_loops:
        loops = ", ".join(f.dead_loops)
        return Refusal(StartCheck.AUTONOMY, "AUTONOMY_BLOCKED",
                       f"the self-healing loops are not running ({loops}): nothing would "
                       "restart or time out the runner",
                       "Run the loops: `botwarden serve` or `botwarden worker` (both run them "
                       "unless told not to); GET /api/scheduler shows when each last ran.", 409)
    return None


def _circuit_breaker(f: StartFacts) -> Refusal | None:
    if f.breaker_open_until is not None:
        return Refusal(StartCheck.CIRCUIT_BREAKER, "CIRCUIT_OPEN",
                       "the bot's circuit breaker is open: its runner failed repeatedly",
                       "Find the cause in GET /api/jobs?bot_id="
                       f"{f.bot_id}&type=RUNNER and its events; the breaker half-opens at "
                       f"{f.breaker_open_until.isoformat()} and then allows one trial start.", 409)
    return None


_RULES: tuple[tuple[StartCheck, Callable[[StartFacts], Refusal | None]], ...] = (
    (StartCheck.KILL_STATE, _kill_state),
    (StartCheck.STAGE, lambda f: _stage(f.stage, f.bot_id)),
    (StartCheck.LIVE_TRADING, _live_trading),
    (StartCheck.INTEGRATIONS, _integrations),
    (StartCheck.AUTONOMY, _autonomy),
    (StartCheck.CIRCUIT_BREAKER, _circuit_breaker),
)
