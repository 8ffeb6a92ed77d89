"""Pre-trade risk check latency: `domain.risk.check_order`, one call at a time (issue 6
target: p99 under 50 us).

    uv run python bench/risk_bench.py                 # 1,000,000 calls
    uv run python bench/risk_bench.py --calls 200000

The calls cycle through 10,000 scenarios drawn (seeded) from a runner's realistic mix:
about two thirds allowed entries and exits that run every check, the rest refused at every
stage of the table (killed, trading state, order size, position, account cap, daily loss,
rate, duplicate, collar, stale data, session, news, account breach). Every scenario carries
what the order manager passes: up to 30 send times of the last minute, the signatures of
the last second, 200 client ids already seen, an account cap. Each call is timed alone with
time.perf_counter_ns (the timer's own ~0.1 us is included); the garbage collector runs as
it would in a runner. Printed: p50, p90, p99, p99.9, max, mean, and the verdict mix.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from array import array
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from botwarden.domain.kill import KillState
from botwarden.domain.risk import (
    AccountRisk,
    BotRisk,
    MarketFacts,
    OrderIntent,
    check_order,
    order_signature,
)
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.stages import Stage
from botwarden.domain.trading import OrderType, Side, TradingState

NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
PRICE = Decimal("5000.25")
LIMITS = RiskLimits(max_contracts_per_order=2, max_position_contracts=4,
                    max_daily_loss_usd=Decimal(1000), max_drawdown_pct=Decimal(15),
                    stop_loss_ticks=12, profit_target_ticks=24)
MARKET = MarketFacts(now=NOW, last_price=PRICE, last_bar_time=NOW - timedelta(seconds=30),
                     bar_seconds=60, session_open=True, minutes_to_close=300,
                     minutes_to_high_impact_event=None)
ACCOUNT = AccountRisk(Decimal(50_000), Decimal(51_000), Decimal(52_000), open_contracts=2,
                      max_contracts=8)
SEEN = frozenset(f"bot-{i}" for i in range(200))
Scenario = tuple[OrderIntent, BotRisk, AccountRisk, MarketFacts, RiskLimits | None,
                 frozenset[str]]


def _bot(rng: random.Random, position: int, working_buy: int) -> BotRisk:
    sends = tuple(NOW - timedelta(seconds=rng.uniform(0.5, 59)) for _ in range(rng.randint(0, 25)))
    # The last second's orders: 2-lot limit entries, which no order here is identical to.
    recent = tuple((("BUY", 2, "LIMIT", "4990.00"),
                    NOW - timedelta(milliseconds=rng.randint(1, 999)))
                   for _ in range(rng.randint(0, 3)))
    return BotRisk(stage=rng.choice((Stage.PAPER, Stage.SHADOW, Stage.LIVE)),
                   kill_state=KillState.NONE, is_trading_enabled=True, position=position,
                   working_buy=working_buy, working_sell=0,
                   daily_pnl=Decimal(rng.randint(-400, 400)), equity=Decimal(50_500),
                   equity_peak=Decimal(51_000), capital=Decimal(50_000),
                   recent_order_times=sends, trading_state=TradingState.ACTIVE,
                   recent_signatures=recent)


def _order(rng: random.Random, n: int, side: Side) -> OrderIntent:
    if rng.random() < 0.2:  # a limit order inside the collar
        price = PRICE + Decimal("0.25") * rng.randint(-40, 40)
        return OrderIntent(f"c{n}", side, 1, OrderType.LIMIT, limit_price=price)
    return OrderIntent(f"c{n}", side, 1, OrderType.MARKET)


def scenario(rng: random.Random, n: int) -> Scenario:
    """One call's inputs: an exit, an entry (flat or adding to a long), or an entry that
    breaks one rule."""
    kind = rng.choices(("entry", "exit", "refused"), (55, 12, 33))[0]
    if kind == "exit":
        position = rng.choice((-2, -1, 1, 2))
        side = Side.SELL if position > 0 else Side.BUY
        return _order(rng, n, side), _bot(rng, position, 0), ACCOUNT, MARKET, LIMITS, SEEN
    bot = _bot(rng, rng.randint(0, 2), rng.randint(0, 1))
    order = _order(rng, n, Side.BUY)
    if kind == "entry":
        return order, bot, ACCOUNT, MARKET, LIMITS, SEEN
    return _breach(rng.randrange(14), order, bot)


def _breach(rule: int, order: OrderIntent, bot: BotRisk) -> Scenario:
    account, market, seen = ACCOUNT, MARKET, SEEN
    if rule == 0:
        bot = replace(bot, kill_state=KillState.HARD_KILLED)
    elif rule == 1:
        bot = replace(bot, trading_state=TradingState.REDUCING)
    elif rule == 2:
        order = replace(order, qty=3)
    elif rule == 3:
        bot = replace(bot, position=4)
    elif rule == 4:
        account = replace(account, open_contracts=8)
    elif rule == 5:
        bot = replace(bot, daily_pnl=Decimal(-1200))
    elif rule == 6:
        bot = replace(bot, recent_order_times=(NOW - timedelta(seconds=1.5),) * 30)
    elif rule == 7:
        seen = SEEN | {order.client_order_id}
    elif rule == 8:
        bot = replace(bot, recent_signatures=(
            (order_signature(order, False), NOW - timedelta(milliseconds=300)),))
    elif rule == 9:
        order = OrderIntent(order.client_order_id, order.side, 1, OrderType.LIMIT,
                            limit_price=PRICE * Decimal("1.02"))
    elif rule == 10:
        market = replace(market, last_bar_time=NOW - timedelta(minutes=5))
    elif rule == 11:
        market = replace(market, minutes_to_close=10)
    elif rule == 12:
        market = replace(market, minutes_to_high_impact_event=4)
    else:
        account = replace(account, equity=Decimal(30_000))
    return order, bot, account, market, LIMITS, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--scenarios", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(6)
    pool = [scenario(rng, n) for n in range(args.scenarios)]
    verdicts = Counter(check_order(*s).code for s in pool)
    for s in pool[:10_000]:  # warm-up
        check_order(*s)
    timings = array("q", bytes(8 * args.calls))
    clock = time.perf_counter_ns
    size = len(pool)
    started = time.perf_counter()
    for i in range(args.calls):
        inputs = pool[i % size]
        t0 = clock()
        check_order(*inputs)
        timings[i] = clock() - t0
    wall = time.perf_counter() - started
    ordered = sorted(timings)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    print(f"command: uv run python bench/risk_bench.py --calls {args.calls}")
    print(f"python {platform.python_version()} on {platform.machine()}, {args.calls:,} calls "
          f"over {size:,} scenarios, {args.calls / wall:,.0f} calls/s (timer included)")
    print(f"check_order latency us: p50 {at(0.50):.1f}  p90 {at(0.90):.1f}  "
          f"p99 {at(0.99):.1f}  p99.9 {at(0.999):.1f}  max {ordered[-1] / 1000:.1f}  "
          f"mean {sum(ordered) / len(ordered) / 1000:.1f}")
    target = at(0.99) < 50
    print(f"target p99 < 50 us: {'met' if target else 'MISSED'}")
    mix = ", ".join(f"{code} {count / size:.0%}" for code, count in verdicts.most_common())
    print(f"verdict mix: {mix}")
    sys.exit(0)


if __name__ == "__main__":
    main()
