"""Strategy engine and backtest engine: one strategy code path for research and live."""
