"""`kwx ingest run`'s jobs against the loopback Kalshi and weather servers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from kwx.ingest.continuous import ContinuousIngest
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.http import RetryPolicy
from kwx.sources.iem import IemClient
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.ratelimit import TokenBucket

Conn = psycopg.Connection[tuple[object, ...]]
UTC = dt.UTC
CHICAGO = default_registry().by_key("chicago")
EVENT = "KXHIGHCHI-26JUL09"
TICKER = f"{EVENT}-B88.5"
OPEN = dt.datetime(2026, 7, 8, 15, tzinfo=UTC)
NOW = dt.datetime(2026, 7, 9, 18, 0, 30, tzinfo=UTC)


def _market(ticker: str, strike_type: str, floor: int | None, cap: int | None) -> dict[str, object]:
    return {
        "ticker": ticker,
        "event_ticker": EVENT,
        "market_type": "binary",
        "status": "active",
        "strike_type": strike_type,
        "floor_strike": floor,
        "cap_strike": cap,
        "open_time": "2026-07-08T15:00:00Z",
        "close_time": "2026-07-10T05:59:00Z",
        "yes_bid_dollars": "0.3000",
        "yes_ask_dollars": "0.3200",
        "result": "",
        "expiration_value": "",
        "volume_fp": "10.00",
        "open_interest_fp": "5.00",
        "last_price_dollars": "0.3100",
        "rules_primary": "… at Chicago (CLIMDW) …",
    }


def _candle(minute: dt.datetime, close: str) -> dict[str, object]:
    end = int(minute.timestamp()) + 60
    block = {
        "open_dollars": close,
        "high_dollars": close,
        "low_dollars": close,
        "close_dollars": close,
    }
    return {
        "end_period_ts": end,
        "yes_bid": block,
        "yes_ask": block,
        "price": {**block, "mean_dollars": close},
        "volume_fp": "1.00",
        "open_interest_fp": "5.00",
    }


@pytest.fixture
def kalshi() -> Iterator[KalshiRest]:
    data = KalshiDataset()
    data.series["KXHIGHCHI"] = {"ticker": "KXHIGHCHI", "title": "Chicago high"}
    data.events[EVENT] = {"event_ticker": EVENT, "series_ticker": "KXHIGHCHI", "title": "x"}
    for m in (_market(f"{EVENT}-T87", "less", None, 87), _market(TICKER, "between", 88, 89)):
        data.markets[str(m["ticker"])] = m
    minute = dt.datetime(2026, 7, 9, 17, 58, tzinfo=UTC)
    data.candles[TICKER] = [
        _candle(minute, "0.3100"),
        _candle(minute + dt.timedelta(minutes=1), "0.3300"),
        # The minute in progress at NOW: not closed, never stored.
        _candle(minute + dt.timedelta(minutes=2), "0.3500"),
    ]
    data.trades.append(
        {
            "trade_id": "11111111-1111-4111-8111-111111111111",
            "ticker": TICKER,
            "count_fp": "2.00",
            "yes_price_dollars": "0.3300",
            "no_price_dollars": "0.6700",
            "taker_outcome_side": "yes",
            "created_time": "2026-07-09T17:59:10Z",
        }
    )
    with (
        KalshiRestServer(data, read_rate=5000, read_capacity=5000) as server,
        KalshiRest(
            server.url, retry=RetryPolicy(base_delay_s=0.001), read_bucket=TokenBucket(5000, 5000)
        ) as rest,
    ):
        yield rest


@pytest.fixture
def iem() -> Iterator[IemClient]:
    with WeatherReplayServer(clock=NOW) as srv:
        srv.add_metar(
            "MDW",
            dt.datetime(2026, 7, 9, 17, 53, tzinfo=UTC),
            "KMDW 091753Z 21010KT 10SM FEW050 30/19 A2985 RMK AO2 T03000189",
        )
        srv.add_metar(
            "MDW",
            dt.datetime(2026, 7, 9, 18, 53, tzinfo=UTC),  # after NOW: unseen
            "KMDW 091853Z 21010KT 10SM FEW050 31/19 A2985 RMK AO2 T03100189",
        )
        with IemClient(
            srv.url, retry=RetryPolicy(base_delay_s=0.001), bucket=TokenBucket(1000, 1000)
        ) as client:
            yield client


def test_one_cycle_fetches_markets_closed_candles_trades_and_obs(
    conn: Conn, kalshi: KalshiRest, iem: IemClient
) -> None:
    ingest = ContinuousIngest(
        conn, [CHICAGO], ImportContext(default_registry()), kalshi=kalshi, iem=iem
    )
    runs = ingest.run_due(NOW)
    assert {r.job for r in runs} == {
        "markets",
        "market_data",
        "observations",
        "forecast",
        "cli",
        "guidance",
    }
    assert [r for r in runs if r.error] == []
    markets = conn.execute("SELECT ticker, strike_type FROM kalshi.markets ORDER BY 1").fetchall()
    assert markets == [(f"{EVENT}-B88.5", "between"), (f"{EVENT}-T87", "less")]
    candles = conn.execute("SELECT ts, price_close FROM md.candles_1m ORDER BY ts").fetchall()
    assert candles == [
        (dt.datetime(2026, 7, 9, 17, 58, tzinfo=UTC), Decimal("0.310000")),
        (dt.datetime(2026, 7, 9, 17, 59, tzinfo=UTC), Decimal("0.330000")),
    ]
    assert conn.execute("SELECT count(*) FROM md.trades").fetchone() == (1,)
    obs = conn.execute("SELECT ts, temp_c FROM wx.obs").fetchall()
    assert obs == [(dt.datetime(2026, 7, 9, 17, 53, tzinfo=UTC), pytest.approx(30.0))]
    # Nothing is due again a few seconds later; market data is due after a minute.
    assert ingest.run_due(NOW + dt.timedelta(seconds=10)) == []
    later = ingest.run_due(NOW + dt.timedelta(minutes=1))
    assert {r.job for r in later} == {"market_data"}


def test_a_failing_job_is_kept_and_the_others_go_on(conn: Conn, iem: IemClient) -> None:
    broken = KalshiRest(
        "http://127.0.0.1:9/trade-api/v2", retry=RetryPolicy(max_attempts=2, base_delay_s=0.001)
    )
    ingest = ContinuousIngest(
        conn, [CHICAGO], ImportContext(default_registry()), kalshi=broken, iem=iem
    )
    runs = {r.job: r for r in ingest.run_due(NOW)}
    assert runs["markets"].error is not None
    assert runs["observations"].error is None and runs["observations"].rows == 1
    kept = conn.execute("SELECT source, location FROM meta.bad_input").fetchall()
    assert kept == [("markets", "ingest-run/chicago")]
