"""Idempotent writers: each stages rows with COPY and upserts them on the table's natural key.

A writer is the one place that knows how a batch lands in its table, including precedence
rules (Kalshi's own market metadata beats a third-party ladder, which beats a ticker guess;
API candles beat candles rebuilt from trades; a settlement's first-published value is kept
when later corrections arrive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import psycopg

from kwx.store.bulk import copy_into, create_stage


class DuplicateKeyError(ValueError):
    """A batch names the same natural key twice; `position` is the 0-based row of the repeat."""

    def __init__(self, table: str, key: tuple[str, ...], position: int) -> None:
        self.table, self.key, self.position = table, key, position
        super().__init__(f"{table}: the same ({', '.join(key)}) appears twice")


class ConflictingRowError(ValueError):
    """A row names a key the store holds with other values (the same trade_id at another
    price): refused and reported, never silently dropped in favour of either."""

    def __init__(self, table: str, key: str, detail: str) -> None:
        self.table, self.key, self.detail = table, key, detail
        super().__init__(f"{table}: {key} is stored already with other values ({detail})")


@dataclass(frozen=True)
class Writer:
    """How rows land in one table.

    With `direct_copy` the rows are first COPYed straight into the table inside a savepoint:
    the fast path for new data (no staging, no ON CONFLICT). A duplicate key rolls the
    savepoint back and the rows go through the staging upsert instead, so the result is the
    same either way. Only for writers whose upsert is a pure insert-if-absent of final values.
    """

    table: str
    stage_columns: tuple[tuple[str, str], ...]
    upsert_sql: str
    direct_copy: bool = False
    # The natural key, when the upsert updates: one batch must not name a key twice
    # (PostgreSQL refuses to update a row twice in one statement).
    key: tuple[str, ...] = ()
    # Run on the staged rows before the upsert; a row back is (key, detail) of a staged row
    # that contradicts the store, and the batch is refused.
    conflict_sql: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.stage_columns)

    def write(
        self,
        cur: psycopg.Cursor[tuple[object, ...]],
        frame: pd.DataFrame,
        params: Mapping[str, object] | None = None,
    ) -> int:
        """Stage and upsert; returns rows the upsert inserted or changed."""
        if frame.empty:
            return 0
        if self.key:
            dup = frame.duplicated(list(self.key)).to_numpy()
            if dup.any():
                raise DuplicateKeyError(self.table, self.key, int(dup.argmax()))
        data = frame.loc[:, list(self.column_names)]
        if self.direct_copy:
            try:
                with cur.connection.transaction():
                    return copy_into(cur, self.table, self.column_names, data)
            except psycopg.errors.UniqueViolation:
                pass  # some rows exist already: fall back to the idempotent upsert
        stage = "stage_" + self.table.replace(".", "_")
        cur.execute(f"DROP TABLE IF EXISTS {stage}")
        create_stage(cur, stage, self.stage_columns)
        copy_into(cur, stage, self.column_names, data)
        if self.conflict_sql:
            cur.execute(self.conflict_sql.format(stage=stage))
            clash = cur.fetchone()
            if clash is not None:
                raise ConflictingRowError(self.table, str(clash[0]), str(clash[1]))
        cur.execute(self.upsert_sql.format(stage=stage), params or {})
        return max(cur.rowcount, 0)


@dataclass
class Batch:
    """Rows for one writer, produced from one file."""

    writer: Writer
    frame: pd.DataFrame
    params: dict[str, object] = field(default_factory=dict)


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    out = []
    for part in spec.split(","):
        name, typ = part.split(maxsplit=1)
        out.append((name.strip(), typ.strip()))
    return tuple(out)


def _set_all(columns: Sequence[str], skip: Sequence[str]) -> str:
    return ", ".join(f"{c} = excluded.{c}" for c in columns if c not in skip)


TRADE_COLUMNS = _cols(
    "trade_id uuid, ticker text, created_time timestamptz, count_fp numeric, "
    "yes_price numeric, no_price numeric, taker_side text, is_block_trade boolean"
)


@dataclass(frozen=True)
class TradeWriter(Writer):
    """Trades are keyed (ticker, created_time, trade_id), and one print can arrive stamped at
    two precisions: REST's microseconds and the WebSocket's milliseconds. Rows whose trade_id
    already exists for the ticker within two seconds are the same print and are skipped.

    When the store has no trade of these tickers near the batch's time span (any first load),
    nothing can be a duplicate and the rows are COPYed straight in.
    """

    def write(
        self,
        cur: psycopg.Cursor[tuple[object, ...]],
        frame: pd.DataFrame,
        params: Mapping[str, object] | None = None,
    ) -> int:
        if frame.empty:
            return 0
        times = pd.to_datetime(frame["created_time"], utc=True)
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM md.trades WHERE ticker = ANY(%s) "
            "AND created_time BETWEEN %s AND %s)",
            (
                list(pd.unique(frame["ticker"].astype(str))),
                times.min() - TRADE_SAME_PRINT_WINDOW,
                times.max() + TRADE_SAME_PRINT_WINDOW,
            ),
        )
        row = cur.fetchone()
        if row is not None and not row[0]:
            return super().write(cur, frame, params)
        staged = Writer(
            self.table,
            self.stage_columns,
            self.upsert_sql,
            direct_copy=False,
            conflict_sql=self.conflict_sql,
        )
        return staged.write(cur, frame, params)


TRADE_SAME_PRINT_WINDOW = pd.Timedelta(seconds=2)
TRADES = TradeWriter(
    "md.trades",
    TRADE_COLUMNS,
    """
    INSERT INTO md.trades (trade_id, ticker, created_time, count_fp, yes_price, no_price,
                           taker_side, is_block_trade)
    SELECT DISTINCT ON (s.trade_id) s.trade_id, s.ticker, s.created_time, s.count_fp,
           s.yes_price, s.no_price, s.taker_side, s.is_block_trade
    FROM {stage} s
    WHERE NOT EXISTS (
        SELECT 1 FROM md.trades t
        WHERE t.ticker = s.ticker AND t.trade_id = s.trade_id
          AND t.created_time BETWEEN s.created_time - interval '2 seconds'
                                 AND s.created_time + interval '2 seconds')
    ORDER BY s.trade_id, s.created_time
    ON CONFLICT (ticker, created_time, trade_id) DO NOTHING
    """,
    direct_copy=True,
    # The rows the upsert would skip as "the same print" must really be the same print.
    conflict_sql="""
    SELECT s.trade_id,
           'stored ' || t.count_fp || ' @ ' || t.yes_price || ', new '
           || s.count_fp || ' @ ' || s.yes_price
    FROM {stage} s JOIN md.trades t
      ON t.ticker = s.ticker AND t.trade_id = s.trade_id
     AND t.created_time BETWEEN s.created_time - interval '2 seconds'
                            AND s.created_time + interval '2 seconds'
    WHERE (t.yes_price, t.count_fp) IS DISTINCT FROM (s.yes_price, s.count_fp)
    LIMIT 1
    """,
)

MARKET_COLUMNS = _cols(
    "ticker text, event_ticker text, series_ticker text, climate_date date, strike_type text, "
    "floor_strike numeric, cap_strike numeric, yes_sub_title text, open_time timestamptz, "
    "close_time timestamptz, expiration_time timestamptz, status text, result text, "
    "expiration_value text, settled_tmax integer, volume numeric, open_interest numeric, "
    "last_price numeric, rules_primary text, metadata_source text"
)
_MARKET_NAMES = [c for c, _ in MARKET_COLUMNS]
_SOURCE_RANK = "CASE {} WHEN 'api' THEN 3 WHEN 'ladder' THEN 2 ELSE 1 END"
# A settlement once stored is never erased by a row that lacks it (an older snapshot, a
# page fetched before the market settled): blanks there keep what the store has.
_MARKET_KEPT = ("result", "expiration_value", "settled_tmax")


def _market_value(column: str) -> str:
    if column in _MARKET_KEPT:
        return f"coalesce(excluded.{column}, kalshi.markets.{column})"
    return f"excluded.{column}"


_MARKET_CHANGED = (
    "("
    + ", ".join(f"kalshi.markets.{c}" for c in _MARKET_NAMES)
    + ") IS DISTINCT FROM ("
    + ", ".join(_market_value(c) for c in _MARKET_NAMES)
    + ")"
)
MARKETS = Writer(
    "kalshi.markets",
    MARKET_COLUMNS,
    f"""
    INSERT INTO kalshi.markets ({", ".join(_MARKET_NAMES)})
    SELECT {", ".join(_MARKET_NAMES)} FROM {{stage}}
    ON CONFLICT (ticker) DO UPDATE
    SET {", ".join(f"{c} = {_market_value(c)}" for c in _MARKET_NAMES if c != "ticker")},
        updated_at = now()
    WHERE {_SOURCE_RANK.format("excluded.metadata_source")}
          >= {_SOURCE_RANK.format("kalshi.markets.metadata_source")}
      AND {_MARKET_CHANGED}
    """,
    key=("ticker",),
)

EVENTS = Writer(
    "kalshi.events",
    _cols("event_ticker text, series_ticker text, climate_date date, title text"),
    """
    INSERT INTO kalshi.events (event_ticker, series_ticker, climate_date, title)
    SELECT DISTINCT ON (event_ticker) event_ticker, series_ticker, climate_date, title
    FROM {stage} ORDER BY event_ticker, title NULLS LAST
    ON CONFLICT (event_ticker) DO UPDATE
      SET title = coalesce(excluded.title, kalshi.events.title), updated_at = now()
    WHERE excluded.title IS NOT NULL AND excluded.title IS DISTINCT FROM kalshi.events.title
    """,
)

SERIES = Writer(
    "kalshi.series",
    _cols("series_ticker text, city_key text, title text"),
    """
    INSERT INTO kalshi.series (series_ticker, city_key, title)
    SELECT series_ticker, city_key, title FROM {stage}
    ON CONFLICT (series_ticker) DO NOTHING
    """,
)

CANDLE_COLUMNS = _cols(
    "ticker text, ts timestamptz, source text, "
    "yes_bid_open numeric, yes_bid_high numeric, yes_bid_low numeric, yes_bid_close numeric, "
    "yes_ask_open numeric, yes_ask_high numeric, yes_ask_low numeric, yes_ask_close numeric, "
    "price_open numeric, price_high numeric, price_low numeric, price_close numeric, "
    "vwap numeric, volume numeric, open_interest numeric, trade_count integer, "
    "has_trade boolean, is_synthetic boolean"
)
_CANDLE_NAMES = [c for c, _ in CANDLE_COLUMNS]
_CANDLE_PRICES = [c for c in _CANDLE_NAMES if c.startswith(("yes_", "price_")) or c == "vwap"]
CANDLES = Writer(
    "md.candles_1m",
    CANDLE_COLUMNS,
    f"""
    INSERT INTO md.candles_1m ({", ".join(_CANDLE_NAMES)})
    SELECT {
        ", ".join(c + " / %(price_scale)s" if c in _CANDLE_PRICES else c for c in _CANDLE_NAMES)
    }
    FROM {{stage}}
    ON CONFLICT (ticker, ts) DO UPDATE SET {_set_all(_CANDLE_NAMES, ["ticker", "ts"])}
    """,
    key=("ticker", "ts"),
)

TOP_OF_BOOK = Writer(
    "md.top_of_book",
    _cols(
        "ticker text, ts timestamptz, yes_bid numeric, yes_ask numeric, no_bid numeric, "
        "no_ask numeric, source text"
    ),
    """
    INSERT INTO md.top_of_book (ticker, ts, yes_bid, yes_ask, no_bid, no_ask, source)
    SELECT DISTINCT ON (ticker, ts) ticker, ts, yes_bid / %(price_scale)s,
           yes_ask / %(price_scale)s, no_bid / %(price_scale)s, no_ask / %(price_scale)s, source
    FROM {stage} ORDER BY ticker, ts
    ON CONFLICT (ticker, ts) DO UPDATE SET yes_bid = excluded.yes_bid,
      yes_ask = excluded.yes_ask, no_bid = excluded.no_bid, no_ask = excluded.no_ask,
      source = excluded.source
    """,
)

SETTLEMENTS = Writer(
    "wx.settlement",
    _cols(
        "city text, climate_date date, source text, tmax integer, published_at timestamptz, "
        "note text"
    ),
    """
    INSERT INTO wx.settlement (city, climate_date, source, tmax_first, tmax_final,
                               first_published_at, final_at, note)
    SELECT city, climate_date, source, tmax, tmax, published_at, published_at, note
    FROM {stage}
    ON CONFLICT (city, climate_date, source) DO UPDATE
      SET tmax_final = excluded.tmax_final, final_at = excluded.final_at,
          note = excluded.note, updated_at = now()
    WHERE (wx.settlement.tmax_final, wx.settlement.note)
          IS DISTINCT FROM (excluded.tmax_final, excluded.note)
    """,
    key=("city", "climate_date", "source"),
)

OBS_COLUMNS = _cols(
    "city text, source text, ts timestamptz, temp_f float8, dewpoint_f float8, "
    "rel_humidity float8, wind_speed_mph float8, wind_dir_deg float8, temp_c float8, "
    "max_temp_6h_f float8, raw text"
)
_OBS_NAMES = [c for c, _ in OBS_COLUMNS]
OBS = Writer(
    "wx.obs",
    OBS_COLUMNS,
    f"""
    INSERT INTO wx.obs ({", ".join(_OBS_NAMES)}) SELECT {", ".join(_OBS_NAMES)} FROM {{stage}}
    ON CONFLICT (city, source, ts) DO UPDATE SET {_set_all(_OBS_NAMES, ["city", "source", "ts"])}
    """,
    key=("city", "source", "ts"),
)

PRODUCTS = Writer(
    "wx.product",
    _cols(
        "product_id text, pil text, station text, city text, issued_at timestamptz, "
        "climate_date date, kind text, text text"
    ),
    """
    INSERT INTO wx.product (product_id, pil, station, city, issued_at, climate_date, kind, text)
    SELECT product_id, pil, station, city, issued_at, climate_date, kind, text FROM {stage}
    ON CONFLICT (product_id) DO NOTHING
    """,
)

_FC_NAMES = [
    "city",
    "source",
    "issued_at",
    "valid_at",
    "temp_f",
    "dewpoint_f",
    "rel_humidity",
    "wind_speed_mph",
    "cloud_cover",
    "precip_in",
    "precip_prob",
    "conditions",
]
FORECAST = Writer(
    "wx.forecast",
    _cols(
        "city text, source text, issued_at timestamptz, valid_at timestamptz, temp_f float8, "
        "dewpoint_f float8, rel_humidity float8, wind_speed_mph float8, cloud_cover float8, "
        "precip_in float8, precip_prob float8, conditions text"
    ),
    f"""
    INSERT INTO wx.forecast ({", ".join(_FC_NAMES)}) SELECT {", ".join(_FC_NAMES)} FROM {{stage}}
    ON CONFLICT (city, source, issued_at, valid_at) DO UPDATE
      SET {_set_all(_FC_NAMES, ["city", "source", "issued_at", "valid_at"])}
    """,
    key=("city", "source", "issued_at", "valid_at"),
)

_FCD_NAMES = [
    "city",
    "source",
    "issued_at",
    "target_date",
    "tmax_f",
    "tmin_f",
    "temp_f",
    "rel_humidity",
    "precip_in",
    "precip_prob",
    "wind_speed_mph",
    "wind_gust_mph",
    "cloud_cover",
    "conditions",
]
FORECAST_DAILY = Writer(
    "wx.forecast_daily",
    _cols(
        "city text, source text, issued_at timestamptz, target_date date, tmax_f float8, "
        "tmin_f float8, temp_f float8, rel_humidity float8, precip_in float8, "
        "precip_prob float8, wind_speed_mph float8, wind_gust_mph float8, cloud_cover float8, "
        "conditions text"
    ),
    f"""
    INSERT INTO wx.forecast_daily ({", ".join(_FCD_NAMES)})
    SELECT {", ".join(_FCD_NAMES)} FROM {{stage}}
    ON CONFLICT (city, source, issued_at, target_date) DO UPDATE
      SET {_set_all(_FCD_NAMES, ["city", "source", "issued_at", "target_date"])}
    """,
    key=("city", "source", "issued_at", "target_date"),
)

LOCATIONS = Writer(
    "wx.location",
    _cols("city text, source text, kind text, station text, lat float8, lon float8, note text"),
    """
    INSERT INTO wx.location (city, source, kind, station, lat, lon, note)
    SELECT city, source, kind, station, lat, lon, note FROM {stage}
    ON CONFLICT (city, source) DO UPDATE SET kind = excluded.kind, station = excluded.station,
      lat = excluded.lat, lon = excluded.lon, note = excluded.note
    """,
    key=("city", "source"),
)

_PMF_WX_NAMES = [
    "ticker",
    "ts",
    "mc_version",
    "city",
    "event_ticker",
    "p_wx",
    "hazard_next_5m",
    "hazard_next_60m",
    "tmax_q05",
    "tmax_q25",
    "tmax_q50",
    "tmax_q75",
    "tmax_q95",
]
# The weather model's share of pmf.minute; p_mkt and the fused columns are left alone.
PMF_WX = Writer(
    "pmf.minute",
    _cols(
        "ticker text, ts timestamptz, mc_version text, city text, event_ticker text, "
        "p_wx float8, hazard_next_5m float8, hazard_next_60m float8, tmax_q05 float8, "
        "tmax_q25 float8, tmax_q50 float8, tmax_q75 float8, tmax_q95 float8"
    ),
    f"""
    INSERT INTO pmf.minute ({", ".join(_PMF_WX_NAMES)})
    SELECT {", ".join(_PMF_WX_NAMES)} FROM {{stage}}
    ON CONFLICT (ticker, ts, mc_version) DO UPDATE
      SET {_set_all(_PMF_WX_NAMES, ["ticker", "ts", "mc_version"])}
    """,
    key=("ticker", "ts", "mc_version"),
)

_GUIDANCE_NAMES = [
    "city",
    "station",
    "model",
    "issued_at",
    "target_date",
    "tmax_f",
    "spread_f",
    "source",
    "extra",
]
# Station guidance (kwx.ingest.guidance): a re-issued value replaces the old one; a row that
# did not change is not rewritten, so re-imports and hourly re-fetches report 0 changes.
GUIDANCE = Writer(
    "wx.guidance",
    _cols(
        "city text, station text, model text, issued_at timestamptz, target_date date, "
        "tmax_f float8, spread_f float8, source text, extra jsonb"
    ),
    f"""
    INSERT INTO wx.guidance ({", ".join(_GUIDANCE_NAMES)})
    SELECT {", ".join(_GUIDANCE_NAMES)} FROM {{stage}}
    ON CONFLICT (city, model, issued_at, target_date) DO UPDATE
      SET {_set_all(_GUIDANCE_NAMES, ["city", "model", "issued_at", "target_date"])},
          updated_at = now()
    WHERE (wx.guidance.station, wx.guidance.tmax_f, wx.guidance.spread_f, wx.guidance.source,
           wx.guidance.extra)
          IS DISTINCT FROM (excluded.station, excluded.tmax_f, excluded.spread_f,
                            excluded.source, excluded.extra)
    """,
    key=("city", "model", "issued_at", "target_date"),
)

# Notes on a file's rows (strikes inferred, rows refused), written with the file's data;
# the same note again (a forced re-import) is not added twice.
BAD_INPUT = Writer(
    "meta.bad_input",
    _cols("source text, location text, field text, message text, raw text"),
    """
    INSERT INTO meta.bad_input (source, location, field, message, raw)
    SELECT DISTINCT s.source, s.location, s.field, s.message, s.raw FROM {stage} s
    WHERE NOT EXISTS (
        SELECT 1 FROM meta.bad_input b
        WHERE (b.source, b.location, b.field, b.message, b.raw)
              IS NOT DISTINCT FROM (s.source, s.location, s.field, s.message, s.raw))
    """,
)
