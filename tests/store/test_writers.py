"""The store's writers against a real PostgreSQL: idempotence, precedence, both COPY paths."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest

from kwx.ingest.candles import build_candles_from_trades
from kwx.store import bulk, writers
from kwx.store.status import table_row_counts
from kwx.store.writers import Writer

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
EVENT = "KXHIGHCHI-24DEC01"
TICKER_A = f"{EVENT}-B40.5"
TICKER_B = f"{EVENT}-B42.5"
T0 = pd.Timestamp("2024-12-01T15:00:00Z")


def write(conn: Conn, writer: Writer, frame: pd.DataFrame, params: Mapping[str, object]) -> int:
    """One batch in one transaction, the way the importer writes a file."""
    with conn.transaction(), conn.cursor() as cur:
        return writer.write(cur, frame, params)


def snapshot(conn: Conn, table: str) -> list[str]:
    """Every row of a table, every column (updated_at included), in a stable order."""
    rows = conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1").fetchall()
    conn.commit()  # so the next write runs in a transaction of its own, with its own now()
    return [str(r[0]) for r in rows]


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# ------------------------------------------------------------------------------ sample batches
def trades_frame(numbers: range) -> pd.DataFrame:
    """Trades shaped like the importer's output: dollar strings, float counts, UTC times."""
    return pd.DataFrame(
        {
            "trade_id": [_uuid(n) for n in numbers],
            "ticker": TICKER_A,
            "created_time": [T0 + pd.Timedelta(seconds=10 * n) for n in numbers],
            "count_fp": [float(n) for n in numbers],
            "yes_price": [f"0.{40 + n:02d}" for n in numbers],
            "no_price": [f"0.{60 - n:02d}" for n in numbers],
            "taker_side": ["yes" if n % 2 else "no" for n in numbers],
            "is_block_trade": pd.array([False] * len(numbers), dtype="boolean"),
        }
    )


def market_row(ticker: str, source: str, **overrides: object) -> dict[str, object]:
    floor = Decimal(ticker.rsplit("B", 1)[1]) - Decimal("0.5")
    row: dict[str, object] = {
        "ticker": ticker,
        "event_ticker": EVENT,
        "series_ticker": "KXHIGHCHI",
        "climate_date": dt.date(2024, 12, 1),
        "strike_type": "between",
        "floor_strike": floor,
        "cap_strike": floor + 1,
        "yes_sub_title": None,
        "open_time": None,
        "close_time": None,
        "expiration_time": None,
        "status": None,
        "result": None,
        "expiration_value": None,
        "settled_tmax": None,
        "volume": None,
        "open_interest": None,
        "last_price": None,
        "rules_primary": None,
        "metadata_source": source,
    }
    row.update(overrides)
    return row


def markets_frame(*rows: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=[c for c, _ in writers.MARKET_COLUMNS])
    frame["settled_tmax"] = frame["settled_tmax"].astype("Int64")
    return frame


API_MARKET = {
    "yes_sub_title": "40° to 41°",
    "open_time": pd.Timestamp("2024-11-30T15:00:00Z"),
    "close_time": pd.Timestamp("2024-12-02T05:59:00Z"),
    "expiration_time": pd.Timestamp("2024-12-08T15:00:00Z"),
    "status": "finalized",
    "result": "yes",
    "expiration_value": "41",
    "settled_tmax": 41,
    "volume": 120.0,
    "open_interest": 30.0,
    "last_price": "0.99",
    "rules_primary": "If the highest temperature …",
}


def candle_row(ticker: str, minute: int, **prices: object) -> dict[str, object]:
    row: dict[str, object] = {c: None for c, _ in writers.CANDLE_COLUMNS}
    row.update(
        ticker=ticker,
        ts=T0 + pd.Timedelta(minutes=minute),
        source="api",
        volume=0,
        has_trade=False,
        is_synthetic=False,
    )
    row.update(prices)
    return row


def candles_frame(*rows: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=[c for c, _ in writers.CANDLE_COLUMNS])
    frame["trade_count"] = frame["trade_count"].astype("Int64")
    return frame


def settlement_frame(tmax: int, published: str | None, note: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["chicago"],
            "climate_date": [dt.date(2024, 7, 1)],
            "source": ["cli"],
            "tmax": [tmax],
            "published_at": [pd.Timestamp(published) if published else pd.NaT],
            "note": [note],
        }
    )


def _sample_batches() -> dict[str, tuple[Writer, pd.DataFrame, dict[str, object]]]:
    two = [0, 1]
    return {
        "trades": (writers.TRADES, trades_frame(range(1, 4)), {}),
        "markets": (
            writers.MARKETS,
            markets_frame(
                market_row(TICKER_A, "api", **API_MARKET), market_row(TICKER_B, "ladder")
            ),
            {},
        ),
        "events": (
            writers.EVENTS,
            pd.DataFrame(
                {
                    "event_ticker": [EVENT, "KXHIGHCHI-24DEC02"],
                    "series_ticker": "KXHIGHCHI",
                    "climate_date": [dt.date(2024, 12, 1), dt.date(2024, 12, 2)],
                    "title": ["Highest temperature in Chicago?", None],
                }
            ),
            {},
        ),
        "series": (
            writers.SERIES,
            pd.DataFrame(
                {
                    "series_ticker": ["KXHIGHCHI", "KXHIGHNY"],
                    "city_key": ["chicago", "new_york"],
                    "title": ["Chicago", "New York"],
                }
            ),
            {},
        ),
        "candles": (
            writers.CANDLES,
            candles_frame(
                *(
                    candle_row(
                        TICKER_A,
                        m,
                        yes_bid_close=60 + m,
                        yes_ask_close=62 + m,
                        price_close=61,
                        volume=5,
                        has_trade=True,
                    )
                    for m in two
                )
            ),
            {"price_scale": 100},
        ),
        "top_of_book": (
            writers.TOP_OF_BOOK,
            pd.DataFrame(
                {
                    "ticker": TICKER_A,
                    "ts": [T0 + pd.Timedelta(seconds=s) for s in (1, 2)],
                    "yes_bid": [2.0, 3.0],
                    "yes_ask": [62.0, 63.0],
                    "no_bid": [38.0, 37.0],
                    "no_ask": [98.0, 97.0],
                    "source": "top_of_book_log",
                }
            ),
            {"price_scale": 100},
        ),
        "settlements": (writers.SETTLEMENTS, settlement_frame(88, "2024-07-02T06:00:00Z"), {}),
        "obs": (
            writers.OBS,
            pd.DataFrame(
                {
                    "city": "chicago",
                    "source": "era5",
                    "ts": [T0 + pd.Timedelta(hours=h) for h in two],
                    "temp_f": [40.5, 41.25],
                    "dewpoint_f": [30.0, None],
                    "rel_humidity": None,
                    "wind_speed_mph": None,
                    "wind_dir_deg": None,
                    "temp_c": [4.72, 5.14],
                    "max_temp_6h_f": None,
                    "raw": ["KMDW 011500Z", None],
                }
            ),
            {},
        ),
        "pmf_wx": (
            writers.PMF_WX,
            pd.DataFrame(
                {
                    "ticker": [TICKER_A, TICKER_B],
                    "ts": [T0, T0],
                    "mc_version": "v1",
                    "city": "chicago",
                    "event_ticker": TICKER_A.rsplit("-", 1)[0],
                    "p_wx": [0.25, 0.75],
                    "hazard_next_5m": 0.01,
                    "hazard_next_60m": 0.2,
                    "tmax_q05": 40.0,
                    "tmax_q25": 41.0,
                    "tmax_q50": 42.0,
                    "tmax_q75": 43.0,
                    "tmax_q95": 45.0,
                }
            ),
            {},
        ),
        "products": (
            writers.PRODUCTS,
            pd.DataFrame(
                {
                    "product_id": ["202412020700-KLOT-CDUS43-CLIMDW", "202412030700-KLOT-CLIMDW"],
                    "pil": "CLIMDW",
                    "station": "KMDW",
                    "city": "chicago",
                    "issued_at": [T0 + pd.Timedelta(days=d) for d in (1, 2)],
                    "climate_date": [dt.date(2024, 12, 1), dt.date(2024, 12, 2)],
                    "kind": "final",
                    "text": ["CLIMATE REPORT, line one\nline, two", "another, report"],
                }
            ),
            {},
        ),
        "forecast": (
            writers.FORECAST,
            pd.DataFrame(
                {
                    "city": "chicago",
                    "source": "vc",
                    "issued_at": T0,
                    "valid_at": [T0 + pd.Timedelta(hours=h) for h in (1, 2)],
                    "temp_f": [41.0, 42.5],
                    "dewpoint_f": [30.0, 31.0],
                    "rel_humidity": [50.0, None],
                    "wind_speed_mph": [5.0, 6.0],
                    "cloud_cover": [10.0, 20.0],
                    "precip_in": [0.0, 0.01],
                    "precip_prob": [0.0, 5.0],
                    "conditions": ["Clear", "Partially cloudy"],
                }
            ),
            {},
        ),
        "forecast_daily": (
            writers.FORECAST_DAILY,
            pd.DataFrame(
                {
                    "city": "chicago",
                    "source": "vc",
                    "issued_at": T0,
                    "target_date": [dt.date(2024, 12, 2), dt.date(2024, 12, 3)],
                    "tmax_f": [44.0, 47.5],
                    "tmin_f": [30.0, 31.0],
                    "temp_f": [37.0, 39.0],
                    "rel_humidity": [60.0, 65.0],
                    "precip_in": [0.0, 0.2],
                    "precip_prob": [0.0, 40.0],
                    "wind_speed_mph": [8.0, 12.0],
                    "wind_gust_mph": [15.0, None],
                    "cloud_cover": [10.0, 90.0],
                    "conditions": ["Clear", "Rain"],
                }
            ),
            {},
        ),
        "locations": (
            writers.LOCATIONS,
            pd.DataFrame(
                {
                    "city": ["chicago", "denver"],
                    "source": "era5",
                    "kind": "proxy",
                    "station": None,
                    "lat": [41.88, 39.74],
                    "lon": [-87.63, -104.99],
                    "note": ["city centre", None],
                }
            ),
            {},
        ),
        "bad_input": (
            writers.BAD_INPUT,
            pd.DataFrame(
                {
                    "source": "file",
                    "location": ["m.csv:3", "m.csv:9"],
                    "field": ["floor_strike", "strike_type"],
                    "message": ["strikes inferred from the ticker", "cannot be inferred"],
                    "raw": [TICKER_A, None],
                }
            ),
            {},
        ),
        "guidance": (
            writers.GUIDANCE,
            pd.DataFrame(
                {
                    "city": "chicago",
                    "station": "KMDW",
                    "model": ["gfs_mos", "nam_mos"],
                    "issued_at": pd.Timestamp("2024-07-01 16:00", tz="UTC"),
                    "target_date": dt.date(2024, 7, 2),
                    "tmax_f": [88.0, 86.0],
                    "spread_f": [None, None],
                    "source": "file",
                    "extra": ['{"run_at": "2024-07-01T12:00:00+00:00"}', None],
                }
            ),
            {},
        ),
    }


SAMPLES = _sample_batches()
# Upserts guarded by "changed?" (or insert-if-absent) report 0 rows for an unchanged rewrite.
GUARDED = {
    "trades",
    "markets",
    "events",
    "series",
    "settlements",
    "products",
    "bad_input",
    "guidance",
}


def test_every_writer_has_a_sample() -> None:
    defined = {w.table for w in vars(writers).values() if isinstance(w, Writer)}
    assert {writer.table for writer, _, _ in SAMPLES.values()} == defined


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_writing_the_same_batch_twice_changes_nothing(conn: Conn, name: str) -> None:
    writer, frame, params = SAMPLES[name]
    assert write(conn, writer, frame, params) == len(frame)
    first = snapshot(conn, writer.table)
    counts = table_row_counts(conn)
    assert len(first) == len(frame)
    again = write(conn, writer, frame, params)
    assert snapshot(conn, writer.table) == first
    assert table_row_counts(conn) == counts
    if name in GUARDED:
        assert again == 0


def test_scaled_prices_are_exact_dollars(conn: Conn) -> None:
    for name in ("candles", "top_of_book"):
        writer, frame, params = SAMPLES[name]
        write(conn, writer, frame, params)
    candle = conn.execute(
        "SELECT yes_bid_close, yes_ask_close, price_close, volume, trade_count FROM md.candles_1m "
        "WHERE ts = %s",
        (dt.datetime(2024, 12, 1, 15, 1, tzinfo=UTC),),
    ).fetchone()
    assert candle == (
        Decimal("0.610000"),
        Decimal("0.630000"),
        Decimal("0.610000"),
        Decimal("5.00"),
        None,
    )
    book = conn.execute(
        "SELECT yes_bid, yes_ask, no_bid, no_ask FROM md.top_of_book ORDER BY ts LIMIT 1"
    ).fetchone()
    assert book == (
        Decimal("0.020000"),
        Decimal("0.620000"),
        Decimal("0.380000"),
        Decimal("0.980000"),
    )


# ------------------------------------------------------------------------------ markets precedence
def _market(conn: Conn, ticker: str = TICKER_A) -> tuple[object, ...] | None:
    row = conn.execute(
        "SELECT metadata_source, result, status, settled_tmax FROM kalshi.markets "
        "WHERE ticker = %s",
        (ticker,),
    ).fetchone()
    conn.commit()
    return row


def test_a_ticker_guess_is_upgraded_by_a_ladder_then_by_kalshi(conn: Conn) -> None:
    assert write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "ticker")), {}) == 1
    assert _market(conn) == ("ticker", None, None, None)
    ladder = markets_frame(market_row(TICKER_A, "ladder", result="no"))
    assert write(conn, writers.MARKETS, ladder, {}) == 1
    assert _market(conn) == ("ladder", "no", None, None)
    api = markets_frame(market_row(TICKER_A, "api", **API_MARKET))
    assert write(conn, writers.MARKETS, api, {}) == 1
    assert _market(conn) == ("api", "yes", "finalized", 41)


@pytest.mark.parametrize("later", ["ladder", "ticker"])
def test_kalshi_metadata_is_never_overwritten_by_a_lower_source(conn: Conn, later: str) -> None:
    write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "api", **API_MARKET)), {})
    before = snapshot(conn, "kalshi.markets")
    lower = markets_frame(market_row(TICKER_A, later, result="no", status="settled"))
    assert write(conn, writers.MARKETS, lower, {}) == 0
    assert snapshot(conn, "kalshi.markets") == before  # updated_at included


def test_a_ladder_is_not_overwritten_by_a_ticker_guess(conn: Conn) -> None:
    write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "ladder", result="yes")), {})
    assert write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "ticker")), {}) == 0
    assert _market(conn) == ("ladder", "yes", None, None)


def test_newer_kalshi_metadata_replaces_older(conn: Conn) -> None:
    active = {**API_MARKET, "status": "active", "result": None, "settled_tmax": None}
    write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "api", **active)), {})
    stamp = conn.execute("SELECT updated_at FROM kalshi.markets").fetchone()
    conn.commit()
    write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "api", **API_MARKET)), {})
    assert _market(conn) == ("api", "yes", "finalized", 41)
    newer = conn.execute("SELECT updated_at FROM kalshi.markets").fetchone()
    assert stamp is not None and newer is not None
    assert newer[0] > stamp[0]  # type: ignore[operator]


def test_one_batch_mixing_sources_keeps_the_best_known(conn: Conn) -> None:
    write(conn, writers.MARKETS, markets_frame(market_row(TICKER_A, "api", **API_MARKET)), {})
    batch = markets_frame(market_row(TICKER_A, "ticker"), market_row(TICKER_B, "ticker"))
    assert write(conn, writers.MARKETS, batch, {}) == 1
    assert _market(conn, TICKER_A) == ("api", "yes", "finalized", 41)
    assert _market(conn, TICKER_B) == ("ticker", None, None, None)


# ------------------------------------------------------------------------------ settlements
def test_settlement_keeps_the_first_value_and_follows_corrections(conn: Conn) -> None:
    assert write(conn, writers.SETTLEMENTS, settlement_frame(88, "2024-07-02T06:00:00Z"), {}) == 1
    corrected = settlement_frame(89, "2024-07-03T12:00:00Z", note="corrected")
    assert write(conn, writers.SETTLEMENTS, corrected, {}) == 1
    row = conn.execute(
        "SELECT tmax_first, tmax_final, first_published_at, final_at, note FROM wx.settlement"
    ).fetchone()
    conn.commit()
    assert row == (
        88,
        89,
        dt.datetime(2024, 7, 2, 6, tzinfo=UTC),
        dt.datetime(2024, 7, 3, 12, tzinfo=UTC),
        "corrected",
    )
    # The same correction again is not a change.
    before = snapshot(conn, "wx.settlement")
    assert write(conn, writers.SETTLEMENTS, corrected, {}) == 0
    assert snapshot(conn, "wx.settlement") == before


# ------------------------------------------------------------------------------ trades: two paths
def test_trades_direct_copy_and_fallback_upsert_agree(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged: list[str] = []

    def spy(cur: Any, name: str, columns: Any) -> None:
        staged.append(name)
        bulk.create_stage(cur, name, columns)

    monkeypatch.setattr(writers, "create_stage", spy)
    # New rows: the direct COPY, no staging.
    assert write(conn, writers.TRADES, trades_frame(range(1, 4)), {}) == 3
    assert staged == []
    # Overlapping rows: the COPY hits a duplicate key, rolls back to its savepoint, and the
    # rows go through the staging upsert, which adds only the two new ones.
    assert write(conn, writers.TRADES, trades_frame(range(2, 6)), {}) == 2
    assert staged == ["stage_md_trades"]
    via_fallback = snapshot(conn, "md.trades")
    conn.execute("TRUNCATE md.trades")
    conn.commit()
    staged.clear()
    assert write(conn, writers.TRADES, trades_frame(range(1, 6)), {}) == 5
    assert staged == []
    assert snapshot(conn, "md.trades") == via_fallback
    assert len(via_fallback) == 5
    row = conn.execute(
        "SELECT count_fp, yes_price, no_price, taker_side, created_time FROM md.trades "
        "WHERE trade_id = %s",
        (_uuid(4),),
    ).fetchone()
    assert row == (
        Decimal("4.00"),
        Decimal("0.440000"),
        Decimal("0.560000"),
        "no",
        dt.datetime(2024, 12, 1, 15, 0, 40, tzinfo=UTC),
    )


def test_duplicate_prints_within_one_batch_are_stored_once(conn: Conn) -> None:
    frame = trades_frame(range(1, 3))
    doubled = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    assert write(conn, writers.TRADES, doubled, {}) == 2
    assert table_row_counts(conn)["md.trades"] == 2


def test_a_print_is_immutable(conn: Conn) -> None:
    """The same trade_id at another price is refused and reported, not silently dropped
    (issue 15), and the stored print stays as it was."""
    write(conn, writers.TRADES, trades_frame(range(1, 2)), {})
    changed = trades_frame(range(1, 2)).assign(yes_price="0.99", no_price="0.01")
    with pytest.raises(writers.ConflictingRowError, match=r"0\.410000"):
        write(conn, writers.TRADES, changed, {})
    assert conn.execute("SELECT yes_price FROM md.trades").fetchone() == (Decimal("0.410000"),)
    assert write(conn, writers.TRADES, trades_frame(range(1, 2)), {}) == 0


# ------------------------------------------------------------------------------ candles
def _trade(n: int, ticker: str, second: int, cents: int, count: int) -> dict[str, object]:
    return {
        "trade_id": _uuid(n),
        "ticker": ticker,
        "created_time": T0 + pd.Timedelta(seconds=second),
        "count_fp": float(count),
        "yes_price": f"0.{cents:02d}",
        "no_price": f"0.{100 - cents:02d}",
        "taker_side": "yes",
        "is_block_trade": False,
    }


@pytest.fixture
def two_markets_traded(conn: Conn) -> Conn:
    """Markets A and B with prints: A at 15:00 and 15:05, B at 15:00."""
    both = markets_frame(market_row(TICKER_A, "api"), market_row(TICKER_B, "api"))
    write(conn, writers.MARKETS, both, {})
    trades = pd.DataFrame(
        [
            _trade(1, TICKER_A, 10, 40, 2),
            _trade(2, TICKER_A, 300, 45, 1),
            _trade(3, TICKER_B, 30, 10, 4),
        ]
    )
    write(conn, writers.TRADES, trades, {})
    return conn


def _candles(conn: Conn, ticker: str) -> list[tuple[object, ...]]:
    rows = conn.execute(
        "SELECT ts, source, price_close, yes_bid_close, volume, trade_count FROM md.candles_1m "
        "WHERE ticker = %s ORDER BY ts",
        (ticker,),
    ).fetchall()
    conn.commit()
    return rows


def _build(conn: Conn, series: list[str] | None = None) -> int:
    with conn.transaction():
        return build_candles_from_trades(conn, series)


API_CANDLE = candle_row(
    TICKER_A, 0, yes_bid_close="0.39", price_close="0.41", volume="2.00", has_trade=True
)


def test_markets_with_api_candles_are_left_alone_by_the_build(two_markets_traded: Conn) -> None:
    conn = two_markets_traded
    write(conn, writers.CANDLES, candles_frame(API_CANDLE), {"price_scale": 1})
    assert _build(conn) == 1  # B's minute only
    assert _candles(conn, TICKER_A) == [
        (
            dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),
            "api",
            Decimal("0.410000"),
            Decimal("0.390000"),
            Decimal("2.00"),
            None,
        )
    ]
    assert _candles(conn, TICKER_B) == [
        (
            dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),
            "trades",
            Decimal("0.100000"),
            None,
            Decimal("4.00"),
            1,
        )
    ]


def test_api_candles_replace_trade_built_ones_and_survive_a_rebuild(
    two_markets_traded: Conn,
) -> None:
    conn = two_markets_traded
    assert _build(conn) == 3
    assert [r[1] for r in _candles(conn, TICKER_A)] == ["trades", "trades"]
    write(conn, writers.CANDLES, candles_frame(API_CANDLE), {"price_scale": 1})
    _build(conn)
    first = _candles(conn, TICKER_A)[0]
    assert first == (
        dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),
        "api",
        Decimal("0.410000"),
        Decimal("0.390000"),
        Decimal("2.00"),
        None,
    )


def test_rebuild_is_idempotent_and_series_filter_holds(two_markets_traded: Conn) -> None:
    conn = two_markets_traded
    assert _build(conn, ["KXHIGHNY"]) == 0
    assert table_row_counts(conn)["md.candles_1m"] == 0
    assert _build(conn, ["KXHIGHCHI"]) == 3
    built = snapshot(conn, "md.candles_1m")
    assert _build(conn) == 3
    assert snapshot(conn, "md.candles_1m") == built
