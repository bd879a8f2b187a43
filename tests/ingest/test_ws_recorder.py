"""The recorder: a live loopback stream into a real PostgreSQL, then the same events again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from kwx.config import Settings
from kwx.ingest.ws_recorder import SID_STRIDE, Recorder
from kwx.sim.kalshi_ws_server import KalshiWsServer
from kwx.sources.http import RetryPolicy
from kwx.sources.kalshi_ws import (
    BookDelta,
    BookSnapshot,
    Connected,
    KalshiWebSocket,
    TradeMsg,
    WsEvent,
)
from kwx.sources.orderbook import OrderBook
from kwx.store.engine import StoreError, connect

D = Decimal
A, B = "KXHIGHMIA-26SEP15-B88.5", "KXHIGHMIA-26SEP15-B90.5"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
TRADE_ID = "6f1c2b9e-6a4e-4a53-9a7c-3c2f0e4b1d11"


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 20)

    asyncio.run(bounded())


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def counts(settings: Settings) -> tuple[int, ...]:
    with connect(settings) as conn:
        return tuple(
            len(conn.execute(f"SELECT 1 FROM {table}").fetchall())
            for table in ("md.orderbook_snapshot", "md.orderbook_delta", "md.trades")
        )


def book_from_store(conn: psycopg.Connection[tuple[Any, ...]], ticker: str) -> OrderBook:
    """The last stored snapshot plus the deltas after it on the last connection's sid."""
    ts, seq, use_yes = conn.execute(
        "SELECT ts, seq, use_yes_price FROM md.orderbook_snapshot WHERE ticker = %s "
        "ORDER BY ts DESC LIMIT 1",
        (ticker,),
    ).fetchone() or (None, None, None)
    book = OrderBook(ticker, bool(use_yes))
    rows = conn.execute(
        "SELECT side, price, size FROM md.orderbook_snapshot WHERE ticker = %s AND ts = %s",
        (ticker, ts),
    ).fetchall()
    book.apply_snapshot(
        [(p, s) for side, p, s in rows if side == "yes"],
        [(p, s) for side, p, s in rows if side == "no"],
    )
    for side, price, delta in conn.execute(
        "SELECT side, price, delta FROM md.orderbook_delta WHERE ticker = %s AND seq > %s "
        "AND sid = (SELECT max(sid) FROM md.orderbook_delta) ORDER BY seq",
        (ticker, seq),
    ):
        book.apply_delta(side, price, delta)
    return book


def test_stream_is_recorded_and_a_replay_changes_nothing(settings: Settings) -> None:
    events: list[WsEvent] = []

    async def scenario() -> None:
        async with KalshiWsServer() as server:
            server.set_book(A, [(D("0.40"), D(10))], [(D("0.55"), D(5)), (D("0.50"), D("1.5"))])
            server.set_book(B, [(D("0.05"), D(2))], [])
            async with Recorder(settings, flush_every=7, flush_interval_s=0.05) as rec:

                async def on_event(event: WsEvent) -> None:
                    events.append(event)
                    await rec.on_event(event)

                client = KalshiWebSocket(server.url, [A, B], on_event=on_event, backoff=FAST)
                stop = asyncio.Event()
                task = asyncio.create_task(client.run(stop))
                await until(lambda: len(client.books) == 2, "snapshots")
                rng = random.Random(2)
                for _ in range(25):
                    server.feed_delta(
                        rng.choice([A, B]),
                        rng.choice(["yes", "no"]),
                        D(rng.randint(1, 99)) / 100,
                        D(rng.randint(-300, 900)) / 100,
                    )
                server.feed_trade(A, D("0.42"), D(3), trade_id=TRADE_ID)
                server.feed_trade(A, D("0.42"), D(3), trade_id=TRADE_ID)  # a redelivered print
                server.feed_trade(B, D("0.07"), D("0.5"), taker_side="no")
                await server.drain()
                server.drop_after(2)
                server.feed_delta(A, "yes", D("0.41"), D(1))
                server.feed_delta(A, "yes", D("0.41"), D(1))
                await until(lambda: server.connections == 2 and len(client.books) == 2, "reconnect")
                for _ in range(10):
                    server.feed_delta(
                        A, rng.choice(["yes", "no"]), D(rng.randint(1, 99)) / 100, D(2)
                    )
                await server.drain()

                def caught_up() -> bool:
                    book = client.books.get(A)
                    return book is not None and (
                        book.levels("yes"),
                        book.levels("no"),
                    ) == server.book(A, True)

                await until(caught_up, "client to catch up")
                stop.set()
                await task
                assert rec.connection_base == 0
            assert rec.pending_events == 0
            assert rec.stats.flushes >= 2

            snapshot_levels = sum(
                len(e.yes) + len(e.no) for e in events if isinstance(e, BookSnapshot)
            )
            deltas = [e for e in events if isinstance(e, BookDelta)]
            trades = [e for e in events if isinstance(e, TradeMsg)]
            assert [e.conn for e in events if isinstance(e, Connected)] == [1, 2]
            assert len(trades) == 3
            assert counts(settings) == (snapshot_levels, len(deltas), 2)

            with connect(settings) as conn:
                sids = conn.execute("SELECT DISTINCT sid FROM md.orderbook_delta ORDER BY 1")
                assert [s for (s,) in sids] == [1 * SID_STRIDE + 1, 2 * SID_STRIDE + 1]
                flags = conn.execute(
                    "SELECT DISTINCT use_yes_price FROM md.orderbook_snapshot "
                    "UNION SELECT DISTINCT use_yes_price FROM md.orderbook_delta"
                ).fetchall()
                assert flags == [(True,)]
                stored = book_from_store(conn, A)
                yes, no = server.book(A, True)
                assert (stored.levels("yes"), stored.levels("no")) == (yes, no)
                trade = conn.execute(
                    "SELECT count_fp, yes_price, no_price, taker_side FROM md.trades "
                    "WHERE trade_id = %s",
                    (TRADE_ID,),
                ).fetchone()
                assert trade == (D(3), D("0.42"), D("0.58"), "yes")

            before = counts(settings)
            # The same events again, into a recorder that maps connections the same way ...
            async with Recorder(settings, flush_every=5, connection_base=0) as replay:
                for event in events:
                    await replay.on_event(event)
            assert counts(settings) == before
            assert replay.stats.delta_rows == replay.stats.snapshot_rows == 0
            # ... while a restarted recorder continues after the connections already stored.
            async with Recorder(settings) as restarted:
                assert restarted.connection_base == 2
                assert restarted.stored_sid(1, 1) == 3 * SID_STRIDE + 1

    run(scenario)


def test_failed_flush_keeps_rows_and_odd_trades_are_set_aside(settings: Settings) -> None:
    now = datetime(2026, 9, 15, 15, 0, tzinfo=UTC)
    good_trade = TradeMsg(TRADE_ID, A, now, D(1), D("0.3"), D("0.7"), "yes", False)
    bad_trade = TradeMsg("not-a-uuid", A, now, D(1), D("0.3"), D("0.7"), "yes", False)
    snapshot = BookSnapshot(A, now, ((D("0.30"), D(4)),), (), 1, 1, True, 1)
    delta = BookDelta(A, now, "yes", D("0.30"), D(-1), 1, 2, True, None, 1)
    down = Settings(
        kwx_database_url=SecretStr("postgresql://kwx@127.0.0.1:9/none?connect_timeout=2"),
        kwx_data_dir=settings.kwx_data_dir,
    )

    async def scenario() -> None:
        rec = Recorder(down, flush_every=1000, flush_interval_s=0, connection_base=0)
        for event in (snapshot, delta, good_trade, bad_trade):
            await rec.on_event(event)
        with pytest.raises(StoreError):
            await rec.flush()
        assert rec.stats.flush_errors == 1
        assert rec.pending_events == 3
        rec.settings = settings
        result = await rec.flush()
        assert (result.snapshot_rows, result.delta_rows, result.trade_rows) == (1, 1, 1)
        assert [reason for _, reason in rec.rejected] == ["trade_id is not a UUID"]
        await rec.close()

    run(scenario)
    assert counts(settings) == (1, 1, 1)
