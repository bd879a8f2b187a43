"""p_mkt: the market's probability for each bracket of an event, minute by minute.

Read from `feat.minute_panel_base`, whose row at ts holds only candles closed by ts (quotes and
the last trade carried forward, an empty book's bid 0 / ask 1 already turned into NULL). Per
bracket and minute the market's price is, in order of preference:

1. the mid (bid + ask) / 2 when both sides are quoted;
2. else the last trade, clipped into whatever one-sided quote stands (a stale 40¢ print
   cannot stand above a live 5¢ ask);
3. else, with no trade ever, the middle of the interval a one-sided quote leaves open:
   ask / 2 with only an ask, (1 + bid) / 2 with only a bid;
4. else no price at all: the bracket gets ``UNPRICED_FLOOR`` (half a cent). Brackets nobody
   quotes or trades are the far tails; a small positive floor keeps them possible (finite
   logs in the pool) without inventing a view.

The prices are then normalised to sum to 1 over the event's brackets (removing the
overround). A minute at which no bracket of the event has any price has no p_mkt (NULL): a
uniform guess would be our invention, not the market's.

The same pass stores the market features the fusion weight uses, per event and minute:
traded volume over the last 20 minutes, the volatility of p_mkt and the minutes left in the
climate day (see `market_features`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from kwx.store.bulk import copy_into, create_stage

Conn = psycopg.Connection[tuple[object, ...]]
FloatArray = npt.NDArray[np.float64]

UNPRICED_FLOOR = 0.005
VOLUME_WINDOW_MIN = 20  # the panel's volume_20m
VOLATILITY_WINDOW_MIN = 30
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class EventPanel:
    """One event's market panel as minute × bracket arrays (brackets in ladder order)."""

    event_ticker: str
    city: str
    tickers: list[str]
    ts: list[dt.datetime]  # the climate day's minutes, ascending
    day_start: dt.datetime
    bid: FloatArray  # (T, K), NaN where no bid is quoted
    ask: FloatArray  # (T, K), NaN where no ask is quoted
    last: FloatArray  # (T, K), NaN before the first trade
    volume_20m: FloatArray  # (T, K), contracts in the 20 candles closed by ts


def load_event_panel(conn: Conn, event_ticker: str) -> EventPanel:
    """The base panel of one event, pivoted; a clear error if the event has none."""
    rows = conn.execute(
        "SELECT ticker, ts, bracket_index, city, yes_bid::float8, yes_ask::float8, "
        "last_price::float8, volume_20m::float8 FROM feat.minute_panel_base "
        "WHERE event_ticker = %s ORDER BY bracket_index, ticker, ts",
        (event_ticker,),
    ).fetchall()
    conn.commit()
    if not rows:
        raise ValueError(f"feat.minute_panel_base has no rows for event {event_ticker}")
    frame = pd.DataFrame(
        rows, columns=["ticker", "ts", "idx", "city", "bid", "ask", "last", "vol20"]
    )
    tickers = list(dict.fromkeys(frame["ticker"]))
    times = sorted(set(frame["ts"]))
    n_t = len(times)
    counts = frame.groupby("ticker", sort=False).size()
    if (counts != n_t).any():
        bad = counts[counts != n_t].index[0]
        raise ValueError(
            f"feat.minute_panel_base: event {event_ticker}, market {bad} has "
            f"{int(counts[bad])} minutes where its siblings have {n_t}"
        )

    def grid(col: str) -> FloatArray:
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        return values.reshape(len(tickers), n_t).T.copy()

    return EventPanel(
        event_ticker=event_ticker,
        city=str(frame["city"].iloc[0]),
        tickers=tickers,
        ts=times,
        day_start=times[0],
        bid=grid("bid"),
        ask=grid("ask"),
        last=grid("last"),
        volume_20m=np.nan_to_num(grid("vol20")),
    )


def bracket_prices(bid: FloatArray, ask: FloatArray, last: FloatArray) -> FloatArray:
    """Each bracket's price per minute by the rules in the module docstring (NaN = none)."""
    both = ~np.isnan(bid) & ~np.isnan(ask)
    lo = np.where(np.isnan(bid), 0.0, bid)
    hi = np.where(np.isnan(ask), 1.0, ask)
    price = np.where(both, (bid + ask) / 2.0, np.nan)
    traded = ~both & ~np.isnan(last)
    price = np.where(traded, np.clip(last, lo, hi), price)
    ask_only = ~both & np.isnan(last) & ~np.isnan(ask)
    price = np.where(ask_only, ask / 2.0, price)
    bid_only = ~both & np.isnan(last) & ~np.isnan(bid) & np.isnan(ask)
    price = np.where(bid_only, (1.0 + bid) / 2.0, price)
    return price


def implied_pmf(prices: FloatArray, floor: float = UNPRICED_FLOOR) -> FloatArray:
    """Normalise per minute (row); unpriced brackets get `floor`; rows with no price at all
    are NaN throughout."""
    priced_any = ~np.all(np.isnan(prices), axis=1)
    filled = np.where(np.isnan(prices), floor, np.maximum(prices, floor))
    p: FloatArray = filled / filled.sum(axis=1, keepdims=True)
    p[~priced_any] = np.nan
    return p


def market_features(panel: EventPanel, p_mkt: FloatArray) -> pd.DataFrame:
    """Per minute of the event: the inputs of the fusion weight that come from the market.

    - ``mkt_volume_20m``: contracts traded on all the event's brackets in the 20 candles closed
      by ts (liquidity: a heavily traded book has aggregated more information);
    - ``mkt_volatility``: the root mean square, over the last 30 minutes, of the per-minute
      change of the whole p_mkt vector (Euclidean norm of Δp_mkt); a jumpy market is a noisy
      one. Minutes without p_mkt count as no change;
    - ``minutes_to_close``: minutes from ts to the end of the climate day (local standard
      midnight), when the settlement window closes. Defined for every market, unlike
      close_time, which the legacy ladders lack.
    All three use only minutes up to ts.
    """
    elapsed = np.array(
        [(t - panel.day_start).total_seconds() / 60.0 for t in panel.ts], dtype=np.float64
    )
    volume, volatility, to_close = market_feature_arrays(panel.volume_20m, p_mkt, elapsed)
    return pd.DataFrame(
        {
            "ts": panel.ts,
            "mkt_volume_20m": volume,
            "mkt_volatility": volatility,
            "minutes_to_close": to_close,
        }
    )


def market_feature_arrays(
    volume_20m: FloatArray, p_mkt: FloatArray, elapsed_min: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """`market_features` on plain arrays, for callers that hold the panel already (the live
    loop): per-bracket 20-minute volume (T, K), p_mkt (T, K) and the minutes since the
    climate day began (T,) → (mkt_volume_20m, mkt_volatility, minutes_to_close), each (T,)."""
    step = np.diff(np.nan_to_num(p_mkt), axis=0, prepend=np.nan_to_num(p_mkt[:1]))
    both = ~np.isnan(p_mkt)
    both[1:] &= ~np.isnan(p_mkt[:-1])
    sq = np.where(both, step**2, 0.0).sum(axis=1)
    mean_sq = (
        pd.Series(sq).rolling(VOLATILITY_WINDOW_MIN, min_periods=1).mean().to_numpy(np.float64)
    )
    volume: FloatArray = np.nan_to_num(volume_20m).sum(axis=1)
    return volume, np.sqrt(mean_sq), MINUTES_PER_DAY - elapsed_min


def event_market_frame(panel: EventPanel) -> pd.DataFrame:
    """Long frame (ticker, ts, p_mkt, features) for one event: what the p_mkt pass writes."""
    p = implied_pmf(bracket_prices(panel.bid, panel.ask, panel.last))
    feats = market_features(panel, p)
    n_t, n_k = p.shape
    out = pd.DataFrame(
        {
            "ticker": np.repeat(np.array(panel.tickers, dtype=object), n_t),
            "ts": np.tile(np.array(panel.ts, dtype=object), n_k),
            "p_mkt": p.T.reshape(-1),
        }
    )
    for col in ("mkt_volume_20m", "mkt_volatility", "minutes_to_close"):
        out[col] = np.tile(feats[col].to_numpy(), n_k)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


_STAGE_COLUMNS = (
    ("ticker", "text"),
    ("ts", "timestamptz"),
    ("p_mkt", "float8"),
    ("mkt_volume_20m", "float8"),
    ("mkt_volatility", "float8"),
    ("minutes_to_close", "float8"),
)


def write_event_market(conn: Conn, event_ticker: str, mc_version: str) -> int:
    """Compute p_mkt and the market features of one event and store them on the event's
    existing pmf.minute rows of `mc_version` (rows are made by the weather model; none are
    created here). Returns rows updated; one transaction per event."""
    frame = event_market_frame(load_event_panel(conn, event_ticker))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS stage_pmf_market")
        create_stage(cur, "stage_pmf_market", _STAGE_COLUMNS)
        copy_into(cur, "stage_pmf_market", [c for c, _ in _STAGE_COLUMNS], frame)
        cur.execute(
            "UPDATE pmf.minute m SET p_mkt = s.p_mkt, mkt_volume_20m = s.mkt_volume_20m, "
            "mkt_volatility = s.mkt_volatility, minutes_to_close = s.minutes_to_close "
            "FROM stage_pmf_market s WHERE m.event_ticker = %s AND m.mc_version = %s "
            "AND m.ticker = s.ticker AND m.ts = s.ts",
            (event_ticker, mc_version),
        )
        return max(cur.rowcount, 0)


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def events_in_range(
    conn: Conn, city: str, date_from: dt.date, date_to: dt.date, mc_version: str
) -> list[tuple[str, bool]]:
    """Events of a city with pmf.minute rows of `mc_version` whose climate day starts in the
    range, each with whether its market columns are already filled."""
    rows = conn.execute(
        "SELECT m.event_ticker, bool_and(m.mkt_volume_20m IS NOT NULL) "
        "FROM pmf.minute m JOIN kalshi.events e ON e.event_ticker = m.event_ticker "
        "WHERE m.city = %s AND m.mc_version = %s AND e.climate_date BETWEEN %s AND %s "
        # Loose bounds on ts (a climate day lies within a day either side of its date) let
        # the scan use the (city, mc_version, ts) index.
        "AND m.ts >= %s AND m.ts < %s "
        "GROUP BY m.event_ticker, e.climate_date ORDER BY e.climate_date",
        (
            city,
            mc_version,
            date_from,
            date_to,
            _utc_midnight(date_from - dt.timedelta(days=1)),
            _utc_midnight(date_to + dt.timedelta(days=2)),
        ),
    ).fetchall()
    conn.commit()
    return [(str(r[0]), bool(r[1])) for r in rows]


def write_p_mkt(
    conn: Conn,
    city: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str = "v1",
    only_missing: bool = False,
    on_event: Callable[[str, int], None] | None = None,
) -> int:
    """The p_mkt pass over a city's events in a date range; returns rows updated.

    With `only_missing`, events whose market columns are already stored are skipped (what a
    fit does before reading them). `on_event(event, rows)` reports progress.
    """
    total = 0
    for event, done in events_in_range(conn, city, date_from, date_to, mc_version):
        n = 0 if only_missing and done else write_event_market(conn, event, mc_version)
        total += n
        if on_event is not None:
            on_event(event, n)
    return total
