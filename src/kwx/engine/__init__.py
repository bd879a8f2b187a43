"""The agent loop and its ports: clock, data feed and venue (backtest, paper, live)."""
