"""Bulk loads of everything a backtest needs for one city and date range, straight from tables.

The feature views cost ~0.2 s per event, too slow for a city-year; here each table is read once
for the whole range with binary COPY into numpy (fixed-width columns, NULL sent as NaN), and
:mod:`kwx.backtest.panel` redoes the views' arithmetic in numpy. Markets are numbered (``tid``)
in event, then ladder order, so every later step indexes arrays instead of strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.domain import fees
from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.engine.tape import L2Levels, to_micro
from kwx.registry import City

__all__ = ["EventMeta", "RawData", "load_raw", "pick_mc_version"]

Conn = psycopg.Connection[tuple[object, ...]]
MINUTES_PER_DAY: Final = 1440
PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
YES_TAKER: Final = "(x.taker_side = 'yes')::bool"


@dataclass(frozen=True)
class EventMeta:
    """One event (climate day) of the run: its ladder, close, results and fee schedule."""

    event_ticker: str
    series_ticker: str
    city: str
    climate_date: dt.date
    day_start: dt.datetime
    close_time: dt.datetime
    tickers: tuple[str, ...]
    brackets: tuple[Bracket, ...]
    results: tuple[str | None, ...]
    fee_type: str

    @property
    def start_minute(self) -> int:
        return int(self.day_start.timestamp()) // 60


@dataclass
class RawData:
    """The run's raw inputs as arrays (``tid`` indexes ``tickers``)."""

    city: str
    mc_version: str
    events: list[EventMeta]
    tickers: list[str]
    tid_event: npt.NDArray[np.int64]  # event index of each tid
    tid_bracket: npt.NDArray[np.int64]  # ladder position of each tid
    candles: npt.NDArray[np.void]
    trades: npt.NDArray[np.void]
    pmf: npt.NDArray[np.void]
    obs: npt.NDArray[np.void]  # (rank, ts_us, temp_f) of the city's readings, by time
    books: dict[str, L2Levels] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fetch_groups(
    conn: Conn, sql: str, params: tuple[object, ...], columns: list[tuple[str, str]]
) -> tuple[list[str], npt.NDArray[np.void]]:
    """Run ``sql`` — one row per group: a text key, then ``array_send(array_agg(expr))``
    columns of fixed-width, non-NULL expressions (coalesce NULL floats to 'NaN') — and return
    the keys and every group's elements as one record array (field ``group`` indexes keys).

    Aggregating server-side sends a few thousand rows instead of millions, and each array's
    binary form (20-byte header, then a 4-byte length before every element) is one
    ``np.frombuffer``: a city-year of minute rows loads without a Python loop per row.
    """
    rows = conn.execute(sql, params, binary=True).fetchall()
    conn.commit()
    dtype = np.dtype([("group", "i4"), *columns])
    keys: list[str] = []
    parts: list[npt.NDArray[np.void]] = []
    for row in rows:
        if len(row) != len(columns) + 1:
            raise ValueError(
                f"fetch_groups: {len(row)} columns returned, {len(columns) + 1} declared"
            )
        n: int | None = None
        decoded: list[np.ndarray] = []
        for value, (name, kind) in zip(row[1:], columns, strict=True):
            assert isinstance(value, bytes | bytearray | memoryview)
            buf = bytes(value)
            if len(buf) == 12:  # an empty array: ndim 0
                arr = np.zeros(0, dtype=kind)
            else:
                rec = np.dtype([("_len", ">i4"), ("v", kind)])
                body = np.frombuffer(buf, dtype=rec, offset=20)
                if len(body) and int(body["_len"].min()) != np.dtype(kind).itemsize:
                    raise ValueError(f"fetch_groups: column {name} has NULL or odd-width values")
                arr = body["v"]
            if n is not None and len(arr) != n:
                raise ValueError(f"fetch_groups: column {name} has {len(arr)} values, not {n}")
            n = len(arr)
            decoded.append(arr)
        part = np.empty(n or 0, dtype=dtype)
        part["group"] = len(keys)
        for (name, _), arr in zip(columns, decoded, strict=True):
            part[name] = arr
        keys.append(str(row[0]))
        parts.append(part)
    return keys, np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _with_tid(
    keys: list[str], data: npt.NDArray[np.void], tid_of: dict[str, int]
) -> npt.NDArray[np.void]:
    """Replace the group index by the market number; groups not in the run are dropped."""
    lookup = np.array([tid_of.get(k, -1) for k in keys], dtype=np.int64)
    tid = lookup[data["group"]] if len(data) else np.zeros(0, np.int64)
    keep = tid >= 0
    out = data[keep].copy()
    out["group"] = tid[keep]
    return out


def _retime(data: npt.NDArray[np.void], to_minutes: bool) -> npt.NDArray[np.void]:
    """``group`` → ``tid``; PostgreSQL's binary timestamptz ``ts`` (µs since 2000-01-01) →
    ``minute`` (minutes since 1970) or ``ts_us`` (µs since 1970); other fields kept."""
    rest = [
        (n, data.dtype[n].newbyteorder("="))
        for n in data.dtype.names or ()
        if n not in ("group", "ts")
    ]
    time_field = ("minute", np.dtype(np.int64)) if to_minutes else ("ts_us", np.dtype(np.int64))
    out = np.empty(len(data), dtype=[("tid", np.int64), time_field, *rest])
    out["tid"] = data["group"]
    unix_us = data["ts"].astype(np.int64) + PG_EPOCH_US
    out[time_field[0]] = unix_us // 60_000_000 if to_minutes else unix_us
    for name, _ in rest:
        out[name] = data[name]
    return out


def pick_mc_version(conn: Conn, city: str, date_from: dt.date, date_to: dt.date) -> str:
    """The pmf.minute version to trade on: the fusion config's for the city when there is one,
    else the version with most rows in the range (``v1`` on ties or none)."""
    row = conn.execute(
        "SELECT mc_version FROM model.fusion_config WHERE city = %s AND mc_version IS NOT NULL "
        "ORDER BY fitted_at DESC LIMIT 1",
        (city,),
    ).fetchone()
    if row is not None and row[0]:
        conn.commit()
        return str(row[0])
    start, _ = climate_day_window("UTC", date_from)
    end, _ = climate_day_window("UTC", date_to + dt.timedelta(days=2))
    rows = conn.execute(
        "SELECT mc_version, count(*) FROM pmf.minute WHERE city = %s AND ts >= %s AND ts < %s "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        (city, start - dt.timedelta(days=1), end),
    ).fetchall()
    conn.commit()
    return str(rows[0][0]) if rows else "v1"


def _close_clock(conn: Conn, series: str, timezone: str) -> dt.timedelta | None:
    """The usual local clock time of a series' market close (e.g. 23:59), from its metadata."""
    rows = conn.execute(
        "SELECT (close_time AT TIME ZONE %s) - climate_date::timestamp AS d, count(*) "
        "FROM kalshi.markets WHERE series_ticker = %s AND close_time IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
        (timezone, series),
    ).fetchall()
    if not rows:
        return None
    value = rows[0][0]
    assert isinstance(value, dt.timedelta)
    return value


def _local_close(day: dt.date, clock: dt.timedelta, city: City) -> dt.datetime:
    naive = dt.datetime.combine(day, dt.time(0)) + clock
    return naive.replace(tzinfo=city.zone).astimezone(dt.UTC)


def _events(
    conn: Conn, city: City, date_from: dt.date, date_to: dt.date, notes: list[str]
) -> list[EventMeta]:
    rows = conn.execute(
        "SELECT m.ticker, m.event_ticker, m.climate_date, m.strike_type, m.floor_strike, "
        "m.cap_strike, m.close_time, m.result, s.fee_type, "
        "(SELECT w.tmax_final FROM wx.settlement w WHERE w.city = %s "
        "   AND w.climate_date = m.climate_date ORDER BY (w.source = 'official') DESC, w.source "
        "   LIMIT 1) AS tmax "
        "FROM kalshi.markets m LEFT JOIN kalshi.series s ON s.series_ticker = m.series_ticker "
        "WHERE m.series_ticker = %s AND m.climate_date BETWEEN %s AND %s "
        "ORDER BY m.climate_date, m.event_ticker, "
        "CASE m.strike_type WHEN 'less' THEN 0 WHEN 'less_or_equal' THEN 0 "
        "WHEN 'between' THEN 1 ELSE 2 END, coalesce(m.floor_strike, m.cap_strike), m.ticker",
        (city.key, city.series, date_from, date_to),
    ).fetchall()
    clock = _close_clock(conn, city.series, city.timezone)
    conn.commit()
    if clock is None:
        clock = dt.timedelta(hours=23, minutes=59)
    grouped: dict[str, list[tuple[object, ...]]] = {}
    for r in rows:
        grouped.setdefault(str(r[1]), []).append(r)
    events: list[EventMeta] = []
    inferred_close = 0
    missing_fee_type: set[str] = set()
    for event_ticker, group in grouped.items():
        day = group[0][2]
        assert isinstance(day, dt.date)
        start, _ = climate_day_window(city.timezone, day)
        closes = {r[6] for r in group if r[6] is not None}
        if closes:
            close = min(c for c in closes if isinstance(c, dt.datetime))
        else:
            close = _local_close(day, clock, city)
            inferred_close += 1
        fee_type = group[0][8]
        if fee_type is None:
            missing_fee_type.add(city.series)
            fee_type = fees.QUADRATIC
        brackets: list[Bracket] = []
        results: list[str | None] = []
        for r in group:
            bracket = Bracket.from_strikes(str(r[3]), r[4], r[5])  # type: ignore[arg-type]
            brackets.append(bracket)
            result = r[7] if r[7] in ("yes", "no") else None
            if result is None and r[9] is not None:
                result = "yes" if bracket.wins(int(str(r[9]))) else "no"
            results.append(result)
        events.append(
            EventMeta(
                event_ticker=event_ticker,
                series_ticker=city.series,
                city=city.key,
                climate_date=day,
                day_start=start,
                close_time=close,
                tickers=tuple(str(r[0]) for r in group),
                brackets=tuple(brackets),
                results=tuple(results),
                fee_type=str(fee_type),
            )
        )
    if inferred_close:
        hours, rest = divmod(int(clock.total_seconds()), 3600)
        notes.append(
            f"{inferred_close} event(s) lack Kalshi's close_time (markets known from ladders or "
            f"tickers only): their close was taken as {hours:02d}:{rest // 60:02d} local time, "
            f"the series' usual close in its own metadata."
        )
    if missing_fee_type:
        notes.append(
            f"kalshi.series has no fee_type for {', '.join(sorted(missing_fee_type))}: "
            "'quadratic' assumed (every KXHIGH* series is; makers pay no fee)."
        )
    return events


def _books(conn: Conn, tickers: list[str]) -> dict[str, L2Levels]:
    books: dict[str, L2Levels] = {}
    snaps = conn.execute(
        "SELECT ticker, ts, side, price, size FROM md.orderbook_snapshot "
        "WHERE ticker = ANY(%s) ORDER BY ticker, ts",
        (tickers,),
    ).fetchall()
    for ticker, ts, side, price, size in snaps:
        book = books.setdefault(str(ticker), L2Levels())
        assert isinstance(ts, dt.datetime) and isinstance(price, Decimal)
        ns = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1_000
        if not book.snapshot_ns or book.snapshot_ns[-1] != ns:
            book.snapshot_ns.append(ns)
            book.snapshots.append({})
        book.snapshots[-1][(str(side), to_micro(price))] = int(Decimal(str(size)) * 100)
    deltas = conn.execute(
        "SELECT ticker, ts, side, price, delta FROM md.orderbook_delta "
        "WHERE ticker = ANY(%s) ORDER BY ticker, ts, sid, seq",
        (tickers,),
    ).fetchall()
    conn.commit()
    for ticker, ts, side, price, delta in deltas:
        book = books.setdefault(str(ticker), L2Levels())
        assert isinstance(ts, dt.datetime) and isinstance(price, Decimal)
        book.delta_ns.append(int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1_000)
        book.delta_level.append((str(side), to_micro(price)))
        book.delta_size.append(int(Decimal(str(delta)) * 100))
    return books


def load_raw(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    mc_version: str | None = None,
    connect_again: Callable[[], AbstractContextManager[Conn]] | None = None,
) -> RawData:
    """Read markets, candles, trades, pmf.minute rows and any L2 depth of the city's events
    whose climate date lies in [date_from, date_to]. With ``connect_again`` (a factory of
    further connections to the same database) pmf.minute is read in parallel."""
    notes: list[str] = []
    events = _events(conn, city, date_from, date_to, notes)
    if not events:
        raise ValueError(
            f"no {city.series} markets with climate dates {date_from} → {date_to} in "
            "kalshi.markets (import or backfill them first)"
        )
    version = mc_version or pick_mc_version(conn, city.key, date_from, date_to)
    tickers = [t for e in events for t in e.tickers]
    tid_event = np.array([i for i, e in enumerate(events) for _ in e.tickers], dtype=np.int64)
    tid_bracket = np.array([k for e in events for k in range(len(e.tickers))], dtype=np.int64)
    end = max(e.day_start for e in events) + dt.timedelta(days=1)
    tid_of = {t: i for i, t in enumerate(tickers)}
    nan = "'NaN'::float8"

    def agg(expr: str) -> str:
        return f"array_send(array_agg({expr}))"

    pmf_sql = (
        f"SELECT x.ticker, {agg('x.ts')}, {agg(f'coalesce(x.p_mkt, {nan})')}, "
        f"{agg(f'coalesce(x.p_wx, {nan})')}, {agg(f'coalesce(x.p_fused_norm, {nan})')}, "
        f"{agg(f'coalesce(x.hazard_next_5m, {nan})')}, "
        f"{agg(f'coalesce(x.hazard_next_60m, {nan})')}, {agg(f'coalesce(x.tmax_q50, {nan})')} "
        "FROM pmf.minute x WHERE x.city = %s AND x.mc_version = %s AND x.ts >= %s "
        "AND x.ts < %s GROUP BY x.ticker"
    )
    pmf_params = (city.key, version, min(e.day_start for e in events), end)
    pmf_columns = [
        ("ts", ">i8"),
        ("p_mkt", ">f8"),
        ("p_wx", ">f8"),
        ("p_fused_norm", ">f8"),
        ("h5", ">f8"),
        ("h60", ">f8"),
        ("q50", ">f8"),
    ]

    def fetch_pmf(c: Conn) -> tuple[list[str], npt.NDArray[np.void]]:
        return fetch_groups(c, pmf_sql, pmf_params, pmf_columns)

    # pmf.minute is the big read: on a second connection it runs while this one fetches the
    # market data (the server and the client each get a core).
    pool = ThreadPoolExecutor(max_workers=1) if connect_again is not None else None
    pending: Future[tuple[list[str], npt.NDArray[np.void]]] | None = None
    if pool is not None and connect_again is not None:
        factory = connect_again

        def fetch_pmf_apart() -> tuple[list[str], npt.NDArray[np.void]]:
            with factory() as other:
                return fetch_pmf(other)

        pending = pool.submit(fetch_pmf_apart)
    try:
        keys, candles = fetch_groups(
            conn,
            f"SELECT x.ticker, {agg('x.ts')}, "
            f"{agg(f'coalesce(x.yes_bid_close::float8, {nan})')}, "
            f"{agg(f'coalesce(x.yes_ask_close::float8, {nan})')}, "
            f"{agg(f'coalesce(x.price_low::float8, {nan})')}, "
            f"{agg(f'coalesce(x.price_high::float8, {nan})')}, "
            f"{agg(f'coalesce(x.price_close::float8, {nan})')}, {agg('x.volume::float8')}, "
            f"{agg('x.has_trade')} FROM md.candles_1m x "
            "WHERE x.ticker = ANY(%s) AND x.ts < %s GROUP BY x.ticker",
            (tickers, end),
            [
                ("ts", ">i8"),
                ("bid", ">f8"),
                ("ask", ">f8"),
                ("low", ">f8"),
                ("high", ">f8"),
                ("close", ">f8"),
                ("volume", ">f8"),
                ("has_trade", "?"),
            ],
        )
        candles = _retime(_with_tid(keys, candles, tid_of), to_minutes=True)
        keys, trades = fetch_groups(
            conn,
            f"SELECT x.ticker, {agg('x.created_time')}, "
            f"{agg('(x.yes_price * 1000000)::int8')}, {agg('(x.count_fp * 100)::int8')}, "
            f"{agg(YES_TAKER)} FROM md.trades x "
            "WHERE x.ticker = ANY(%s) AND x.created_time < %s AND x.taker_side IS NOT NULL "
            "GROUP BY x.ticker",
            (tickers, end),
            [("ts", ">i8"), ("price", ">i8"), ("count", ">i8"), ("taker_yes", "?")],
        )
        trades = _retime(_with_tid(keys, trades, tid_of), to_minutes=False)
        # A deterministic order whatever order the server aggregated in (ties at one instant
        # are common: a sweep prints several levels at once).
        trades = trades[
            np.lexsort(
                (
                    trades["taker_yes"],
                    trades["count"],
                    trades["price"],
                    trades["ts_us"],
                    trades["tid"],
                )
            )
        ]
        untyped = conn.execute(
            "SELECT count(*) FROM md.trades WHERE ticker = ANY(%s) AND taker_side IS NULL",
            (tickers,),
        ).fetchone()
        conn.commit()
        if untyped and int(str(untyped[0])):
            notes.append(f"{untyped[0]} trade print(s) without a taker side were left out.")
        keys, pmf = pending.result() if pending is not None else fetch_pmf(conn)
        pmf = _retime(_with_tid(keys, pmf, tid_of), to_minutes=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    books = _books(conn, tickers)
    first = min(e.day_start for e in events)
    obs_rows = conn.execute(
        "SELECT r.rank, (extract(epoch FROM o.ts) * 1000000)::int8, o.temp_f, o.source "
        "FROM wx.obs o JOIN meta.obs_source_rank r ON r.source = o.source "
        "WHERE o.city = %s AND o.temp_f IS NOT NULL AND o.ts > %s AND o.ts < %s "
        "ORDER BY o.ts, r.rank",
        (city.key, first - dt.timedelta(hours=3), end),
    ).fetchall()
    conn.commit()
    obs = np.array(
        [(r[0], r[1], r[2]) for r in obs_rows],
        dtype=[("rank", "i4"), ("ts_us", "i8"), ("temp", "f8")],
    )
    sources = sorted({str(r[3]) for r in obs_rows})
    if sources and all(src == "era5" for src in sources):
        notes.append(
            "Weather observations: ERA5 hourly at the city centre only — a proxy, not the "
            "settlement station (no sub-hourly station feed exists offline)."
        )
    return RawData(
        city=city.key,
        mc_version=version,
        events=events,
        tickers=tickers,
        tid_event=tid_event,
        tid_bracket=tid_bracket,
        candles=candles,
        trades=trades,
        pmf=pmf,
        obs=obs,
        books=books,
        notes=notes,
    )
