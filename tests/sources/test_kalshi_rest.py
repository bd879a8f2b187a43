"""The Kalshi REST client against a real Kalshi-compatible server on loopback."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from kwx.config import Settings
from kwx.sim.kalshi_rest_server import KalshiDataset, KalshiRestServer
from kwx.sources.http import PayloadError, RetryPolicy, SourceError
from kwx.sources.kalshi_auth import SIGNATURE_HEADER, KalshiSigner
from kwx.sources.kalshi_models import HistoricalCutoff, OrderRequest
from kwx.sources.kalshi_rest import CredentialsMissingError, KalshiApiError, KalshiRest
from kwx.sources.ratelimit import TokenBucket

D = Decimal
KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
CUT = datetime(2026, 6, 14, tzinfo=UTC)
CUTOFF = HistoricalCutoff(CUT, CUT, CUT)
FAST = RetryPolicy(base_delay_s=0.001)
LIVE_EVENT = "KXHIGHNY-26JUL12"
SPAN_MARKET = "KXHIGHNY-26JUN13-T80"
LEGACY = "HIGHNY-24AUG15-T83"


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def market(
    ticker: str,
    *,
    status: str = "active",
    close: datetime = datetime(2026, 7, 13, 4, 59, tzinfo=UTC),
    settled: datetime | None = None,
    result: str = "",
    floor: int = 80,
) -> dict[str, Any]:
    m: dict[str, Any] = {
        "ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0],
        "market_type": "binary",
        "status": status,
        "strike_type": "greater",
        "floor_strike": floor,
        "open_time": iso(close - timedelta(days=1, hours=15)),
        "close_time": iso(close),
        "result": result,
        "expiration_value": "",
        "yes_bid_dollars": "0.1500",
        "yes_ask_dollars": "0.1600",
        "volume_fp": "951.00",
        "open_interest_fp": "420.00",
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    }
    if settled is not None:
        m["settlement_ts"] = iso(settled)
    return m


def trade(ticker: str, at: datetime, i: int) -> dict[str, Any]:
    return {
        "trade_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ticker}/{i}")),
        "ticker": ticker,
        "count_fp": f"{i + 1}.00",
        "yes_price_dollars": "0.3600",
        "no_price_dollars": "0.6400",
        "taker_outcome_side": "yes",
        "taker_book_side": "bid",
        "is_block_trade": False,
        "created_time": iso(at),
    }


def live_candle(end: int, bid: str, ask: str, price: str | None, volume: str) -> dict[str, Any]:
    def block(value: str | None) -> dict[str, str | None]:
        return {f"{p}_dollars": value for p in ("open", "high", "low", "close")}

    price_block = block(price)
    price_block["mean_dollars"] = price
    return {
        "end_period_ts": end,
        "yes_bid": block(bid),
        "yes_ask": block(ask),
        "price": price_block,
        "volume_fp": volume,
        "open_interest_fp": "10.00",
    }


def dataset(n_live: int = 6) -> KalshiDataset:
    data = KalshiDataset()
    data.series["KXHIGHNY"] = {"ticker": "KXHIGHNY", "title": "NYC high", "category": "Climate"}
    for event, series in (
        (LIVE_EVENT, "KXHIGHNY"),
        ("KXHIGHNY-26JUN13", "KXHIGHNY"),
        ("KXHIGHNY-26MAY01", "KXHIGHNY"),
        ("HIGHNY-24AUG15", "KXHIGHNY"),  # legacy prefix, same series
    ):
        data.events[event] = {"event_ticker": event, "series_ticker": series, "title": event}
    for i in range(n_live):
        ticker = f"{LIVE_EVENT}-T{80 + i}"
        data.markets[ticker] = market(ticker, floor=80 + i)
    data.markets[SPAN_MARKET] = market(
        SPAN_MARKET,
        status="finalized",
        close=datetime(2026, 6, 14, 4, 59, tzinfo=UTC),
        settled=datetime(2026, 6, 14, 12, 0, tzinfo=UTC),
        result="no",
    )
    data.markets["KXHIGHNY-26MAY01-T70"] = market(
        "KXHIGHNY-26MAY01-T70",
        status="finalized",
        close=datetime(2026, 5, 2, 4, 59, tzinfo=UTC),
        settled=datetime(2026, 5, 2, 12, 0, tzinfo=UTC),
        result="yes",
    )
    data.markets[LEGACY] = market(
        LEGACY,
        status="finalized",
        close=datetime(2024, 8, 16, 3, 59, tzinfo=UTC),
        settled=datetime(2024, 8, 16, 12, 0, tzinfo=UTC),
        result="yes",
        floor=83,
    )
    # 48 trades every 10 minutes, half on each side of the cutoff.
    start = CUT - timedelta(hours=4)
    data.trades = [trade(SPAN_MARKET, start + timedelta(minutes=10 * i), i) for i in range(48)]
    data.trades += [
        trade(f"{LIVE_EVENT}-T80", datetime(2026, 7, 12, 15, tzinfo=UTC), 100 + i) for i in range(5)
    ]
    end = int(datetime(2026, 7, 12, 15, tzinfo=UTC).timestamp())
    data.candles[f"{LIVE_EVENT}-T80"] = [
        live_candle(end + 60 * (i + 1), "0.1500", "0.1600", "0.1500" if i % 2 else None, f"{i}.00")
        for i in range(10)
    ]
    legacy_end = int(datetime(2024, 8, 15, 18, tzinfo=UTC).timestamp())
    data.candles[LEGACY] = [
        live_candle(legacy_end + 60 * i, "0.4100", "0.4400", "0.4200", "2.50") for i in range(5)
    ]
    data.orderbooks[f"{LIVE_EVENT}-T80"] = {
        "yes_dollars": [["0.1400", "5.00"], ["0.1500", "12.00"]],
        "no_dollars": [["0.8400", "40.00"]],
    }
    data.positions = [{"ticker": f"{LIVE_EVENT}-T80", "position_fp": "-3.00"}]
    data.fills = [
        {
            "fill_id": "f1",
            "order_id": "o1",
            "ticker": f"{LIVE_EVENT}-T80",
            "book_side": "ask",
            "count_fp": "3.00",
            "yes_price_dollars": "0.1500",
            "is_taker": True,
            "fee_cost": "0.0400",
            "created_time": "2026-07-12T15:00:00Z",
        }
    ]
    return data


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(private_key: rsa.RSAPrivateKey) -> KalshiSigner:
    return KalshiSigner(KEY_ID, private_key)


@pytest.fixture
def server(private_key: rsa.RSAPrivateKey) -> Iterator[KalshiRestServer]:
    with KalshiRestServer(
        dataset(),
        cutoff=CUTOFF,
        public_key=private_key.public_key(),
        key_id=KEY_ID,
        read_rate=100_000,
        read_capacity=100_000,
        write_rate=100_000,
        write_capacity=100_000,
    ) as srv:
        yield srv


MakeClient = Callable[..., KalshiRest]


@pytest.fixture
def make_client(server: KalshiRestServer, signer: KalshiSigner) -> Iterator[MakeClient]:
    clients: list[KalshiRest] = []

    def make(*, signed: bool = True, **kwargs: Any) -> KalshiRest:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("timeout_s", 5.0)
        kwargs.setdefault("read_bucket", TokenBucket(1e6, 1e6))
        kwargs.setdefault("write_bucket", TokenBucket(1e6, 1e6))
        client = KalshiRest(server.url, signer=signer if signed else None, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# ----------------------------------------------------------------------------- market data


def test_public_market_data_needs_no_keys(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client(signed=False)
    assert [s["ticker"] for s in client.list_series()] == ["KXHIGHNY"]
    assert client.get_series("KXHIGHNY")["title"] == "NYC high"
    event = client.get_event(LIVE_EVENT)
    assert len(event["markets"]) == 6
    events = list(client.iter_events(series_ticker="KXHIGHNY", with_nested_markets=True))
    assert {e["event_ticker"] for e in events} >= {LIVE_EVENT, "HIGHNY-24AUG15"}
    nested = {e["event_ticker"]: e["markets"] for e in events}
    assert nested["HIGHNY-24AUG15"] == []  # settled before the cutoff: not nested
    market = client.get_market(f"{LIVE_EVENT}-T80")
    assert market["yes_bid_dollars"] == "0.1500"
    book = client.get_orderbook(f"{LIVE_EVENT}-T80")
    assert book.best_yes_bid == D("0.1500") and book.best_yes_ask == D("0.1600")
    assert client.exchange_status()["trading_active"] is True
    assert "schedule" in client.exchange_schedule()
    candles = client.get_candlesticks(
        "KXHIGHNY", f"{LIVE_EVENT}-T80", 0, 2_000_000_000, tier="live"
    )
    assert len(candles) == 10
    assert candles[1].price_close == D("0.1500") and candles[0].price_close is None
    hourly = client.get_candlesticks(
        "KXHIGHNY", f"{LIVE_EVENT}-T80", 0, 2_000_000_000, period_interval=60, tier="live"
    )
    assert len(hourly) == 1 and hourly[0].volume == sum(c.volume for c in candles)
    assert server.stats.statuses[401] == 0


def test_pagination_follows_cursors_across_pages(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client()
    server.dataset.markets.update(
        {f"{LIVE_EVENT}-B{i}.5": market(f"{LIVE_EVENT}-B{i}.5") for i in range(19)}
    )
    server.reindex()
    tickers = [m["ticker"] for m in client.iter_markets(event_ticker=LIVE_EVENT, limit=10)]
    assert len(tickers) == 25 == len(set(tickers))
    assert server.stats.paths["GET /markets"] == 3  # 10 + 10 + 5
    assert server.stats.paths["GET /historical/markets"] == 1  # status unset: both tiers


def test_repeated_cursor_is_refused(server: KalshiRestServer, make_client: MakeClient) -> None:
    client = make_client()
    server.repeat_cursor_next(1, path="/markets")
    with pytest.raises(SourceError, match="repeated a pagination cursor"):
        list(client.iter_markets(event_ticker=LIVE_EVENT, limit=2, tier="live"))


def test_bursts_of_429_and_5xx_are_retried(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client()
    server.fail_next(3, 429)
    assert client.get_market(f"{LIVE_EVENT}-T81")["floor_strike"] == 81
    assert client.rate_limited == 3 == server.stats.sent_429
    server.fail_next(1, 500)
    server.fail_next(1, 503)
    assert client.get_series("KXHIGHNY")["ticker"] == "KXHIGHNY"
    assert client.stats.statuses[500] == 1 and client.stats.statuses[503] == 1
    server.fail_next(10, 503)
    with pytest.raises(KalshiApiError) as info:
        client.get_series("KXHIGHNY")
    assert info.value.status == 503 and info.value.code == "internal_server_error"


def test_a_timeout_is_retried(server: KalshiRestServer, make_client: MakeClient) -> None:
    client = make_client(timeout_s=0.2)
    server.delay_next(0.5, path="/series/KXHIGHNY")
    assert client.get_series("KXHIGHNY")["ticker"] == "KXHIGHNY"
    assert client.stats.transport_errors == 1


def test_malformed_json_is_a_payload_error_with_the_raw_body(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client()
    server.malformed_next(1, path="/markets")
    with pytest.raises(PayloadError, match="malformed JSON") as info:
        list(client.iter_markets(tier="live"))
    assert info.value.body == '{"markets": [{"ticker": "KXHIGHNY-26JUL'


def test_wrong_shapes_and_error_bodies(httpserver: HTTPServer) -> None:
    base = "/trade-api/v2"
    httpserver.expect_request(f"{base}/markets").respond_with_data(
        '{"markets": {"x": 1}}', content_type="application/json"
    )
    httpserver.expect_request(f"{base}/markets/T1").respond_with_json({"market": {"no": 1}})
    httpserver.expect_request(f"{base}/markets/T2").respond_with_json(
        {"error": {"code": "not_found"}}, status=404
    )
    httpserver.expect_request(f"{base}/historical/markets/T2").respond_with_json(
        {"error": {"code": "not_found", "message": "market not found"}}, status=404
    )
    httpserver.expect_request(f"{base}/markets/trades").respond_with_json(
        {"trades": [{"trade_id": "x", "ticker": "T", "count_fp": "1.00"}], "cursor": ""}
    )
    with KalshiRest(httpserver.url_for(base), retry=FAST) as client:
        with pytest.raises(PayloadError, match="expected a list") as info:
            list(client.iter_markets(tier="live"))
        assert info.value.body == '{"markets": {"x": 1}}'
        with pytest.raises(PayloadError, match="ticker"):
            client.get_market("T1")
        with pytest.raises(KalshiApiError) as err:
            client.get_market("T2")
        assert (err.value.status, err.value.code) == (404, "not_found")
        assert "market not found" in str(err.value)
        with pytest.raises(PayloadError, match="created_time"):
            list(client.iter_trades("T", tier="live"))


# ----------------------------------------------------------------------------- rate limits


def test_bucket_sized_from_account_limits_gets_no_429s(
    private_key: rsa.RSAPrivateKey, signer: KalshiSigner
) -> None:
    rate, capacity, n = 2000.0, 40.0, 60
    with (
        KalshiRestServer(
            dataset(),
            cutoff=CUTOFF,
            public_key=private_key.public_key(),
            key_id=KEY_ID,
            read_rate=rate,
            read_capacity=capacity,
        ) as server,
        KalshiRest(server.url, signer=signer, retry=FAST) as client,
    ):
        limits = client.size_limits_from_account()
        assert (limits.read_rate, limits.read_capacity) == (rate, capacity)
        assert client.read_bucket.rate == rate
        assert client.read_bucket.capacity == capacity - 20  # 10 ms of jitter margin
        time.sleep(capacity / rate)  # both buckets full again
        started = time.perf_counter()
        for _ in range(n):
            client.exchange_status()
        elapsed = time.perf_counter() - started
    assert server.stats.throttled == 0 and client.rate_limited == 0
    fastest = (n * 10 - capacity) / rate  # the server's burst, then its refill rate
    assert elapsed >= fastest * 0.95
    assert fastest / elapsed >= 0.9, f"{n} requests took {elapsed:.3f}s (best {fastest:.3f}s)"


def test_an_oversized_client_bucket_meets_429s_and_retries_through() -> None:
    with (
        KalshiRestServer(dataset(), cutoff=CUTOFF, read_rate=2000, read_capacity=20) as server,
        KalshiRest(
            server.url,
            retry=RetryPolicy(base_delay_s=0.002, max_attempts=30, max_delay_s=0.005),
            read_bucket=TokenBucket(1e5, 1e5),  # far more burst than the server's 20 tokens
        ) as client,
    ):
        for _ in range(30):
            client.exchange_status()
    assert server.stats.throttled > 0
    assert client.rate_limited == server.stats.sent_429 == server.stats.throttled


def test_batch_candlesticks_split_to_fit_the_bucket() -> None:
    with (
        KalshiRestServer(dataset(), cutoff=CUTOFF, read_rate=2000, read_capacity=40) as server,
        KalshiRest(
            server.url, retry=FAST, read_bucket=TokenBucket(2000, 30), write_bucket=None
        ) as client,
    ):
        tickers = [f"{LIVE_EVENT}-T{80 + i}" for i in range(6)]
        got = client.batch_candlesticks(tickers, 0, 2_000_000_000)
    assert list(got) == tickers
    assert len(got[f"{LIVE_EVENT}-T80"]) == 10 and got[f"{LIVE_EVENT}-T81"] == []
    assert server.stats.paths["GET /markets/candlesticks"] == 2  # 3 markets (30 tokens) each
    assert server.stats.throttled == 0
    with pytest.raises(ValueError, match="100"):
        client.batch_candlesticks([f"T{i}" for i in range(101)], 0, 1)


# ----------------------------------------------------------------------------- historical


def test_trades_spanning_the_cutoff_are_merged_once(make_client: MakeClient) -> None:
    with KalshiRestServer(dataset(), cutoff=CUTOFF, trade_overlap_s=3600) as server:
        client = KalshiRest(server.url, retry=FAST, read_bucket=TokenBucket(1e6, 1e6))
        lo, hi = CUT - timedelta(hours=5), CUT + timedelta(hours=5)
        trades = list(client.iter_trades(SPAN_MARKET, min_ts=lo, max_ts=hi, limit=7))
        client.close()
        paths = dict(server.stats.paths)
    ids = [t.trade_id for t in trades]
    assert len(ids) == 48 == len(set(ids))  # 6 overlap trades served twice, yielded once
    assert sum(t.count for t in trades) == sum(D(i + 1) for i in range(48))
    assert paths["GET /historical/trades"] == 4  # 24 historical / 7 per page
    assert paths["GET /markets/trades"] == 5  # 24 live + 6 overlapping / 7 per page

    client = make_client()
    before = list(client.iter_trades(SPAN_MARKET, max_ts=CUT - timedelta(hours=1)))
    after = list(client.iter_trades(SPAN_MARKET, min_ts=CUT))
    assert (len(before), len(after)) == (19, 24)


def test_legacy_ticker_only_on_the_historical_tier(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client(signed=False)
    market = client.get_market(LEGACY)
    assert market["ticker"] == LEGACY
    assert server.stats.paths[f"GET /markets/{LEGACY}"] == 1  # 404 on live first
    assert server.stats.paths[f"GET /historical/markets/{LEGACY}"] == 1
    tickers = {m["ticker"] for m in client.iter_markets(series_ticker="KXHIGHNY")}
    assert {LEGACY, "KXHIGHNY-26MAY01-T70", SPAN_MARKET, f"{LIVE_EVENT}-T80"} <= tickers
    assert LEGACY not in {m["ticker"] for m in client.iter_markets(status="open")}
    candles = client.get_candlesticks("KXHIGHNY", LEGACY, 0, 2_000_000_000)
    assert len(candles) == 5
    assert candles[0].yes_bid_close == D("0.4100") and candles[0].volume == D("2.50")
    assert server.stats.paths[f"GET /historical/markets/{LEGACY}/candlesticks"] == 1
    assert server.stats.paths[f"GET /series/KXHIGHNY/markets/{LEGACY}/candlesticks"] == 0


def test_candles_of_an_unseen_market_are_routed_by_its_tier(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client(signed=False)
    assert client.get_candlesticks("KXHIGHNY", "KXHIGHNY-26MAY01-T70", 0, 2_000_000_000) == []
    assert server.stats.paths["GET /historical/markets/KXHIGHNY-26MAY01-T70/candlesticks"] == 1
    cutoff = client.historical_cutoff()
    assert cutoff.trades_created_ts == CUT
    assert client.historical_cutoff(refresh=True) == cutoff
    assert server.stats.paths["GET /historical/cutoff"] == 2


# ----------------------------------------------------------------------------- portfolio


def test_signed_portfolio_reads(server: KalshiRestServer, make_client: MakeClient) -> None:
    client = make_client()
    assert client.balance().balance == D("1000.00")
    [position] = list(client.iter_positions())
    assert position.position == D(-3)
    [fill] = list(client.iter_fills(ticker=f"{LIVE_EVENT}-T80"))
    assert fill.fee_cost == D("0.0400") and fill.no_price == D("0.8500")
    assert server.stats.statuses[401] == 0


def test_a_bad_signature_is_refused(server: KalshiRestServer, make_client: MakeClient) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = make_client(signed=False)
    client.signer = KalshiSigner(KEY_ID, other)
    with pytest.raises(KalshiApiError) as info:
        client.balance()
    assert info.value.status == 401 and info.value.code == "authentication_error"
    with pytest.raises(KalshiApiError):  # a signed public request is verified too
        client.get_series("KXHIGHNY")


def test_authenticated_calls_without_a_signer_raise_before_sending(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client(signed=False)
    order = OrderRequest.buy_yes(f"{LIVE_EVENT}-T80", D("0.10"), D(1))
    calls: list[Callable[[], object]] = [
        client.balance,
        lambda: list(client.iter_orders()),
        lambda: client.create_order(order),
        lambda: client.cancel_order("o1"),
        client.size_limits_from_account,
    ]
    for call in calls:
        with pytest.raises(CredentialsMissingError, match="KALSHI_API_KEY_ID"):
            call()
    assert server.stats.requests == 0


def test_order_lifecycle(server: KalshiRestServer, make_client: MakeClient) -> None:
    client = make_client()
    ticker = f"{LIVE_EVENT}-T80"
    order = OrderRequest.buy_no(ticker, D("0.70"), D(5), post_only=True)
    ack = client.create_order(order, price_ranges=client.get_market(ticker))
    assert ack.client_order_id == order.client_order_id and ack.remaining_count == D(5)
    placed = client.get_order(ack.order_id)
    assert (placed.book_side, placed.yes_price, placed.status) == ("ask", D("0.30"), "resting")
    found = client.find_order_by_client_id(order.client_order_id, ticker=ticker)
    assert found is not None and found.order_id == ack.order_id
    amended = client.amend_order(
        ack.order_id, ticker=ticker, side="ask", price=D("0.31"), count=D(4)
    )
    assert amended.remaining_count == D(4)
    decreased = client.decrease_order(ack.order_id, reduce_by=D(1))
    assert decreased.reduced_by == D(1)
    assert client.get_order(ack.order_id).remaining_count == D(3)
    cancelled = client.cancel_order(ack.order_id, market_ticker=ticker)
    assert cancelled.reduced_by == D(3)
    assert client.get_order(ack.order_id).status == "canceled"
    second = client.create_order(OrderRequest.buy_yes(ticker, D("0.05"), D(1)))
    assert client.cancel_all()["order_ids"] == [second.order_id]
    with pytest.raises(ValueError, match="tick"):
        client.create_order(
            OrderRequest.buy_yes(ticker, D("0.055"), D(1)), price_ranges=client.get_market(ticker)
        )
    with pytest.raises(KalshiApiError) as info:  # the server checks ticks too
        client.create_order(OrderRequest.buy_yes(ticker, D("0.055"), D(1)))
    assert info.value.status == 400 and info.value.code == "invalid_price"
    with pytest.raises(KalshiApiError) as closed:
        client.create_order(OrderRequest.buy_yes(SPAN_MARKET, D("0.05"), D(1)))
    assert closed.value.code == "MARKET_INACTIVE"


def test_create_after_a_timeout_reconciles_instead_of_duplicating(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client(timeout_s=0.3)
    order = OrderRequest.buy_yes(f"{LIVE_EVENT}-T82", D("0.20"), D(2))
    server.delay_next(0.8, method="POST", path="/portfolio/events/orders")
    ack = client.create_order(order)
    assert len(server.orders) == 1
    assert server.orders[0]["order_id"] == ack.order_id
    assert server.orders[0]["client_order_id"] == order.client_order_id
    assert client.stats.transport_errors == 1
    assert server.stats.paths["POST /portfolio/events/orders"] == 1  # never resent
    # Resending the same request (same client_order_id) names the same order.
    assert client.create_order(order).order_id == ack.order_id
    assert len(server.orders) == 1


def test_create_after_a_5xx_resends_with_the_same_client_order_id(
    server: KalshiRestServer, make_client: MakeClient
) -> None:
    client = make_client()
    order = OrderRequest.buy_yes(f"{LIVE_EVENT}-T83", D("0.20"), D(2))
    server.fail_next(1, 500, method="POST")  # refused before processing: nothing exists
    server.fail_next(2, 429, method="POST")
    ack = client.create_order(order)
    assert [o["client_order_id"] for o in server.orders] == [order.client_order_id]
    assert ack.order_id == server.orders[0]["order_id"]
    assert server.stats.paths["GET /portfolio/orders"] == 1  # one reconcile, after the 500 only
    assert server.stats.paths["POST /portfolio/events/orders"] == 4


# ----------------------------------------------------------------------------- settings, secrets


def test_from_settings_signs_when_both_key_settings_are_set(
    server: KalshiRestServer, private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "kalshi.pem"
    pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    settings = Settings(
        kalshi_rest_base_url=server.url,
        kalshi_api_key_id=SecretStr(KEY_ID),
        kalshi_private_key_path=pem,
        http_timeout_s=3.0,
    )
    with KalshiRest.from_settings(settings, retry=FAST) as client:
        assert client.signer is not None and client.base_url == server.url
        assert client.balance().balance == D("1000.00")
        assert "BEGIN" not in repr(client)
    unsigned = Settings(kalshi_rest_base_url=server.url, kalshi_api_key_id=SecretStr(KEY_ID))
    with KalshiRest.from_settings(unsigned) as client:
        assert client.signer is None


def test_secrets_never_reach_logs_or_errors(
    httpserver: HTTPServer,
    private_key: rsa.RSAPrivateKey,
    signer: KalshiSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base = "/trade-api/v2"
    for _ in range(2):
        httpserver.expect_oneshot_request(f"{base}/portfolio/balance").respond_with_json(
            {"code": "internal_server_error", "message": "boom"}, status=500
        )
    httpserver.expect_oneshot_request(f"{base}/portfolio/balance").respond_with_json(
        {"code": "authentication_error", "message": "invalid signature"}, status=401
    )
    errors: list[str] = []
    with KalshiRest(httpserver.url_for(base), signer=signer, retry=FAST) as client:
        with pytest.raises(KalshiApiError) as info:
            client.balance()
        errors += [str(info.value), repr(info.value), str(info.value.body), repr(client)]
        with pytest.raises(SourceError) as gone:  # nothing left to answer: 500 from the server
            client.create_order(OrderRequest.buy_yes("T", D("0.5"), D(1)))
        errors += [str(gone.value), repr(gone.value)]
    signatures = [req.headers[SIGNATURE_HEADER] for req, _ in httpserver.log]
    assert len(signatures) >= 3
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    secret_lines = [line for line in pem.splitlines() if line and "-----" not in line]
    haystack = caplog.text + "\n".join(errors)
    assert "invalid signature" in haystack  # the server's message does come through
    for secret in [*signatures, *secret_lines]:
        assert secret not in haystack
    assert "KALSHI-ACCESS-SIGNATURE" not in haystack


def test_transport_failure_message_names_no_headers(signer: KalshiSigner) -> None:
    with httpx.Client(timeout=0.5) as http:
        client = KalshiRest(
            "http://127.0.0.1:9/trade-api/v2",
            signer=signer,
            client=http,
            retry=RetryPolicy(base_delay_s=0.001, max_attempts=2),
        )
        with pytest.raises(SourceError, match="gave up after 2 attempts") as info:
            client.get_series("KXHIGHNY")
    assert "KALSHI" not in str(info.value)
