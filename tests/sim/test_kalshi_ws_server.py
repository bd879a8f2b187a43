"""The Kalshi WebSocket simulator as a raw client sees it (plain `websockets`, no kwx client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from kwx.sim.kalshi_ws_server import WS_PATH, KalshiWsServer
from kwx.sources.kalshi_auth import KalshiSigner

D = Decimal
A, B = "KXHIGHNY-26SEP15-B70.5", "KXHIGHNY-26SEP15-B72.5"


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 10)

    asyncio.run(bounded())


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert isinstance(frame, dict)
    return frame


async def send(ws: ClientConnection, cmd_id: int, cmd: str, **params: Any) -> None:
    frame: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if params:
        frame["params"] = params
    await ws.send(json.dumps(frame))


def seeded(**kwargs: Any) -> KalshiWsServer:
    server = KalshiWsServer(**kwargs)
    server.set_book(A, [(D("0.40"), D(10))], [(D("0.55"), D(5)), (D("0.50"), D(1))])
    return server


def test_handshake_signature_path_and_skew_are_checked() -> None:
    async def scenario() -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        async with KalshiWsServer(public_key=key.public_key(), key_id="k1") as server:
            good = KalshiSigner("k1", key)
            async with connect(server.url, additional_headers=good.headers("GET", WS_PATH)):
                pass
            stale = KalshiSigner("k1", key, clock_ms=lambda: 1_000)
            wrong_id = KalshiSigner("k2", key)
            wrong_path = server.url.replace(WS_PATH, "/trade-api/ws/v1")
            for url, headers in (
                (server.url, None),
                (server.url, stale.headers("GET", WS_PATH)),
                (server.url, wrong_id.headers("GET", WS_PATH)),
                (server.url, good.headers("GET", "/trade-api/v2/portfolio/balance")),
                (wrong_path, good.headers("GET", "/trade-api/ws/v1")),
            ):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(url, additional_headers=headers):
                        pass
                assert info.value.response.status_code in (401, 404)
            assert [h.status for h in server.handshakes] == [101, 401, 401, 401, 401, 404]

    run(scenario)


def test_subscribe_snapshot_and_deltas_in_both_conventions() -> None:
    async def scenario() -> None:
        async with seeded() as server, connect(server.url) as ws:
            await send(ws, 1, "subscribe", channels=["orderbook_delta"], market_tickers=[A])
            await send(
                ws,
                2,
                "subscribe",
                channels=["orderbook_delta"],
                market_ticker=A,
                use_yes_price=True,
            )
            frames = [await recv(ws) for _ in range(4)]
            assert frames[0] == {
                "id": 1,
                "type": "subscribed",
                "msg": {"channel": "orderbook_delta", "sid": 1},
            }
            legacy = frames[1]
            assert (legacy["type"], legacy["sid"], legacy["seq"]) == ("orderbook_snapshot", 1, 1)
            assert legacy["msg"]["yes_dollars_fp"] == [["0.4000", "10.00"]]
            assert legacy["msg"]["no_dollars_fp"] == [["0.5000", "1.00"], ["0.5500", "5.00"]]
            modern = frames[3]
            assert (modern["sid"], modern["seq"]) == (2, 1)
            assert modern["msg"]["no_dollars_fp"] == [["0.4500", "5.00"], ["0.5000", "1.00"]]

            server.feed_delta(A, "no", D("0.55"), D(-2))
            d1, d2 = await recv(ws), await recv(ws)
            assert (d1["sid"], d1["seq"], d1["msg"]["price_dollars"]) == (1, 2, "0.5500")
            assert (d2["sid"], d2["seq"], d2["msg"]["price_dollars"]) == (2, 2, "0.4500")
            assert d1["msg"]["delta_fp"] == "-2.00"
            assert d1["msg"]["side"] == "no"
            assert isinstance(d1["msg"]["ts_ms"], int)
            assert server.book(A, use_yes_price=True) == (
                [(D("0.40"), D(10))],
                [(D("0.45"), D(3)), (D("0.50"), D(1))],
            )

    run(scenario)


def test_update_unsubscribe_and_list_reply_shapes() -> None:
    async def scenario() -> None:
        async with seeded() as server, connect(server.url) as ws:
            await send(ws, 1, "subscribe", channels=["orderbook_delta"], market_tickers=[A])
            await recv(ws), await recv(ws)
            await send(
                ws, 2, "update_subscription", sids=[1], market_tickers=[B], action="add_markets"
            )
            ok = await recv(ws)
            assert ok == {
                "id": 2,
                "sid": 1,
                "seq": 2,
                "type": "ok",
                "msg": {"market_tickers": [A, B]},
            }
            snap = await recv(ws)
            assert (snap["type"], snap["seq"], snap["msg"]["market_ticker"]) == (
                "orderbook_snapshot",
                3,
                B,
            )
            assert "yes_dollars_fp" not in snap["msg"]  # an empty side is absent
            await send(
                ws, 3, "update_subscription", sids=[1], market_tickers=[A], action="get_snapshot"
            )
            assert (await recv(ws))["seq"] == 4
            assert (await recv(ws))["msg"]["market_ticker"] == A
            await send(
                ws, 4, "update_subscription", sids=[1], market_tickers=[B], action="delete_markets"
            )
            assert (await recv(ws))["msg"] == {"market_tickers": [A]}
            await send(ws, 5, "subscribe", channels=["trade", "ticker"])
            subs = [await recv(ws), await recv(ws)]
            assert [s["msg"] for s in subs] == [
                {"channel": "trade", "sid": 2},
                {"channel": "ticker", "sid": 3},
            ]
            await send(ws, 6, "list_subscriptions")
            listing = await recv(ws)
            assert listing == {
                "id": 6,
                "type": "ok",
                "msg": [
                    {"channel": "orderbook_delta", "sid": 1, "market_tickers": [A]},
                    {"channel": "trade", "sid": 2},
                    {"channel": "ticker", "sid": 3},
                ],
            }
            await send(ws, 7, "unsubscribe", sids=[1, 3])
            assert await recv(ws) == {"id": 7, "sid": 1, "seq": 7, "type": "unsubscribed"}
            assert (await recv(ws))["sid"] == 3
            assert server.subscriptions() == [(2, "trade", None)]

    run(scenario)


def test_errors_use_kalshi_codes() -> None:
    async def scenario() -> None:
        async with seeded() as server, connect(server.url) as ws:
            await send(ws, 1, "subscribe", channels=["orderbook_delta"])
            assert await recv(ws) == {
                "type": "error",
                "msg": {"code": 14, "msg": "Market Ticker required"},
                "id": 1,
            }
            await send(ws, 2, "subscribe", channels=["nope"], market_tickers=[A])
            assert (await recv(ws))["msg"]["code"] == 8
            await send(ws, 3, "dance")
            assert (await recv(ws))["msg"]["code"] == 5
            await send(ws, 4, "unsubscribe", sids=[42])
            assert (await recv(ws))["msg"]["code"] == 7
            await send(ws, 5, "subscribe", channels=["trade"], market_ticker=A, market_tickers=[A])
            assert (await recv(ws))["msg"]["code"] == 11
            await ws.send("{not json")
            assert (await recv(ws))["msg"]["code"] == 1
            await send(ws, 6, "subscribe", channels=["orderbook_delta"], market_tickers=[A])
            await recv(ws), await recv(ws)
            assert server.send_error(17) == [1]
            assert await recv(ws) == {
                "type": "error",
                "msg": {"code": 17, "msg": "Internal error"},
                "sid": 1,
            }
            server.feed_delta(A, "yes", D("0.40"), D(1))  # the dead sid gets nothing more
            await send(ws, 7, "list_subscriptions")
            assert await recv(ws) == {"id": 7, "type": "ok", "msg": []}

    run(scenario)


def test_faults_show_on_the_wire() -> None:
    async def scenario() -> None:
        async with seeded() as server, connect(server.url) as ws:
            await send(ws, 1, "subscribe", channels=["orderbook_delta"], market_tickers=[A])
            await recv(ws), await recv(ws)

            def delta() -> None:
                server.feed_delta(A, "yes", D("0.30"), D(1))

            server.inject_gap()
            delta()
            delta()
            assert (await recv(ws))["seq"] == 3  # seq 2 was lost
            server.inject_duplicate()
            delta()
            first, second = await recv(ws), await recv(ws)
            assert first == second and first["seq"] == 4
            server.inject_reorder()
            delta()
            delta()
            assert [(await recv(ws))["seq"] for _ in range(2)] == [6, 5]
            server.send_malformed("{oops")
            assert await asyncio.wait_for(ws.recv(), 2) == "{oops"
            server.refuse_get_snapshot()
            await send(
                ws, 2, "update_subscription", sids=[1], market_tickers=[A], action="get_snapshot"
            )
            assert (await recv(ws))["type"] == "error"
            trade = server.feed_trade(A, D("0.33"), D(2))  # no trade subscription: not sent
            await send(ws, 3, "subscribe", channels=["trade"], market_tickers=[A])
            await recv(ws)
            trade = server.feed_trade(A, D("0.33"), D(2))
            got = await recv(ws)
            assert (got["type"], got["sid"], got["msg"]) == ("trade", 2, trade)
            server.drop_after(1)
            delta()
            await recv(ws)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 2)
            assert server.frames_sent > 0

    run(scenario)
