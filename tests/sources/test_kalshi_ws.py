"""The WebSocket client against the loopback Kalshi server: every recovery path on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from kwx.config import Settings
from kwx.sim.kalshi_ws_server import KalshiWsServer
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_auth import KEY_HEADER, KalshiSigner
from kwx.sources.kalshi_ws import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Connected,
    Disconnected,
    EventHandlerError,
    FillMsg,
    KalshiWebSocket,
    KalshiWsAuthError,
    LifecycleMsg,
    Resynced,
    ServerError,
    TickerMsg,
    TradeMsg,
    UserOrderMsg,
    WsEvent,
)
from kwx.sources.orderbook import OrderBook

D = Decimal
A, B = "KXHIGHCHI-26SEP15-B81.5", "KXHIGHCHI-26SEP15-B83.5"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
KEY_ID = "ws-test-key"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout_s: float = 15.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout_s)

    asyncio.run(bounded())


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Stream:
    """A running client plus everything it reported."""

    def __init__(self, client: KalshiWebSocket, events: list[WsEvent]) -> None:
        self.client = client
        self.events = events

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def streaming(
    server: KalshiWsServer, tickers: list[str], **kwargs: Any
) -> AsyncIterator[Stream]:
    events: list[WsEvent] = []

    async def on_event(event: WsEvent) -> None:
        events.append(event)

    client = KalshiWebSocket(
        server.url, tickers, on_event=on_event, backoff=FAST, rng=random.Random(1), **kwargs
    )
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    stream = Stream(client, events)
    try:
        await until(lambda: all(t in client.books for t in tickers), "first snapshots")
        yield stream
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def books_match(server: KalshiWsServer, stream: Stream, ticker: str) -> bool:
    book = stream.client.books.get(ticker)
    if book is None:
        return False
    yes, no = server.book(ticker, book.use_yes_price)
    return book.levels("yes") == yes and book.levels("no") == no


def seed(server: KalshiWsServer) -> None:
    server.set_book(A, [(D("0.40"), D(10)), (D("0.41"), D(3))], [(D("0.55"), D(5))])
    server.set_book(B, [(D("0.10"), D(1))], [(D("0.85"), D("2.5"))])


def random_deltas(server: KalshiWsServer, rng: random.Random, n: int) -> None:
    for _ in range(n):
        side = rng.choice(["yes", "no"])
        price = D(rng.randint(1, 99)) / 100
        delta = D(rng.randint(-500, 1000)) / 100
        server.feed_delta(rng.choice([A, B]), side, price, delta)


def subscribe_commands(server: KalshiWsServer, channel: str) -> list[dict[str, Any]]:
    return [
        c
        for c in server.received
        if c.get("cmd") == "subscribe" and c["params"]["channels"] == [channel]
    ]


# ----------------------------------------------------------------------------- handshake


def test_signed_handshake_is_verified_and_private_channels_follow(
    private_key: rsa.RSAPrivateKey,
) -> None:
    async def scenario() -> None:
        async with KalshiWsServer(public_key=private_key.public_key(), key_id=KEY_ID) as server:
            seed(server)
            signer = KalshiSigner(KEY_ID, private_key)
            async with streaming(server, [A], signer=signer) as stream:
                assert books_match(server, stream, A)
                await until(lambda: len(server.subscriptions()) == 6, "all subscriptions")
            assert server.handshakes[0].accepted
            assert server.handshakes[0].headers[KEY_HEADER] == KEY_ID
            channels = {
                c["params"]["channels"][0] for c in server.received if c["cmd"] == "subscribe"
            }
            assert channels == {
                "orderbook_delta",
                "ticker",
                "trade",
                "fill",
                "user_orders",
                "market_lifecycle_v2",
            }
            ids = [c["id"] for c in server.received]
            assert len(ids) == len(set(ids))

    run(scenario)


def test_from_settings_signs_with_the_configured_key(
    private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "kalshi.pem"
    pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )

    async def scenario() -> None:
        async with KalshiWsServer(public_key=private_key.public_key(), key_id=KEY_ID) as server:
            seed(server)
            settings = Settings(
                KALSHI_WS_URL=server.url,
                kalshi_api_key_id=SecretStr(KEY_ID),
                kalshi_private_key_path=pem,
            )
            client = KalshiWebSocket.from_settings(settings, [A], backoff=FAST)
            assert client.url == server.url
            assert client.signer is not None and client.signer.key_id == KEY_ID
            stop = asyncio.Event()
            task = asyncio.create_task(client.run(stop))
            await until(lambda: A in client.books, "a signed session")
            stop.set()
            await task
            assert [h.status for h in server.handshakes] == [101]

    run(scenario)


def test_wrong_key_is_refused_with_401_and_reported(private_key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> None:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        async with KalshiWsServer(public_key=private_key.public_key()) as server:
            for signer in (KalshiSigner(KEY_ID, other), None):
                events: list[WsEvent] = []

                async def on_event(event: WsEvent, sink: list[WsEvent] = events) -> None:
                    sink.append(event)

                client = KalshiWebSocket(
                    server.url, [A], signer=signer, on_event=on_event, backoff=FAST
                )
                with pytest.raises(KalshiWsAuthError) as info:
                    await client.run(asyncio.Event())
                assert info.value.status == 401
                assert [e.status for e in events if isinstance(e, Disconnected)] == [401]
            assert [h.status for h in server.handshakes] == [401, 401]
            assert server.connections == 0

    run(scenario)


# ----------------------------------------------------------------------------- books


@pytest.mark.parametrize("use_yes_price", [True, False])
def test_snapshot_and_deltas_build_the_servers_book(use_yes_price: bool) -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A, B], use_yes_price=use_yes_price) as stream:
                random_deltas(server, random.Random(7), 300)
                server.feed_delta(A, "no", D("0.55"), D(-5), client_order_id="my-order")
                await server.drain()
                await until(
                    lambda: books_match(server, stream, A) and books_match(server, stream, B),
                    "books to match",
                )
                book = stream.client.books[A]
                assert book.use_yes_price is use_yes_price
                assert stream.client.stats.gaps == 0
                assert stream.client.stats.resyncs == 0
                assert any(
                    isinstance(e, BookDelta) and e.client_order_id == "my-order"
                    for e in stream.events
                )
            # The flag is always on the wire, whichever value it has.
            (cmd,) = subscribe_commands(server, "orderbook_delta")
            assert cmd["params"]["use_yes_price"] is use_yes_price
            assert cmd["params"]["market_tickers"] == [A, B]
            # Events replayed onto empty books give the client's books: they are consistent.
            replayed: dict[str, OrderBook] = {}
            for event in stream.events:
                if isinstance(event, BookSnapshot):
                    replayed[event.ticker] = OrderBook(event.ticker, event.use_yes_price)
                    replayed[event.ticker].apply_snapshot(event.yes, event.no)
                elif isinstance(event, BookDelta):
                    replayed[event.ticker].apply_delta(event.side, event.price, event.delta)
            for ticker in (A, B):
                yes, no = server.book(ticker, use_yes_price)
                assert replayed[ticker].levels("yes") == yes
                assert replayed[ticker].levels("no") == no

    run(scenario)


def test_seq_gap_resyncs_with_get_snapshot_and_converges() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A, B]) as stream:
                server.inject_gap()
                random_deltas(server, random.Random(3), 40)
                await server.drain()
                await until(
                    lambda: books_match(server, stream, A) and books_match(server, stream, B),
                    "books to converge",
                )
                stats = stream.client.stats
                assert (stats.gaps, stats.resyncs, stats.resubscribes) == (1, 1, 0)
                assert {e.ticker for e in stream.of(Resynced)} == {A, B}
                assert {e.reason for e in stream.of(BookInvalidated)} == {"gap"}
            resyncs = [c for c in server.received if c["cmd"] == "update_subscription"]
            assert len(resyncs) == 1
            assert resyncs[0]["params"]["action"] == "get_snapshot"
            assert resyncs[0]["params"]["market_tickers"] == [A, B]
            assert server.connections == 1

    run(scenario)


def test_exact_duplicate_is_dropped_without_resync() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A]) as stream:
                server.inject_duplicate()
                server.feed_delta(A, "yes", D("0.41"), D(2))
                server.feed_delta(A, "yes", D("0.42"), D(1))
                await server.drain()
                await until(lambda: stream.client.stats.deltas == 2, "two deltas")
                assert books_match(server, stream, A)
                assert stream.client.books[A].size_at("yes", D("0.41")) == D(5)
                stats = stream.client.stats
                assert (stats.duplicates, stats.resyncs, stats.gaps, stats.resets) == (1, 0, 0, 0)

    run(scenario)


def test_out_of_order_messages_resync_once() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A]) as stream:
                server.inject_reorder()
                server.feed_delta(A, "yes", D("0.30"), D(1))
                server.feed_delta(A, "yes", D("0.31"), D(1))
                server.feed_delta(A, "no", D("0.60"), D(4))
                await server.drain()
                await until(
                    lambda: stream.client.stats.resyncs == 1 and books_match(server, stream, A),
                    "resync",
                )
                assert stream.client.stats.stale == 1  # the late half of the swapped pair
                assert [e.reason for e in stream.of(Resynced)] == ["gap"]

    run(scenario)


def test_malformed_frames_are_logged_kept_and_skipped() -> None:
    async def scenario() -> None:
        seen: list[tuple[str, str]] = []
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(
                server, [A], on_bad_frame=lambda raw, why: seen.append((raw, why))
            ) as stream:
                bad = [
                    '{"type": "orderbook_delta", "sid": 1, "msg": ',
                    "[1, 2, 3]",
                    json.dumps({"type": "orderbook_delta", "sid": 1, "seq": 99, "msg": {}}),
                    json.dumps(
                        {
                            "type": "orderbook_delta",
                            "sid": 1,
                            "seq": 99,
                            "msg": {"market_ticker": A, "side": "maybe", "price_dollars": "0.5"},
                        }
                    ),
                    json.dumps({"type": "trade", "sid": 2, "msg": {"market_ticker": A}}),
                ]
                for raw in bad:
                    server.send_malformed(raw)
                server.feed_delta(A, "yes", D("0.20"), D(1))
                await server.drain()
                await until(lambda: stream.client.stats.deltas == 1, "the good delta")
                assert books_match(server, stream, A)
                assert stream.client.bad_frames == bad
                assert [raw for raw, _ in seen] == bad
                assert stream.client.stats.bad_frames == len(bad)
                assert stream.client.stats.resyncs == 0  # a bad frame moves no seq
                for _ in range(105):
                    server.send_malformed("x")
                await server.drain()
                await until(lambda: stream.client.stats.bad_frames == len(bad) + 105, "all bad")
                assert stream.client.bad_frames == ["x"] * 100

    run(scenario)


def test_disconnect_mid_stream_reconnects_resubscribes_and_rebuilds() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A, B]) as stream:
                server.drop_after(3)
                random_deltas(server, random.Random(11), 10)
                await until(lambda: stream.of(Disconnected) != [], "the drop")
                random_deltas(server, random.Random(12), 10)  # while the client is away
                await until(lambda: server.connections == 2, "the reconnect")
                await until(
                    lambda: books_match(server, stream, A) and books_match(server, stream, B),
                    "rebuilt books",
                )
                assert [e.conn for e in stream.of(Connected)] == [1, 2]
                assert stream.client.stats.reconnects == 1
                assert {e.reason for e in stream.of(BookInvalidated)} == {"disconnect"}
                rebuilt = [e for e in stream.of(BookSnapshot) if e.conn == 2]
                assert {e.ticker for e in rebuilt} == {A, B}
            assert len(subscribe_commands(server, "orderbook_delta")) == 2
            # Command ids restart per connection; both connections began at 1.
            assert [c["id"] for c in server.received].count(1) == 2

    run(scenario)


def test_error_17_resubscribes_the_sid() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A]) as stream:
                (old_sid,) = server.send_error(17)
                await until(
                    lambda: (
                        [s for s, _, _ in server.subscriptions("orderbook_delta")]
                        not in ([], [old_sid])
                    ),
                    "the new subscription",
                )
                server.feed_delta(A, "no", D("0.55"), D(-1))
                await server.drain()
                await until(lambda: books_match(server, stream, A), "book after resubscribe")
                assert stream.client.subscriptions["orderbook_delta"] != old_sid
                assert stream.client.stats.resubscribes == 1
                assert [e.code for e in stream.of(ServerError)] == [17]
                assert [e.reason for e in stream.of(Resynced)] == ["error 17"]
            unsub = [c for c in server.received if c["cmd"] == "unsubscribe"]
            assert unsub[0]["params"] == {"sids": [old_sid]}
            assert len(subscribe_commands(server, "orderbook_delta")) == 2

    run(scenario)


def test_refused_get_snapshot_falls_back_to_resubscribe() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A]) as stream:
                server.refuse_get_snapshot()
                server.inject_gap()
                random_deltas(server, random.Random(5), 5)
                server.feed_delta(A, "yes", D("0.05"), D(1))
                await server.drain()
                await until(
                    lambda: (
                        stream.client.stats.resubscribes == 1 and books_match(server, stream, A)
                    ),
                    "fallback resubscribe",
                )
            assert len(subscribe_commands(server, "orderbook_delta")) == 2

    run(scenario)


# ----------------------------------------------------------------------------- other channels


def test_trade_ticker_and_account_messages_become_typed_events() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A], private_channels=True) as stream:
                await until(lambda: len(server.subscriptions()) == 6, "subscriptions")
                trade = server.feed_trade(A, D("0.42"), D("3"), taker_side="no")
                server.feed_trade(B, D("0.10"), D(1))  # not subscribed: filtered by the server
                server.feed_ticker(A, price=D("0.42"), volume=D(10))
                server.feed_raw(
                    "fill",
                    "fill",
                    {
                        "trade_id": "t-1",
                        "order_id": "o-1",
                        "market_ticker": A,
                        "is_taker": True,
                        "yes_price_dollars": "0.4200",
                        "count_fp": "2.00",
                        "fee_cost": "0.0300",
                        "outcome_side": "yes",
                        "book_side": "bid",
                        "post_position_fp": "2.00",
                        "client_order_id": "c-1",
                        "ts": 1_760_000_000,
                    },
                )
                server.feed_raw(
                    "user_orders",
                    "user_order",
                    {
                        "order_id": "o-1",
                        "ticker": A,
                        "status": "resting",
                        "yes_price_dollars": "0.4100",
                        "fill_count_fp": "0.00",
                        "remaining_count_fp": "5.00",
                        "initial_count_fp": "5.00",
                        "client_order_id": "c-1",
                    },
                )
                server.feed_raw(
                    "market_lifecycle_v2",
                    "market_lifecycle_v2",
                    {"market_ticker": A, "event_type": "determined", "result": "yes"},
                )
                await server.drain()
                await until(lambda: len(stream.of(LifecycleMsg)) == 1, "lifecycle")
            (t,) = stream.of(TradeMsg)
            assert (t.trade_id, t.ticker, t.yes_price, t.no_price) == (
                trade["trade_id"],
                A,
                D("0.42"),
                D("0.58"),
            )
            assert (t.count, t.taker_side, t.is_block_trade) == (D(3), "no", False)
            assert t.ts.timestamp() * 1000 == trade["ts_ms"]
            (tick,) = stream.of(TickerMsg)
            assert (tick.yes_bid, tick.yes_ask, tick.price) == (D("0.41"), D("0.45"), D("0.42"))
            (fill,) = stream.of(FillMsg)
            assert (fill.order_id, fill.count, fill.no_price, fill.client_order_id) == (
                "o-1",
                D(2),
                D("0.58"),
                "c-1",
            )
            (order,) = stream.of(UserOrderMsg)
            assert (order.status, order.remaining_count) == ("resting", D(5))
            assert stream.of(LifecycleMsg)[0].raw["result"] == "yes"

    run(scenario)


def test_add_markets_follows_a_new_market_without_reconnecting() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)
            async with streaming(server, [A]) as stream:
                await stream.client.add_markets([B, A])
                await until(lambda: books_match(server, stream, B), "the new market's book")
                server.feed_delta(B, "yes", D("0.11"), D(4))
                await server.drain()
                await until(lambda: books_match(server, stream, B), "delta on the new market")
                assert stream.client.market_tickers == [A, B]
            adds = [c for c in server.received if c["cmd"] == "update_subscription"]
            assert {c["params"]["action"] for c in adds} == {"add_markets"}
            assert all(c["params"]["market_tickers"] == [B] for c in adds)
            assert len(adds) == 3  # orderbook_delta, ticker, trade
            assert server.connections == 1

    run(scenario)


def test_a_failing_callback_ends_run_instead_of_being_swallowed() -> None:
    async def scenario() -> None:
        async with KalshiWsServer() as server:
            seed(server)

            async def on_event(event: WsEvent) -> None:
                if isinstance(event, BookSnapshot):
                    raise ValueError("disk full")

            client = KalshiWebSocket(server.url, [A], on_event=on_event, backoff=FAST)
            with pytest.raises(EventHandlerError) as info:
                await client.run(asyncio.Event())
            assert isinstance(info.value.__cause__, ValueError)
            assert client.stats.bad_frames == 0

    run(scenario)
