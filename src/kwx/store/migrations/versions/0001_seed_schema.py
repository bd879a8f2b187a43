"""The seed design's schemas: kalshi, md, wx, pmf, model, exec, backtest, meta.

Money columns are NUMERIC (prices in dollars to 6 places, counts to 0.01 contract) so the ledger
never rounds; model outputs are float. Every table has a natural primary key so that every
write can be an idempotent upsert.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMAS = ("kalshi", "md", "wx", "pmf", "model", "exec", "backtest", "meta")

DDL = r"""
-- ---------------------------------------------------------------- kalshi: reference data
CREATE TABLE kalshi.series (
    series_ticker   text PRIMARY KEY,
    city_key        text,
    title           text,
    category        text,
    frequency       text,
    fee_type        text,
    fee_multiplier  numeric(10,4),
    raw             jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kalshi.events (
    event_ticker        text PRIMARY KEY,
    series_ticker       text NOT NULL,
    climate_date        date NOT NULL,
    title               text,
    mutually_exclusive  boolean,
    raw                 jsonb,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_series_date ON kalshi.events (series_ticker, climate_date);

-- metadata_source ranks what we know about a market: api (Kalshi's own metadata) beats
-- ladder (a settled third-party ladder) beats ticker (inferred from the ticker alone).
CREATE TABLE kalshi.markets (
    ticker           text PRIMARY KEY,
    event_ticker     text NOT NULL,
    series_ticker    text NOT NULL,
    climate_date     date NOT NULL,
    strike_type      text NOT NULL CHECK (strike_type IN
                         ('less', 'between', 'greater', 'less_or_equal', 'greater_or_equal')),
    floor_strike     numeric(8,2),
    cap_strike       numeric(8,2),
    yes_sub_title    text,
    open_time        timestamptz,
    close_time       timestamptz,
    expiration_time  timestamptz,
    status           text,
    result           text,
    expiration_value text,
    settled_tmax     integer,
    volume           numeric(16,2),
    open_interest    numeric(16,2),
    last_price       numeric(8,6),
    rules_primary    text,
    metadata_source  text NOT NULL CHECK (metadata_source IN ('api', 'ladder', 'ticker')),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX markets_event ON kalshi.markets (event_ticker);
CREATE INDEX markets_series_date ON kalshi.markets (series_ticker, climate_date);

-- ---------------------------------------------------------------- md: market data
-- A print's ticker and time are fixed properties of its trade_id, so (ticker, created_time,
-- trade_id) is as unique as trade_id alone; as the one index it also serves every "trades of
-- this market by time" read, and bulk loads maintain one B-tree instead of two (2x faster).
CREATE TABLE md.trades (
    ticker          text NOT NULL,
    created_time    timestamptz NOT NULL,
    trade_id        uuid NOT NULL,
    count_fp        numeric(14,2) NOT NULL CHECK (count_fp > 0),
    yes_price       numeric(8,6) NOT NULL CHECK (yes_price >= 0 AND yes_price <= 1),
    no_price        numeric(8,6) NOT NULL CHECK (no_price >= 0 AND no_price <= 1),
    taker_side      text CHECK (taker_side IN ('yes', 'no')),
    is_block_trade  boolean,
    PRIMARY KEY (ticker, created_time, trade_id)
);

-- One row per market-minute (ts = start of the minute, UTC). source 'api' rows are Kalshi's
-- candles (bid/ask and trade OHLC); source 'trades' rows are built from md.trades where no
-- API candles exist. has_trade is false for minutes without a print (the close is then the
-- previous close carried forward); is_synthetic marks rows the exporter forward-filled.
CREATE TABLE md.candles_1m (
    ticker          text NOT NULL,
    ts              timestamptz NOT NULL,
    source          text NOT NULL CHECK (source IN ('api', 'trades')),
    yes_bid_open    numeric(8,6),
    yes_bid_high    numeric(8,6),
    yes_bid_low     numeric(8,6),
    yes_bid_close   numeric(8,6),
    yes_ask_open    numeric(8,6),
    yes_ask_high    numeric(8,6),
    yes_ask_low     numeric(8,6),
    yes_ask_close   numeric(8,6),
    price_open      numeric(8,6),
    price_high      numeric(8,6),
    price_low       numeric(8,6),
    price_close     numeric(8,6),
    vwap            numeric(10,8),
    volume          numeric(16,2) NOT NULL DEFAULT 0,
    open_interest   numeric(16,2),
    trade_count     integer,
    has_trade       boolean NOT NULL,
    is_synthetic    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (ticker, ts)
);

-- Top-of-book log (best bids, implied asks) at each change.
CREATE TABLE md.top_of_book (
    ticker      text NOT NULL,
    ts          timestamptz NOT NULL,
    yes_bid     numeric(8,6),
    yes_ask     numeric(8,6),
    no_bid      numeric(8,6),
    no_ask      numeric(8,6),
    source      text NOT NULL,
    PRIMARY KEY (ticker, ts)
);

-- Full-depth order book: snapshots (every level) and deltas (WebSocket orderbook_delta).
CREATE TABLE md.orderbook_snapshot (
    ticker      text NOT NULL,
    ts          timestamptz NOT NULL,
    side        text NOT NULL CHECK (side IN ('yes', 'no')),
    price       numeric(8,6) NOT NULL,
    size        numeric(14,2) NOT NULL,
    seq         bigint,
    PRIMARY KEY (ticker, ts, side, price)
);
CREATE TABLE md.orderbook_delta (
    ticker      text NOT NULL,
    ts          timestamptz NOT NULL,
    sid         integer NOT NULL DEFAULT 0,
    seq         bigint NOT NULL,
    side        text NOT NULL CHECK (side IN ('yes', 'no')),
    price       numeric(8,6) NOT NULL,
    delta       numeric(14,2) NOT NULL,
    PRIMARY KEY (ticker, sid, seq)
);

-- ---------------------------------------------------------------- wx: weather
-- Where each (city, source) observation or forecast series is measured: the settlement
-- station itself, or a proxy point (ERA5 at the city centre).
CREATE TABLE wx.location (
    city        text NOT NULL,
    source      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('station', 'proxy')),
    station     text,
    lat         double precision,
    lon         double precision,
    note        text,
    PRIMARY KEY (city, source)
);

CREATE TABLE wx.obs (
    city            text NOT NULL,
    source          text NOT NULL,
    ts              timestamptz NOT NULL,
    temp_f          double precision,
    dewpoint_f      double precision,
    rel_humidity    double precision,
    wind_speed_mph  double precision,
    wind_dir_deg    double precision,
    PRIMARY KEY (city, source, ts)
);

-- issued_at is when the forecast was made (the latest one issued before t is usable at t).
CREATE TABLE wx.forecast (
    city            text NOT NULL,
    source          text NOT NULL,
    issued_at       timestamptz NOT NULL,
    valid_at        timestamptz NOT NULL,
    temp_f          double precision,
    dewpoint_f      double precision,
    rel_humidity    double precision,
    wind_speed_mph  double precision,
    cloud_cover     double precision,
    precip_in       double precision,
    precip_prob     double precision,
    conditions      text,
    PRIMARY KEY (city, source, issued_at, valid_at)
);
CREATE INDEX forecast_valid ON wx.forecast (city, source, valid_at);

CREATE TABLE wx.forecast_daily (
    city            text NOT NULL,
    source          text NOT NULL,
    issued_at       timestamptz NOT NULL,
    target_date     date NOT NULL,
    tmax_f          double precision,
    tmin_f          double precision,
    temp_f          double precision,
    rel_humidity    double precision,
    precip_in       double precision,
    precip_prob     double precision,
    wind_speed_mph  double precision,
    wind_gust_mph   double precision,
    cloud_cover     double precision,
    conditions      text,
    PRIMARY KEY (city, source, issued_at, target_date)
);

-- The official daily maximum per climate day. tmax_first is the first value we ever stored
-- (the first-published CLI); tmax_final follows later corrections.
CREATE TABLE wx.settlement (
    city                text NOT NULL,
    climate_date        date NOT NULL,
    source              text NOT NULL,
    tmax_first          integer NOT NULL,
    tmax_final          integer NOT NULL,
    first_published_at  timestamptz,
    final_at            timestamptz,
    note                text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city, climate_date, source)
);

CREATE TABLE wx.mc_params (
    city            text NOT NULL,
    version         text NOT NULL,
    lead_bucket     text NOT NULL,
    rho             double precision NOT NULL,
    sigma           double precision NOT NULL,
    n_obs           integer,
    date_from       date NOT NULL,
    date_to         date NOT NULL,
    fitted_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city, version, lead_bucket)
);

-- ---------------------------------------------------------------- pmf: probabilities
CREATE TABLE pmf.minute (
    ticker           text NOT NULL,
    ts               timestamptz NOT NULL,
    mc_version       text NOT NULL,
    city             text NOT NULL,
    event_ticker     text NOT NULL,
    p_mkt            double precision,
    p_wx             double precision,
    p_fused          double precision,
    p_fused_norm     double precision,
    hazard_next_5m   double precision,
    hazard_next_60m  double precision,
    tmax_q05         double precision,
    tmax_q25         double precision,
    tmax_q50         double precision,
    tmax_q75         double precision,
    tmax_q95         double precision,
    PRIMARY KEY (ticker, ts, mc_version)
);
CREATE INDEX pmf_minute_event ON pmf.minute (event_ticker, ts);

-- ---------------------------------------------------------------- model: runs, calibration
CREATE TABLE model.runs (
    run_id      bigserial PRIMARY KEY,
    kind        text NOT NULL,
    city        text,
    horizon     text,
    model_type  text,
    params      jsonb NOT NULL DEFAULT '{}',
    metrics     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE model.calibration (
    city        text NOT NULL,
    horizon     text NOT NULL,
    model_type  text NOT NULL,
    method      text NOT NULL,
    params      jsonb NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    is_default  boolean NOT NULL DEFAULT false,
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city, horizon, model_type, method)
);
CREATE TABLE model.fusion_config (
    city        text NOT NULL,
    version     text NOT NULL,
    params      jsonb NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city, version)
);

-- ---------------------------------------------------------------- exec: the ledger
CREATE TABLE exec.orders (
    client_order_id  uuid PRIMARY KEY,
    order_id         text UNIQUE,
    mode             text NOT NULL CHECK (mode IN ('backtest', 'paper', 'live')),
    run_id           bigint,
    ticker           text NOT NULL,
    side             text NOT NULL,
    action           text NOT NULL,
    price            numeric(8,6) NOT NULL,
    count_fp         numeric(14,2) NOT NULL,
    status           text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    raw              jsonb
);
CREATE TABLE exec.fills (
    fill_id          text PRIMARY KEY,
    client_order_id  uuid,
    order_id         text,
    mode             text NOT NULL,
    run_id           bigint,
    ticker           text NOT NULL,
    side             text NOT NULL,
    action           text NOT NULL,
    price            numeric(8,6) NOT NULL,
    count_fp         numeric(14,2) NOT NULL,
    fee              numeric(12,4) NOT NULL,
    is_taker         boolean NOT NULL,
    ts               timestamptz NOT NULL
);
CREATE TABLE exec.positions (
    mode            text NOT NULL,
    run_id          bigint NOT NULL DEFAULT 0,
    ticker          text NOT NULL,
    position_fp     numeric(14,2) NOT NULL,
    cost            numeric(14,4) NOT NULL,
    realized_pnl    numeric(14,4) NOT NULL DEFAULT 0,
    fees            numeric(14,4) NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mode, run_id, ticker)
);
CREATE TABLE exec.decisions (
    decision_id  bigserial PRIMARY KEY,
    mode         text NOT NULL,
    run_id       bigint,
    ts           timestamptz NOT NULL,
    ticker       text NOT NULL,
    payload      jsonb NOT NULL
);

-- ---------------------------------------------------------------- backtest
CREATE TABLE backtest.runs (
    run_id       bigserial PRIMARY KEY,
    city         text,
    date_from    date,
    date_to      date,
    fill_model   text,
    params       jsonb NOT NULL DEFAULT '{}',
    metrics      jsonb NOT NULL DEFAULT '{}',
    report_path  text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- ---------------------------------------------------------------- meta: imports, bad input
CREATE TABLE meta.import_log (
    path         text NOT NULL,
    sha256       text NOT NULL,
    kind         text NOT NULL,
    rows_read    bigint NOT NULL,
    rows_stored  bigint NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (path, sha256)
);
-- Malformed input kept for inspection: where it came from, what was wrong, the raw text.
CREATE TABLE meta.bad_input (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    location    text NOT NULL,
    field       text,
    message     text NOT NULL,
    raw         text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.execute(DDL)


def downgrade() -> None:
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
