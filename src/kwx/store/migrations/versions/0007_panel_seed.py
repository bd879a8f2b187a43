"""The base panel starts each climate day with what was already known.

The market opens the day before its climate day; the first minutes of the day now carry the
last quote and trade price from the candles that closed before the day began, instead of
starting empty until the day's first candle.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VIEW = r"""
CREATE OR REPLACE VIEW feat.minute_panel_base AS
WITH seeded AS (
    -- What was known at the climate day's first minute: the last quote and trade price of
    -- the candles that closed before it (the market opened the day before).
    SELECT d.*,
           (SELECT c.yes_bid_close FROM md.candles_1m c WHERE c.ticker = d.ticker
              AND c.ts < d.day_start - interval '1 minute' AND c.yes_bid_close IS NOT NULL
            ORDER BY c.ts DESC LIMIT 1) AS seed_bid,
           (SELECT c.yes_ask_close FROM md.candles_1m c WHERE c.ticker = d.ticker
              AND c.ts < d.day_start - interval '1 minute' AND c.yes_ask_close IS NOT NULL
            ORDER BY c.ts DESC LIMIT 1) AS seed_ask,
           (SELECT c.price_close FROM md.candles_1m c WHERE c.ticker = d.ticker
              AND c.ts < d.day_start - interval '1 minute' AND c.price_close IS NOT NULL
            ORDER BY c.ts DESC LIMIT 1) AS seed_px
    FROM feat.market_day d
), grid AS (
    SELECT d.*, g.ts
    FROM seeded d
    CROSS JOIN LATERAL generate_series(d.day_start, d.day_end - interval '1 minute',
                                       interval '1 minute') AS g(ts)
), joined AS (
    -- The candle that closed at ts (its minute started at ts - 1 minute).
    SELECT g.*, c.yes_bid_close, c.yes_ask_close, c.price_open, c.price_high, c.price_low,
           c.price_close, coalesce(c.volume, 0) AS volume_1m, c.has_trade
    FROM grid g
    LEFT JOIN md.candles_1m c ON c.ticker = g.ticker AND c.ts = g.ts - interval '1 minute'
), carried AS (
    SELECT j.*,
           count(j.yes_bid_close) OVER w AS bid_grp,
           count(j.yes_ask_close) OVER w AS ask_grp,
           count(j.price_close) OVER w AS px_grp
    FROM joined j
    WINDOW w AS (PARTITION BY j.event_ticker, j.ticker ORDER BY j.ts)
), filled AS (
    SELECT c.*,
           coalesce(first_value(c.yes_bid_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.bid_grp ORDER BY c.ts),
               CASE WHEN c.bid_grp = 0 THEN c.seed_bid END) AS bid_ff,
           coalesce(first_value(c.yes_ask_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.ask_grp ORDER BY c.ts),
               CASE WHEN c.ask_grp = 0 THEN c.seed_ask END) AS ask_ff,
           coalesce(first_value(c.price_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.px_grp ORDER BY c.ts),
               CASE WHEN c.px_grp = 0 THEN c.seed_px END) AS last_ff
    FROM carried c
), quoted AS (
    SELECT f.*,
           -- An empty book shows bid 0 / ask 1: no quote, not a price.
           CASE WHEN f.bid_ff > 0 THEN f.bid_ff END AS yes_bid,
           CASE WHEN f.ask_ff < 1 THEN f.ask_ff END AS yes_ask
    FROM filled f
), priced AS (
    SELECT q.*,
           CASE WHEN q.yes_bid IS NOT NULL AND q.yes_ask IS NOT NULL
                THEN (q.yes_bid + q.yes_ask) / 2 ELSE q.last_ff END AS mid
    FROM quoted q
), moved AS (
    SELECT p.*,
           p.mid - lag(p.mid) OVER w AS velocity,
           p.volume_1m - lag(p.volume_1m) OVER w AS volume_delta,
           sum(p.volume_1m) OVER (PARTITION BY p.event_ticker, p.ticker ORDER BY p.ts
                                  ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS volume_5m,
           sum(p.volume_1m) OVER (PARTITION BY p.event_ticker, p.ticker ORDER BY p.ts
                                  ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS volume_20m
    FROM priced p
    WINDOW w AS (PARTITION BY p.event_ticker, p.ticker ORDER BY p.ts)
)
SELECT m.ticker, m.event_ticker, m.series_ticker, m.city, m.climate_date, m.ts,
       (m.ts AT TIME ZONE m.timezone) AS ts_local,
       extract(epoch FROM (m.close_time - m.ts)) / 60.0 AS minutes_to_close,
       m.strike_type, m.floor_strike, m.cap_strike, m.bracket_index,
       m.yes_bid, m.yes_ask, m.last_ff AS last_price, m.mid,
       m.yes_ask - m.yes_bid AS spread,
       -- Close location value of the minute's trades: +1 closed at the high, -1 at the low.
       CASE WHEN m.price_high > m.price_low
            THEN ((m.price_close - m.price_low) - (m.price_high - m.price_close))
                 / (m.price_high - m.price_low) END AS clv,
       m.velocity,
       m.velocity - lag(m.velocity)
           OVER (PARTITION BY m.event_ticker, m.ticker ORDER BY m.ts) AS acceleration,
       m.volume_1m, m.volume_delta, m.volume_5m, m.volume_20m,
       coalesce(m.has_trade, false) AS has_trade
FROM moved m;
"""


def upgrade() -> None:
    op.execute(VIEW)


def downgrade() -> None:
    """Back to 0004's definition of the view (read from that migration's own text)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0004_feature_panels.py")
    spec = importlib.util.spec_from_file_location("kwx_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ddl: str = module.DDL
    start = ddl.index("CREATE VIEW feat.minute_panel_base AS")
    end = ddl.index("CREATE VIEW feat.minute_panel_neighbors AS")
    op.execute(ddl[start:end].replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
