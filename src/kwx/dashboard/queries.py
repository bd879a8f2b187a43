"""What the dashboard shows, read from the store: plain SQL functions returning dicts and lists.

Each function takes an open connection and returns JSON-ready values (floats, strings, ISO
times), so the pages and the JSON endpoints are thin and these can be tested against a real
store without a browser. Nothing here writes.

Speed (a page must render in under a second on a city-year of ``pmf.minute``): every read of
``pmf.minute`` goes through its ``(city, mc_version, ts)`` index — the versions by a skip
scan, the newest minute by ``max(ts)``, a day's or a minute's rows by equality on ``ts`` —
never a scan of the table.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, overload

import psycopg
from psycopg.rows import dict_row

from kwx.domain.climate_day import climate_date_of, climate_day_window
from kwx.registry import City, CityRegistry, default_registry

Conn = psycopg.Connection[tuple[object, ...]]
Row = dict[str, Any]

TRADING_MODES: Final = ("paper", "live")


def _rows(conn: Conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return [dict(r) for r in cur.fetchall()]


@overload
def jsonable(value: dict[str, Any]) -> dict[str, Any]: ...
@overload
def jsonable(value: list[Any]) -> list[Any]: ...
@overload
def jsonable(value: Any) -> Any: ...
def jsonable(value: Any) -> Any:
    """A value as JSON carries it: Decimal → float, times → ISO strings, NaN → None."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------- pmf.minute: versions in use


@dataclass(frozen=True)
class Series:
    """One (city, mc_version) run of the weather model in pmf.minute and its time span."""

    city: str
    mc_version: str
    first_ts: dt.datetime
    last_ts: dt.datetime


def pmf_series(conn: Conn) -> list[Series]:
    """Every (city, mc_version) in pmf.minute with its first and last minute (skip scan)."""
    rows = conn.execute(
        """
        WITH RECURSIVE t(city, v) AS (
            (SELECT city, mc_version FROM pmf.minute ORDER BY city, mc_version LIMIT 1)
            UNION ALL
            SELECT n.city, n.mc_version FROM t CROSS JOIN LATERAL (
                SELECT city, mc_version FROM pmf.minute
                WHERE (city, mc_version) > (t.city, t.v)
                ORDER BY city, mc_version LIMIT 1) n
        )
        SELECT t.city, t.v,
            (SELECT min(ts) FROM pmf.minute p WHERE p.city = t.city AND p.mc_version = t.v),
            (SELECT max(ts) FROM pmf.minute p WHERE p.city = t.city AND p.mc_version = t.v)
        FROM t ORDER BY 1, 2
        """
    ).fetchall()
    return [Series(str(c), str(v), a, b) for c, v, a, b in rows]  # type: ignore[arg-type]


def series_in_use(conn: Conn) -> dict[str, Series]:
    """Per city, the weather-model version the dashboard shows: the one with the newest
    minute (the one a running loop writes), ties broken by name."""
    out: dict[str, Series] = {}
    for s in pmf_series(conn):
        best = out.get(s.city)
        if best is None or (s.last_ts, s.mc_version) > (best.last_ts, best.mc_version):
            out[s.city] = s
    return out


def _city(registry: CityRegistry, key: str) -> City | None:
    try:
        return registry.by_key(key)
    except KeyError:
        return None


# ---------------------------------------------------------------- Now


def newest_minute(conn: Conn, city: str, mc_version: str, at: dt.datetime) -> dt.datetime | None:
    """The newest minute at or before ``at`` (ordered by the index, so the planner never
    picks a scan for a city with few rows)."""
    row = conn.execute(
        "SELECT ts FROM pmf.minute WHERE city = %s AND mc_version = %s AND ts <= %s "
        "ORDER BY city DESC, mc_version DESC, ts DESC LIMIT 1",
        (city, mc_version, at),
    ).fetchone()
    return row[0] if row else None  # type: ignore[return-value]


def ladder_at(conn: Conn, city: str, mc_version: str, ts: dt.datetime) -> list[Row]:
    """Every bracket's probabilities at one minute, with its strikes, ordered by strike."""
    return _rows(
        conn,
        """
        SELECT p.event_ticker, p.ticker, m.climate_date, m.strike_type, m.floor_strike,
               m.cap_strike, m.yes_sub_title, m.result, p.p_mkt, p.p_wx, p.p_fused,
               p.p_fused_norm, p.hazard_next_5m, p.hazard_next_60m, p.tmax_q50
        FROM pmf.minute p LEFT JOIN kalshi.markets m ON m.ticker = p.ticker
        WHERE p.city = %s AND p.mc_version = %s AND p.ts = %s
        ORDER BY p.event_ticker, coalesce(m.floor_strike, m.cap_strike - 1000), p.ticker
        """,
        (city, mc_version, ts),
    )


def running_max(
    conn: Conn, city: City, climate_date: dt.date, ts: dt.datetime
) -> tuple[float | None, str | None]:
    """The highest observed temperature of the climate day up to ``ts`` from the best-ranked
    source that has readings (the ranking the feature panels use), and that source."""
    start, _ = climate_day_window(city.timezone, climate_date)
    row = conn.execute(
        """
        SELECT max(o.temp_f), o.source FROM wx.obs o
        JOIN meta.obs_source_rank r ON r.source = o.source
        WHERE o.city = %s AND o.ts >= %s AND o.ts <= %s AND o.temp_f IS NOT NULL
        GROUP BY o.source, r.rank ORDER BY r.rank LIMIT 1
        """,
        (city.key, start, ts),
    ).fetchone()
    if row is None:
        return None, None
    return float(row[0]), str(row[1])  # type: ignore[arg-type]


def resting_orders(conn: Conn, modes: Sequence[str] = TRADING_MODES) -> list[Row]:
    """Our resting paper/live orders (what the exchange holds for us), newest first."""
    return _rows(
        conn,
        """
        SELECT o.mode, o.run_id, o.ticker, o.event_ticker, o.side, o.action, o.price,
               o.count_fp - o.filled_fp AS remaining, o.created_at
        FROM exec.orders o
        WHERE o.status = 'resting' AND o.mode = ANY(%s)
        ORDER BY o.created_at DESC LIMIT 500
        """,
        (list(modes),),
    )


def latest_runs(conn: Conn) -> list[Row]:
    """The newest paper and the newest live run (the ones the Now page speaks for)."""
    return _rows(
        conn,
        """
        SELECT DISTINCT ON (mode) run_id, mode, cities, status, started_at, finished_at,
               stats, notes
        FROM exec.live_runs ORDER BY mode, run_id DESC
        """,
    )


def positions(conn: Conn, runs: Iterable[tuple[str, int]]) -> list[Row]:
    """Open positions (non-zero YES count) of the given (mode, run_id) pairs."""
    out: list[Row] = []
    for mode, run_id in runs:
        out += _rows(
            conn,
            """
            SELECT mode, run_id, ticker, position_fp, cost, realized_pnl, fees, updated_at
            FROM exec.positions WHERE mode = %s AND run_id = %s AND position_fp <> 0
            ORDER BY ticker
            """,
            (mode, run_id),
        )
    return out


def risk_state(conn: Conn, mode: str, run_id: int) -> Row | None:
    """The risk block of the run's newest evaluation row: kill switch, day P&L, exposure, as
    the engine itself computed them (the dashboard does not recompute the engine's state)."""
    rows = _rows(
        conn,
        """
        SELECT ts, payload->'risk' AS risk FROM exec.decisions
        WHERE mode = %s AND run_id = %s AND payload->>'kind' = 'evaluation'
          AND payload ? 'risk'
        ORDER BY ts DESC, decision_id DESC LIMIT 1
        """,
        (mode, run_id),
    )
    return rows[0] if rows else None


# The md.* tables are read for the markets of the newest climate days only (through their
# (ticker, time) keys), the last three days of each series: a max() over the whole table
# would scan it, and what matters for staleness is whether the markets trading now are being
# recorded.
RECENT_TICKERS_SQL: Final = """
    SELECT coalesce(array_agg(ticker), '{}') FROM (
        SELECT ticker, climate_date,
               max(climate_date) OVER (PARTITION BY series_ticker) AS newest
        FROM kalshi.markets) m
    WHERE climate_date >= newest - 2
"""
MD_FRESHNESS: Final = {
    "kalshi trades": "SELECT max(created_time) FROM md.trades WHERE ticker = ANY(%s)",
    "candles": "SELECT max(ts) FROM md.candles_1m WHERE ticker = ANY(%s)",
    "top of book": "SELECT max(ts) FROM md.top_of_book WHERE ticker = ANY(%s)",
    "orderbook deltas": "SELECT max(ts) FROM md.orderbook_delta WHERE ticker = ANY(%s)",
}
OTHER_FRESHNESS: Final = {
    "weather obs": "SELECT max(ts) FROM wx.obs",
    "forecasts": """
        WITH RECURSIVE t(city, source) AS (
            (SELECT city, source FROM wx.forecast ORDER BY city, source LIMIT 1)
            UNION ALL
            SELECT n.city, n.source FROM t CROSS JOIN LATERAL (
                SELECT city, source FROM wx.forecast WHERE (city, source) > (t.city, t.source)
                ORDER BY city, source LIMIT 1) n
        )
        SELECT max((SELECT max(issued_at) FROM wx.forecast f
                    WHERE f.city = t.city AND f.source = t.source)) FROM t
    """,
    "settlements": "SELECT max(updated_at) FROM wx.settlement",
    "decisions": "SELECT max(ts) FROM exec.decisions",
    "fills": "SELECT max(ts) FROM exec.fills",
}


def feed_freshness(conn: Conn, series: dict[str, Series]) -> list[Row]:
    """The newest row time of each source (and of pmf.minute per city), for staleness."""
    out: list[Row] = []
    recent = conn.execute(RECENT_TICKERS_SQL).fetchone()
    tickers = list(recent[0]) if recent and recent[0] else []  # type: ignore[call-overload]
    for name, sql in MD_FRESHNESS.items():
        row = conn.execute(sql, (tickers,)).fetchone()
        out.append({"source": name, "newest": row[0] if row else None})
    for name, sql in OTHER_FRESHNESS.items():
        row = conn.execute(sql).fetchone()
        out.append({"source": name, "newest": row[0] if row else None})
    for s in series.values():
        out.append({"source": f"pmf.minute {s.city} ({s.mc_version})", "newest": s.last_ts})
    return out


def now_state(conn: Conn, now: dt.datetime, registry: CityRegistry | None = None) -> dict[str, Any]:
    """Everything the Now page shows, as of ``now``: per city the ladders of the newest minute
    at or before ``now`` (on a store without a running loop that is the store's last minute,
    labelled as such), our quotes on them, positions, resting orders, kill switch and the
    engine's day P&L per run, and the freshness of every feed."""
    registry = registry or default_registry()
    series = series_in_use(conn)
    resting = resting_orders(conn)
    quotes: dict[str, list[Row]] = {}
    for o in resting:
        quotes.setdefault(str(o["ticker"]), []).append(o)
    cities: list[Row] = []
    for key, s in sorted(series.items()):
        city = _city(registry, key)
        ts = s.last_ts if now >= s.last_ts else newest_minute(conn, key, s.mc_version, now)
        if ts is None or city is None:
            continue
        assert isinstance(ts, dt.datetime)
        events: dict[str, Row] = {}
        for b in ladder_at(conn, key, s.mc_version, ts):
            ev = events.setdefault(
                str(b["event_ticker"]),
                {"event_ticker": b["event_ticker"], "climate_date": b["climate_date"], "rows": []},
            )
            b["quotes"] = quotes.get(str(b["ticker"]), [])
            ev["rows"].append(b)
        for ev in events.values():
            day = ev["climate_date"] or climate_date_of(city.timezone, ts)
            ev["running_max"], ev["running_max_source"] = running_max(conn, city, day, ts)
            ev["sum_p_wx"] = sum(float(r["p_wx"]) for r in ev["rows"] if r["p_wx"] is not None)
        cities.append(
            {
                "city": key,
                "mc_version": s.mc_version,
                "ts": ts,
                "age_minutes": (now - ts).total_seconds() / 60.0,
                "events": list(events.values()),
            }
        )
    runs = latest_runs(conn)
    for r in runs:
        r["risk"] = risk_state(conn, str(r["mode"]), int(r["run_id"]))
    return jsonable(
        {
            "now": now,
            "cities": cities,
            "runs": runs,
            "positions": positions(conn, [(str(r["mode"]), int(r["run_id"])) for r in runs]),
            "resting": resting,
            "freshness": feed_freshness(conn, series),
            "alerts": recent_alerts(conn, 20),
        }
    )


# ---------------------------------------------------------------- alerts (read side)


def recent_alerts(conn: Conn, limit: int = 100) -> list[Row]:
    """The newest alerts fired (meta.alerts), newest first."""
    return _rows(
        conn,
        """
        SELECT dedup_key, kind, severity, message, fired_at, sent_at, send_error
        FROM meta.alerts ORDER BY fired_at DESC, dedup_key LIMIT %s
        """,
        (limit,),
    )


# ---------------------------------------------------------------- decisions


DECISION_FILTERS: Final = ("mode", "run_id", "ticker", "kind", "city")


def decisions(
    conn: Conn,
    *,
    mode: str | None = None,
    run_id: int | None = None,
    ticker: str | None = None,
    kind: str | None = None,
    city: str | None = None,
    after_id: int | None = None,
    limit: int = 200,
) -> list[Row]:
    """The decision log, newest first, filtered; ``after_id`` returns only rows newer than a
    decision id (what the page polls for). Each row carries its summary fields (the kind,
    outcome, probabilities and signal of the traded bracket) and its whole payload."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if mode:
        where.append("mode = %(mode)s")
        params["mode"] = mode
    if run_id is not None:
        where.append("run_id = %(run_id)s")
        params["run_id"] = run_id
    if ticker:
        where.append("ticker LIKE %(ticker)s")
        params["ticker"] = ticker.upper() + "%"
    if kind:
        where.append("coalesce(payload->>'kind', payload->>'intent') = %(kind)s")
        params["kind"] = kind
    if city:
        where.append("(payload->>'city' = %(city)s OR ticker LIKE ANY(%(series)s))")
        params["city"] = city
        params["series"] = _series_prefixes(city)
    if after_id is not None:
        where.append("decision_id > %(after)s")
        params["after"] = after_id
    rows = _rows(
        conn,
        f"""
        SELECT decision_id, mode, run_id, ts, ticker,
               coalesce(payload->>'kind', payload->>'intent') AS kind,
               payload->>'outcome' AS outcome,
               payload->'bracket'->>'p_mkt' AS p_mkt,
               payload->'bracket'->>'p_wx' AS p_wx,
               payload->'bracket'->>'p_fused_norm' AS p_fused_norm,
               payload->'bracket'->>'signal' AS signal,
               payload
        FROM exec.decisions WHERE {" AND ".join(where)}
        ORDER BY decision_id DESC LIMIT %(limit)s
        """,
        params,
    )
    for r in rows:
        for k in ("p_mkt", "p_wx", "p_fused_norm", "signal"):
            r[k] = None if r[k] is None else float(r[k])
    return jsonable(rows)


def _series_prefixes(city: str) -> list[str]:
    """LIKE patterns of the city's tickers: the series and its legacy prefix (HIGHCHI-)."""
    try:
        c = default_registry().by_key(city)
    except KeyError:
        return []
    return [c.series + "-%", *([c.legacy_prefix + "-%"] if c.legacy_prefix else [])]


def market_minutes(
    conn: Conn, ticker: str, around: dt.datetime, hours: float = 3.0
) -> dict[str, Any]:
    """One market's minutes around a time: p_mkt, p_wx, p_fused_norm (every weather-model
    version stored, newest-ending first) and the quotes, for the decision's chart."""
    lo, hi = around - dt.timedelta(hours=hours), around + dt.timedelta(hours=hours)
    pmf = _rows(
        conn,
        """
        SELECT ts, mc_version, p_mkt, p_wx, p_fused_norm, hazard_next_60m FROM pmf.minute
        WHERE ticker = %s AND ts BETWEEN %s AND %s ORDER BY mc_version, ts
        """,
        (ticker, lo, hi),
    )
    candles = _rows(
        conn,
        """
        SELECT ts, yes_bid_close, yes_ask_close, price_close FROM md.candles_1m
        WHERE ticker = %s AND ts BETWEEN %s AND %s ORDER BY ts
        """,
        (ticker, lo, hi),
    )
    return jsonable({"ticker": ticker, "around": around, "pmf": pmf, "candles": candles})


# ---------------------------------------------------------------- versions in use


def model_versions(conn: Conn) -> dict[str, list[Row]]:
    """Weather-model, fusion and classifier versions the store holds (newest first)."""
    return jsonable(
        {
            "mc_params": _rows(
                conn,
                """
                SELECT city, version, min(date_from) AS date_from, max(date_to) AS date_to,
                       max(fitted_at) AS fitted_at
                FROM wx.mc_params GROUP BY city, version ORDER BY max(fitted_at) DESC LIMIT 50
                """,
            ),
            "fusion": _rows(
                conn,
                """
                SELECT city, version, mc_version, train_from, train_to, fitted_at
                FROM model.fusion_config ORDER BY fitted_at DESC LIMIT 50
                """,
            ),
            "calibration": _rows(
                conn,
                """
                SELECT city, horizon, model_type, method, is_default, fitted_at
                FROM model.calibration ORDER BY is_default DESC, fitted_at DESC LIMIT 50
                """,
            ),
            "model_runs": _rows(
                conn,
                """
                SELECT run_id, kind, city, horizon, model_type, created_at,
                       metrics->>'accepted' AS accepted
                FROM model.runs ORDER BY run_id DESC LIMIT 20
                """,
            ),
        }
    )
