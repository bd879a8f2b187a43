"""One print, two precisions: REST (microseconds) and WebSocket (milliseconds) agree."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg

from kwx.store import writers

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
TICKER = "KXHIGHCHI-24DEC01-B40.5"


def _trade(trade_id: str, ts: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_id": [trade_id],
            "ticker": [TICKER],
            "created_time": [pd.Timestamp(ts)],
            "count_fp": ["2.00"],
            "yes_price": ["0.4200"],
            "no_price": ["0.5800"],
            "taker_side": ["yes"],
            "is_block_trade": [False],
        }
    )


def test_the_same_print_at_another_precision_is_not_stored_twice(conn: Conn) -> None:
    rest_ts = dt.datetime(2024, 12, 1, 15, 0, 5, 123456, tzinfo=UTC)
    ws_ts = rest_ts.replace(microsecond=123000)
    same = "00000000-0000-4000-8000-000000000001"
    other = "00000000-0000-4000-8000-000000000002"
    with conn.transaction(), conn.cursor() as cur:
        assert writers.TRADES.write(cur, _trade(same, rest_ts)) == 1
    with conn.transaction(), conn.cursor() as cur:
        assert writers.TRADES.write(cur, _trade(same, ws_ts)) == 0
        # A different print at the very same instant is another trade.
        assert writers.TRADES.write(cur, _trade(other, ws_ts)) == 1
    rows = conn.execute("SELECT trade_id::text, created_time FROM md.trades ORDER BY 1").fetchall()
    assert rows == [(same, rest_ts), (other, ws_ts)]
