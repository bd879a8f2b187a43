"""Every risk rule, each with a case it must refuse and one it must allow."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from kwx.engine.ports import (
    AccountView,
    Action,
    Amend,
    Cancel,
    EventSnapshot,
    Order,
    PlaceLimit,
    PlaceTaker,
    Position,
    Side,
)
from kwx.strategy.config import RiskConfig
from kwx.strategy.risk import RiskManager
from tests.engine.helpers import CLOSE, EVENT, D, bracket, minute, position, snapshot

A, B = f"{EVENT}-B40.5", f"{EVENT}-B42.5"


def _order(
    ticker: str, side: Side, action: Action, price: str, count: str, oid: str = "o1"
) -> Order:
    return Order(
        order_id=oid,
        client_order_id=oid,
        ticker=ticker,
        event_ticker=EVENT,
        city="chicago",
        side=side,
        action=action,
        kind="limit",
        price=D(price),
        count=D(count),
        filled=D("0"),
        status="resting",
        created_at=minute(0),
        updated_at=minute(0),
    )


def _view(
    risk: RiskManager,
    positions: dict[str, Position],
    resting: list[Order],
    *,
    ts: dt.datetime | None = None,
    bid: str = "0.40",
    ask: str = "0.44",
    city: str = "chicago",
    event: str = EVENT,
) -> tuple[EventSnapshot, AccountView]:
    snap = snapshot(
        ts or minute(0),
        [bracket(A, bid, ask, index=0), bracket(B, "0.20", "0.24", index=1)],
        city=city,
        event=event,
    )
    state = risk.observe(snap, positions, resting)
    return snap, AccountView(positions, resting, state)


def test_per_bracket_position_counts_holdings_and_resting_buys() -> None:
    risk = RiskManager(RiskConfig(max_position=D("20")))
    held = {A: position(A, "10", "4.40")}
    snap, acct = _view(risk, held, [_order(A, "yes", "buy", "0.40", "5")])
    assert risk.check(PlaceLimit(A, "yes", "buy", D("0.41"), D("5")), snap, acct).ok
    verdict = risk.check(PlaceLimit(A, "yes", "buy", D("0.41"), D("6")), snap, acct)
    assert not verdict.ok and "exceed 20" in verdict.reason
    # Buying NO while holding YES first closes the YES: 10 NO closes, 20 more may open.
    assert risk.check(PlaceLimit(A, "no", "buy", D("0.55"), D("30")), snap, acct).ok


def test_no_naked_sells() -> None:
    risk = RiskManager(RiskConfig())
    held = {A: position(A, "10", "4.40")}
    snap, acct = _view(risk, held, [])
    assert risk.check(PlaceTaker(A, "yes", "sell", D("0.39"), D("10")), snap, acct).ok
    assert not risk.check(PlaceTaker(A, "yes", "sell", D("0.39"), D("11")), snap, acct).ok
    assert not risk.check(PlaceTaker(A, "no", "sell", D("0.55"), D("1")), snap, acct).ok


def test_realised_daily_loss_kills_the_city_for_the_day() -> None:
    risk = RiskManager(RiskConfig(max_daily_loss_city=D("100")))
    lost = {A: position(A, "0", "0", realized="-100.00")}
    resting = [_order(B, "yes", "buy", "0.20", "5")]
    snap, acct = _view(risk, lost, resting)
    assert acct.risk.killed and "realised" in acct.risk.kill_reason
    assert not risk.check(PlaceLimit(B, "yes", "buy", D("0.21"), D("1")), snap, acct).ok
    assert risk.forced(snap, acct) == [Cancel("o1", f"kill switch: {acct.risk.kill_reason}")]
    # It latches: a later minute with the loss made good is still killed that day.
    snap, acct = _view(risk, {A: position(A, "0", "0", realized="5")}, [], ts=minute(5))
    assert acct.risk.killed
    # A loss of 99.99 would not have tripped it.
    fresh = RiskManager(RiskConfig(max_daily_loss_city=D("100")))
    _, acct = _view(fresh, {A: position(A, "0", "0", realized="-99.99")}, [])
    assert not acct.risk.killed


def test_marked_loss_blocks_while_it_lasts() -> None:
    risk = RiskManager(RiskConfig(max_daily_loss_city=D("100")))
    held = {A: position(A, "200", "160.00")}  # 200 YES bought at 0.80
    _, acct = _view(risk, held, [], bid="0.30", ask="0.32")  # marked 200·0.30 − 160 = −100
    assert acct.risk.killed and "marked" in acct.risk.kill_reason
    _, acct = _view(risk, held, [], ts=minute(1), bid="0.40", ask="0.42")  # −80: lifted
    assert not acct.risk.killed


def test_global_loss_spans_cities_of_the_same_climate_date() -> None:
    risk = RiskManager(RiskConfig(max_daily_loss_city=D("100"), max_daily_loss_global=D("150")))
    _, acct = _view(risk, {A: position(A, "0", "0", realized="-80")}, [])
    assert not acct.risk.killed
    other = "KXHIGHNY-24DEC01"
    ny = {A: dataclasses.replace(position(A, "0", "0", realized="-70"), event_ticker=other)}
    _, acct = _view(risk, ny, [], city="new_york", event=other)
    assert acct.risk.killed and "global" in acct.risk.kill_reason


def test_gross_exposure_cap() -> None:
    risk = RiskManager(RiskConfig(max_gross_exposure=D("10")))
    held = {A: position(A, "10", "4.40")}
    snap, acct = _view(risk, held, [_order(B, "yes", "buy", "0.20", "10")])  # 4.40 + 2.00
    assert acct.risk.exposure == D("6.40")
    assert risk.check(PlaceLimit(B, "no", "buy", D("0.60"), D("6")), snap, acct).ok
    verdict = risk.check(PlaceLimit(B, "no", "buy", D("0.60"), D("7")), snap, acct)
    assert not verdict.ok and "exposure" in verdict.reason


def test_time_stop_cancels_and_optionally_flattens() -> None:
    cfg = RiskConfig(time_stop_min=30, no_new_orders_min=45, exit_at_time_stop=True)
    risk = RiskManager(cfg)
    held = {A: position(A, "10", "4.40")}
    resting = [_order(B, "yes", "buy", "0.20", "5")]
    snap, acct = _view(risk, held, resting, ts=CLOSE - dt.timedelta(minutes=31))
    assert risk.forced(snap, acct) == []
    snap, acct = _view(risk, held, resting, ts=CLOSE - dt.timedelta(minutes=30))
    forced = risk.forced(snap, acct)
    assert forced == [
        Cancel("o1", "time stop"),
        PlaceTaker(A, "yes", "sell", D("0.40"), D("10"), "time stop"),
    ]
    assert risk.forced(snap, acct) == [Cancel("o1", "time stop")]


def test_no_new_orders_near_the_close_but_exits_pass() -> None:
    risk = RiskManager(RiskConfig(no_new_orders_min=45))
    held = {A: position(A, "10", "4.40")}
    snap, acct = _view(risk, held, [], ts=CLOSE - dt.timedelta(minutes=46))
    assert risk.check(PlaceLimit(B, "yes", "buy", D("0.21"), D("1")), snap, acct).ok
    snap, acct = _view(risk, held, [], ts=CLOSE - dt.timedelta(minutes=45))
    verdict = risk.check(PlaceLimit(B, "yes", "buy", D("0.21"), D("1")), snap, acct)
    assert not verdict.ok and "of close" in verdict.reason
    assert risk.check(PlaceTaker(A, "yes", "sell", D("0.39"), D("10")), snap, acct).ok
    snap, acct = _view(risk, held, [], ts=CLOSE)
    assert not risk.check(PlaceTaker(A, "yes", "sell", D("0.39"), D("10")), snap, acct).ok


def test_amend_is_checked_like_the_order_it_becomes() -> None:
    risk = RiskManager(RiskConfig(max_position=D("10")))
    resting = [_order(A, "yes", "buy", "0.40", "5")]
    snap, acct = _view(risk, {}, resting)
    assert risk.check(Amend("o1", D("0.41"), D("10")), snap, acct).ok
    assert not risk.check(Amend("o1", D("0.41"), D("11")), snap, acct).ok
    assert not risk.check(Amend("gone", D("0.41"), D("1")), snap, acct).ok
    assert Decimal(0) == acct.risk.day_pnl_city
