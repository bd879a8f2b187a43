"""Feature panels: per-market minute rows over each event's climate day, as views.

Timing convention (no look-ahead): a panel row at `ts` is what is known at the instant `ts`.
Candles are stamped with their minute's start, so a candle is known only once its minute has
closed: the row at ts uses candles with start < ts (the last one covering [ts-1m, ts)), and
observations stamped at or before ts. Quotes and prices carry forward over quiet minutes.

The views are plain (not materialized): filtered by event (or ticker) they compute in well
under a second, because every window function is partitioned by event (and ticker), so the
planner pushes such filters down; a whole-history scan is a batch job, not a refresh.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = r"""
-- The city registry, mirrored from cities.toml at every `kwx db upgrade` so SQL can place a
-- market's climate day (local standard time) and local clock.
CREATE TABLE meta.city (
    key                 text PRIMARY KEY,
    series_ticker       text NOT NULL UNIQUE,
    station_icao        text NOT NULL,
    cli_product         text NOT NULL,
    timezone            text NOT NULL,
    lst_offset_minutes  integer NOT NULL,
    lat                 double precision NOT NULL,
    lon                 double precision NOT NULL
);

CREATE SCHEMA IF NOT EXISTS feat;

-- Observation sources, best first: station-exact minute data over hourly and proxies.
CREATE TABLE meta.obs_source_rank (
    source  text PRIMARY KEY,
    rank    integer NOT NULL
);
INSERT INTO meta.obs_source_rank VALUES
    ('asos1min', 1), ('metar', 2), ('nws', 3), ('vc', 4), ('era5', 9);

CREATE VIEW feat.market_day AS
SELECT m.ticker, m.event_ticker, m.series_ticker, c.key AS city, c.timezone,
       m.climate_date, m.strike_type, m.floor_strike, m.cap_strike, m.close_time,
       m.settled_tmax, m.result,
       (m.climate_date::timestamp - make_interval(mins => c.lst_offset_minutes))
           AT TIME ZONE 'UTC' AS day_start,
       (m.climate_date::timestamp + interval '1 day'
           - make_interval(mins => c.lst_offset_minutes)) AT TIME ZONE 'UTC' AS day_end,
       -- Ladder order within the event: the lower tail, the betweens by floor, the upper tail.
       rank() OVER (PARTITION BY m.event_ticker ORDER BY
           CASE m.strike_type WHEN 'less' THEN 0 WHEN 'less_or_equal' THEN 0
                              WHEN 'between' THEN 1 ELSE 2 END,
           coalesce(m.floor_strike, m.cap_strike)) AS bracket_index
FROM kalshi.markets m
JOIN meta.city c ON c.series_ticker = m.series_ticker;

CREATE VIEW feat.minute_panel_base AS
WITH grid AS (
    SELECT d.*, g.ts
    FROM feat.market_day d
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
           first_value(c.yes_bid_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.bid_grp ORDER BY c.ts) AS bid_ff,
           first_value(c.yes_ask_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.ask_grp ORDER BY c.ts) AS ask_ff,
           first_value(c.price_close)
               OVER (PARTITION BY c.event_ticker, c.ticker, c.px_grp ORDER BY c.ts) AS last_ff
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

CREATE VIEW feat.minute_panel_neighbors AS
WITH n AS (
    SELECT b.*,
           lag(b.mid) OVER e AS left_mid,
           lead(b.mid) OVER e AS right_mid,
           lag(b.velocity) OVER e AS left_velocity,
           lead(b.velocity) OVER e AS right_velocity,
           lag(b.acceleration) OVER e AS left_acceleration,
           lead(b.acceleration) OVER e AS right_acceleration
    FROM feat.minute_panel_base b
    WINDOW e AS (PARTITION BY b.event_ticker, b.ts ORDER BY b.bracket_index)
)
SELECT n.*,
       -- Relative acceleration: this bracket's against the mean of the neighbours it has.
       n.acceleration - CASE
           WHEN n.left_acceleration IS NOT NULL AND n.right_acceleration IS NOT NULL
               THEN (n.left_acceleration + n.right_acceleration) / 2
           ELSE coalesce(n.left_acceleration, n.right_acceleration) END AS ras,
       n.left_mid + n.mid + n.right_mid AS triad_mass
FROM n;

-- Weather at each panel row: the best-ranked source's latest reading at or before ts (among
-- readings of the last 20 minutes; else the freshest within 3 hours), that source's reading at
-- the last 5-minute mark, and its running maximum over the climate day so far. LATERAL per
-- row keeps every filter on the panel pushed down.
CREATE VIEW feat.minute_panel_with_weather AS
SELECT n.*, o1.source AS obs_source, o1.ts AS obs_ts, o1.temp_f AS temp_1m,
       o5.temp_f AS temp_5m, o1.dewpoint_f, o1.rel_humidity, o1.wind_speed_mph,
       o1.wind_dir_deg, rm.running_max_f
FROM feat.minute_panel_neighbors n
JOIN feat.market_day d ON d.ticker = n.ticker
LEFT JOIN LATERAL (
    SELECT o.* FROM wx.obs o JOIN meta.obs_source_rank r ON r.source = o.source
    WHERE o.city = n.city AND o.ts <= n.ts AND o.ts > n.ts - interval '3 hours'
      AND o.temp_f IS NOT NULL
    -- A fresh reading (20 minutes) of the best source, else the freshest of any source.
    ORDER BY o.ts > n.ts - interval '20 minutes' DESC,
             CASE WHEN o.ts > n.ts - interval '20 minutes' THEN r.rank END, o.ts DESC
    LIMIT 1
) o1 ON true
LEFT JOIN LATERAL (
    SELECT o.temp_f FROM wx.obs o
    WHERE o.city = n.city AND o.source = o1.source AND o.temp_f IS NOT NULL
      AND o.ts <= date_bin('5 minutes', n.ts, d.day_start) AND o.ts >= d.day_start
    ORDER BY o.ts DESC LIMIT 1
) o5 ON true
LEFT JOIN LATERAL (
    SELECT max(o.temp_f) AS running_max_f FROM wx.obs o
    WHERE o.city = n.city AND o.source = o1.source
      AND o.ts >= d.day_start AND o.ts <= n.ts
) rm ON true;

CREATE VIEW feat.minute_panel_full AS
SELECT p.*, f.mc_version, f.p_mkt, f.p_wx, f.p_fused, f.p_fused_norm, f.hazard_next_5m,
       f.hazard_next_60m, f.tmax_q05, f.tmax_q25, f.tmax_q50, f.tmax_q75, f.tmax_q95
FROM feat.minute_panel_with_weather p
LEFT JOIN pmf.minute f ON f.ticker = p.ticker AND f.ts = p.ts;

CREATE INDEX obs_city_ts ON wx.obs (city, ts);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("""
        DROP SCHEMA IF EXISTS feat CASCADE;
        DROP TABLE IF EXISTS meta.obs_source_rank;
        DROP TABLE IF EXISTS meta.city;
        DROP INDEX IF EXISTS wx.obs_city_ts;
    """)
