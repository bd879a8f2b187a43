"""Paper and live trading: the backtest's agent on live feeds, a Kalshi venue, reconciliation."""
