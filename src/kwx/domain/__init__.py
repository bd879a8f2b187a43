"""Pure domain rules: climate day, brackets and tickers, prices. No I/O."""
