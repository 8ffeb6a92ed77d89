"""Each detector at its threshold and just short of it, the choice among several triggers,
the bands' trading states, the actions short of a kill; and, generated: a killed bot is
never killed again, and raising a threshold never adds a kill."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.kill import KillMode, KillState, TriggerCode
from botwarden.domain.kill_detectors import (
    BotWatch,
    Detection,
    MonitorAction,
    ProviderFacts,
    ProviderStatus,
    Thresholds,
    combine_feed,
    detect,
)
from botwarden.domain.stages import Stage
from botwarden.domain.trading import TradingState

OK = ProviderFacts("replay", ProviderStatus.OK)
PAPER = ProviderFacts("paper", ProviderStatus.OK)
CAPITAL = Decimal(10000)

# A healthy running PAPER bot holding one contract mid-session.
CALM = BotWatch(bot_id="b1", stage=Stage.PAPER, kill_state=KillState.NONE,
                trading_state=TradingState.ACTIVE, position=1, working_orders=0,
                runner_heartbeat_age_s=3.0, bar_age_s=30.0, bar_wall_seconds=60.0,
                data_feed=OK, broker=PAPER, capital=CAPITAL, daily_pnl=Decimal(0),
                equity=CAPITAL, equity_peak=CAPITAL, max_daily_loss_usd=Decimal(400),
                session_open=True, minutes_to_close=300.0)


def triggers(detection: Detection) -> list[TriggerCode]:
    return [f.trigger for f in detection.fired]


def test_a_calm_bot_is_left_alone() -> None:
    found = detect(CALM)
    assert found == Detection(None, TradingState.ACTIVE, (), (), ())


# --- money ------------------------------------------------------------------------------


def test_daily_loss_at_the_dollar_limit_kills_hard() -> None:
    found = detect(replace(CALM, daily_pnl=Decimal("-400")))
    assert found.kill is not None
    assert (found.kill.trigger, found.kill.mode) == (TriggerCode.DAILY_LOSS_BREACH, KillMode.HARD)
    assert found.trading_state is TradingState.HALTED
    # A cent short of the limit, and under the 3% band: no kill, no reduction.
    near = detect(replace(CALM, daily_pnl=Decimal("-299.99")))
    assert near.kill is None and near.trading_state is TradingState.ACTIVE


def test_daily_loss_bands_warn_reduce_and_kill() -> None:
    no_limit = replace(CALM, max_daily_loss_usd=None)
    warn = detect(replace(no_limit, daily_pnl=Decimal("-200")))  # 2%
    assert warn.kill is None and warn.trading_state is TradingState.ACTIVE
    assert any("daily_loss" in w for w in warn.warnings)
    reducing = detect(replace(no_limit, daily_pnl=Decimal("-300")))  # 3%
    assert reducing.kill is None and reducing.trading_state is TradingState.REDUCING
    killed = detect(replace(no_limit, daily_pnl=Decimal("-500")))  # 5%
    assert killed.kill is not None and killed.kill.trigger is TriggerCode.DAILY_LOSS_BREACH
    assert "5% band" in killed.kill.reason
    assert killed.trading_state is TradingState.HALTED


def test_drawdown_bands_reduce_at_15_and_kill_at_20_percent() -> None:
    reducing = detect(replace(CALM, equity=Decimal(8500)))
    assert reducing.kill is None and reducing.trading_state is TradingState.REDUCING
    short = detect(replace(CALM, equity=Decimal("8000.01")))
    assert short.kill is None
    killed = detect(replace(CALM, equity=Decimal(8000)))
    assert killed.kill is not None
    assert (killed.kill.trigger, killed.kill.mode) == (TriggerCode.DD_BREACH, KillMode.HARD)


def test_daily_loss_is_chosen_over_drawdown_and_both_are_evidence() -> None:
    found = detect(replace(CALM, daily_pnl=Decimal("-450"), equity=Decimal(7000)))
    assert found.kill is not None and found.kill.trigger is TriggerCode.DAILY_LOSS_BREACH
    assert triggers(found) == [TriggerCode.DAILY_LOSS_BREACH, TriggerCode.DD_BREACH]


# --- runner and execution ----------------------------------------------------------------


def test_stale_heartbeat_kills_only_with_exposure_and_past_90_seconds() -> None:
    stale = replace(CALM, runner_heartbeat_age_s=90.5)
    found = detect(stale)
    assert found.kill is not None
    assert (found.kill.trigger, found.kill.mode) == (TriggerCode.STALE_HEARTBEAT_CRITICAL,
                                                     KillMode.HARD)
    assert detect(replace(stale, runner_heartbeat_age_s=90.0)).kill is None
    assert detect(replace(stale, position=0)).kill is None  # flat, nothing working
    working = detect(replace(stale, position=0, working_orders=1))
    assert working.kill is not None
    assert working.kill.trigger is TriggerCode.STALE_HEARTBEAT_CRITICAL
    assert detect(replace(stale, runner_heartbeat_age_s=None)).kill is None  # no runner


@pytest.mark.parametrize(("rejections", "sent", "fires"), [
    (5, 10, True),  # 5 and 50%
    (4, 4, False),  # too few
    (5, 11, False),  # under half
    (9, 9, True),
    (6, 0, True),  # rejections are orders sent, whatever the sent count says
])
def test_rejection_spike(rejections: int, sent: int, fires: bool) -> None:
    found = detect(replace(CALM, rejections=rejections, sent=sent))
    if fires:
        assert found.kill is not None
        assert (found.kill.trigger, found.kill.mode) == (TriggerCode.EXECUTION_REJECTION_SPIKE,
                                                         KillMode.HARD)
    else:
        assert found.kill is None


def test_an_open_breaker_kills_real_money_bots_only() -> None:
    for stage in (Stage.CANARY, Stage.LIVE):
        found = detect(replace(CALM, stage=stage, breaker_open=True))
        assert found.kill is not None and found.kill.trigger is TriggerCode.CIRCUIT_OPEN
    for stage in (Stage.PAPER, Stage.SHADOW):
        assert detect(replace(CALM, stage=stage, breaker_open=True)).kill is None


# --- integrations ------------------------------------------------------------------------


def test_a_missing_data_provider_kills_a_running_bot() -> None:
    missing = ProviderFacts("databento", ProviderStatus.DOWN, "KEY_MISSING", configured=False)
    found = detect(replace(CALM, data_feed=missing))
    assert found.kill is not None
    assert (found.kill.trigger, found.kill.mode) == (TriggerCode.DATA_PROVIDER_MISSING,
                                                     KillMode.HARD)
    assert "databento" in found.kill.reason and "KEY_MISSING" in found.kill.reason
    # Without a runner the feed is not used: nothing to kill for.
    assert detect(replace(CALM, data_feed=missing, runner_heartbeat_age_s=None)).kill is None


def test_a_feed_down_for_another_reason_kills_only_once_bars_stop() -> None:
    empty = ProviderFacts("replay", ProviderStatus.DOWN, "NO_DATA")
    # Bars still arrive: the status row is stale (the store was filled after the verify).
    assert detect(replace(CALM, data_feed=empty, bar_age_s=30.0)).kill is None
    assert detect(replace(CALM, data_feed=empty, bar_age_s=None)).kill is None  # warming up
    found = detect(replace(CALM, data_feed=empty, bar_age_s=121.0))
    assert found.kill is not None
    assert found.kill.trigger is TriggerCode.DATA_PROVIDER_MISSING
    assert "NO_DATA" in found.kill.reason


def test_a_broker_down_or_unconfigured_kills() -> None:
    down = ProviderFacts("tradovate", ProviderStatus.DOWN, "KEY_MISSING", configured=False)
    found = detect(replace(CALM, stage=Stage.CANARY, broker=down, runner_heartbeat_age_s=None))
    assert found.kill is not None
    assert found.kill.trigger is TriggerCode.DATA_PROVIDER_MISSING
    assert "broker tradovate" in found.kill.reason


def test_revoked_entitlement_on_feed_or_broker_kills() -> None:
    revoked_feed = ProviderFacts("databento", ProviderStatus.DOWN, "ENTITLEMENT_REVOKED")
    found = detect(replace(CALM, data_feed=revoked_feed))
    assert found.kill is not None and found.kill.trigger is TriggerCode.ENTITLEMENT_REVOKED
    revoked_broker = ProviderFacts("tradovate", ProviderStatus.DOWN, "ENTITLEMENT_REVOKED")
    live = replace(CALM, stage=Stage.LIVE, broker=revoked_broker, runner_heartbeat_age_s=None)
    found = detect(live)
    assert found.kill is not None and found.kill.trigger is TriggerCode.ENTITLEMENT_REVOKED
    assert "broker tradovate" in found.kill.reason


def test_a_degraded_provider_is_not_a_kill() -> None:
    degraded = ProviderFacts("polygon", ProviderStatus.DEGRADED, "RATE_LIMITED")
    assert detect(replace(CALM, data_feed=degraded, broker=degraded)).kill is None


def test_rate_limit_storm_is_a_soft_kill() -> None:
    found = detect(replace(CALM, rate_limited_calls=20))
    assert found.kill is not None
    assert (found.kill.trigger, found.kill.mode) == (TriggerCode.RATE_LIMIT_STORM, KillMode.SOFT)
    assert found.trading_state is TradingState.REDUCING
    assert detect(replace(CALM, rate_limited_calls=19)).kill is None


def test_failover_chain_is_healthy_while_any_provider_serves() -> None:
    missing = ProviderFacts("databento", ProviderStatus.DOWN, "KEY_MISSING", configured=False)
    revoked = ProviderFacts("polygon", ProviderStatus.DOWN, "ENTITLEMENT_REVOKED")
    degraded = ProviderFacts("polygon", ProviderStatus.DEGRADED, "TIMEOUT")
    assert combine_feed([missing, revoked, OK]) == OK
    assert combine_feed([missing, degraded]) == degraded
    assert combine_feed([missing, revoked]) == revoked
    assert combine_feed([missing]) == missing
    assert combine_feed([]) is None


# --- kill state ----------------------------------------------------------------------------


def test_a_soft_killed_bot_is_escalated_by_a_hard_trigger_only() -> None:
    soft = replace(CALM, kill_state=KillState.SOFT_KILLED, trading_state=TradingState.REDUCING)
    calm = detect(soft)
    assert calm.kill is None and calm.trading_state is TradingState.REDUCING
    storm = detect(replace(soft, rate_limited_calls=50))
    assert storm.kill is None and triggers(storm) == [TriggerCode.RATE_LIMIT_STORM]
    escalate = detect(replace(soft, rate_limited_calls=50, rejections=5, sent=5))
    assert escalate.kill is not None and escalate.kill.mode is KillMode.HARD
    assert escalate.kill.trigger is TriggerCode.EXECUTION_REJECTION_SPIKE
    assert triggers(escalate)[0] is TriggerCode.EXECUTION_REJECTION_SPIKE


@pytest.mark.parametrize("state", [KillState.HARD_KILLED, KillState.QUARANTINED])
def test_a_hard_killed_bot_gets_no_kill_and_stays_halted(state: KillState) -> None:
    found = detect(replace(CALM, kill_state=state, daily_pnl=Decimal(-5000), breaker_open=True,
                           stage=Stage.LIVE))
    assert found.kill is None and found.trading_state is TradingState.HALTED
    assert TriggerCode.DAILY_LOSS_BREACH in triggers(found)  # still reported as evidence


# --- actions short of a kill ---------------------------------------------------------------


def test_flatten_before_the_close() -> None:
    near = replace(CALM, minutes_to_close=15.0)
    assert detect(near).actions == (MonitorAction.FLATTEN_BEFORE_CLOSE,)
    assert detect(replace(near, minutes_to_close=15.5)).actions == ()
    assert detect(replace(near, position=0, working_orders=2)).actions == ()
    assert detect(replace(near, flatten_intraday=False)).actions == ()
    assert detect(replace(near, flatten_before_close_minutes=10)).actions == ()
    assert detect(replace(near, session_open=False, minutes_to_close=None)).actions == ()
    # A HARD kill flattens anyway: no second flatten asked for.
    halted = detect(replace(near, daily_pnl=Decimal(-1000)))
    assert halted.kill is not None and halted.actions == ()
    # A soft kill leaves the position to be flattened.
    storm = detect(replace(near, rate_limited_calls=30))
    assert storm.actions == (MonitorAction.FLATTEN_BEFORE_CLOSE,)


def test_stale_data_is_a_warning_not_a_kill() -> None:
    stale = detect(replace(CALM, bar_age_s=121.0))
    assert stale.kill is None and stale.actions == (MonitorAction.STALE_DATA,)
    assert any("stale data" in w for w in stale.warnings)
    assert detect(replace(CALM, bar_age_s=120.0)).actions == ()
    # A replay at 60x expects a bar every second.
    assert detect(replace(CALM, bar_age_s=2.5, bar_wall_seconds=1.0)).actions == (
        MonitorAction.STALE_DATA,)
    assert detect(replace(CALM, bar_age_s=500.0, session_open=False)).actions == ()
    assert detect(replace(CALM, bar_age_s=None)).actions == ()
    assert detect(replace(CALM, bar_age_s=500.0, runner_heartbeat_age_s=None)).actions == ()


def test_the_watch_serialises_for_the_kill_event() -> None:
    facts = CALM.to_json()
    assert facts["stage"] == "PAPER" and facts["daily_pnl"] == "0"
    assert facts["data_feed"] == {"name": "replay", "status": "OK", "reason": None,
                                  "configured": True}


# --- generated ---------------------------------------------------------------------------

provider = st.builds(
    ProviderFacts, name=st.sampled_from(["databento", "replay", "tradovate", "paper"]),
    status=st.sampled_from(ProviderStatus),
    reason=st.sampled_from([None, "KEY_MISSING", "ENTITLEMENT_REVOKED", "RATE_LIMITED"]),
    configured=st.booleans())
money = st.decimals(min_value=-20000, max_value=20000, places=2)
watches = st.builds(
    BotWatch, bot_id=st.just("b"), stage=st.sampled_from(Stage),
    kill_state=st.sampled_from(KillState), trading_state=st.sampled_from(TradingState),
    position=st.integers(-3, 3), working_orders=st.integers(0, 3),
    runner_heartbeat_age_s=st.none() | st.floats(0, 400), bar_age_s=st.none() | st.floats(0, 400),
    bar_wall_seconds=st.floats(0.5, 120), rejections=st.integers(0, 30),
    sent=st.integers(0, 60), data_feed=st.none() | provider, broker=st.none() | provider,
    rate_limited_calls=st.integers(0, 60), capital=st.decimals(1000, 100000, places=2),
    daily_pnl=money, equity=st.decimals(0, 120000, places=2),
    equity_peak=st.decimals(1000, 120000, places=2),
    max_daily_loss_usd=st.none() | st.decimals(1, 5000, places=2), breaker_open=st.booleans(),
    session_open=st.booleans(), minutes_to_close=st.none() | st.floats(0, 1400),
    flatten_before_close_minutes=st.integers(0, 60), flatten_intraday=st.booleans())
thresholds = st.builds(
    Thresholds, stale_heartbeat_seconds=st.floats(1, 300),
    rejection_min_count=st.integers(1, 20), rejection_min_share=st.floats(0, 1),
    rate_limit_storm_calls=st.integers(1, 50), stale_data_bar_multiple=st.floats(1, 5))


@settings(max_examples=400, deadline=None)
@given(watches, thresholds)
def test_a_killed_bot_is_never_killed_again(watch: BotWatch, limits: Thresholds) -> None:
    found = detect(watch, limits)
    if watch.kill_state in (KillState.HARD_KILLED, KillState.QUARANTINED):
        assert found.kill is None and found.trading_state is TradingState.HALTED
    elif watch.kill_state is KillState.SOFT_KILLED:
        assert found.kill is None or found.kill.mode is KillMode.HARD
        assert found.trading_state is not TradingState.ACTIVE
    if found.kill is not None:
        assert found.fired[0] == found.kill
        if found.kill.mode is KillMode.HARD:
            assert found.trading_state is TradingState.HALTED
        else:
            assert found.trading_state is not TradingState.ACTIVE


@settings(max_examples=400, deadline=None)
@given(watches, thresholds, thresholds)
def test_raising_thresholds_never_adds_a_kill(watch: BotWatch, a: Thresholds,
                                              b: Thresholds) -> None:
    low = Thresholds(
        stale_heartbeat_seconds=min(a.stale_heartbeat_seconds, b.stale_heartbeat_seconds),
        rejection_min_count=min(a.rejection_min_count, b.rejection_min_count),
        rejection_min_share=min(a.rejection_min_share, b.rejection_min_share),
        rate_limit_storm_calls=min(a.rate_limit_storm_calls, b.rate_limit_storm_calls),
        stale_data_bar_multiple=min(a.stale_data_bar_multiple, b.stale_data_bar_multiple))
    high = Thresholds(
        stale_heartbeat_seconds=max(a.stale_heartbeat_seconds, b.stale_heartbeat_seconds),
        rejection_min_count=max(a.rejection_min_count, b.rejection_min_count),
        rejection_min_share=max(a.rejection_min_share, b.rejection_min_share),
        rate_limit_storm_calls=max(a.rate_limit_storm_calls, b.rate_limit_storm_calls),
        stale_data_bar_multiple=max(a.stale_data_bar_multiple, b.stale_data_bar_multiple))
    strict, loose = detect(watch, low), detect(watch, high)
    assert set(triggers(loose)) <= set(triggers(strict))
    asked = set(strict.actions)
    if strict.kill is not None and strict.kill.mode is KillMode.HARD:
        asked.add(MonitorAction.FLATTEN_BEFORE_CLOSE)  # not asked: the halt flattens anyway
    assert set(loose.actions) <= asked
    if loose.kill is not None:
        assert strict.kill is not None


@settings(max_examples=300, deadline=None)
@given(watches, st.decimals(0, 5000, places=2))
def test_a_bigger_loss_never_lifts_a_kill(watch: BotWatch, more: Decimal) -> None:
    worse = replace(watch, daily_pnl=watch.daily_pnl - more)
    if TriggerCode.DAILY_LOSS_BREACH in triggers(detect(watch)):
        assert TriggerCode.DAILY_LOSS_BREACH in triggers(detect(worse))
