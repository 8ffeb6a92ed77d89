"""The live resampler makes exactly the bars `resample` makes, whatever minutes are missing."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from botwarden.data.providers.base import bars_to_stream
from botwarden.data.providers.streaming import BarAggregator
from botwarden.data.resample import resample
from tests.data.builders import make_bars, minutes

# Thursday 2025-03-13 around the 21:00 UTC close (17:00 ET) and Friday's session start.
SPAN = minutes("2025-03-13 20:00", 180)


@settings(max_examples=60, deadline=None)
@given(keep=st.lists(st.booleans(), min_size=len(SPAN), max_size=len(SPAN)),
       timeframe=st.sampled_from(["5m", "15m"]))
def test_streamed_buckets_equal_batch_resampling(keep: list[bool], timeframe: str) -> None:
    assume(any(keep))
    bars = make_bars(SPAN[np.array(keep, dtype=bool)], seed=3)
    aggregator = BarAggregator("MES", timeframe)
    streamed = [done for bar in bars_to_stream(bars) for done in aggregator.push(bar)]
    last = aggregator.flush()
    streamed += [last] if last is not None else []
    want = resample(bars, timeframe)
    assert [b.ts for b in streamed] == want.ts.tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert [getattr(b, name) for b in streamed] == getattr(want, name).tolist()


def test_a_complete_bucket_is_emitted_with_its_last_minute() -> None:
    bars = bars_to_stream(make_bars(minutes("2025-03-13 14:00", 6)))
    aggregator = BarAggregator("MES", "5m")
    out = [aggregator.push(bar) for bar in bars]
    assert [len(o) for o in out] == [0, 0, 0, 0, 1, 0]
    assert out[4][0].ts == bars[0].ts and out[4][0].timeframe == "5m"
