"""The fill realism check: the book tests by hand, and the queue model vs a hand-made market."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.backtest.fill_check import (
    book_allows_candles,
    book_allows_events,
    run_fill_check,
    wilson,
)
from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.features.book import NS_PER_MIN, Quotes
from kwx.store.engine import _embedded_server_url

Conn = psycopg.Connection[tuple[object, ...]]
S = 1_000_000_000
TICKER = "KXHIGHCHI-25MAY02-B65.5"
T0 = dt.datetime(2025, 5, 2, 15, 0, tzinfo=dt.UTC)


def test_book_allows_from_touch_events() -> None:
    q = Quotes.unsized(
        np.array([0, 30, 90, 100]) * S, [0.40, 0.40, 0.39, 0.39], [0.45, 0.42, 0.42, 0.47]
    )
    # a YES bid at 40¢: the ask never reaches 40¢; the bid drops below it at 90 s
    assert not book_allows_events(q, 0, 60 * S, "yes", 0.40)
    assert book_allows_events(q, 0, 120 * S, "yes", 0.40)
    # a NO bid joined at the 45¢ YES ask: the ask coming down does not fill it; rising does
    assert not book_allows_events(q, 0, 95 * S, "no", 0.45)
    assert book_allows_events(q, 0, 120 * S, "no", 0.45)
    # an empty bid counts as the level emptied
    empty = Quotes.unsized(np.array([0, 10]) * S, [0.40, np.nan], [0.45, 0.45])
    assert book_allows_events(empty, 0, 60 * S, "yes", 0.40)


def test_book_allows_from_minute_ranges() -> None:
    starts = np.array([0, 1, 2]) * NS_PER_MIN
    # [bid_low, bid_high, ask_low, ask_high] per minute
    ranges = np.array(
        [[0.40, 0.40, 0.45, 0.45], [0.40, 0.41, 0.44, 0.46], [0.38, 0.40, 0.40, 0.45]]
    )
    assert not book_allows_candles(starts, ranges, 0, 2 * NS_PER_MIN, "yes", 0.40)
    assert book_allows_candles(starts, ranges, 0, 3 * NS_PER_MIN, "yes", 0.40)
    assert book_allows_candles(starts, ranges, 0, 2 * NS_PER_MIN, "no", 0.45)  # ask to 46¢
    assert not book_allows_candles(starts, ranges, 0, NS_PER_MIN, "no", 0.45)


def test_wilson_interval() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def _market(conn: Conn, ask_low_minute_4: Decimal) -> None:
    """Six quiet minutes (bid 40¢, ask 45¢) and one print: 5 YES sold at 40¢ at 1m30s."""
    for k in range(6):
        ask_low = ask_low_minute_4 if k == 4 else Decimal("0.45")
        conn.execute(
            "INSERT INTO md.candles_1m (ticker, ts, source, yes_bid_open, yes_bid_high, "
            "yes_bid_low, yes_bid_close, yes_ask_open, yes_ask_high, yes_ask_low, "
            "yes_ask_close, has_trade) VALUES (%s, %s, 'api', 0.40, 0.40, 0.40, 0.40, "
            "0.45, 0.45, %s, 0.45, false)",
            (TICKER, T0 + dt.timedelta(minutes=k), ask_low),
        )
    conn.execute(
        "INSERT INTO md.trades (ticker, created_time, trade_id, count_fp, yes_price, no_price, "
        "taker_side) VALUES (%s, %s, %s, 5, 0.40, 0.60, 'no')",
        (TICKER, T0 + dt.timedelta(seconds=90), uuid.uuid4()),
    )
    conn.commit()


def test_a_fill_the_book_contradicts(conn: Conn) -> None:
    _market(conn, Decimal("0.45"))
    out = run_fill_check(conn, "chicago-candles").as_dict()
    # orders at 1–5 min (YES at 40¢, NO at 55¢): only the first YES bid is filled — nobody
    # was ahead of it when the print came; later ones queue behind the 5 printed contracts
    assert out["markets"] == 1 and out["orders"] == 10
    assert out["granted_orders"] == 1 and out["granted_contradicted"] == 1
    assert out["fraction_contradicted"] == 1.0
    assert out["book_allowed_orders"] == 0


def test_a_fill_the_book_allows(conn: Conn) -> None:
    _market(conn, Decimal("0.40"))  # in minute 4 the ask came down to our 40¢
    out = run_fill_check(conn, "chicago-candles").as_dict()
    # YES bids placed at 1–4 min rest through minute 4: allowed; the one at 5 min is not
    assert out["granted_orders"] == 1 and out["granted_contradicted"] == 0
    assert out["book_allowed_orders"] == 4 and out["allowed_not_granted"] == 3


def test_without_data_the_check_says_so(conn: Conn) -> None:
    with pytest.raises(ValueError, match="no markets"):
        run_fill_check(conn, "ny-top-of-book")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_the_command_prints_its_json_line_last(conn: Conn, env: Settings) -> None:
    _market(conn, Decimal("0.45"))
    result = CliRunner().invoke(
        app, ["book", "fill-check", "--dataset", "chicago-candles", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])["fill_check"]
    assert [f["granted_contradicted"] for f in figures] == [1]
