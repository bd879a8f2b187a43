"""Market-implied PMF, fusion of p_mkt with p_wx, and probability metrics."""
