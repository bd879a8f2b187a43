"""The book loader and `kwx bench book-features` on real New York top-of-book logs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.domain.tickers import parse_event_ticker
from kwx.features.book import NS_PER_MIN, book_features
from kwx.features.book_data import load_market_book, markets_with_book
from kwx.ingest.file_import import import_file
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sources.files import FileKind
from kwx.store.engine import _embedded_server_url
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
TOB = DATA / "kalshi" / "top_of_book"
SMALL = TOB / "KXHIGHNY-26JAN04.csv.gz"  # the smallest log (6,947 changes)
PACIFIC, EASTERN = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York")

pytestmark = needs_data()


@pytest.fixture
def ny_conn(conn: Conn) -> Conn:
    outcome = import_file(conn, SMALL, FileKind.TOP_OF_BOOK, ImportContext(default_registry()))
    assert outcome.status == "imported", outcome.message
    return conn


def test_logs_open_just_after_10_et_when_read_as_pacific() -> None:
    """The logs' naive timestamps are US/Pacific. Read so, no log quotes before its markets'
    10:00 ET open on the day before the climate day, and 19 of the 23 start within 5 minutes
    of it (the others were started later, 25DEC05 in the afternoon). Read as Eastern, those 19
    would begin about 3 hours before the markets opened."""
    files = sorted(TOB.glob("KXHIGHNY-*.csv.gz"))
    assert len(files) == 23
    lags: list[dt.timedelta] = []
    early_if_eastern: list[bool] = []
    for path in files:
        head = pd.read_csv(path, nrows=1)
        first = pd.Timestamp(head["timestamp"].iloc[0]).to_pydatetime()
        climate = parse_event_ticker(path.name.removesuffix(".csv.gz")).climate_date
        opens = dt.datetime.combine(climate - dt.timedelta(days=1), dt.time(10), EASTERN)
        lag = first.replace(tzinfo=PACIFIC) - opens
        assert lag >= dt.timedelta(0), (path.name, lag)
        lags.append(lag)
        early_if_eastern.append(first.replace(tzinfo=EASTERN) < opens)
    assert sum(lag <= dt.timedelta(minutes=5) for lag in lags) >= 19
    assert sum(early_if_eastern) >= 19  # read as Eastern, they would precede the open


def test_loader_reads_the_stored_log(ny_conn: Conn) -> None:
    raw = pd.read_csv(SMALL)
    tickers = markets_with_book(ny_conn, "top_of_book", "KXHIGHNY")
    assert tickers == sorted(raw["market_ticker"].unique())
    ticker = "KXHIGHNY-26JAN04-B31.5"
    book = load_market_book(ny_conn, ticker)
    mine = raw[raw["market_ticker"] == ticker].drop_duplicates("timestamp", keep="last")
    assert book.source == "top_of_book" and book.trades is None and book.cancels is None
    assert book.quotes.t_ns.size == len(mine)
    # the first change, converted from Pacific to UTC to ns, with prices in dollars
    first = pd.Timestamp(mine["timestamp"].iloc[0]).tz_localize(PACIFIC).tz_convert("UTC")
    assert int(book.quotes.t_ns[0]) == first.value
    bid, no_bid = mine["best_yes_bid"].iloc[0], mine["best_no_bid"].iloc[0]
    expect_bid = bid / 100 if bid > 0 else np.nan
    expect_ask = (100 - no_bid) / 100 if no_bid > 0 else np.nan
    np.testing.assert_allclose(book.quotes.bid[0], expect_bid)
    np.testing.assert_allclose(book.quotes.ask[0], expect_ask)
    grid = book.minute_ends()
    assert grid[0] - NS_PER_MIN <= book.quotes.t_ns[0] < grid[0]
    assert grid[-1] - NS_PER_MIN <= book.quotes.t_ns[-1] < grid[-1]
    feats = book_features(grid, book.quotes, book.trades, book.cancels)
    assert feats.aggressive_source == "depletions"
    assert feats.columns["quote_changes_1m"].sum() == len(mine)
    with pytest.raises(LookupError, match=r"KXHIGHNY-26JAN04-B99\.5: no book data"):
        load_market_book(ny_conn, "KXHIGHNY-26JAN04-B99.5")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_bench_prints_one_json_line_last(ny_conn: Conn, env: Settings) -> None:
    result = CliRunner().invoke(app, ["bench", "book-features", "--runs", "2"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    busiest = ny_conn.execute(
        "SELECT ticker FROM md.top_of_book GROUP BY ticker ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    assert busiest is not None and figures["ticker"] == busiest[0]
    assert figures["source"] == "top_of_book" and figures["runs"] == 2
    assert figures["minutes"] > 60 and figures["quote_events"] > 100
    assert 0 < figures["seconds_per_market_day"] < 30
    assert figures["meets_target"] == (figures["seconds_per_market_day"] <= 1.0)


def test_bench_without_data_fails_clearly(env: Settings) -> None:
    result = CliRunner().invoke(app, ["bench", "book-features", "--runs", "1"])
    assert result.exit_code == 1
    assert "no top_of_book rows in the store" in result.output
