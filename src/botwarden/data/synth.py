"""Seeded synthetic 1-minute bars that behave like CME futures, for demos and tests.

Synthetic bars are stored in their own dataset ("SYNTH", provider "synthetic"), so they can
never pass for real market data. What makes them look like the market:

- bars only inside calendar sessions (no halt, no weekend, no holiday; early closes honoured),
  prices always on the instrument's tick grid, at the instrument's usual price level;
- an intraday volatility profile by New York clock time: quiet Asian hours, busier Europe,
  a burst at the 09:30 cash open easing to midday and rising into the 16:00 cash close;
  volume follows a sharper U over the cash session;
- volatility clustering from a persistent log-volatility process (an AR(1) stochastic-
  volatility model: the clustering signature of GARCH(1,1), but linear, so each session is
  computed in closed form with cumulative sums instead of a per-minute Python loop);
- fat-tailed (Student-t) shocks and a regime per session from a sticky Markov chain: range
  (mean-reverting to the session open), trend up, trend down, high volatility.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from botwarden.clock import Clock, utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore, MergeResult
from botwarden.data.calendar import NS_PER_MINUTE, SessionCalendar, get_calendar, to_ns
from botwarden.data.validation import snap_to_grid
from botwarden.domain.bars import F64, Bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import Instrument, get_instrument

SYNTHETIC_PROVIDER = "synthetic"
DEMO_SEED = 7
DEMO_DAYS = 120  # covers the 90-day research horizon with room to spare


@dataclass(frozen=True, slots=True)
class MarketProfile:
    price: float  # typical price level
    daily_vol: float  # standard deviation of a session's log return
    daily_volume: float  # contracts per full session


PROFILES: dict[str, MarketProfile] = {
    "MES": MarketProfile(5600.0, 0.010, 1_200_000),
    "ES": MarketProfile(5600.0, 0.010, 1_500_000),
    "MNQ": MarketProfile(19500.0, 0.013, 1_100_000),
    "NQ": MarketProfile(19500.0, 0.013, 550_000),
    "MGC": MarketProfile(2400.0, 0.009, 60_000),
    "GC": MarketProfile(2400.0, 0.009, 220_000),
    "MCL": MarketProfile(75.0, 0.020, 90_000),
    "CL": MarketProfile(75.0, 0.020, 350_000),
}

# Regimes: index -> (drift in daily vols over a session, vol multiplier, per-minute mean
# reversion to the session open; 1.0 means none).
_REGIMES = np.array(
    [
        (0.0, 0.85, 0.995),  # range
        (0.5, 1.0, 1.0),  # trend up
        (-0.5, 1.0, 1.0),  # trend down
        (0.0, 2.0, 1.0),  # high volatility
    ]
)
_REGIME_STEPS = np.array(
    [
        [0.75, 0.09, 0.09, 0.07],
        [0.25, 0.65, 0.03, 0.07],
        [0.25, 0.03, 0.65, 0.07],
        [0.35, 0.10, 0.10, 0.45],
    ]
)
_LOG_VOL_PERSISTENCE = 0.9995  # per minute: a volatility shock halves in about a session
_LOG_VOL_SD = 0.35  # stationary standard deviation of log volatility
_TAIL_DF = 5.0
_VOLUME_NOISE_SD = 0.35
# Mean of the per-minute volume noise factors, (1 + 0.6 |t-shock|) and a log-normal, so the
# expected session volume matches the profile; E|t_5| / sd(t_5) = 0.7351.
_VOLUME_NOISE_MEAN = (1 + 0.6 * 0.7351) * float(np.exp(_VOLUME_NOISE_SD**2 / 2))
_ANCHOR_PULL = 0.03  # per session, keeps a long run near the profile's price level


def _clock_profiles(et_minute: np.ndarray) -> tuple[F64, F64]:  # type: ignore[type-arg]
    """Volatility and volume multipliers for minutes of the New York day (0 = midnight)."""
    m = et_minute.astype(np.float64)
    cash = (m >= 9 * 60 + 30) & (m < 16 * 60)
    cash_vol = 0.95 + 1.4 * np.exp(-(m - 570) / 25) + 0.6 * np.exp(-(960 - m) / 30)
    vol = np.select(
        [m >= 18 * 60, m < 3 * 60, m < 8 * 60 + 30, m < 9 * 60 + 30, cash],
        [
            0.45 + 0.5 * np.exp(-(m - 1080) / 15),  # evening reopen, settling into Asia
            np.full_like(m, 0.35),  # Asian hours
            np.full_like(m, 0.55),  # European hours
            np.full_like(m, 0.9),  # US data releases at 08:30
            cash_vol,  # cash session: burst at the open, lull at midday, rise into the close
        ],
        default=0.5,  # 16:00-17:00, after the cash close
    )
    cash_volume = 1.0 + 3.0 * np.exp(-(m - 570) / 30) + 2.0 * np.exp(-(960 - m) / 25)
    volume = np.where(cash, cash_volume, 0.12 * vol)
    return vol, volume


def synthesize(
    symbol: str,
    days: int,
    *,
    seed: int = 0,
    end: date | None = None,
    clock: Clock = utcnow,
) -> Bars:
    """Bars for every session whose trading date falls in the `days` calendar days ending on
    `end` (default: the last session closed by now). Same arguments, same bars."""
    instrument = get_instrument(symbol)
    profile = _profile(instrument)
    if days < 1:
        raise DomainError(
            "INVALID_DAYS", "days must be at least 1", "Pass --days 1 or more.", status=422
        )
    cal = get_calendar(instrument.calendar)
    last = _last_session(cal, end, clock)
    first_day = int(cal.days[last]) - days + 1
    first = int(np.searchsorted(cal.days, first_day))
    sessions = range(first, last + 1)
    rng = np.random.default_rng([seed, zlib.crc32(instrument.symbol.encode())])

    et_open = _new_york_minute_of_day(cal.opens[first : last + 1])
    regimes = _regime_path(rng, len(sessions))
    # Scale the clock profiles so a full 18:00-17:00 session has the profile's volatility
    # and expected volume.
    full_vol, full_volume = _clock_profiles((18 * 60 + np.arange(23 * 60)) % 1440)
    minute_sigma = profile.daily_vol / np.sqrt(np.sum(full_vol**2))
    minute_volume = profile.daily_volume / np.sum(full_volume) / _VOLUME_NOISE_MEAN

    log_price = np.log(profile.price * rng.uniform(0.95, 1.05))
    log_vol = rng.normal(0.0, _LOG_VOL_SD)
    chunks: list[tuple[np.ndarray, ...]] = []  # type: ignore[type-arg]
    for k, s in enumerate(sessions):
        n = int((cal.closes[s] - cal.opens[s]) // NS_PER_MINUTE)
        clock_minute = (et_open[k] + np.arange(n)) % 1440
        vol_shape, volume_shape = _clock_profiles(clock_minute)
        log_vols = _ar1(
            rng.normal(0.0, _LOG_VOL_SD * np.sqrt(1 - _LOG_VOL_PERSISTENCE**2), n),
            _LOG_VOL_PERSISTENCE,
            log_vol,
        )
        log_vol = float(log_vols[-1])
        drift, vol_mult, reversion = _REGIMES[regimes[k]]
        sigma = minute_sigma * vol_mult * vol_shape * np.exp(log_vols - _LOG_VOL_SD**2)
        shocks = rng.standard_t(_TAIL_DF, n) / np.sqrt(_TAIL_DF / (_TAIL_DF - 2))
        step_drift = drift * profile.daily_vol * vol_shape / vol_shape.sum()
        path = _ar1(step_drift + sigma * shocks, reversion, 0.0)
        closes = np.exp(log_price + path)
        opens = np.exp(log_price + np.concatenate(([0.0], path[:-1])))
        wick = np.abs(rng.normal(0.0, 0.6, (2, n))) * sigma * closes
        volume = (
            minute_volume
            * volume_shape
            * np.exp(0.5 * log_vols)
            * (1 + 0.6 * np.abs(shocks))
            * rng.lognormal(0.0, _VOLUME_NOISE_SD, n)
        )
        ts = cal.opens[s] + np.arange(n, dtype=np.int64) * NS_PER_MINUTE
        chunks.append((ts, opens, closes, wick[0], wick[1], np.maximum(np.round(volume), 1.0)))
        # The next session opens after the halt: a small gap, and a weak pull back towards
        # the profile's level so a long run stays plausible.
        gap = rng.normal(0.0, 0.1 * profile.daily_vol)
        log_price += path[-1] + gap - _ANCHOR_PULL * (log_price - np.log(profile.price))
    return _assemble(instrument, chunks)


def _assemble(instrument: Instrument, chunks: list[tuple[np.ndarray, ...]]) -> Bars:  # type: ignore[type-arg]
    """Join the sessions and put every price on the tick grid: open and close to the nearest
    tick, the wicks outwards so high >= max(open, close) and low <= min(open, close)."""
    columns = (np.concatenate(column) for column in zip(*chunks, strict=True))
    ts, raw_open, raw_close, up, down, volume = columns
    per_tick = float(1 / instrument.tick_size)
    open_ = snap_to_grid(raw_open, instrument)
    close = snap_to_grid(raw_close, instrument)
    high = np.ceil((np.maximum(open_, close) + up) * per_tick - 1e-9) / per_tick
    low = np.floor((np.minimum(open_, close) - down) * per_tick + 1e-9) / per_tick
    return Bars(instrument.symbol, "1m", ts, open_, high, low, close, volume)


def _ar1(innovations: F64, persistence: float, start: float) -> F64:
    """x[t] = persistence * x[t-1] + innovations[t] with x[-1] = start, in closed form:
    x[t] = p^(t+1) * start + p^t * cumsum(innovations / p^k). Within one session p^t stays
    far from underflow, which is why this is applied session by session."""
    powers = persistence ** np.arange(innovations.shape[0], dtype=np.float64)
    return powers * (persistence * start + np.cumsum(innovations / powers))


def _regime_path(rng: np.random.Generator, sessions: int) -> np.ndarray:  # type: ignore[type-arg]
    draws = rng.random(sessions)
    cumulative = np.cumsum(_REGIME_STEPS, axis=1)
    state = int(rng.integers(0, len(_REGIMES)))
    path = np.empty(sessions, dtype=np.int64)
    for k in range(sessions):
        path[k] = state
        state = min(int(np.searchsorted(cumulative[state], draws[k])), len(_REGIMES) - 1)
    return path


def _new_york_minute_of_day(opens_ns: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """Minute of the New York day of each session open. A session never contains a DST
    change (they happen early on Sunday, while the market is shut), so a session's New York
    minutes are its open's minute plus the minutes elapsed."""
    local = pd.DatetimeIndex(opens_ns, tz="UTC").tz_convert("America/New_York")
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def _last_session(cal: SessionCalendar, end: date | None, clock: Clock) -> int:
    if end is not None:
        return cal.last_session_on_or_before(end)
    now = to_ns(clock())
    i = int(np.searchsorted(cal.closes, now, side="right")) - 1
    if i < 0:
        raise DomainError("CALENDAR_OUT_OF_RANGE", "no closed session before now", "", status=422)
    return i


def _profile(instrument: Instrument) -> MarketProfile:
    try:
        return PROFILES[instrument.symbol]
    except KeyError:
        raise DomainError(
            "NO_SYNTHETIC_PROFILE",
            f"no synthetic market profile for {instrument.symbol}",
            "Add one to botwarden.data.synth.PROFILES.",
            status=422,
        ) from None


def write_synthetic(
    store: BarStore,
    symbol: str,
    days: int,
    *,
    seed: int = 0,
    end: date | None = None,
    clock: Clock = utcnow,
) -> MergeResult:
    bars = synthesize(symbol, days, seed=seed, end=end, clock=clock)
    return store.write(bars, dataset=SYNTHETIC_DATASET, provider=SYNTHETIC_PROVIDER, synthetic=True)


def ensure_demo_data(
    settings: Settings,
    symbols: tuple[str, ...] = ("MES", "MNQ"),
    days: int = DEMO_DAYS,
    *,
    clock: Clock = utcnow,
) -> dict[str, int]:
    """Make sure every symbol has bars to work with: a symbol with none in any dataset gets
    `days` of seeded synthetic bars. Returns the rows written per symbol (0: already had
    data). Cheap to call on every start."""
    store = BarStore.from_settings(settings)
    written = {}
    for symbol in symbols:
        name = get_instrument(symbol).symbol
        if store.holders(name):
            written[name] = 0
            continue
        written[name] = write_synthetic(store, name, days, seed=DEMO_SEED, clock=clock).inserted
    return written
