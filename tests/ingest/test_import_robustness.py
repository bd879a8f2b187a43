"""Malformed files must end as a 'failed' outcome (kept in meta.bad_input), never as a crash
of the whole import, and never as silently altered values."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from kwx.config import Settings
from kwx.ingest.file_import import FileOutcome, ImportSummary, import_directory
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.store.engine import connect

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CTX = ImportContext(default_registry())
TICKER = "KXHIGHCHI-24DEC01-B40.5"
TRADES_HEADER = "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"
GOOD_TRADE = f"00000000-0000-4000-8000-000000000001,{TICKER},1,2024-12-01T15:00:00Z,40,60,yes\n"
MARKETS_HEADER = "ticker,event_ticker,strike_type,floor_strike,cap_strike,last_price,volume\n"


def _outcome(summary: ImportSummary, name: str) -> FileOutcome:
    return next(o for o in summary.outcomes if o.path.name == name)


def _fixed_point_trade(**overrides: object) -> dict[str, object]:
    trade: dict[str, object] = {
        "trade_id": "00000000-0000-4000-8000-000000000099",
        "ticker": "KXHIGHNY-26AUG12-B77.5",
        "count_fp": "3.00",
        "yes_price_dollars": "0.4200",
        "no_price_dollars": "0.5800",
        "taker_outcome_side": "yes",
        "taker_book_side": "bid",
        "created_time": "2026-08-12T15:04:05.123Z",
        "is_block_trade": False,
    }
    trade.update(overrides)
    return trade


def _candle(end: object) -> dict[str, object]:
    return {"end_period_ts": end, "volume_fp": "1.00", "price": {"close_dollars": "0.5000"}}


# name, file content; the good trades file sits next to each one.
CRASHERS = {
    "markets_duplicate_ticker": (
        "markets.csv",
        MARKETS_HEADER + f"{TICKER},KXHIGHCHI-24DEC01,between,40,41,,\n" * 2,
    ),
    "markets_non_numeric_legacy_price": (
        "markets.csv",
        MARKETS_HEADER + f"{TICKER},KXHIGHCHI-24DEC01,between,40,41,abc,\n",
    ),
    "settlement_duplicate_day": (
        "chicago.csv",
        "date_local,tmax_final\n2024-07-01,88\n2024-07-01,89\n",
    ),
    "era5_duplicate_hour": (
        "KXHIGHCHI.csv",
        "ticker,datetime,temperature_2m\nKXHIGHCHI,2024-07-01T15:00,88\n"
        "KXHIGHCHI,2024-07-01T15:00,89\n",
    ),
    "candles_duplicate_minute": (
        "candles.json",
        json.dumps({"ticker": TICKER, "candlesticks": [_candle(1733065260)] * 2}),
    ),
    "candles_non_numeric_end": (
        "candles.json",
        json.dumps({"ticker": TICKER, "candlesticks": [_candle("soon")]}),
    ),
    "trades_non_boolean_block_flag": (
        "page.json",
        json.dumps({"trades": [_fixed_point_trade(is_block_trade="perhaps")]}),
    ),
}


@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_a_malformed_file_fails_alone_instead_of_aborting_the_import(
    conn: Conn, tmp_path: Path, case: str
) -> None:
    name, content = CRASHERS[case]
    bad = tmp_path / name
    bad.write_text(content)
    (tmp_path / "good_trades.csv").write_text(TRADES_HEADER + GOOD_TRADE)
    summary = import_directory(conn, tmp_path, CTX)
    failed = _outcome(summary, name)
    assert failed.status == "failed"
    assert str(bad) in failed.message
    assert _outcome(summary, "good_trades.csv").status == "imported"
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (1,)
    kept = conn.execute("SELECT location FROM meta.bad_input").fetchall()
    assert [str(r[0]).startswith(str(bad)) for r in kept] == [True]


def test_timestamps_with_different_utc_offsets_are_the_same_instant(
    conn: Conn, tmp_path: Path
) -> None:
    (tmp_path / "trades.csv").write_text(
        TRADES_HEADER
        + GOOD_TRADE
        + f"00000000-0000-4000-8000-000000000002,{TICKER},1,2024-12-01T10:00:00-05:00,40,60,yes\n"
    )
    summary = import_directory(conn, tmp_path, CTX)
    assert [o.status for o in summary.outcomes] == ["imported"]
    times = conn.execute("SELECT DISTINCT created_time FROM md.trades").fetchall()
    assert times == [(dt.datetime(2024, 12, 1, 15, 0, tzinfo=UTC),)]


def test_trades_of_an_unknown_series_are_refused(conn: Conn, tmp_path: Path) -> None:
    bad = tmp_path / "hourly.csv"
    bad.write_text(TRADES_HEADER + GOOD_TRADE.replace(TICKER, "KXHIGHNYD-24DEC01-B40.5"))
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{bad}, row 1, field 'ticker'")
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (0,)


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("count_fp", {"count_fp": "3.555"}),
        ("yes_price_dollars", {"yes_price_dollars": "0.4212345", "no_price_dollars": "0.5787655"}),
    ],
)
def test_fixed_point_values_finer_than_the_store_are_refused(
    conn: Conn, tmp_path: Path, field: str, overrides: dict[str, object]
) -> None:
    bad = tmp_path / "page.json"
    bad.write_text(json.dumps({"trades": [_fixed_point_trade(**overrides)]}))
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{bad}, row 1, field {field!r}")
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (0,)


@pytest.mark.parametrize(("field", "values"), [("last_price", "150,"), ("volume", ",-5")])
def test_impossible_market_figures_are_refused(
    conn: Conn, tmp_path: Path, field: str, values: str
) -> None:
    bad = tmp_path / "markets.csv"
    bad.write_text(MARKETS_HEADER + f"{TICKER},KXHIGHCHI-24DEC01,between,40,41,{values}\n")
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{bad}, row 1, field {field!r}")
    assert conn.execute("SELECT count(*) FROM kalshi.markets").fetchone() == (0,)


def test_an_empty_trades_page_is_not_a_failure(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "page_9.json").write_text(json.dumps({"trades": [], "cursor": ""}))
    (tmp_path / "empty.csv").write_text(TRADES_HEADER)
    summary = import_directory(conn, tmp_path, CTX)
    assert _outcome(summary, "empty.csv").status == "imported"
    assert _outcome(summary, "page_9.json").status != "failed"
    assert conn.execute("SELECT count(*) FROM meta.bad_input").fetchone() == (0,)


# ------------------------------------------------------------------------------ what already holds
@pytest.mark.parametrize(
    ("content", "field"),
    [
        (TRADES_HEADER + GOOD_TRADE.replace(",1,", ",1.5,", 1), None),
        (TRADES_HEADER + GOOD_TRADE.replace("40,60", "40.5,59.5"), "yes_price"),
        (TRADES_HEADER + GOOD_TRADE.replace(",yes", ",maybe"), "taker_side"),
        (TRADES_HEADER + GOOD_TRADE.replace(TICKER, ""), "ticker"),
    ],
)
def test_more_bad_trade_values_fail_with_their_field(
    conn: Conn, tmp_path: Path, content: str, field: str | None
) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(content)
    summary = import_directory(conn, tmp_path, CTX)
    if field is None:  # fractional legacy counts are legal (count_fp is NUMERIC(14,2))
        assert not summary.failed
        row = conn.execute("SELECT count_fp FROM md.trades").fetchone()
        assert row == (Decimal("1.50"),)
        return
    (failed,) = summary.failed
    assert failed.message.startswith(f"{path}, row 1, field {field!r}")
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (0,)


def test_an_ambiguous_local_time_in_a_book_log_is_refused(conn: Conn, tmp_path: Path) -> None:
    """01:30 on the first Sunday of November happens twice in Los Angeles."""
    path = tmp_path / "book.csv"
    path.write_text(
        "timestamp,market_ticker,best_yes_bid,best_no_bid\n"
        "2025-11-02T01:30:00,KXHIGHNY-25NOV02-B46.5,2,38\n"
    )
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{path}, field 'timestamp': local time does not exist")
    assert conn.execute("SELECT count(*) FROM md.top_of_book").fetchone() == (0,)


def test_a_city_file_named_after_no_city_is_refused(conn: Conn, tmp_path: Path) -> None:
    path = tmp_path / "gotham.csv"
    path.write_text("date_local,tmax_final\n2024-07-01,88\n")
    summary = import_directory(conn, tmp_path, CTX)
    (failed,) = summary.failed
    assert failed.message.startswith(f"{path}: cannot tell the city from the file name")


def test_an_empty_file_is_reported_not_fatal(conn: Conn, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "good.csv").write_text(TRADES_HEADER + GOOD_TRADE)
    summary = import_directory(conn, tmp_path, CTX)
    assert _outcome(summary, "empty.csv").status == "failed"
    assert "unreadable file" in _outcome(summary, "empty.csv").message
    assert _outcome(summary, "good.csv").status == "imported"
    kept = conn.execute("SELECT location, field FROM meta.bad_input").fetchall()
    assert kept == [(str(tmp_path / "empty.csv"), None)]


def test_account_fills_never_land_in_public_trades(conn: Conn, tmp_path: Path) -> None:
    """fills.csv shares the trade columns but is our own executions: not a public print."""
    (tmp_path / "fills.csv").write_text(
        "fill_id,order_id,trade_id,ticker,count,created_time,yes_price,no_price,is_taker\n"
        f"f1,o1,00000000-0000-4000-8000-000000000001,{TICKER},1,2024-12-01T15:00:00Z,40,60,true\n"
    )
    summary = import_directory(conn, tmp_path, CTX)
    assert [(o.path.name, o.status) for o in summary.outcomes] == [("fills.csv", "skipped")]
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (0,)


def test_parallel_trade_import_isolates_a_bad_file(settings: Settings, tmp_path: Path) -> None:
    """Trades files go to two connections at once; a bad one still fails alone."""
    good = [
        f"00000000-0000-4000-8000-00000000000{n},{TICKER},{n},2024-12-01T15:0{n}:00Z,4{n},5{10 - n}"
        ",yes\n"
        for n in range(1, 4)
    ]
    for n, line in enumerate(good):
        (tmp_path / f"good_{n}.csv").write_text(TRADES_HEADER + line)
    bad = tmp_path / "bad.csv"
    bad.write_text(TRADES_HEADER + GOOD_TRADE.replace("2024-12-01T15:00:00Z", "31/02/2024"))
    with connect(settings) as conn:
        summary = import_directory(
            conn, tmp_path, CTX, connection_factory=lambda: connect(settings), workers=2
        )
        assert sorted((o.path.name, o.status) for o in summary.outcomes) == [
            ("bad.csv", "failed"),
            ("good_0.csv", "imported"),
            ("good_1.csv", "imported"),
            ("good_2.csv", "imported"),
        ]
        assert summary.candles_built == 3
        rows = conn.execute(
            "SELECT count(*), sum(count_fp), min(yes_price), max(yes_price) FROM md.trades"
        ).fetchone()
        assert rows == (3, Decimal("6.00"), Decimal("0.410000"), Decimal("0.430000"))
        kept = conn.execute("SELECT location, field FROM meta.bad_input").fetchall()
        assert kept == [(f"{bad}:1", "created_time")]
