"""Build 1-minute candles from trade prints for markets Kalshi gave us no candles for.

The aggregation runs inside PostgreSQL (one GROUP BY over md.trades), so no trade leaves the
server. Rows exist for minutes with at least one print, as Kalshi emits candles on change;
`md.candles_1m_grid()` expands any market to every minute with the close carried forward and
has_trade = false where nothing traded.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

BUILD_SQL = """
INSERT INTO md.candles_1m (ticker, ts, source, price_open, price_high, price_low, price_close,
                           vwap, volume, trade_count, has_trade, is_synthetic)
SELECT t.ticker, date_trunc('minute', t.created_time), 'trades',
       (array_agg(t.yes_price ORDER BY t.created_time, t.trade_id))[1],
       max(t.yes_price), min(t.yes_price),
       (array_agg(t.yes_price ORDER BY t.created_time DESC, t.trade_id DESC))[1],
       round(sum(t.yes_price * t.count_fp) / sum(t.count_fp), 8),
       sum(t.count_fp), count(*), true, false
FROM md.trades t
JOIN build_tickers b ON b.ticker = t.ticker
GROUP BY 1, 2
ON CONFLICT (ticker, ts) DO NOTHING
"""


def build_candles_from_trades(
    conn: psycopg.Connection[tuple[object, ...]], series: Sequence[str] | None = None
) -> int:
    """Rebuild trade-derived candles for the given series (all when None); returns rows.

    Markets with any API candle are left alone: Kalshi's own candles carry the bid/ask, which
    trades cannot reconstruct. Runs in the caller's transaction, so a failure changes nothing.
    """
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS build_tickers")
        cur.execute(
            """
            CREATE TEMP TABLE build_tickers ON COMMIT DROP AS
            SELECT m.ticker FROM kalshi.markets m
            WHERE (%(series)s::text[] IS NULL OR m.series_ticker = ANY(%(series)s::text[]))
              AND NOT EXISTS (SELECT 1 FROM md.candles_1m a
                              WHERE a.ticker = m.ticker AND a.source = 'api')
            """,
            {"series": list(series) if series is not None else None},
        )
        cur.execute("ANALYZE build_tickers")
        cur.execute(
            "DELETE FROM md.candles_1m c USING build_tickers b "
            "WHERE c.ticker = b.ticker AND c.source = 'trades'"
        )
        cur.execute(BUILD_SQL)
        return max(cur.rowcount, 0)
