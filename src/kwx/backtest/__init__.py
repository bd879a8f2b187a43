"""Fill models, backtest runs, metrics and the HTML report."""
