"""p_mkt: price rules by hand, normalisation, an empty book, and no look-ahead, in PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest

from kwx.pmf.market import (
    UNPRICED_FLOOR,
    bracket_prices,
    event_market_frame,
    implied_pmf,
    load_event_panel,
    write_p_mkt,
)

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
EVENT = "KXHIGHCHI-24DEC01"
DAY = dt.date(2024, 12, 1)
DAY_START = dt.datetime(2024, 12, 1, 6, 0, tzinfo=UTC)  # midnight CST
T0 = dt.datetime(2024, 12, 1, 18, 0, tzinfo=UTC)  # noon CST
LOW, MID, HIGH = f"{EVENT}-T40", f"{EVENT}-B40.5", f"{EVENT}-T41"
NAN = np.nan


def test_price_rules_by_hand() -> None:
    bid = np.array([[0.40, NAN, NAN, NAN, NAN, 0.30]])
    ask = np.array([[0.44, 0.05, NAN, 0.08, NAN, NAN]])
    last = np.array([[0.10, 0.40, 0.22, NAN, NAN, 0.20]])
    got = bracket_prices(bid, ask, last)
    # both quoted → mid; ask only with a stale 40¢ print → clipped to the 5¢ ask; no quote →
    # last trade; ask only, never traded → ask/2; nothing → NaN; bid only, print below it →
    # clipped up to the bid.
    np.testing.assert_allclose(got, [[0.42, 0.05, 0.22, 0.04, NAN, 0.30]])
    bid_only = bracket_prices(np.array([[0.90]]), np.array([[NAN]]), np.array([[NAN]]))
    np.testing.assert_allclose(bid_only, [[0.95]])


def test_implied_pmf_normalises_floors_and_leaves_blank_minutes_blank() -> None:
    prices = np.array([[0.30, 0.50, 0.30], [0.20, NAN, 0.70], [NAN, NAN, NAN]])
    p = implied_pmf(prices)
    np.testing.assert_allclose(p[0], [0.30 / 1.1, 0.50 / 1.1, 0.30 / 1.1])
    total = 0.20 + UNPRICED_FLOOR + 0.70
    np.testing.assert_allclose(p[1], [0.20 / total, UNPRICED_FLOOR / total, 0.70 / total])
    assert np.all(np.isnan(p[2]))
    np.testing.assert_allclose(np.nansum(p[:2], axis=1), 1.0)


def _minute(k: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=k)


def _market(conn: Conn, ticker: str, strike_type: str, floor: int | None, cap: int | None) -> None:
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, close_time, metadata_source) "
        "VALUES (%s, %s, 'KXHIGHCHI', %s, %s, %s, %s, '2024-12-02T05:59:00Z', 'api')",
        (ticker, EVENT, DAY, strike_type, floor, cap),
    )


def _candle(
    conn: Conn,
    ticker: str,
    k: int,
    bid: str | None,
    ask: str | None,
    close: str | None,
    volume: int = 0,
) -> None:
    conn.execute(
        "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_close, yes_ask_close, "
        "price_high, price_low, price_close, volume, has_trade) "
        "VALUES (%s, %s, 'api', %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticker, ts) DO UPDATE "
        "SET yes_bid_close = excluded.yes_bid_close, yes_ask_close = excluded.yes_ask_close, "
        "price_close = excluded.price_close, volume = excluded.volume",
        (ticker, _minute(k), bid, ask, close, close, close, volume, close is not None),
    )


@pytest.fixture
def day(conn: Conn) -> Conn:
    """Three brackets; pmf.minute rows exist (as the weather model makes them) for the day."""
    conn.execute(
        "INSERT INTO kalshi.events (event_ticker, series_ticker, climate_date) "
        "VALUES (%s, 'KXHIGHCHI', %s)",
        (EVENT, DAY),
    )
    _market(conn, LOW, "less", None, 40)
    _market(conn, MID, "between", 40, 41)
    _market(conn, HIGH, "greater", 41, None)
    # Minute 0: everything quoted. Minute 1: MID's book empties (bid 0 / ask 1) → its last
    # trade 0.46 stands in. HIGH never trades and is never quoted after minute 0.
    _candle(conn, LOW, 0, "0.20", "0.24", "0.22", 5)
    _candle(conn, MID, 0, "0.40", "0.44", "0.42", 3)
    _candle(conn, HIGH, 0, "0.30", "0.36", None)
    _candle(conn, MID, 1, "0", "1", "0.46", 2)
    _candle(conn, HIGH, 1, "0", "1", None)
    for ticker in (LOW, MID, HIGH):
        conn.execute(
            "INSERT INTO pmf.minute (ticker, ts, mc_version, city, event_ticker, p_wx) "
            "SELECT %s, g, 'v1', 'chicago', %s, 0.25 FROM generate_series(%s::timestamptz, "
            "%s::timestamptz - interval '1 minute', interval '1 minute') g",
            (ticker, EVENT, DAY_START, DAY_START + dt.timedelta(days=1)),
        )
    conn.commit()
    return conn


def _stored(conn: Conn) -> dict[tuple[str, dt.datetime], tuple[float | None, ...]]:
    rows = conn.execute(
        "SELECT ticker, ts, p_mkt, mkt_volume_20m, mkt_volatility, minutes_to_close "
        "FROM pmf.minute WHERE mc_version = 'v1'"
    ).fetchall()
    conn.commit()
    out: dict[tuple[str, dt.datetime], tuple[float | None, ...]] = {}
    for r in rows:
        assert isinstance(r[1], dt.datetime)
        out[(str(r[0]), r[1])] = tuple(None if v is None else float(str(v)) for v in r[2:])
    return out


def test_p_mkt_by_hand_in_the_database(day: Conn) -> None:
    rows = write_p_mkt(day, "chicago", DAY, DAY)
    assert rows == 3 * 1440
    got = _stored(day)
    # The row at T0+1 sees the candle of minute 0 (closed at T0+1): mids 0.22, 0.42, 0.33.
    at1 = np.array([got[(t, _minute(1))][0] for t in (LOW, MID, HIGH)], dtype=float)
    np.testing.assert_allclose(at1, np.array([0.22, 0.42, 0.33]) / 0.97)
    # At T0+2 MID's book is empty: no quote, so its last trade 0.46 (not 0.5); HIGH's empty
    # book and no trade ever leave it unpriced → the floor.
    at2 = np.array([got[(t, _minute(2))][0] for t in (LOW, MID, HIGH)], dtype=float)
    raw = np.array([0.22, 0.46, UNPRICED_FLOOR])
    np.testing.assert_allclose(at2, raw / raw.sum())
    # Before any candle of the day nothing is priced: p_mkt is NULL, not uniform.
    assert got[(LOW, DAY_START)][0] is None
    # Market features: 20-minute volume of the event, minutes left in the climate day.
    assert got[(LOW, _minute(1))][1] == pytest.approx(8.0)
    assert got[(LOW, _minute(3))][1] == pytest.approx(10.0)
    assert got[(LOW, _minute(1))][3] == pytest.approx(720.0 - 1.0)
    # Every priced minute sums to one.
    sums: dict[dt.datetime, float] = {}
    for (_, ts), values in got.items():
        if values[0] is not None:
            sums[ts] = sums.get(ts, 0.0) + float(values[0])
    assert len(sums) == 719  # T0+1 to the end of the day
    np.testing.assert_allclose(list(sums.values()), 1.0)


def test_changing_the_future_leaves_the_past_alone(day: Conn) -> None:
    write_p_mkt(day, "chicago", DAY, DAY)
    before = _stored(day)
    # The future: a burst of trading and new quotes from minute 5 on.
    _candle(day, LOW, 5, "0.60", "0.70", "0.65", 40)
    _candle(day, MID, 6, "0.10", "0.20", "0.15", 40)
    _candle(day, HIGH, 7, "0.05", "0.10", "0.08", 40)
    day.commit()
    write_p_mkt(day, "chicago", DAY, DAY)
    after = _stored(day)
    cutoff = _minute(5)  # the row at T0+5 sees candles up to minute 4 only
    past = [k for k in before if k[1] <= cutoff]
    future = [k for k in before if k[1] > cutoff]
    assert past and future
    assert all(before[k] == after[k] for k in past)
    assert any(before[k] != after[k] for k in future)


def test_frame_matches_the_panel_shape(day: Conn) -> None:
    panel = load_event_panel(day, EVENT)
    assert panel.tickers == [LOW, MID, HIGH]  # ladder order
    assert len(panel.ts) == 1440 and panel.ts[0] == DAY_START
    frame = event_market_frame(panel)
    assert len(frame) == 3 * 1440
    assert set(frame.columns) >= {"ticker", "ts", "p_mkt", "mkt_volume_20m", "mkt_volatility"}


def test_an_event_without_a_panel_is_a_clear_error(conn: Conn) -> None:
    with pytest.raises(ValueError, match="no rows for event KXHIGHCHI-99JAN01"):
        load_event_panel(conn, "KXHIGHCHI-99JAN01")
