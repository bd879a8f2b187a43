"""Kalshi payload parsing: real 2026 shapes, historical flat candles, legacy integer cents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest

from kwx.sources.kalshi_models import (
    OrderAck,
    OrderRequest,
    ShapeError,
    candles_frame,
    dollars_str,
    parse_account_limits,
    parse_balance,
    parse_cancel_ack,
    parse_candle,
    parse_cutoff,
    parse_error,
    parse_fill,
    parse_market,
    parse_order,
    parse_order_ack,
    parse_orderbook,
    parse_position,
    parse_price_ranges,
    parse_trade,
    trades_frame,
)
from kwx.store import writers
from tests.conftest import DATA, needs_data

SHAPES = DATA / "api-shapes"
D = Decimal


def _load(name: str) -> dict[str, Any]:
    data = json.loads((SHAPES / name).read_text())
    assert isinstance(data, dict)
    return data


# ----------------------------------------------------------------------------- candles


@needs_data()
def test_live_candles_from_the_real_shape() -> None:
    doc = _load("kalshi_candlesticks_trimmed.json")
    candles = [parse_candle(c, doc["ticker"]) for c in doc["candlesticks"]]
    first = candles[0]
    assert first.ticker == "KXHIGHNY-26JUL10-T87"
    assert first.end_period_ts == 1783674000
    assert (first.yes_bid_open, first.yes_bid_high, first.yes_bid_low, first.yes_bid_close) == (
        D("0.6200"),
        D("0.6200"),
        D("0.5500"),
        D("0.6000"),
    )
    assert (first.yes_ask_open, first.yes_ask_close) == (D("0.6300"), D("0.6100"))
    assert (first.price_open, first.price_close, first.price_mean) == (
        D("0.6200"),
        D("0.6000"),
        D("0.6071"),
    )
    assert first.volume == D("83.70")
    assert first.open_interest == D("6904.73")
    assert [c.volume for c in candles] == [D("83.70"), D("165.95"), D("154.91")]


def test_historical_flat_names_carry_dollar_strings() -> None:
    historical = {
        "end_period_ts": 1723752060,
        "yes_bid": {"open": "0.4100", "high": "0.4300", "low": "0.4000", "close": "0.4200"},
        "yes_ask": {"open": "0.4400", "high": "0.4500", "low": "0.4300", "close": "0.4400"},
        "price": {"open": "0.4200", "high": "0.4300", "low": "0.4200", "close": "0.4300"},
        "volume": "12.50",
        "open_interest": "300.00",
    }
    candle = parse_candle(historical, "HIGHNY-24AUG15-T83")
    assert candle.yes_bid_close == D("0.4200")  # dollars, not 0.0042
    assert candle.yes_ask_high == D("0.4500")
    assert candle.price_close == D("0.4300")
    assert candle.price_mean is None
    assert candle.volume == D("12.50")
    assert candle.open_interest == D("300.00")


def test_legacy_candles_are_integer_cents() -> None:
    legacy = {
        "end_period_ts": 1690000060,
        "yes_bid": {"open": 41, "high": 43, "low": 40, "close": 42},
        "yes_ask": {"open": 44, "high": 45, "low": 43, "close": 44},
        "price": {"open": 42, "high": 43, "low": 42, "close": 43, "mean": 42},
        "volume": 7,
        "open_interest": 120,
    }
    candle = parse_candle(legacy, "HIGHNY-23JUL22-T90")
    assert candle.yes_bid_close == D("0.42")
    assert candle.price_mean == D("0.42")
    assert candle.volume == D(7)
    assert candle.open_interest == D(120)


def test_quiet_and_empty_book_candles_keep_what_was_sent() -> None:
    quiet = {
        "end_period_ts": 1783674060,
        "yes_bid": {"open_dollars": "0.0000", "close_dollars": "0.0000"},
        "yes_ask": {"open_dollars": "1.0000", "close_dollars": "1.0000"},
        "price": {"open_dollars": None, "close_dollars": None, "previous_dollars": "0.6000"},
        "volume_fp": "0.00",
    }
    candle = parse_candle(quiet, "T")
    assert candle.yes_bid_close == D("0.0000")
    assert candle.yes_ask_close == D("1.0000")
    assert candle.price_close is None and candle.price_mean is None
    assert candle.open_interest is None
    frame = candles_frame([candle])
    assert not bool(frame.loc[0, "has_trade"])


def test_bad_candle_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="end_period_ts"):
        parse_candle({"yes_bid": {}}, "T")
    with pytest.raises(ShapeError, match="outside"):
        parse_candle({"end_period_ts": 1, "yes_bid": {"close_dollars": "1.5"}}, "T")


# ----------------------------------------------------------------------------- trades


def test_trade_current_shape_prefers_taker_outcome_side() -> None:
    trade = parse_trade(
        {
            "trade_id": "D91BC706-0000-4000-8000-000000000001",
            "ticker": "KXHIGHNY-26AUG12-T90",
            "count_fp": "136.00",
            "yes_price_dollars": "0.3600",
            "no_price_dollars": "0.6400",
            "taker_outcome_side": "no",
            "taker_side": "yes",
            "taker_book_side": "ask",
            "is_block_trade": False,
            "created_time": "2026-08-12T15:04:05.123456789Z",
            "some_new_field": {"ignored": True},
        }
    )
    assert trade.count == D("136.00")
    assert (trade.yes_price, trade.no_price) == (D("0.3600"), D("0.6400"))
    assert trade.taker_side == "no"
    assert trade.is_block_trade is False
    assert trade.created_time == datetime(2026, 8, 12, 15, 4, 5, 123456, tzinfo=UTC)


def test_trade_legacy_cents_and_ws_message() -> None:
    legacy = parse_trade(
        {
            "trade_id": "t1",
            "ticker": "HIGHNY-24AUG15-T83",
            "count": 3,
            "yes_price": 42,
            "no_price": 58,
            "taker_side": "yes",
            "created_time": "2024-08-15T14:00:00Z",
        }
    )
    assert (legacy.count, legacy.yes_price, legacy.no_price) == (D(3), D("0.42"), D("0.58"))
    assert legacy.taker_side == "yes" and legacy.is_block_trade is None

    ws = parse_trade(
        {
            "trade_id": "t2",
            "market_ticker": "KXHIGHNY-26AUG12-T90",
            "yes_price_dollars": "0.3600",
            "count_fp": "1.55",
            "taker_outcome_side": "yes",
            "ts": 1786546000,
            "ts_ms": 1786546000250,
        }
    )
    assert ws.ticker == "KXHIGHNY-26AUG12-T90"
    assert ws.no_price == D("0.6400")
    assert ws.created_time == datetime.fromtimestamp(1786546000.25, tz=UTC)
    with pytest.raises(ShapeError, match="created_time"):
        parse_trade({"trade_id": "x", "ticker": "T", "count_fp": "1", "yes_price_dollars": "0.5"})


# ----------------------------------------------------------------------------- markets


@needs_data()
def test_real_open_and_settled_markets() -> None:
    open_markets = [parse_market(m) for m in _load("kalshi_kxhighny_open_trimmed.json")["markets"]]
    settled = [parse_market(m) for m in _load("kalshi_kxhighny_settled_trimmed.json")["markets"]]
    t89 = open_markets[0]
    assert t89.ticker == "KXHIGHNY-26JUL12-T89"
    assert t89.floor_strike == D(89) and t89.cap_strike is None
    assert t89.yes_bid == D("0.0000") and t89.yes_bid_quote is None  # empty bid side
    assert t89.yes_ask == D("0.0100") and t89.yes_ask_quote == D("0.0100")
    assert t89.volume == D("1944.25") and t89.open_interest == D("1642.25")
    assert t89.close_time == datetime(2026, 7, 13, 4, 59, tzinfo=UTC)
    assert t89.price_ranges[0].step == D("0.0100")
    t87 = settled[1]
    assert t87.status == "finalized" and t87.result == "yes"
    assert t87.expiration_value == "85.00"
    assert t87.settlement_ts == datetime(2026, 7, 11, 12, 0, 59, 542488, tzinfo=UTC)
    assert t87.yes_bid_quote is None and t87.yes_ask_quote is None  # 0/1 = no quote


def test_legacy_market_cents_and_string_strikes() -> None:
    market = parse_market(
        {
            "ticker": "HIGHNY-24AUG15-T83",
            "event_ticker": "HIGHNY-24AUG15",
            "status": "finalized",
            "floor_strike": "83",
            "yes_bid": 41,
            "yes_ask": 44,
            "last_price": 42,
            "volume": 1200,
        }
    )
    assert (market.yes_bid, market.yes_ask, market.last_price) == (D("0.41"), D("0.44"), D("0.42"))
    assert market.floor_strike == D(83) and market.volume == D(1200)
    assert market.price_ranges == ()


# ----------------------------------------------------------------------------- order book


def test_orderbook_fixed_point_best_is_last_and_asks_are_derived() -> None:
    book = parse_orderbook(
        {
            "orderbook_fp": {
                "yes_dollars": [["0.4000", "5.00"], ["0.4200", "13.00"]],
                "no_dollars": [["0.5500", "2.00"], ["0.5600", "17.00"]],
            }
        },
        "T",
    )
    assert book.best_yes_bid == D("0.4200")
    assert book.best_yes_ask == D("0.4400")  # 1 - best NO bid 0.56
    assert book.best_no_bid == D("0.5600") and book.best_no_ask == D("0.5800")
    assert book.yes[-1] == (D("0.4200"), D("13.00"))


def test_orderbook_missing_side_and_legacy_cents() -> None:
    one_sided = parse_orderbook({"orderbook_fp": {"yes_dollars": [["0.0300", "9.00"]]}}, "T")
    assert one_sided.best_yes_bid == D("0.0300")
    assert one_sided.best_yes_ask is None and one_sided.no == ()
    empty = parse_orderbook({"orderbook_fp": None}, "T")
    assert empty.best_yes_bid is None and empty.best_yes_ask is None
    legacy = parse_orderbook({"orderbook": {"yes": [[42, 13], [40, 5]], "no": None}}, "T")
    assert legacy.yes == ((D("0.40"), D(5)), (D("0.42"), D(13)))
    assert legacy.best_yes_ask is None
    with pytest.raises(ShapeError):
        parse_orderbook({"markets": []}, "T")


# ----------------------------------------------------------------------------- orders


def test_order_request_json_and_the_no_mapping() -> None:
    order = OrderRequest.buy_yes("KXHIGHCHI-26SEP15-B81.5", D("0.23"), D(5), post_only=True)
    body = order.to_json()
    assert body["side"] == "bid" and body["price"] == "0.2300" and body["count"] == "5.00"
    assert body["time_in_force"] == "good_till_canceled"
    assert body["self_trade_prevention_type"] == "taker_at_cross"
    assert body["post_only"] is True and body["cancel_order_on_pause"] is True
    assert len(body["client_order_id"]) == 36 and "expiration_time" not in body
    no = OrderRequest.buy_no("T", D("0.30"), D("1.5"))
    assert (no.side, no.price, no.to_json()["count"]) == ("ask", D("0.70"), "1.50")
    assert OrderRequest.sell_no("T", D("0.30"), D(1)).side == "bid"
    assert OrderRequest.sell_yes("T", D("0.30"), D(1)).side == "ask"


@pytest.mark.parametrize(
    ("count", "price", "message"),
    [
        (D("0.005"), D("0.50"), "count"),
        (D(0), D("0.50"), "count"),
        (D(1), D("1.00"), "price"),
        (D(1), D(0), "price"),
        (D(1), D("0.12345"), "decimals"),
    ],
)
def test_order_request_rejects_bad_values(count: Decimal, price: Decimal, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OrderRequest("T", "bid", count, price, "good_till_canceled")


def test_order_request_ticks_from_price_ranges() -> None:
    tapered = [
        {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
        {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
        {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
    ]
    OrderRequest("T", "bid", D(1), D("0.053"), "good_till_canceled").check_ticks(tapered)
    OrderRequest("T", "bid", D(1), D("0.42"), "good_till_canceled").check_ticks(
        parse_price_ranges(tapered)
    )
    with pytest.raises(ValueError, match="tick"):
        OrderRequest("T", "bid", D(1), D("0.425"), "good_till_canceled").check_ticks(tapered)
    with pytest.raises(ValueError, match="tick"):
        OrderRequest("T", "bid", D(1), D("0.425"), "good_till_canceled").check_ticks(
            {"price_ranges": [{"start": "0", "end": "1", "step": "0.01"}]}
        )
    with pytest.raises(ValueError, match="immediate_or_cancel"):
        OrderRequest("T", "bid", D(1), D("0.5"), "immediate_or_cancel", expiration_time=1)
    with pytest.raises(ValueError, match="client_order_id"):
        OrderRequest("T", "bid", D(1), D("0.5"), "fill_or_kill", client_order_id="bad id!")


def test_portfolio_objects_current_and_legacy() -> None:
    order = parse_order(
        {
            "order_id": "o1",
            "client_order_id": "c1",
            "ticker": "T",
            "status": "resting",
            "outcome_side": "no",
            "book_side": "ask",
            "yes_price_dollars": "0.7000",
            "no_price_dollars": "0.3000",
            "fill_count_fp": "1.50",
            "remaining_count_fp": "3.50",
            "initial_count_fp": "5.00",
            "taker_fees_dollars": "0.0200",
            "created_time": "2026-09-15T14:00:00Z",
        }
    )
    assert (order.book_side, order.yes_price, order.remaining_count) == ("ask", D("0.7"), D("3.5"))
    legacy = parse_order(
        {
            "order_id": "o2",
            "ticker": "T",
            "status": "executed",
            "side": "no",
            "action": "buy",
            "yes_price": 70,
            "fill_count": 2,
            "remaining_count": 0,
        }
    )
    assert legacy.book_side == "ask" and legacy.yes_price == D("0.70")
    assert OrderAck.from_order(order).remaining_count == D("3.50")

    ack = parse_order_ack(
        {
            "order_id": "o1",
            "client_order_id": "c1",
            "fill_count": "2.00",
            "remaining_count": "0.00",
            "average_fill_price": "0.2300",
            "average_fee_paid": "0.0122",
            "ts_ms": 1786546000250,
        }
    )
    assert ack.average_fill_price == D("0.2300") and ack.ts_ms == 1786546000250
    cancel = parse_cancel_ack({"order_id": "o1", "reduced_by": "3.50", "ts_ms": 5})
    assert cancel.reduced_by == D("3.50")

    fill = parse_fill(
        {
            "fill_id": "f1",
            "order_id": "o1",
            "ticker": "T",
            "book_side": "bid",
            "count_fp": "1.55",
            "yes_price_dollars": "0.2300",
            "is_taker": True,
            "fee_cost": "0.0200",
            "created_time": "2026-09-15T14:00:01Z",
        }
    )
    assert fill.no_price == D("0.7700") and fill.fee_cost == D("0.0200")

    position = parse_position(
        {"ticker": "T", "position_fp": "-4.00", "realized_pnl_dollars": "-1.2500"}
    )
    assert position.position == D(-4) and position.realized_pnl == D("-1.25")
    assert parse_position({"ticker": "T", "position": -4, "fees_paid": 12}).fees_paid == D("0.12")

    assert parse_balance({"balance": 123456, "portfolio_value": 500}).balance == D("1234.56")
    assert parse_balance({"balance": 1, "balance_dollars": "1234.5600"}).balance == D("1234.56")


def test_cutoff_and_limits() -> None:
    cutoff = parse_cutoff(
        {
            "market_settled_ts": "2026-06-14T00:00:00Z",
            "trades_created_ts": "2026-06-14T00:00:00Z",
            "orders_updated_ts": "2026-06-14T00:00:00Z",
            "market_positions_last_updated_ts": "2026-06-14T00:00:00Z",
        }
    )
    assert cutoff.market_settled_ts == datetime(2026, 6, 14, tzinfo=UTC)
    limits = parse_account_limits(
        {
            "usage_tier": "premier",
            "read": {"refill_rate": 1000, "bucket_capacity": 1000},
            "write": {"refill_rate": 1000, "bucket_capacity": 2000},
            "grants": [],
        }
    )
    assert (limits.read_rate, limits.write_capacity, limits.usage_tier) == (1000, 2000, "premier")
    with pytest.raises(ShapeError):
        parse_account_limits({"read": {"refill_rate": 0, "bucket_capacity": 1}})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"code": "MARKET_INACTIVE", "message": "market closed"}',
            ("MARKET_INACTIVE", "market closed"),
        ),
        ('{"error": {"code": "not_found"}}', ("not_found", "not_found")),
        ('{"error": {"code": "bad", "message": "why"}}', ("bad", "why")),
        ('{"error": "too many requests"}', (None, "too many requests")),
        ("API has been moved", (None, "API has been moved")),
        (
            b'{"message": "Please switch to the V2 endpoints"}',
            (None, "Please switch to the V2 endpoints"),
        ),
    ],
)
def test_error_bodies(body: str | bytes, expected: tuple[str | None, str]) -> None:
    assert parse_error(body) == expected


def test_dollars_str_never_rounds() -> None:
    assert dollars_str(D("0.620000")) == "0.6200"
    assert dollars_str(D("0.123456")) == "0.123456"
    assert dollars_str(D(5), 2) == "5.00"


# ----------------------------------------------------------------------------- frames


def _trades() -> list[Any]:
    return [
        parse_trade(
            {
                "trade_id": f"d91bc706-0000-4000-8000-00000000000{i}",
                "ticker": "KXHIGHNY-26AUG12-T90",
                "count_fp": "1.55",
                "yes_price_dollars": "0.123456",
                "no_price_dollars": "0.876544",
                "taker_outcome_side": "yes" if i % 2 else "no",
                "is_block_trade": None if i == 0 else False,
                "created_time": f"2026-08-12T15:0{i}:05.5Z",
            }
        )
        for i in range(3)
    ]


def test_frames_have_exactly_the_writer_columns() -> None:
    trades = trades_frame(_trades())
    assert list(trades.columns) == [n for n, _ in writers.TRADE_COLUMNS]
    assert str(trades["created_time"].dt.tz) == "UTC"
    assert trades.loc[0, "yes_price"] == "0.123456"
    candle = parse_candle(
        {
            "end_period_ts": 1786546260,
            "yes_bid": {"close_dollars": "0.4200"},
            "price": {"close_dollars": "0.4300", "mean_dollars": "0.4250"},
            "volume_fp": "3.00",
        },
        "T",
    )
    candles = candles_frame([candle])
    assert list(candles.columns) == [n for n, _ in writers.CANDLE_COLUMNS]
    assert candles.loc[0, "ts"] == pd.Timestamp(1786546200, unit="s", tz="UTC")
    assert (candles.loc[0, "source"], candles.loc[0, "vwap"]) == ("api", "0.4250")
    assert bool(candles.loc[0, "has_trade"]) and not bool(candles.loc[0, "is_synthetic"])
    assert candles_frame([]).empty and trades_frame([]).empty


def test_frames_land_exactly_in_postgres(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    trades = _trades()
    candle = parse_candle(
        {
            "end_period_ts": 1786546260,
            "yes_bid": {f"{p}_dollars": "0.4200" for p in ("open", "high", "low", "close")},
            "yes_ask": {f"{p}_dollars": "0.4400" for p in ("open", "high", "low", "close")},
            "price": {
                "open_dollars": "0.4300",
                "close_dollars": "0.4300",
                "mean_dollars": "0.4300",
            },
            "volume_fp": "3.25",
            "open_interest_fp": "100.00",
        },
        "KXHIGHNY-26AUG12-T90",
    )
    quiet = parse_candle(
        {"end_period_ts": 1786546320, "yes_bid": {"close_dollars": "0.4100"}, "volume_fp": "0"},
        "KXHIGHNY-26AUG12-T90",
    )
    with conn.cursor() as cur:
        assert writers.TRADES.write(cur, trades_frame(trades)) == 3
        assert writers.CANDLES.write(cur, candles_frame([candle, quiet]), {"price_scale": 1}) == 2
        cur.execute(
            "SELECT trade_id::text, created_time, count_fp, yes_price, taker_side, is_block_trade "
            "FROM md.trades ORDER BY created_time"
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT ts, yes_bid_close, price_close, vwap, volume, open_interest, has_trade, "
            "trade_count FROM md.candles_1m ORDER BY ts"
        )
        candle_rows = cur.fetchall()
    assert [r[0] for r in rows] == [t.trade_id for t in trades]
    assert rows[0][1] == trades[0].created_time
    assert rows[0][2] == D("1.55") and rows[0][3] == D("0.123456")
    assert [r[4] for r in rows] == ["no", "yes", "no"]
    assert [r[5] for r in rows] == [None, False, False]
    assert candle_rows[0] == (
        datetime.fromtimestamp(1786546200, tz=UTC),
        D("0.42"),
        D("0.43"),
        D("0.43"),
        D("3.25"),
        D("100.00"),
        True,
        None,
    )
    assert candle_rows[1][2] is None and candle_rows[1][6] is False
