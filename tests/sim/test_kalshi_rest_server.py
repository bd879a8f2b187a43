"""The Kalshi REST simulator as a client sees it on the wire (plain httpx, no kwx client)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import (
    HistoricalCutoff,
    candles_frame,
    parse_candle,
    parse_trade,
    trades_frame,
)
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.ratelimit import TokenBucket
from kwx.store import writers

KEY_ID = "sim-key"
CUT = datetime(2026, 6, 14, tzinfo=UTC)
D = Decimal


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _market(ticker: str, **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0],
        "status": "active",
        "close_time": "2026-07-13T04:59:00Z",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
        **extra,
    }


def _dataset(n_markets: int = 3, n_events: int = 1) -> KalshiDataset:
    data = KalshiDataset()
    for e in range(n_events):
        event = f"KXHIGHNY-26JUL{e:03d}"
        data.events[event] = {"event_ticker": event, "series_ticker": "KXHIGHNY"}
    for i in range(n_markets):
        ticker = f"KXHIGHNY-26JUL000-T{i:04d}"
        data.markets[ticker] = _market(ticker)
    data.events["HIGHNY-24AUG15"] = {"event_ticker": "HIGHNY-24AUG15", "series_ticker": "KXHIGHNY"}
    data.markets["HIGHNY-24AUG15-T83"] = _market(
        "HIGHNY-24AUG15-T83", status="finalized", settlement_ts="2024-08-16T12:00:00Z"
    )
    data.candles["HIGHNY-24AUG15-T83"] = [
        {
            "end_period_ts": 1723744860,
            "yes_bid": {"open_dollars": "0.4100", "close_dollars": "0.4200"},
            "yes_ask": {"open_dollars": "0.4400", "close_dollars": "0.4400"},
            "price": {"close_dollars": "0.4300", "mean_dollars": "0.4300"},
            "volume_fp": "2.00",
            "open_interest_fp": "9.00",
        }
    ]
    return data


@pytest.fixture
def server(private_key: rsa.RSAPrivateKey) -> Iterator[KalshiRestServer]:
    with KalshiRestServer(
        _dataset(),
        cutoff=HistoricalCutoff(CUT, CUT, CUT),
        public_key=private_key.public_key(),
        key_id=KEY_ID,
        read_rate=1,
        read_capacity=30,
        write_rate=1,
        write_capacity=10,
    ) as srv:
        yield srv


def _signed(signer: KalshiSigner, method: str, url: str) -> dict[str, str]:
    return signer.headers(method, url)


def test_rate_limit_answers_exactly_like_kalshi(server: KalshiRestServer) -> None:
    with httpx.Client() as http:
        answers = [http.get(server.url + "/markets") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {"error": "too many requests"}
    assert "retry-after" not in answers[3].headers
    assert not [h for h in answers[3].headers if h.lower().startswith("x-ratelimit")]
    assert server.stats.throttled == 1 == server.stats.sent_429
    assert server.stats.requests == 4


def test_signatures_guard_the_portfolio(
    server: KalshiRestServer, private_key: rsa.RSAPrivateKey
) -> None:
    server.rate_limit = False
    url = server.url + "/portfolio/balance"
    good = KalshiSigner(KEY_ID, private_key)
    stranger = KalshiSigner(KEY_ID, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    stale = KalshiSigner(KEY_ID, private_key, clock_ms=lambda: 1_000_000)
    other_id = KalshiSigner("someone-else", private_key)
    with httpx.Client() as http:
        assert http.get(url).status_code == 401
        assert http.get(url, headers=good.headers("GET", url)).status_code == 200
        for signer in (stranger, stale, other_id):
            answer = http.get(url, headers=signer.headers("GET", url))
            assert answer.status_code == 401
            assert answer.json()["code"] == "authentication_error"
        # The signature covers the path only: a query string does not change it.
        query = http.get(url + "?x=1", headers=good.headers("GET", url + "?x=1"))
        assert query.status_code == 200
        # Signing the wrong method is caught.
        assert http.get(url, headers=good.headers("POST", url)).status_code == 401
        assert http.get(server.url + "/markets").status_code == 200  # public without keys
        assert http.get(server.url + "/account/limits").status_code == 401


def test_write_bucket_is_separate_and_orders_are_idempotent(
    server: KalshiRestServer, private_key: rsa.RSAPrivateKey
) -> None:
    signer = KalshiSigner(KEY_ID, private_key)
    url = server.url + "/portfolio/events/orders"
    body = {
        "ticker": "KXHIGHNY-26JUL000-T0001",
        "client_order_id": "c-1",
        "side": "bid",
        "count": "5",
        "price": "0.23",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
    }
    with httpx.Client() as http:
        first = http.post(url, json=body, headers=_signed(signer, "POST", url))
        second = http.post(url, json=body, headers=_signed(signer, "POST", url))
        assert (first.status_code, second.status_code) == (201, 429)  # write cap: one order
        server.set_limits(1000, 1000, 1000, 1000)
        again = http.post(url, json=body, headers=_signed(signer, "POST", url))
        legacy = http.post(
            server.url + "/portfolio/orders",
            json=body,
            headers=_signed(signer, "POST", server.url + "/portfolio/orders"),
        )
        missing_stp = {k: v for k, v in body.items() if k != "self_trade_prevention_type"}
        bad = http.post(url, json=missing_stp, headers=_signed(signer, "POST", url))
    assert first.json()["order_id"] == again.json()["order_id"]
    assert first.json()["remaining_count"] == "5.00" and first.json()["fill_count"] == "0.00"
    assert len(server.orders) == 1
    assert server.orders[0]["yes_price_dollars"] == "0.2300"
    assert "Please switch to the V2 endpoints" in legacy.text and legacy.status_code == 400
    assert bad.status_code == 400


def test_pages_are_opaque_and_limits_are_clamped(private_key: rsa.RSAPrivateKey) -> None:
    with (
        KalshiRestServer(_dataset(n_markets=1200, n_events=250), rate_limit=False) as server,
        httpx.Client() as http,
    ):
        markets = http.get(server.url + "/markets", params={"limit": 5000}).json()
        events = http.get(server.url + "/events", params={"limit": 1000}).json()
        default = http.get(server.url + "/markets").json()
        nxt = http.get(server.url + "/markets", params={"cursor": markets["cursor"]}).json()
        bogus = http.get(server.url + "/markets", params={"cursor": "42"})
        swapped = http.get(server.url + "/events", params={"cursor": markets["cursor"]})
    assert len(markets["markets"]) == 1000 and markets["cursor"]
    assert not markets["cursor"].isdigit()
    assert len(events["events"]) == 200 and events["cursor"]
    assert len(default["markets"]) == 100
    assert len(nxt["markets"]) == 100
    assert nxt["markets"][0]["ticker"] == sorted(server.dataset.markets)[1000]
    assert bogus.status_code == 400 and swapped.status_code == 400


def test_historical_tier_split_and_shapes(server: KalshiRestServer) -> None:
    server.rate_limit = False
    legacy = "HIGHNY-24AUG15-T83"
    with httpx.Client() as http:
        live = http.get(server.url + f"/markets/{legacy}")
        hist = http.get(server.url + f"/historical/markets/{legacy}")
        live_list = http.get(server.url + "/markets", params={"series_ticker": "KXHIGHNY"})
        hist_list = http.get(
            server.url + "/historical/markets", params={"series_ticker": "KXHIGHNY"}
        )
        candles = http.get(
            server.url + f"/historical/markets/{legacy}/candlesticks",
            params={"start_ts": 0, "end_ts": 2_000_000_000, "period_interval": 1},
        )
        cutoff = http.get(server.url + "/historical/cutoff").json()
    assert live.status_code == 404 and live.json() == {
        "error": {"code": "not_found", "message": "market not found"}
    }
    assert hist.json()["market"]["ticker"] == legacy
    assert legacy not in {m["ticker"] for m in live_list.json()["markets"]}
    assert [m["ticker"] for m in hist_list.json()["markets"]] == [legacy]
    [candle] = candles.json()["candlesticks"]
    assert candle["yes_bid"] == {"open": "0.4100", "close": "0.4200"}
    assert candle["volume"] == "2.00" and "volume_fp" not in candle
    assert cutoff["trades_created_ts"] == "2026-06-14T00:00:00Z"


def test_faults_are_thread_safe_and_counted(server: KalshiRestServer) -> None:
    server.rate_limit = False
    server.fail_next(20, 503)
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client() as http:
            for _ in range(10):
                code = http.get(server.url + "/exchange/status").status_code
                with lock:
                    statuses.append(code)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(503) == 20 and statuses.count(200) == 60
    assert server.stats.injected == 20 and server.stats.statuses[503] == 20
    assert server.stats.requests == 80


# ----------------------------------------------------------------------------- from_store


def _store_markets(cur: psycopg.Cursor[tuple[object, ...]]) -> None:
    base = {
        "series_ticker": "KXHIGHNY",
        "strike_type": "greater",
        "floor_strike": 87,
        "cap_strike": None,
        "yes_sub_title": "88° or above",
        "open_time": pd.Timestamp("2026-07-09T14:00:00Z"),
        "close_time": pd.Timestamp("2026-07-11T04:59:00Z"),
        "expiration_time": pd.Timestamp("2026-07-11T12:00:59Z"),
        "settled_tmax": 85,
        "volume": "41195.68",
        "open_interest": "22154.72",
        "last_price": "0.99",
        "rules_primary": "If the highest temperature ...",
        "metadata_source": "api",
    }
    rows = [
        {
            **base,
            "ticker": "KXHIGHNY-26JUL10-T87",
            "event_ticker": "KXHIGHNY-26JUL10",
            "climate_date": date(2026, 7, 10),
            "status": "finalized",
            "result": "no",
            "expiration_value": "85.00",
        },
        {
            **base,
            "ticker": "KXHIGHNY-26JUL20-T87",
            "event_ticker": "KXHIGHNY-26JUL20",
            "climate_date": date(2026, 7, 20),
            "status": "finalized",
            "result": "no",
            "expiration_value": "85.00",
        },
    ]
    frame = pd.DataFrame(rows, columns=[c for c, _ in writers.MARKET_COLUMNS])
    writers.MARKETS.write(cur, frame)


def test_dataset_from_the_store_serves_what_was_stored(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    ticker = "KXHIGHNY-26JUL10-T87"
    trades = [
        parse_trade(
            {
                "trade_id": f"0b6c1f55-1d7e-4c55-9a8e-00000000000{i}",
                "ticker": ticker,
                "count_fp": "2.50",
                "yes_price_dollars": "0.123456",
                "no_price_dollars": "0.876544",
                "taker_outcome_side": "no",
                "is_block_trade": False,
                "created_time": f"2026-07-10T15:0{i}:00.25Z",
            }
        )
        for i in range(3)
    ]
    candles = [
        parse_candle(
            {
                "end_period_ts": 1783695660 + 60 * i,
                "yes_bid": {f"{p}_dollars": "0.6000" for p in ("open", "high", "low", "close")},
                "yes_ask": {f"{p}_dollars": "0.6100" for p in ("open", "high", "low", "close")},
                "price": (
                    {f"{p}_dollars": "0.6050" for p in ("open", "high", "low", "close", "mean")}
                    if i == 0
                    else {}
                ),
                "volume_fp": "2.50" if i == 0 else "0.00",
                "open_interest_fp": "100.00",
            },
            ticker,
        )
        for i in range(2)
    ]
    with conn.cursor() as cur:
        _store_markets(cur)
        writers.TRADES.write(cur, trades_frame(trades))
        writers.CANDLES.write(cur, candles_frame(candles), {"price_scale": 1})
    conn.commit()

    data = KalshiDataset.from_store(conn, "KXHIGHNY", date(2026, 7, 1), date(2026, 7, 15))
    assert list(data.markets) == [ticker]  # the 20th is outside the dates
    market = data.markets[ticker]
    assert market["volume_fp"] == "41195.68" and market["last_price_dollars"] == "0.9900"
    assert market["status"] == "finalized" and market["settlement_ts"] == "2026-07-11T12:00:59Z"
    assert market["floor_strike"] == 87 and "cap_strike" not in market
    assert data.events["KXHIGHNY-26JUL10"]["series_ticker"] == "KXHIGHNY"
    assert json.loads(json.dumps(data.trades))[0]["yes_price_dollars"] == "0.123456"

    cut = datetime(2026, 7, 10, 15, 1, tzinfo=UTC)  # one trade before, two after
    with (
        KalshiRestServer(data, cutoff=HistoricalCutoff(CUT, cut, CUT), rate_limit=False) as srv,
        KalshiRest(
            srv.url, retry=RetryPolicy(base_delay_s=0.001), read_bucket=TokenBucket(1e6, 1e6)
        ) as client,
    ):
        got = sorted(client.iter_trades(ticker), key=lambda t: t.created_time)
        served = client.get_candlesticks("KXHIGHNY", ticker, 0, 2_000_000_000)
        got_market = client.get_market(ticker)
    assert got == trades
    assert served == candles
    assert got_market["ticker"] == ticker
