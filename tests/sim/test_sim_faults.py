"""Every fault `kwx sim` injects is visible to our clients, and our clients survive it."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.sim.faults import FaultConfig
from kwx.sim.replay import ReplayData
from kwx.sim.simulator import Simulator
from kwx.sources.kalshi_models import OrderRequest
from kwx.sources.kalshi_rest import KalshiApiError
from kwx.sources.kalshi_ws import Connected, FillMsg, KalshiWebSocket, UserOrderMsg
from tests.sim.conftest import EVENT, at, rest_client, until, ws_stream

D = Decimal
T0 = at("2024-12-05T15:00:00")
TICKERS = [f"{EVENT}-B26.5", f"{EVENT}-B28.5", f"{EVENT}-B30.5"]


def run(coro: Any, timeout_s: float = 15.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _books_agree(sim: Simulator, client: KalshiWebSocket) -> bool:
    """The client's books equal what the server publishes (YES-price convention)."""
    for ticker in TICKERS:
        book = client.books.get(ticker)
        if book is None:
            return False
        yes, no = sim.on_loop(lambda t=ticker: sim.ws.book(t, True))  # type: ignore[misc]
        if (book.levels("yes"), book.levels("no")) != (yes, no):
            return False
    return True


def test_seq_gaps_duplicates_and_reordering_are_seen_and_books_stay_exact(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    faults = FaultConfig.parse("gap=0.15,dup=0.15,reorder=0.15", seed=11)
    sim: Simulator = make_sim(T0, faults=faults)

    async def scenario() -> None:
        async with ws_stream(sim, private_key, TICKERS) as stream:
            for _ in range(12):  # two hours of replay, ten minutes at a time
                await asyncio.to_thread(sim.advance_by, dt.timedelta(minutes=10))
            # Faults off, then more replay: a frame held back by a swap goes out, and the
            # client sees whatever it still has to repair.
            faults.gap = faults.dup = faults.reorder = 0.0
            await asyncio.to_thread(sim.advance_by, dt.timedelta(minutes=30))
            stats = stream.client.stats
            await until(lambda: stats.gaps > 0 and stats.duplicates > 0, "gaps and duplicates")
            assert stats.resyncs > 0 and stats.snapshots > len(TICKERS)
            assert stats.resets + stats.stale + stats.gaps > 0  # what the swaps look like
            await until(
                lambda: _books_agree(sim, stream.client), "books equal to the server's", 8.0
            )

    run(scenario())


def test_a_dropped_connection_reconnects_and_fills_still_arrive_once(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    sim: Simulator = make_sim(T0, faults=FaultConfig.parse("dup=1"))
    rest = rest_client(sim, private_key)
    ticker = TICKERS[1]

    async def scenario() -> None:
        async with ws_stream(sim, private_key, TICKERS) as stream:
            await asyncio.to_thread(sim.disconnect_clients)
            await until(lambda: len(stream.of(Connected)) == 2, "a reconnect")
            await until(lambda: _books_agree(sim, stream.client), "rebuilt books")
            ack = await asyncio.to_thread(
                rest.create_order,
                OrderRequest.buy_yes(ticker, D("0.99"), D(1), "immediate_or_cancel"),
            )
            await until(lambda: bool(stream.of(FillMsg)), "the fill")
            await until(lambda: stream.client.stats.duplicates > 0, "the duplicated fill frame")
            await asyncio.sleep(0.05)
            # Every fill frame was sent twice; the client kept each fill once.
            assert [f.order_id for f in stream.of(FillMsg)] == [ack.order_id]

    run(scenario())


def test_rest_429_bursts_and_5xx_are_retried(make_sim: Any, private_key: rsa.RSAPrivateKey) -> None:
    sim: Simulator = make_sim(T0, faults=FaultConfig.parse("429=0.15,5xx=0.15", seed=5))
    rest = rest_client(sim, private_key)
    for _ in range(15):
        assert rest.get_market(TICKERS[0])["status"] == "active"
        assert rest.balance().balance == D(1000)
    statuses = sim.rest.stats.statuses
    assert statuses[429] >= 3 and statuses[503] >= 1
    assert rest.stats.retries == statuses[429] + statuses[503]


def test_a_slow_answer_to_an_order_is_reconciled_not_resent(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key, timeout_s=0.3)
    sim.rest.delay_next(1.0, path="/portfolio/events/orders", method="POST")
    order = OrderRequest.buy_yes(TICKERS[0], D("0.05"), D(3))
    ack = rest.create_order(order)
    orders = list(rest.iter_orders())
    assert [(o.order_id, o.client_order_id) for o in orders] == [
        (ack.order_id, order.client_order_id)
    ]
    assert rest.stats.transport_errors >= 1


def test_the_thursday_maintenance_pause_refuses_orders_and_drops_sockets(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    # 2024-12-05 is a Thursday; 03:00-05:00 EST is 08:00-10:00 UTC.
    sim: Simulator = make_sim(at("2024-12-05T07:50:00"), faults=FaultConfig.parse("maintenance"))
    rest = rest_client(sim, private_key)
    flagged = rest.create_order(OrderRequest.buy_yes(TICKERS[0], D("0.02"), D(1)))
    kept = rest.create_order(
        OrderRequest.buy_yes(TICKERS[0], D("0.03"), D(1), cancel_order_on_pause=False)
    )
    assert rest.exchange_status()["trading_active"] is True

    async def scenario() -> None:
        async with ws_stream(sim, private_key, TICKERS) as stream:
            await asyncio.to_thread(sim.advance_to, at("2024-12-05T08:00:30"))
            await until(lambda: len(stream.of(Connected)) >= 2, "the reconnect after the drop")
            await until(
                lambda: any(
                    o.order_id == flagged.order_id and o.status == "canceled"
                    for o in stream.of(UserOrderMsg)
                ),
                "the cancel_order_on_pause cancel",
            )

    run(scenario())
    status = rest.exchange_status()
    assert status["trading_active"] is False
    assert status["exchange_estimated_resume_time"] == "2024-12-05T10:00:00Z"
    with pytest.raises(KalshiApiError) as refused:
        rest.create_order(OrderRequest.buy_yes(TICKERS[0], D("0.04"), D(1)))
    assert (refused.value.status, refused.value.code) == (400, "trading_paused")
    assert rest.get_order(kept.order_id).status == "resting"
    assert rest.cancel_order(kept.order_id).reduced_by == D(1)  # cancels are allowed
    sim.advance_to(at("2024-12-05T10:00:01"))
    assert rest.exchange_status()["trading_active"] is True
    assert rest.create_order(OrderRequest.buy_yes(TICKERS[0], D("0.04"), D(1))).order_id


def test_market_close_cancels_resting_orders_and_refuses_everything_after(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    loser = next(t for t in TICKERS if day.markets[t].result == "no")
    assert max(t.yes_price for t in day.trades if t.ticker == loser) < D("0.99")
    ack = rest.create_order(OrderRequest.sell_yes(loser, D("0.99"), D(2)))
    close = day.markets[loser].close_time
    sim.advance_to(close - dt.timedelta(seconds=1))
    assert rest.get_market(loser)["status"] == "active"
    sim.advance_to(close)
    assert rest.get_market(loser)["status"] in ("closed", "finalized")
    assert rest.get_order(ack.order_id).status == "canceled"
    assert rest.get_orderbook(loser).yes == ()
    for call in (
        lambda: rest.create_order(OrderRequest.buy_yes(loser, D("0.02"), D(1))),
        lambda: rest.cancel_order(ack.order_id),
    ):
        with pytest.raises(KalshiApiError) as refused:
            call()
        assert refused.value.code == "MARKET_INACTIVE"


def test_fault_list_parsing() -> None:
    config = FaultConfig.parse("disconnect=5, gap, 429=0.5, maintenance")
    assert (config.disconnect, config.gap, config.rest_429, config.maintenance) == (
        5.0,
        0.02,
        0.5,
        True,
    )
    assert FaultConfig.parse("").describe() == "none"
    for bad in ("lag", "gap=2", "429=x"):
        with pytest.raises(ValueError, match="--faults"):
            FaultConfig.parse(bad)
