"""More real file shapes through `import_directory`, with every stored value checked exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg

from kwx.ingest.file_import import ImportSummary, import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CTX = ImportContext(default_registry())


def _run(conn: Conn, root: Path, *, force: bool = False) -> ImportSummary:
    summary = import_directory(conn, root, CTX, force=force)
    assert not summary.failed, [o.message for o in summary.failed]
    return summary


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_legacy_trade_parquet_in_integer_cents(conn: Conn, tmp_path: Path) -> None:
    """The shape of kalshi/trades/KXHIGH*.parquet: int64 cents, microsecond UTC times."""
    ticker = "KXHIGHDEN-24NOV20-B53.5"
    frame = pd.DataFrame(
        {
            "trade_id": ["E6090E0E-DB85-4633-BF4D-3846F5B96CAC", _uuid(2), _uuid(3)],
            "ticker": ticker,
            "count": pd.array([12, 1, 250], dtype="int64"),
            "created_time": pd.to_datetime(
                [
                    "2024-11-19T19:10:28.250474Z",
                    "2024-11-19T20:00:12.051628Z",
                    "2024-11-19T20:00:59.999999Z",
                ],
                utc=True,
            ).as_unit("us"),
            "yes_price": pd.array([47, 1, 99], dtype="int64"),
            "no_price": pd.array([53, 99, 1], dtype="int64"),
            "taker_side": ["yes", "no", "no"],
        }
    )
    frame.to_parquet(tmp_path / "KXHIGHDEN.parquet", index=False)
    summary = _run(conn, tmp_path)
    trades = next(o for o in summary.outcomes if o.path.name == "KXHIGHDEN.parquet")
    assert (trades.status, trades.rows_read, trades.rows_stored) == ("imported", 3, 3)
    rows = conn.execute(
        "SELECT trade_id::text, count_fp, yes_price, no_price, taker_side, created_time, "
        "is_block_trade FROM md.trades ORDER BY created_time"
    ).fetchall()
    assert rows == [
        (
            "e6090e0e-db85-4633-bf4d-3846f5b96cac",
            Decimal("12.00"),
            Decimal("0.470000"),
            Decimal("0.530000"),
            "yes",
            dt.datetime(2024, 11, 19, 19, 10, 28, 250474, tzinfo=UTC),
            None,
        ),
        (
            _uuid(2),
            Decimal("1.00"),
            Decimal("0.010000"),
            Decimal("0.990000"),
            "no",
            dt.datetime(2024, 11, 19, 20, 0, 12, 51628, tzinfo=UTC),
            None,
        ),
        (
            _uuid(3),
            Decimal("250.00"),
            Decimal("0.990000"),
            Decimal("0.010000"),
            "no",
            dt.datetime(2024, 11, 19, 20, 0, 59, 999999, tzinfo=UTC),
            None,
        ),
    ]
    # A lone B ticker is enough to infer its market (a between bracket needs no siblings).
    market = conn.execute(
        "SELECT strike_type, floor_strike, cap_strike, metadata_source, series_ticker "
        "FROM kalshi.markets"
    ).fetchall()
    assert market == [("between", Decimal("53.00"), Decimal("54.00"), "ticker", "KXHIGHDEN")]
    # One candle for 19:10 and one for 20:00 (two prints).
    candles = conn.execute(
        "SELECT ts, price_open, price_close, volume, trade_count FROM md.candles_1m ORDER BY ts"
    ).fetchall()
    assert candles == [
        (dt.datetime(2024, 11, 19, 19, 10, tzinfo=UTC), Decimal("0.470000"), Decimal("0.470000"),
         Decimal("12.00"), 1),
        (dt.datetime(2024, 11, 19, 20, 0, tzinfo=UTC), Decimal("0.010000"), Decimal("0.990000"),
         Decimal("251.00"), 2),
    ]  # fmt: skip


def test_fixed_point_trade_json_2026_shape(conn: Conn, tmp_path: Path) -> None:
    trade = {
        "trade_id": _uuid(42),
        "ticker": "KXHIGHNY-26AUG12-B77.5",
        "count_fp": "3.00",
        "yes_price_dollars": "0.4200",
        "no_price_dollars": "0.5800",
        "taker_outcome_side": "yes",
        "taker_book_side": "bid",
        "created_time": "2026-08-12T15:04:05.123Z",
        "is_block_trade": False,
    }
    (tmp_path / "trades_page_1.json").write_text(json.dumps({"trades": [trade]}))
    _run(conn, tmp_path)
    row = conn.execute(
        "SELECT ticker, count_fp, yes_price, no_price, taker_side, is_block_trade, created_time "
        "FROM md.trades"
    ).fetchall()
    assert row == [
        (
            "KXHIGHNY-26AUG12-B77.5",
            Decimal("3.00"),
            Decimal("0.420000"),
            Decimal("0.580000"),
            "yes",
            False,
            dt.datetime(2026, 8, 12, 15, 4, 5, 123000, tzinfo=UTC),
        )
    ]


# The header of kalshi/markets/KXHIGH*.csv, with one legacy (HIGHCHI-…) event settled at 88.
REAL_MARKETS_HEADER = (
    "ticker,event_ticker,series_ticker,file_date,subtitle,yes_sub_title,strike_type,"
    "floor_strike,cap_strike,open_time,close_time,expiration_time,status,result,"
    "expiration_value,settlement_value,last_price,volume,open_interest,yes_bid,yes_ask,"
    "event_title,rules_primary\n"
)
_TIMES = "2024-08-15T14:00:00Z,2024-08-17T03:59:00Z,2024-08-23T14:00:00Z"
_TITLE = '"Highest temperature in Chicago on Aug 16, 2024?"'
REAL_MARKETS_ROWS = [
    ("T82", "81° or below", "less", "", "82.0", "no", "", 1, 50, 50),
    ("B82.5", "82° to 83°", "between", "82.0", "83.0", "no", "", 1, 50, 50),
    ("B84.5", "84° to 85°", "between", "84.0", "85.0", "no", "", 1, 1248, 1108),
    ("B86.5", "86° to 87°", "between", "86.0", "87.0", "no", "", 1, 11715, 8025),
    ("B88.5", "88° to 89°", "between", "88.0", "89.0", "yes", "88.0", 97, 6045, 2897),
    ("T89", "90° or above", "greater", "89.0", "", "no", "", 1, 7829, 4142),
]


def _real_markets_csv() -> str:
    lines = [REAL_MARKETS_HEADER]
    for code, sub, strike, floor, cap, result, value, last, volume, oi in REAL_MARKETS_ROWS:
        lines.append(
            f"HIGHCHI-24AUG16-{code},HIGHCHI-24AUG16,KXHIGHCHI,2024-08-16,{sub},{sub},{strike},"
            f"{floor},{cap},{_TIMES},finalized,{result},{value},,{last},{volume},{oi},0,1,"
            f'{_TITLE},"If the highest temperature recorded at Chicago Midway, IL …"\n'
        )
    return "".join(lines)


def test_markets_csv_in_the_real_export_shape(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "KXHIGHCHI.csv").write_text(_real_markets_csv())
    summary = _run(conn, tmp_path)
    (outcome,) = summary.outcomes
    assert (outcome.kind, outcome.status, outcome.rows_read) == ("markets", "imported", 6)
    rows = conn.execute(
        "SELECT ticker, strike_type, floor_strike, cap_strike, result, settled_tmax, last_price, "
        "volume, open_interest, yes_sub_title, series_ticker, climate_date, metadata_source "
        "FROM kalshi.markets ORDER BY coalesce(floor_strike, 0)"
    ).fetchall()
    assert rows[0] == (
        "HIGHCHI-24AUG16-T82",
        "less",
        None,
        Decimal("82.00"),
        "no",
        88,
        Decimal("0.010000"),
        Decimal("50.00"),
        Decimal("50.00"),
        "81° or below",
        "KXHIGHCHI",
        dt.date(2024, 8, 16),
        "api",
    )
    assert rows[4] == (
        "HIGHCHI-24AUG16-B88.5",
        "between",
        Decimal("88.00"),
        Decimal("89.00"),
        "yes",
        88,
        Decimal("0.970000"),
        Decimal("6045.00"),
        Decimal("2897.00"),
        "88° to 89°",
        "KXHIGHCHI",
        dt.date(2024, 8, 16),
        "api",
    )
    assert [r[4] for r in rows] == ["no", "no", "no", "no", "yes", "no"]
    times = conn.execute(
        "SELECT DISTINCT open_time, close_time, expiration_time FROM kalshi.markets"
    ).fetchall()
    assert times == [
        (
            dt.datetime(2024, 8, 15, 14, tzinfo=UTC),
            dt.datetime(2024, 8, 17, 3, 59, tzinfo=UTC),
            dt.datetime(2024, 8, 23, 14, tzinfo=UTC),
        )
    ]
    event = conn.execute(
        "SELECT event_ticker, series_ticker, climate_date, title FROM kalshi.events"
    ).fetchall()
    assert event == [
        (
            "HIGHCHI-24AUG16",
            "KXHIGHCHI",
            dt.date(2024, 8, 16),
            "Highest temperature in Chicago on Aug 16, 2024?",
        )
    ]
    series = conn.execute("SELECT series_ticker, city_key, title FROM kalshi.series").fetchall()
    assert series == [("KXHIGHCHI", "chicago", "Highest temperature in Chicago (Midway)")]


def test_markets_json_with_events_and_fixed_point_fields(conn: Conn, tmp_path: Path) -> None:
    """GET /events?with_nested_markets=true, fields as in api-shapes/…settled_trimmed.json."""
    common = {
        "event_ticker": "KXHIGHNY-26JUL10",
        "open_time": "2026-07-09T14:00:00Z",
        "close_time": "2026-07-11T04:59:00Z",
        "expiration_time": "2026-07-17T14:00:00Z",
        "expiration_value": "85.00",
        "status": "finalized",
    }
    markets = [
        {
            **common,
            "ticker": "KXHIGHNY-26JUL10-T94",
            "strike_type": "greater",
            "floor_strike": 94,
            "result": "no",
            "last_price_dollars": "0.0100",
            "volume_fp": "3544.52",
            "open_interest_fp": "3436.52",
            "yes_sub_title": "95° or above",
        },
        {
            **common,
            "ticker": "KXHIGHNY-26JUL10-B84.5",
            "strike_type": "between",
            "floor_strike": 84,
            "cap_strike": 85,
            "result": "yes",
            "last_price_dollars": "0.9900",
            "volume_fp": "10.50",
            "open_interest_fp": "0.00",
            "yes_sub_title": "84° to 85°",
        },
    ]
    doc = {
        "events": [{"event_ticker": "KXHIGHNY-26JUL10", "title": "NYC high", "markets": markets}]
    }
    (tmp_path / "events.json").write_text(json.dumps(doc))
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT ticker, strike_type, floor_strike, cap_strike, result, settled_tmax, "
        "expiration_value, last_price, volume, open_interest FROM kalshi.markets ORDER BY ticker"
    ).fetchall()
    assert rows == [
        (
            "KXHIGHNY-26JUL10-B84.5",
            "between",
            Decimal("84.00"),
            Decimal("85.00"),
            "yes",
            85,
            "85.00",
            Decimal("0.990000"),
            Decimal("10.50"),
            Decimal("0.00"),
        ),
        (
            "KXHIGHNY-26JUL10-T94",
            "greater",
            Decimal("94.00"),
            None,
            "no",
            85,
            "85.00",
            Decimal("0.010000"),
            Decimal("3544.52"),
            Decimal("3436.52"),
        ),
    ]
    title = conn.execute("SELECT title FROM kalshi.events").fetchall()
    assert title == [("NYC high",)]


def test_flat_candle_parquet_in_cents(conn: Conn, tmp_path: Path) -> None:
    """The shape of kalshi/candles_1m/*.parquet: integer-cent bid/ask, float trade OHLC."""
    ticker = "KXHIGHCHI-25APR30-B56.5"
    frame = pd.DataFrame(
        {
            "ticker": ticker,
            "bucket_start": pd.to_datetime(
                ["2025-05-01T00:00:00Z", "2025-05-01T00:01:00Z"], utc=True
            ),
            "period_minutes": [1, 1],
            "is_synthetic": [True, False],
            "has_trade": [False, True],
            "yes_bid_open": [0, 40],
            "yes_bid_high": [0, 42],
            "yes_bid_low": [0, 39],
            "yes_bid_close": [0, 41],
            "yes_ask_open": [1, 43],
            "yes_ask_high": [1, 45],
            "yes_ask_low": [1, 42],
            "yes_ask_close": [1, 44],
            "trade_open": [2.0, 42.0],
            "trade_high": [2.0, 44.0],
            "trade_low": [2.0, 41.0],
            "trade_close": [2.0, 43.0],
            "trade_mean": [2.0, 42.5],
            "volume": [0, 7],
            "open_interest": [75, 82],
        }
    )
    frame.to_parquet(tmp_path / "KXHIGHCHI_2025-05.parquet", index=False)
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT ts, source, yes_bid_close, yes_ask_close, price_open, price_close, vwap, volume, "
        "open_interest, has_trade, is_synthetic FROM md.candles_1m ORDER BY ts"
    ).fetchall()
    assert rows[1] == (
        dt.datetime(2025, 5, 1, 0, 1, tzinfo=UTC),
        "api",
        Decimal("0.410000"),
        Decimal("0.440000"),
        Decimal("0.420000"),
        Decimal("0.430000"),
        Decimal("0.42500000"),
        Decimal("7.00"),
        Decimal("82.00"),
        True,
        False,
    )
    assert rows[0][1:4] == ("api", Decimal("0"), Decimal("0.010000"))
    assert rows[0][-2:] == (False, True)


def test_ladder_gives_results_for_markets_without_metadata(conn: Conn, tmp_path: Path) -> None:
    """The shape of kalshi/ladders/ladder_*.csv; brackets come from the tickers."""
    header = (
        "date,ticker,event_ticker,bucket,threshold,threshold_low,threshold_high,direction,"
        "strike_type,market_prob,actual_outcome,actual_tmax,result,settlement_value,volume,"
        "bid_price,ask_price\n"
    )
    event = "KXHIGHPHIL-24NOV20"
    rows = [
        f"2024-11-20,{event}-T57,{event},Below 57F,57.0,,57.0,below,less,0.01,0,64.94,no,0,9240,"
        "0.0,0.01\n",
        f"2024-11-20,{event}-B57.5,{event},57-59F,57.0,57.0,59.0,between,between,0.01,0,64.94,"
        "no,0,10007,0.0,0.01\n",
        f"2024-11-20,{event}-B64.5,{event},64-66F,64.0,64.0,66.0,between,between,0.97,1,64.94,"
        "yes,1,20007,0.96,0.98\n",
    ]
    (tmp_path / "ladder_phl.csv").write_text(header + "".join(rows))
    _run(conn, tmp_path)
    stored = conn.execute(
        "SELECT ticker, strike_type, floor_strike, cap_strike, result, metadata_source, "
        "series_ticker, last_price FROM kalshi.markets ORDER BY ticker"
    ).fetchall()
    assert stored == [
        (f"{event}-B57.5", "between", Decimal("57.00"), Decimal("58.00"), "no", "ladder",
         "KXHIGHPHIL", None),
        (f"{event}-B64.5", "between", Decimal("64.00"), Decimal("65.00"), "yes", "ladder",
         "KXHIGHPHIL", None),
        (f"{event}-T57", "less", None, Decimal("57.00"), "no", "ladder", "KXHIGHPHIL", None),
    ]  # fmt: skip


def test_settlement_files_per_city_and_from_acis(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "denver.csv").write_text(
        "date_local,tmax_final,source_final,tmax_cli_f,tmax_iem_f,tmax_ncei_f\n"
        "2023-01-01,34,iem,,34,34.0\n2023-01-02,28,iem,,28,\n"
    )
    (tmp_path / "acis").mkdir()
    (tmp_path / "acis" / "KXHIGHDEN.csv").write_text(
        "ticker,date,nws_high\nKXHIGHDEN,2023-01-01,34.0\nKXHIGHDEN,2023-01-02,\n"
    )
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT city, climate_date, source, tmax_first, tmax_final, note FROM wx.settlement "
        "ORDER BY climate_date, source"
    ).fetchall()
    assert rows == [
        ("denver", dt.date(2023, 1, 1), "acis", 34, 34, None),
        ("denver", dt.date(2023, 1, 1), "iem", 34, 34, None),
        ("denver", dt.date(2023, 1, 1), "ncei", 34, 34, None),
        ("denver", dt.date(2023, 1, 1), "official", 34, 34, "iem"),
        ("denver", dt.date(2023, 1, 2), "iem", 28, 28, None),
        ("denver", dt.date(2023, 1, 2), "official", 28, 28, "iem"),
    ]


def test_visual_crossing_daily_issue_time(conn: Conn, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "target_date": [dt.date(2023, 1, 1), dt.date(2023, 1, 1)],
            "forecast_basis_date": [dt.date(2023, 1, 1), dt.date(2022, 12, 31)],
            "lead_days": [0, 1],
            "tempmax_f": [41.6, 40.0],
            "tempmin_f": [29.2, 27.8],
            "temp_f": [33.4, 33.8],
            "humidity": [82.3, 85.0],
            "precip_in": [0.0, 0.0],
            "precipprob": [76.2, 57.1],
            "windspeed_mph": [7.2, 7.6],
            "windgust_mph": [12.3, 13.6],
            "cloudcover": [76.9, 92.6],
            "conditions": ["Snow, Rain", "Overcast"],
        }
    )
    frame.to_parquet(tmp_path / "denver.parquet", index=False)
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT city, source, issued_at, target_date, tmax_f, tmin_f, wind_gust_mph, conditions "
        "FROM wx.forecast_daily ORDER BY issued_at"
    ).fetchall()
    assert rows == [
        ("denver", "vc", dt.datetime(2022, 12, 31, 12, tzinfo=UTC), dt.date(2023, 1, 1), 40.0,
         27.8, 13.6, "Overcast"),
        ("denver", "vc", dt.datetime(2023, 1, 1, 12, tzinfo=UTC), dt.date(2023, 1, 1), 41.6,
         29.2, 12.3, "Snow, Rain"),
    ]  # fmt: skip


def test_era5_offsets_follow_each_citys_daylight_zone(conn: Conn, tmp_path: Path) -> None:
    """One fixed offset per file, all year: UTC-6 for Denver, UTC-7 for Phoenix (no DST)."""
    (tmp_path / "KXHIGHDEN.csv").write_text(
        "ticker,datetime,temperature_2m\nKXHIGHDEN,2024-01-15T15:00,30.0\n"
    )
    (tmp_path / "KXHIGHTPHX.csv").write_text(
        "ticker,datetime,temperature_2m\nKXHIGHTPHX,2024-07-01T15:00,110.5\n"
    )
    _run(conn, tmp_path)
    rows = conn.execute("SELECT city, ts, temp_f FROM wx.obs ORDER BY city").fetchall()
    assert rows == [
        ("denver", dt.datetime(2024, 1, 15, 21, tzinfo=UTC), 30.0),
        ("phoenix", dt.datetime(2024, 7, 1, 22, tzinfo=UTC), 110.5),
    ]


def test_top_of_book_gzip_log_with_a_summer_timestamp(conn: Conn, tmp_path: Path) -> None:
    """Naive Pacific times: PDT (UTC-7) in July, PST (UTC-8) in December."""
    frame = pd.DataFrame(
        {
            "timestamp": ["2025-07-09T07:00:00.5", "2025-12-09T07:04:02.893378"],
            "market_ticker": ["KXHIGHNY-25JUL09-B86.5", "KXHIGHNY-25DEC10-B46.5"],
            "best_yes_bid": [55, 2],
            "best_no_bid": [40, 38],
            "implied_no_ask": [45, 98],
            "implied_yes_ask": [60, 62],
        }
    )
    frame.to_csv(tmp_path / "KXHIGHNY-25JUL09.csv.gz", index=False, compression="gzip")
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT ticker, ts, yes_bid, yes_ask, no_bid, no_ask, source FROM md.top_of_book "
        "ORDER BY ts"
    ).fetchall()
    assert rows == [
        ("KXHIGHNY-25JUL09-B86.5", dt.datetime(2025, 7, 9, 14, 0, 0, 500000, tzinfo=UTC),
         Decimal("0.550000"), Decimal("0.600000"), Decimal("0.400000"), Decimal("0.450000"),
         "top_of_book_log"),
        ("KXHIGHNY-25DEC10-B46.5", dt.datetime(2025, 12, 9, 15, 4, 2, 893378, tzinfo=UTC),
         Decimal("0.020000"), Decimal("0.620000"), Decimal("0.380000"), Decimal("0.980000"),
         "top_of_book_log"),
    ]  # fmt: skip


def test_top_of_book_zone_is_configurable(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "book.csv").write_text(
        "timestamp,market_ticker,best_yes_bid,best_no_bid\n"
        "2025-12-09T07:04:02,KXHIGHNY-25DEC10-B46.5,2,38\n"
    )
    import_directory(conn, tmp_path, ImportContext(default_registry(), "America/New_York"))
    row = conn.execute("SELECT ts FROM md.top_of_book").fetchone()
    assert row == (dt.datetime(2025, 12, 9, 12, 4, 2, tzinfo=UTC),)


def test_implied_ask_that_disagrees_with_the_bid_is_refused(conn: Conn, tmp_path: Path) -> None:
    bad = tmp_path / "book.csv"
    bad.write_text(
        "timestamp,market_ticker,best_yes_bid,best_no_bid,implied_no_ask,implied_yes_ask\n"
        "2025-12-09T07:04:02,KXHIGHNY-25DEC10-B46.5,2,38,98,62\n"
        "2025-12-09T07:04:03,KXHIGHNY-25DEC10-B46.5,2,38,98,61\n"
    )
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{bad}, row 2, field 'implied_yes_ask'")
    assert conn.execute("SELECT count(*) FROM md.top_of_book").fetchone() == (0,)
