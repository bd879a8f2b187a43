"""Feature panel views on a small hand-built day, with values computed by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
EVENT = "KXHIGHCHI-24DEC01"
DAY_START = dt.datetime(2024, 12, 1, 6, 0, tzinfo=UTC)  # midnight CST
T0 = dt.datetime(2024, 12, 1, 18, 0, tzinfo=UTC)  # noon CST
LOW, MID, HIGH = f"{EVENT}-T40", f"{EVENT}-B40.5", f"{EVENT}-T41"


def _minute(k: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=k)


def _market(conn: Conn, ticker: str, strike_type: str, floor: int | None, cap: int | None) -> None:
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, close_time, metadata_source) "
        "VALUES (%s, %s, 'KXHIGHCHI', '2024-12-01', %s, %s, %s, '2024-12-02T05:59:00Z', 'api')",
        (ticker, EVENT, strike_type, floor, cap),
    )


def _candle(
    conn: Conn,
    ticker: str,
    k: int,
    bid: str | None,
    ask: str | None,
    close: str | None,
    volume: int = 0,
    high: str | None = None,
    low: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_close, yes_ask_close, "
        "price_high, price_low, price_close, volume, has_trade) "
        "VALUES (%s, %s, 'api', %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticker, ts) DO UPDATE "
        "SET yes_bid_close = excluded.yes_bid_close, yes_ask_close = excluded.yes_ask_close, "
        "price_close = excluded.price_close, volume = excluded.volume",
        (
            ticker,
            _minute(k),
            bid,
            ask,
            high or close,
            low or close,
            close,
            volume,
            close is not None,
        ),
    )


def _obs(conn: Conn, ts: dt.datetime, temp: float, source: str = "metar") -> None:
    conn.execute(
        "INSERT INTO wx.obs (city, source, ts, temp_f, dewpoint_f) VALUES "
        "('chicago', %s, %s, %s, 20.0) ON CONFLICT (city, source, ts) DO UPDATE "
        "SET temp_f = excluded.temp_f",
        (source, ts, temp),
    )


@pytest.fixture
def day(conn: Conn) -> Conn:
    _market(conn, LOW, "less", None, 40)
    _market(conn, MID, "between", 40, 41)
    _market(conn, HIGH, "greater", 41, None)
    # MID: quoted at minute 0 and 1, then an empty book at 2 (falls back to the last trade).
    _candle(conn, MID, 0, "0.40", "0.44", "0.42", 5, high="0.44", low="0.40")
    _candle(conn, MID, 1, "0.44", "0.50", "0.46", 3)
    _candle(conn, MID, 2, "0.00", "1.00", "0.48", 2)
    _candle(conn, LOW, 0, "0.30", "0.32", None)
    _candle(conn, LOW, 1, "0.28", "0.30", None)
    _candle(conn, HIGH, 0, "0.20", "0.24", None)
    _candle(conn, HIGH, 1, "0.24", "0.26", None)
    _obs(conn, DAY_START - dt.timedelta(minutes=7), 99.0)  # yesterday: not today's max
    _obs(conn, T0 - dt.timedelta(minutes=7), 30.0)
    _obs(conn, T0 + dt.timedelta(minutes=1, seconds=30), 32.0)
    _obs(conn, T0 + dt.timedelta(minutes=3), 31.0)
    conn.commit()
    return conn


def _rows(
    conn: Conn, view: str, ticker: str, until: dt.datetime | None = None
) -> list[dict[str, Any]]:
    cur = conn.execute(
        f"SELECT * FROM {view} WHERE event_ticker = %s AND ticker = %s "
        "AND (%s::timestamptz IS NULL OR ts <= %s) ORDER BY ts",
        (EVENT, ticker, until, until),
    )
    names = [d.name for d in cur.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows


def _at(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    return next(r for r in rows if r["ts"] == _minute(k))


def test_base_panel_by_hand(day: Conn) -> None:
    rows = _rows(day, "feat.minute_panel_base", MID)
    assert len(rows) == 1440  # every minute of the climate day
    assert rows[0]["ts"] == DAY_START
    assert rows[0]["ts_local"] == dt.datetime(2024, 12, 1, 0, 0)
    assert _at(rows, 0)["mid"] is None  # the candle of minute 0 is not closed at T0
    r1, r2, r3, r4 = (_at(rows, k) for k in (1, 2, 3, 4))
    assert (r1["yes_bid"], r1["yes_ask"], r1["mid"]) == (
        Decimal("0.40"),
        Decimal("0.44"),
        Decimal("0.42"),
    )
    assert r1["spread"] == Decimal("0.04")
    assert r1["clv"] == Decimal(0)  # closed mid-range: (0.02 - 0.02) / 0.04
    assert r1["volume_1m"] == Decimal("5") and r1["has_trade"] is True
    assert r2["mid"] == Decimal("0.47")
    assert r2["velocity"] == Decimal("0.05")
    # Minute 2's book is empty (0 / 1): no quote, so the mid is the last trade, 0.48.
    assert (r3["yes_bid"], r3["yes_ask"], r3["mid"]) == (None, None, Decimal("0.48"))
    assert r3["velocity"] == Decimal("0.01")
    assert r3["acceleration"] == Decimal("-0.04")
    assert r3["volume_5m"] == Decimal("10") and r3["volume_delta"] == Decimal("-1")
    assert (r4["mid"], r4["volume_1m"], r4["has_trade"]) == (Decimal("0.48"), 0, False)
    assert r4["minutes_to_close"] == pytest.approx(
        (dt.datetime(2024, 12, 2, 5, 59, tzinfo=UTC) - _minute(4)).total_seconds() / 60
    )


def test_neighbours_by_hand(day: Conn) -> None:
    low, mid, high = (
        _at(_rows(day, "feat.minute_panel_neighbors", t), 2) for t in (LOW, MID, HIGH)
    )
    assert [r["bracket_index"] for r in (low, mid, high)] == [1, 2, 3]
    assert (low["left_mid"], low["right_mid"]) == (None, Decimal("0.47"))
    assert (high["left_mid"], high["right_mid"]) == (Decimal("0.47"), None)
    assert mid["triad_mass"] == Decimal("0.29") + Decimal("0.47") + Decimal("0.25")
    assert low["triad_mass"] is None
    assert (mid["left_velocity"], mid["right_velocity"]) == (Decimal("-0.02"), Decimal("0.03"))
    # Minute 3: accelerations LOW 0.02 (v: -0.02 → 0), MID -0.04, HIGH -0.03 (v: 0.03 → 0).
    low3, mid3, high3 = (
        _at(_rows(day, "feat.minute_panel_neighbors", t), 3) for t in (LOW, MID, HIGH)
    )
    assert mid3["ras"] == Decimal("-0.04") - (Decimal("0.02") + Decimal("-0.03")) / 2
    assert low3["ras"] == Decimal("0.02") - Decimal("-0.04")  # an edge: its one neighbour
    assert high3["ras"] == Decimal("-0.03") - Decimal("-0.04")


def test_weather_columns_by_hand(day: Conn) -> None:
    rows = _rows(day, "feat.minute_panel_with_weather", MID)
    at = {k: _at(rows, k) for k in (0, 1, 2, 3, 5)}
    assert at[0]["temp_1m"] == 30.0 and at[0]["obs_source"] == "metar"
    assert at[1]["temp_1m"] == 30.0  # the 18:01:30 reading is not in yet at 18:01
    assert at[2]["temp_1m"] == 32.0 and at[2]["temp_5m"] == 30.0
    assert at[3]["temp_1m"] == 31.0
    assert at[5]["temp_5m"] == 31.0
    # Yesterday's 99 °F never counts: the running max starts at the climate day's start.
    assert [at[k]["running_max_f"] for k in (0, 1, 2, 3, 5)] == [30.0, 30.0, 32.0, 32.0, 32.0]
    assert rows[0]["running_max_f"] is None


def test_full_panel_joins_the_pmf(day: Conn) -> None:
    day.execute(
        "INSERT INTO pmf.minute (ticker, ts, mc_version, city, event_ticker, p_wx) "
        "VALUES (%s, %s, 'v1', 'chicago', %s, 0.3)",
        (MID, _minute(2), EVENT),
    )
    day.commit()
    rows = _rows(day, "feat.minute_panel_full", MID)
    assert len(rows) == 1440
    assert _at(rows, 2)["p_wx"] == 0.3 and _at(rows, 1)["p_wx"] is None


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_no_look_ahead(day: Conn, cut: int) -> None:
    """Changing anything that happens after t leaves every row at or before t unchanged."""
    until = _minute(cut)
    views = (
        "feat.minute_panel_base",
        "feat.minute_panel_neighbors",
        "feat.minute_panel_with_weather",
    )
    before = {(v, t): _rows(day, v, t, until) for v in views for t in (LOW, MID, HIGH)}
    # The future: the candle of the minute starting at t (closes after t) and later ones,
    # observations after t, a new late trade-only market minute.
    for ticker in (LOW, MID, HIGH):
        for k in range(cut, cut + 3):
            _candle(day, ticker, k, "0.05", "0.95", "0.90", 999)
    _obs(day, until + dt.timedelta(seconds=1), 120.0)
    _obs(day, until + dt.timedelta(minutes=30), 121.0, source="asos1min")
    day.commit()
    after = {(v, t): _rows(day, v, t, until) for v in views for t in (LOW, MID, HIGH)}
    assert after == before


def test_the_day_starts_with_what_was_known_before_it(day: Conn) -> None:
    before = DAY_START - dt.timedelta(minutes=10)
    day.execute(
        "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_close, yes_ask_close, "
        "price_close, volume, has_trade) VALUES (%s, %s, 'api', 0.30, 0.36, 0.33, 4, true)",
        (MID, before),
    )
    # The candle of the minute just before the day closes at the day's first instant: it is
    # the row's own candle, not a seed.
    day.execute(
        "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_close, yes_ask_close, "
        "price_close, volume, has_trade) VALUES (%s, %s, 'api', 0.31, 0.37, 0.34, 1, true)",
        (MID, DAY_START - dt.timedelta(minutes=1)),
    )
    day.commit()
    rows = _rows(day, "feat.minute_panel_base", MID)
    assert (rows[0]["yes_bid"], rows[0]["yes_ask"]) == (Decimal("0.31"), Decimal("0.37"))
    assert rows[1]["mid"] == Decimal("0.34") and rows[1]["volume_1m"] == 0
    day.execute(
        "DELETE FROM md.candles_1m WHERE ticker = %s AND ts = %s",
        (MID, DAY_START - dt.timedelta(minutes=1)),
    )
    day.commit()
    rows = _rows(day, "feat.minute_panel_base", MID)
    assert rows[0]["mid"] == Decimal("0.33") and rows[0]["last_price"] == Decimal("0.33")
    assert rows[0]["volume_1m"] == 0  # the seed carries prices, not volume
