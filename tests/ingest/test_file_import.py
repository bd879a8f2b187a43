"""`kwx import --from-files` against a real PostgreSQL, on small files in the real shapes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from kwx.config import Settings
from kwx.ingest.file_import import FileOutcome, ImportSummary, import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.store.engine import connect
from kwx.store.status import table_row_counts
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CTX = ImportContext(default_registry())

MARKET_HEADER = (
    "ticker,event_ticker,series_ticker,strike_type,floor_strike,cap_strike,open_time,"
    "close_time,expiration_time,status,result,expiration_value,last_price,volume,"
    "open_interest,yes_sub_title,event_title,rules_primary\n"
)


def _ladder_rows(event: str, low: int, settled: int) -> str:
    """A settled 6-bracket KXHIGHCHI event: <low, four betweens, >low+7; settled value given."""
    brackets: list[tuple[str, str, int | str, int | str]] = [("T", "less", "", low)]
    brackets += [
        (f"B{low + 2 * i + 0.5}", "between", low + 2 * i, low + 2 * i + 1) for i in range(4)
    ]
    brackets += [("T", "greater", low + 7, "")]
    rows = []
    for code, strike_type, floor, cap in brackets:
        suffix = code if code != "T" else f"T{cap if strike_type == 'less' else floor}"
        if strike_type == "less":
            yes = settled < int(cap)
        elif strike_type == "greater":
            yes = settled > int(floor)
        else:
            yes = int(floor) <= settled <= int(cap)
        value = f"{settled}.0" if yes else ""
        rows.append(
            f"{event}-{suffix},{event},KXHIGHCHI,{strike_type},{floor},{cap},"
            "2024-11-30T15:00:00Z,2024-12-02T05:59:00Z,2024-12-08T15:00:00Z,finalized,"
            f"{'yes' if yes else 'no'},{value},1,10,5,x,Highest temperature in Chicago?,rules\n"
        )
    return "".join(rows)


def _trades_csv(path: Path, rows: list[tuple[str, str, int, str, int]]) -> None:
    """Legacy trade shape: trade_id, ticker, count, created_time, yes_price, no_price cents."""
    lines = ["trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"]
    for trade_id, ticker, count, created, yes in rows:
        lines.append(f"{trade_id},{ticker},{count},{created},{yes},{100 - yes},yes\n")
    path.write_text("".join(lines))


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _run(conn: Conn, root: Path, *, force: bool = False) -> ImportSummary:
    return import_directory(conn, root, CTX, force=force)


def _outcome(summary: ImportSummary, name: str) -> FileOutcome:
    return next(o for o in summary.outcomes if o.path.name == name)


EVENT = "KXHIGHCHI-24DEC01"
TICKER = f"{EVENT}-B40.5"


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "markets.csv").write_text(MARKET_HEADER + _ladder_rows(EVENT, 38, 41))
    _trades_csv(
        root / "trades.csv",
        [
            (_uuid(1), TICKER, 1, "2024-12-01T15:00:05.000001Z", 40),
            (_uuid(2), TICKER, 3, "2024-12-01T15:00:20Z", 50),
            (_uuid(3), TICKER, 2, "2024-12-01T15:00:59.999Z", 45),
            (_uuid(4), TICKER, 5, "2024-12-01T15:03:00Z", 47),
        ],
    )
    return root


def test_markets_and_trades_are_stored_exactly(conn: Conn, small_dir: Path) -> None:
    summary = _run(conn, small_dir)
    assert [o.status for o in summary.outcomes] == ["imported", "imported"]
    market = conn.execute(
        "SELECT strike_type, floor_strike, cap_strike, result, settled_tmax, metadata_source, "
        "series_ticker, climate_date, close_time FROM kalshi.markets WHERE ticker = %s",
        (TICKER,),
    ).fetchone()
    assert market == (
        "between",
        Decimal("40.00"),
        Decimal("41.00"),
        "yes",
        41,
        "api",
        "KXHIGHCHI",
        dt.date(2024, 12, 1),
        dt.datetime(2024, 12, 2, 5, 59, tzinfo=UTC),
    )
    # Every market of the event carries the event's settled value.
    settled = conn.execute(
        "SELECT DISTINCT settled_tmax FROM kalshi.markets WHERE event_ticker = %s", (EVENT,)
    ).fetchall()
    assert settled == [(41,)]
    trade = conn.execute(
        "SELECT count_fp, yes_price, no_price, taker_side, created_time FROM md.trades "
        "WHERE trade_id = %s",
        (_uuid(1),),
    ).fetchone()
    assert trade == (
        Decimal("1.00"),
        Decimal("0.400000"),
        Decimal("0.600000"),
        "yes",
        dt.datetime(2024, 12, 1, 15, 0, 5, 1, tzinfo=UTC),
    )


def test_candles_built_from_trades_by_hand(conn: Conn, small_dir: Path) -> None:
    summary = _run(conn, small_dir)
    assert summary.candles_built == 2  # minutes 15:00 and 15:03 only
    minutes = conn.execute("SELECT ts FROM md.candles_1m ORDER BY ts").fetchall()
    assert minutes == [
        (dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),),
        (dt.datetime(2024, 12, 1, 15, 3, tzinfo=UTC),),
    ]
    row = conn.execute(
        "SELECT price_open, price_high, price_low, price_close, vwap, volume, trade_count, "
        "has_trade, source FROM md.candles_1m WHERE ticker = %s AND ts = %s",
        (TICKER, dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC)),
    ).fetchone()
    vwap = (Decimal("0.40") * 1 + Decimal("0.50") * 3 + Decimal("0.45") * 2) / 6
    assert row == (
        Decimal("0.400000"),
        Decimal("0.500000"),
        Decimal("0.400000"),
        Decimal("0.450000"),
        vwap.quantize(Decimal("1e-8")),
        Decimal("6.00"),
        3,
        True,
        "trades",
    )
    grid = conn.execute(
        "SELECT ts, price_close, volume, has_trade FROM md.candles_1m_grid(%s, %s, %s)",
        (
            TICKER,
            dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),
            dt.datetime(2024, 12, 1, 15, 3, tzinfo=UTC),
        ),
    ).fetchall()
    assert [(r[1], r[2], r[3]) for r in grid] == [
        (Decimal("0.450000"), Decimal("6.00"), True),
        (Decimal("0.450000"), Decimal("0"), False),
        (Decimal("0.450000"), Decimal("0"), False),
        (Decimal("0.470000"), Decimal("5.00"), True),
    ]


def test_second_run_is_unchanged_and_force_keeps_counts(conn: Conn, small_dir: Path) -> None:
    _run(conn, small_dir)
    before = table_row_counts(conn)
    again = _run(conn, small_dir)
    assert {o.status for o in again.outcomes} == {"unchanged"}
    forced = _run(conn, small_dir, force=True)
    assert {o.status for o in forced.outcomes} == {"imported"}
    assert table_row_counts(conn) == before


@pytest.mark.parametrize(
    ("content", "field", "row"),
    [
        (
            "{uuid},{t},1,2024-12-01T15:00:00Z,40,60,yes\n{uuid2},{t},1,2024-12-01T15:01:00Z,40,"
            "60,yes\n{uuid3},{t},1,not-a-time,40,60,yes\n",
            "created_time",
            3,
        ),
        ("{uuid},{t},1,2024-12-01T15:00:00Z,150,-50,yes\n", "yes_price", 1),
        ("not-a-uuid,{t},1,2024-12-01T15:00:00Z,40,60,yes\n", "trade_id", 1),
        ("{uuid},{t},0,2024-12-01T15:00:00Z,40,60,yes\n", "count", 1),
        ("{uuid},{t},1,2024-12-01T15:00:00Z,40,61,yes\n", "no_price", 1),
        ("{uuid},KXHIGHINFLATION-24DEC-T3,1,2024-12-01T15:00:00Z,40,60,yes\n", "ticker", 1),
    ],
)
def test_bad_trade_file_is_refused_whole_and_the_rest_goes_on(
    conn: Conn, small_dir: Path, content: str, field: str, row: int
) -> None:
    bad = small_dir / "bad_trades.csv"
    bad.write_text(
        "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"
        + content.format(uuid=_uuid(11), uuid2=_uuid(12), uuid3=_uuid(13), t=TICKER)
    )
    summary = _run(conn, small_dir)
    failed = _outcome(summary, "bad_trades.csv")
    assert failed.status == "failed"
    assert str(bad) in failed.message
    assert f"row {row}" in failed.message
    assert f"field {field!r}" in failed.message
    # Nothing of the bad file was written; the good files were.
    ids = {str(r[0]) for r in conn.execute("SELECT trade_id FROM md.trades").fetchall()}
    assert ids == {_uuid(i) for i in (1, 2, 3, 4)}
    kept = conn.execute("SELECT location, field, message FROM meta.bad_input").fetchall()
    assert kept == [(f"{bad}:{row}", field, failed.message.split(": ", 1)[1])]


def test_missing_column_names_the_field(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "trade_id,ticker,count,created_time,yes_price,taker_side\n"
        f"{_uuid(1)},{TICKER},1,2024-12-01T15:00:00Z,40,yes\n"
    )
    summary = _run(conn, tmp_path)
    assert summary.failed[0].message.endswith("field 'no_price': required column is missing")


def test_malformed_json_is_refused(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "markets.json").write_text('{"markets": [{"ticker": ')
    summary = _run(conn, tmp_path)
    assert summary.failed and "malformed JSON" in summary.failed[0].message
    assert table_row_counts(conn)["meta.bad_input"] == 1


def test_bad_file_leaves_earlier_imports_untouched(
    conn: Conn, small_dir: Path, tmp_path: Path
) -> None:
    _run(conn, small_dir)
    before = table_row_counts(conn)
    later = tmp_path / "later"
    later.mkdir()
    _trades_csv(later / "more.csv", [(_uuid(1), TICKER, 9, "2024-12-01T15:00:05Z", 150)])
    summary = _run(conn, later)
    assert summary.failed
    after = table_row_counts(conn)
    assert after.pop("meta.bad_input") == before.pop("meta.bad_input") + 1
    assert after == before
    count = conn.execute(
        "SELECT count_fp FROM md.trades WHERE trade_id = %s", (_uuid(1),)
    ).fetchone()
    assert count == (Decimal("1.00"),)


def test_fixed_point_trades_json(conn: Conn, tmp_path: Path) -> None:
    trade = {
        "trade_id": _uuid(7),
        "ticker": "KXHIGHNY-26AUG12-T90",
        "count_fp": "3.55",
        "yes_price_dollars": "0.4250",
        "no_price_dollars": "0.5750",
        "taker_outcome_side": "no",
        "taker_book_side": "ask",
        "created_time": "2026-08-12T15:04:05.123Z",
        "is_block_trade": False,
    }
    sibling = {**trade, "trade_id": _uuid(8), "ticker": "KXHIGHNY-26AUG12-B87.5"}
    lone = {**trade, "trade_id": _uuid(9), "ticker": "KXHIGHNY-26AUG13-T90"}
    (tmp_path / "trades.json").write_text(
        json.dumps({"trades": [trade, sibling, lone], "cursor": ""})
    )
    summary = _run(conn, tmp_path)
    assert summary.outcomes[0].status == "imported"
    row = conn.execute(
        "SELECT count_fp, yes_price, no_price, taker_side, is_block_trade "
        "FROM md.trades WHERE trade_id = %s",
        (_uuid(7),),
    ).fetchone()
    assert row == (Decimal("3.55"), Decimal("0.425000"), Decimal("0.575000"), "no", False)
    # Markets unknown to any metadata are inferred from their event's tickers: T90 sits above
    # the 87-88 bracket, so it is the upper tail.
    markets = conn.execute(
        "SELECT ticker, strike_type, floor_strike, metadata_source "
        "FROM kalshi.markets ORDER BY ticker"
    ).fetchall()
    assert markets == [
        ("KXHIGHNY-26AUG12-B87.5", "between", Decimal("87.00"), "ticker"),
        ("KXHIGHNY-26AUG12-T90", "greater", Decimal("90.00"), "ticker"),
    ]
    # A lone tail cannot be classified: reported and kept, not guessed.
    assert len(summary.inference_errors) == 1
    assert "KXHIGHNY-26AUG13" in str(summary.inference_errors[0])
    kept = conn.execute("SELECT raw FROM meta.bad_input").fetchone()
    assert kept == ("KXHIGHNY-26AUG13-T90",)


@needs_data()
def test_api_market_json_and_candles(conn: Conn, tmp_path: Path) -> None:
    shutil.copy(DATA / "api-shapes" / "kalshi_kxhighny_settled_trimmed.json", tmp_path)
    ticker = "KXHIGHNY-26JUL10-B84.5"
    candles = {
        "ticker": ticker,
        "candlesticks": [
            {
                "end_period_ts": 1783674000 + 60 * i,
                "open_interest_fp": "10.00",
                "volume_fp": "2.50",
                "price": {
                    "open_dollars": "0.6100",
                    "high_dollars": "0.6200",
                    "low_dollars": "0.6000",
                    "close_dollars": "0.6050",
                    "mean_dollars": "0.6071",
                },
                "yes_bid": {
                    "open_dollars": "0.6000",
                    "high_dollars": "0.6000",
                    "low_dollars": "0.5900",
                    "close_dollars": "0.6000",
                },
                "yes_ask": {
                    "open_dollars": "0.6100",
                    "high_dollars": "0.6200",
                    "low_dollars": "0.6100",
                    "close_dollars": "0.6100",
                },
            }
            for i in range(2)
        ],
    }
    (tmp_path / "candles.json").write_text(json.dumps(candles))
    summary = _run(conn, tmp_path)
    assert not summary.failed
    markets = conn.execute(
        "SELECT count(*), count(DISTINCT settled_tmax) FROM kalshi.markets "
        "WHERE event_ticker = 'KXHIGHNY-26JUL10'"
    ).fetchone()
    assert markets == (2, 1)
    row = conn.execute(
        "SELECT ts, yes_bid_close, yes_ask_close, price_close, vwap, volume, source "
        "FROM md.candles_1m ORDER BY ts LIMIT 1"
    ).fetchone()
    assert row == (
        dt.datetime.fromtimestamp(1783674000 - 60, UTC),
        Decimal("0.600000"),
        Decimal("0.610000"),
        Decimal("0.605000"),
        Decimal("0.60710000"),
        Decimal("2.50"),
        "api",
    )


@needs_data()
def test_hourly_candles_are_skipped_not_failed(conn: Conn, tmp_path: Path) -> None:
    shutil.copy(DATA / "api-shapes" / "kalshi_candlesticks_trimmed.json", tmp_path)
    summary = _run(conn, tmp_path)
    assert [o.status for o in summary.outcomes] == ["skipped"]
    assert "1-minute" in summary.outcomes[0].message


def test_era5_local_daylight_offset(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "KXHIGHCHI.csv").write_text(
        "ticker,datetime,temperature_2m\nKXHIGHCHI,2024-07-01T15:00,88.5\n"
        "KXHIGHCHI,2024-01-15T15:00,20.0\n"
    )
    _run(conn, tmp_path)
    rows = conn.execute("SELECT ts, temp_f, source FROM wx.obs ORDER BY ts").fetchall()
    assert rows == [
        (dt.datetime(2024, 1, 15, 20, tzinfo=UTC), 20.0, "era5"),
        (dt.datetime(2024, 7, 1, 20, tzinfo=UTC), 88.5, "era5"),
    ]
    loc = conn.execute("SELECT kind FROM wx.location WHERE city = 'chicago'").fetchone()
    assert loc == ("proxy",)


def test_top_of_book_naive_pacific_timestamps(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "KXHIGHNY-25DEC10.csv").write_text(
        "timestamp,market_ticker,best_yes_bid,best_no_bid,implied_no_ask,implied_yes_ask\n"
        "2025-12-09T07:04:02.893378,KXHIGHNY-25DEC10-B46.5,2,38,98,62\n"
    )
    _run(conn, tmp_path)
    row = conn.execute("SELECT ts, yes_bid, yes_ask, no_bid, no_ask FROM md.top_of_book").fetchone()
    assert row == (
        dt.datetime(2025, 12, 9, 15, 4, 2, 893378, tzinfo=UTC),
        Decimal("0.020000"),
        Decimal("0.620000"),
        Decimal("0.380000"),
        Decimal("0.980000"),
    )


def test_visual_crossing_issue_time_is_noon_utc_of_basis_date(conn: Conn, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "target_datetime_local": pd.to_datetime(["2024-07-02 13:00"]),
            "target_datetime_utc": pd.to_datetime(["2024-07-02 18:00"]).tz_localize("UTC"),
            "forecast_basis_date": [dt.date(2024, 7, 1)],
            "lead_hours": [42],
            "temp_f": [85.1],
            "humidity": [50.0],
            "dew_f": [64.0],
            "precip_in": [0.0],
            "precipprob": [10.0],
            "windspeed_mph": [7.0],
            "cloudcover": [20.0],
            "conditions": ["Clear"],
        }
    )
    frame.to_parquet(tmp_path / "chicago.parquet")
    _run(conn, tmp_path)
    row = conn.execute("SELECT issued_at, valid_at, temp_f FROM wx.forecast").fetchone()
    assert row == (
        dt.datetime(2024, 7, 1, 12, tzinfo=UTC),
        dt.datetime(2024, 7, 2, 18, tzinfo=UTC),
        85.1,
    )


def test_settlement_keeps_first_published_value(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "chicago.csv").write_text(
        "date_local,tmax_final,source_final,tmax_cli_f,tmax_iem_f,tmax_ncei_f\n"
        "2024-07-01,88,iem,,88,88.0\n"
    )
    _run(conn, tmp_path)
    (tmp_path / "chicago.csv").write_text(
        "date_local,tmax_final,source_final,tmax_cli_f,tmax_iem_f,tmax_ncei_f\n"
        "2024-07-01,89,iem,,89,89.0\n"
    )
    _run(conn, tmp_path)
    rows = conn.execute(
        "SELECT source, tmax_first, tmax_final FROM wx.settlement ORDER BY 1"
    ).fetchall()
    assert rows == [("iem", 88, 89), ("ncei", 88, 89), ("official", 88, 89)]


def test_api_metadata_outranks_ladder_and_ticker_guesses(conn: Conn, tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.mkdir()
    # A ticker-only market first (from a trade), then the ladder, then Kalshi's metadata.
    _trades_csv(first / "t.csv", [(_uuid(1), TICKER, 1, "2024-12-01T15:00:05Z", 40)])
    _run(conn, first)

    def source() -> object:
        row = conn.execute(
            "SELECT metadata_source, result FROM kalshi.markets WHERE ticker = %s", (TICKER,)
        ).fetchone()
        return row

    assert source() == ("ticker", None)
    ladder = tmp_path / "b"
    ladder.mkdir()
    (ladder / "ladder.csv").write_text(
        "date,ticker,event_ticker,threshold_low,threshold_high,strike_type,result,actual_tmax\n"
        f"2024-12-01,{TICKER},{EVENT},40,42,between,no,41\n"
    )
    _run(conn, ladder)
    assert source() == ("ladder", "no")
    api = tmp_path / "c"
    api.mkdir()
    (api / "markets.csv").write_text(MARKET_HEADER + _ladder_rows(EVENT, 38, 41))
    _run(conn, api)
    assert source() == ("api", "yes")
    _run(conn, ladder, force=True)  # a later ladder does not overwrite Kalshi's own data
    assert source() == ("api", "yes")


def test_unknown_shapes_are_skipped(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    (tmp_path / "readme.txt").write_text("not data")
    summary = _run(conn, tmp_path)
    # A file kwx cannot read is listed too (issue 15: a garbage CLI text was neither imported
    # nor listed), never passed over in silence.
    assert sorted((o.path.name, o.status) for o in summary.outcomes) == [
        ("notes.csv", "skipped"),
        ("readme.txt", "skipped"),
    ]


@needs_data()
def test_real_denver_subset_end_to_end(settings: Settings, tmp_path: Path) -> None:
    """Real files: every trade stored, markets for every ticker, candles match volumes,
    the bracket rule agrees with every settled market, and a forced re-run changes nothing."""
    from kwx.domain.brackets import Bracket

    root = tmp_path / "real"
    files = [
        "kalshi/markets/KXHIGHDEN.csv",
        "kalshi/trades/KXHIGHDEN.parquet",
        "kalshi/ladders/ladder_phl.csv",
        "weather/settlements/denver.csv",
        "weather/settlements_acis/KXHIGHDEN.csv",
        "weather/era5_hourly/KXHIGHDEN.csv",
        "kalshi/top_of_book/KXHIGHNY-25DEC10.csv.gz",
        "weather/vc_forecast_daily/denver.parquet",
    ]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / rel, root / rel)
    with connect(settings) as conn:
        summary = import_directory(conn, root, CTX, connection_factory=lambda: connect(settings))
        assert not summary.failed, summary.failed
        assert sorted((o.kind or "", o.status) for o in summary.outcomes) == [
            ("era5_hourly", "imported"),
            ("ladder", "imported"),
            ("markets", "imported"),
            ("settlement_acis", "imported"),
            ("settlement_city", "imported"),
            ("top_of_book", "imported"),
            ("trades", "imported"),
            ("vc_forecast_daily", "imported"),
        ]
        trades = len(pd.read_parquet(DATA / "kalshi/trades/KXHIGHDEN.parquet"))
        counts = table_row_counts(conn)
        assert counts["md.trades"] == trades
        orphans = conn.execute(
            "SELECT count(*) FROM md.trades t WHERE NOT EXISTS "
            "(SELECT 1 FROM kalshi.markets m WHERE m.ticker = t.ticker)"
        ).fetchone()
        assert orphans == (0,)
        mismatched = conn.execute(
            "SELECT count(*) FROM (SELECT ticker, sum(count_fp) v FROM md.trades GROUP BY 1) t "
            "FULL JOIN (SELECT ticker, sum(volume) v FROM md.candles_1m GROUP BY 1) c "
            "USING (ticker) WHERE t.v IS DISTINCT FROM c.v"
        ).fetchone()
        assert mismatched == (0,)
        settled = conn.execute(
            "SELECT strike_type, floor_strike, cap_strike, settled_tmax, result "
            "FROM kalshi.markets WHERE settled_tmax IS NOT NULL"
        ).fetchall()
        assert len(settled) == 246
        for strike_type, floor, cap, tmax, result in settled:
            bracket = Bracket.from_strikes(str(strike_type), floor, cap)  # type: ignore[arg-type]
            assert bracket.wins(int(str(tmax))) == (result == "yes")
        again = import_directory(conn, root, CTX, force=True)
        assert not again.failed
        assert table_row_counts(conn) == counts
