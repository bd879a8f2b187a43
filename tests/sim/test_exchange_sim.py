"""`kwx sim` trading: our own REST and WebSocket clients against a replayed real day.

The day is KXHIGHCHI 2024-12-05 (trades only, so books are the trade-implied touch with the
stated synthetic depth). Expected figures come from the stored data and Kalshi's fee formula,
never from the simulator under test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.domain.fees import taker_fee
from kwx.sim.replay import ReplayData, ReplayTrade
from kwx.sim.simulator import Simulator
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import OrderRequest
from kwx.sources.kalshi_rest import KalshiApiError
from kwx.sources.kalshi_ws import FillMsg, KalshiWebSocket, KalshiWsAuthError, UserOrderMsg
from tests.sim.conftest import EVENT, KEY_ID, at, rest_client, until, ws_stream

D = Decimal
T0 = at("2024-12-05T15:00:00")  # 09:00 CST on the climate day


def run(coro: Any, timeout_s: float = 10.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _touch(data: ReplayData, ticker: str, when: dt.datetime) -> tuple[D | None, D | None]:
    """The trade-implied bid/ask at ``when``, recomputed here from the raw prints."""
    bid = ask = None
    for t in data.trades:
        if t.ts > when:
            break
        if t.ticker != ticker:
            continue
        if t.taker_side == "yes":
            ask = t.yes_price
            if bid is not None and bid >= ask:
                bid = ask - D("0.01")
        elif t.taker_side == "no":
            bid = t.yes_price
            if ask is not None and ask <= bid:
                ask = bid + D("0.01")
    return bid, ask


def test_marketable_order_fills_at_the_touch_with_position_and_ws_messages(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    sim: Simulator = make_sim(T0)
    ticker = f"{EVENT}-B28.5"
    bid, ask = _touch(day, ticker, T0)
    assert bid is not None and ask is not None
    count = D(5)
    rest = rest_client(sim, private_key)

    async def scenario() -> None:
        async with ws_stream(sim, private_key, [ticker]) as stream:
            assert stream.client.books[ticker].best_yes_ask == ask
            order = OrderRequest.buy_yes(ticker, D("0.99"), count, "immediate_or_cancel")
            ack = await asyncio.to_thread(rest.create_order, order)
            assert (ack.fill_count, ack.remaining_count) == (count, D(0))
            await until(lambda: bool(stream.of(FillMsg)), "the fill message")
            await until(
                lambda: any(o.status == "executed" for o in stream.of(UserOrderMsg)), "user order"
            )
            fill = stream.of(FillMsg)[0]
            assert (fill.order_id, fill.yes_price, fill.count) == (ack.order_id, ask, count)
            assert fill.is_taker and fill.client_order_id == order.client_order_id
            assert fill.raw["post_position_fp"] == "5.00"
            # Our fill took the synthetic depth at the ask: the book the client holds shows it.
            await until(
                lambda: (
                    stream.client.books[ticker].size_at("no", ask) == day.synthetic_size - count
                ),
                "the consumed offer",
            )

    run(scenario())
    fee = taker_fee(count, ask)
    [position] = list(rest.iter_positions())
    assert (position.ticker, position.position, position.fees_paid) == (ticker, count, fee)
    assert position.market_exposure == ask * count
    [fill] = list(rest.iter_fills())
    assert (fill.yes_price, fill.count, fill.fee_cost, fill.is_taker) == (ask, count, fee, True)
    assert rest.balance().balance == D(1000) - ask * count - fee


def test_resting_limit_fills_when_prints_reach_it_and_not_before(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    # Find, in the stored prints, a bid below the touch that a later print reaches.
    case: tuple[str, D, ReplayTrade] | None = None
    for ticker in sorted(day.markets):
        bid, _ = _touch(day, ticker, T0)
        if bid is None or bid < D("0.05"):
            continue
        price = bid - D("0.02")
        hit = next(
            (
                t
                for t in day.trades
                if t.ticker == ticker
                and t.ts > T0
                and (t.yes_price < price or (t.yes_price == price and t.taker_side == "no"))
            ),
            None,
        )
        if hit is not None:
            case = (ticker, price, hit)
            break
    assert case is not None, "the day has no print below a resting bid"
    ticker, price, hit = case
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    ack = rest.create_order(OrderRequest.buy_yes(ticker, price, D(3)))
    assert (ack.fill_count, ack.remaining_count) == (D(0), D(3))
    sim.advance_to(hit.ts - dt.timedelta(milliseconds=1))
    order = rest.get_order(ack.order_id)
    assert (order.status, order.fill_count) == ("resting", D(0))
    # Nothing after the clock is visible: the print that will fill us is not served yet.
    served = list(rest.iter_trades(ticker=ticker))
    assert served and max(t.created_time for t in served) <= sim.clock.now()
    assert hit.trade_id not in {t.trade_id for t in served}
    sim.advance_to(hit.ts)
    order = rest.get_order(ack.order_id)
    expected = min(D(3), hit.count)
    assert order.fill_count == expected
    [fill] = list(rest.iter_fills())
    assert (fill.yes_price, fill.is_taker, fill.fee_cost) == (price, False, D(0))
    assert hit.trade_id in {t.trade_id for t in rest.iter_trades(ticker=ticker)}


def test_joining_the_touch_queues_behind_the_replayed_size(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    ticker = f"{EVENT}-B28.5"
    bid, _ = _touch(day, ticker, T0)
    assert bid is not None
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    ack = rest.create_order(OrderRequest.buy_yes(ticker, bid, D(2)))
    signed = rest.signer
    assert signed is not None
    url = f"{sim.rest_url}/portfolio/orders/{ack.order_id}/queue_position"
    answer = httpx.get(url, headers=signed.headers("GET", url))
    assert answer.json() == {"queue_position_fp": f"{day.synthetic_size:.2f}"}
    # Walk the prints: the queue ahead is eaten by NO-taker prints at our price before we fill.
    ahead = day.synthetic_size
    for t in day.trades:
        if t.ts <= T0 or t.ticker != ticker:
            continue
        if t.yes_price < bid or (t.yes_price == bid and t.taker_side == "no" and t.count > ahead):
            break
        if t.yes_price == bid and t.taker_side == "no":
            ahead -= t.count
    else:
        pytest.skip("no print reaches the touch after T0")
    sim.advance_to(t.ts - dt.timedelta(milliseconds=1))
    assert rest.get_order(ack.order_id).fill_count == 0
    sim.advance_to(t.ts)
    assert rest.get_order(ack.order_id).fill_count > 0


def test_a_repeated_client_order_id_names_one_order(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    ticker = f"{EVENT}-B26.5"
    order = OrderRequest.buy_yes(ticker, D("0.05"), D(4))
    first = rest.create_order(order)
    again = rest.create_order(order)
    changed = {**order.to_json(), "price": "0.06", "count": "9"}
    signer = rest.signer
    assert signer is not None
    url = f"{sim.rest_url}/portfolio/events/orders"
    raw = httpx.post(url, json=changed, headers=signer.headers("POST", url))
    assert raw.status_code == 201
    assert first.order_id == again.order_id == raw.json()["order_id"]
    orders = list(rest.iter_orders())
    assert [(o.order_id, o.initial_count, o.yes_price) for o in orders] == [
        (first.order_id, D(4), D("0.05"))
    ]


def test_settlement_at_close_pays_one_dollar_per_winning_contract(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    winner = next(t for t, m in day.markets.items() if m.result == "yes")
    loser = next(t for t, m in day.markets.items() if m.result == "no" and _touch(day, t, T0)[0])
    costs = D(0)
    legs: list[tuple[str, Literal["bid", "ask"]]] = [(winner, "bid"), (loser, "ask")]
    for ticker, side in legs:
        bid, ask = _touch(day, ticker, T0)
        price = ask if side == "bid" else bid
        assert price is not None
        order = OrderRequest(ticker, side, D(2), D("0.99") if side == "bid" else D("0.01"),
                             "immediate_or_cancel")  # fmt: skip
        ack = rest.create_order(order)
        assert ack.fill_count == D(2)
        own = price if side == "bid" else 1 - price
        costs += own * 2 + taker_fee(D(2), price)
    assert rest.balance().balance == D(1000) - costs
    close = max(m.close_time for m in day.markets.values())
    sim.advance_to(close)
    positions = {p.ticker: p for p in rest.iter_positions(settlement_status="all")}
    assert {positions[winner].position, positions[loser].position} == {D(0)}
    # YES on the winner pays $1 each; NO on a loser pays $1 each too.
    assert rest.balance().balance == D(1000) - costs + 4
    market = rest.get_market(winner)
    assert (market["status"], market["result"]) == ("finalized", "yes")
    with pytest.raises(KalshiApiError) as refused:
        rest.create_order(OrderRequest.buy_yes(winner, D("0.50"), D(1)))
    assert refused.value.code == "MARKET_INACTIVE"


def test_unsigned_or_badly_signed_requests_get_401(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    sim: Simulator = make_sim(T0)
    url = f"{sim.rest_url}/portfolio/balance"
    assert httpx.get(url).status_code == 401
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(KalshiApiError) as bad:
        rest_client(sim, stranger).balance()
    assert bad.value.status == 401
    assert rest_client(sim, private_key).balance().balance == D(1000)
    # Public market data needs no signature, as on Kalshi.
    assert httpx.get(f"{sim.rest_url}/markets/{EVENT}-B28.5").status_code == 200


def test_amend_and_decrease_a_resting_order(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    ticker = f"{EVENT}-B28.5"
    bid, ask = _touch(day, ticker, T0)
    assert bid is not None and ask is not None
    ack = rest.create_order(OrderRequest.buy_yes(ticker, bid - D("0.05"), D(6)))
    amended = rest.amend_order(ack.order_id, ticker=ticker, side="bid", price=bid, count=D(8))
    assert (amended.order_id, amended.remaining_count) == (ack.order_id, D(8))
    order = rest.get_order(ack.order_id)
    assert (order.yes_price, order.initial_count, order.status) == (bid, D(8), "resting")
    # At the touch now: behind the replayed size there.
    assert sim.exchange.queue_position(ack.order_id) == day.synthetic_size
    assert rest.decrease_order(ack.order_id, reduce_by=D(3)).reduced_by == D(3)
    assert rest.get_order(ack.order_id).remaining_count == D(5)
    assert rest.decrease_order(ack.order_id, reduce_to=D(0)).reduced_by == D(5)
    assert rest.get_order(ack.order_id).status == "canceled"
    # Amending into the offer takes it, as a new order would.
    other = rest.create_order(OrderRequest.buy_yes(ticker, bid - D("0.05"), D(2)))
    taken = rest.amend_order(other.order_id, ticker=ticker, side="bid", price=ask, count=D(2))
    assert taken.fill_count == D(2)
    [fill] = list(rest.iter_fills())
    assert (fill.order_id, fill.yes_price, fill.is_taker) == (other.order_id, ask, True)


def test_a_websocket_handshake_with_a_wrong_key_is_refused(make_sim: Any) -> None:
    sim: Simulator = make_sim(T0)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = KalshiWebSocket(sim.ws_url, [f"{EVENT}-B28.5"], signer=KalshiSigner(KEY_ID, stranger))
    with pytest.raises(KalshiWsAuthError) as refused:
        run(client.run(asyncio.Event()))
    assert refused.value.status == 401
