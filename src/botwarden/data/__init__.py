"""Market data: sessions, the bar store and what fills it.

- `calendar`: CME Globex sessions (holidays, early closes, daily halt, DST) and per-bar labels.
- `bar_store`: 1-minute bars in Parquet by dataset/symbol/year; load, stream, upsert, catalogue.
- `resample`: session-aware 1m -> 5m/15m/1h/1d; `gaps`: missing minutes inside sessions.
- `provenance`: the data hash and source record research attaches to its results.
- `validation` and `importing`: CSV and Databento DBN import with row-level rejections.
- `synth`: seeded synthetic bars (their own dataset, never mistaken for market data).
- `cli`: `botwarden data import | synth | info`.
"""
