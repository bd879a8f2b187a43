"""The execution policy and the value strategy on hand-made brackets."""

from __future__ import annotations

import datetime as dt

import numpy as np

from kwx.engine.ports import Amend, Cancel, Order, PlaceLimit, PlaceTaker
from kwx.strategy.config import ExecutionConfig, StrategyConfig
from kwx.strategy.execution import gate, maker_price
from kwx.strategy.value import ValueStrategy
from tests.engine.helpers import EVENT, D, account, bracket, minute, position, snapshot

A = f"{EVENT}-B40.5"


def _strategy(**execution: object) -> ValueStrategy:
    """The execution policy alone: the edge gate (tested in test_edge.py) off unless asked."""
    execution.setdefault("edge_gate", False)
    return ValueStrategy(StrategyConfig(execution=ExecutionConfig(**execution)))  # type: ignore[arg-type]


def _resting(price: str, created: dt.datetime, side: str = "yes") -> Order:
    return Order(
        order_id="r1",
        client_order_id="r1",
        ticker=A,
        event_ticker=EVENT,
        city="chicago",
        side=side,  # type: ignore[arg-type]
        action="buy",
        kind="limit",
        price=D(price),
        count=D("10"),
        filled=D("0"),
        status="resting",
        created_at=created,
        updated_at=created,
    )


def test_maker_price_is_one_tick_inside_never_crossing() -> None:
    b = bracket(A, "0.40", "0.44")
    assert maker_price("yes", b, D("0.01")) == D("0.41")
    assert maker_price("no", b, D("0.01")) == D("0.57")  # NO bid 0.56, NO ask 0.60
    tight = bracket(A, "0.40", "0.41")
    assert maker_price("yes", tight, D("0.01")) == D("0.40")  # at the touch


def test_gates_each_refuse() -> None:
    cfg = ExecutionConfig(max_spread=D("0.04"), min_volume_20m=5, signal_threshold=0.5)
    ok = bracket(A, "0.40", "0.44", p=0.6, signal=0.6, volume_20m=5)
    assert gate(ok, cfg).ok
    assert "outside" in gate(bracket(A, "0.40", "0.44", p=0.97, signal=0.6), cfg).reason
    assert "spread" in gate(bracket(A, "0.40", "0.45", p=0.6, signal=0.6), cfg).reason
    assert "volume" in gate(bracket(A, "0.40", "0.44", p=0.6, signal=0.6, volume_20m=4), cfg).reason
    assert "|S|" in gate(bracket(A, "0.40", "0.44", p=0.6, signal=-0.4), cfg).reason
    assert "two-sided" in gate(bracket(A, None, "0.44", p=0.6, signal=0.6), cfg).reason


def test_maker_first_then_taker_on_a_bigger_edge() -> None:
    s = _strategy(maker_edge=D("0.04"), taker_edge=D("0.08"))
    # p = 0.47: maker at 0.41 has edge 0.06 ≥ 0.04; taker at 0.45 (ask + 1¢) 0.02 − fee: no.
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.40", "0.44", p=0.47)]), account())
    assert out == [PlaceLimit(A, "yes", "buy", D("0.41"), D("10"), "maker edge 0.06")]
    # p = 0.56: taker edge 0.56 − 0.45 − ceil(0.07·10·0.45·0.55)/10 = 0.11 − 0.018 = 0.092.
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.40", "0.44", p=0.56)]), account())
    assert out == [PlaceTaker(A, "yes", "buy", D("0.45"), D("10"), "taker edge 0.092")]
    # p = 0.30: the NO side (maker NO bid 0.57 vs 1 − p = 0.70: edge 0.13 → taker NO at
    # 0.61: 0.09 − ceil(0.07·10·0.61·0.39)/10 = 0.09 − 0.017 = 0.073 < 0.08 → maker).
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.40", "0.44", p=0.30)]), account())
    assert out == [PlaceLimit(A, "no", "buy", D("0.57"), D("10"), "maker edge 0.13")]


def test_position_cap_sizes_the_order() -> None:
    s = ValueStrategy(
        StrategyConfig.model_validate(
            {"risk": {"max_position": "15"}, "execution": {"edge_gate": False}}
        )
    )
    held = {A: position(A, "10", "4.00")}
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.40", "0.44", p=0.47)]), account(held))
    assert [(i.side, i.count) for i in out if isinstance(i, PlaceLimit)] == [("yes", D("5"))]


def test_stale_orders_are_cancelled_and_moved_orders_amended() -> None:
    s = _strategy(order_ttl_min=10)
    snap = snapshot(minute(20), [bracket(A, "0.40", "0.44", p=0.47)])
    stale = s.on_event(snap, account(resting=[_resting("0.41", minute(10))]))
    assert stale[0] == Cancel("r1", "stale")
    moved = s.on_event(
        snapshot(minute(20), [bracket(A, "0.42", "0.46", p=0.49)]),
        account(resting=[_resting("0.41", minute(15))]),
    )
    assert moved == [Amend("r1", D("0.43"), D("10"), "reprice")]
    gone = s.on_event(
        snapshot(minute(20), [bracket(A, "0.40", "0.44", p=0.42)]),
        account(resting=[_resting("0.41", minute(15))]),
    )
    assert gone[0] == Cancel("r1", "edge 0.010 gone")


def test_exit_when_value_turns() -> None:
    s = _strategy(exit_edge=D("0.04"))
    held = {A: position(A, "10", "4.00")}
    # Bid 0.60, p 0.50: sell at 0.59 gains 0.09 − ceil(0.07·10·0.59·0.41)/10 = 0.09 − 0.017.
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.60", "0.62", p=0.50)]), account(held))
    assert out[0] == PlaceTaker(A, "yes", "sell", D("0.59"), D("10"), "exit: value")
    out = s.on_event(snapshot(minute(0), [bracket(A, "0.60", "0.62", p=0.56)]), account(held))
    assert not any(i.action == "sell" for i in out if isinstance(i, PlaceTaker))


def test_no_entries_off_the_screen_or_when_killed() -> None:
    from tests.engine.helpers import state

    s = _strategy()
    b = bracket(A, "0.40", "0.44", p=0.60)
    assert s.on_event(snapshot(minute(0), [b], screened=False), account()) == []
    assert s.on_event(snapshot(minute(0), [b]), account(risk=state(killed=True))) == []


def test_screen_is_a_superset_of_entries() -> None:
    """Wherever on_event opens a position, the vectorised screen passes."""
    s = _strategy()
    rng = np.random.default_rng(3)
    for _ in range(300):
        bid = round(float(rng.uniform(0.02, 0.9)), 2)
        ask = round(bid + float(rng.choice([0.01, 0.02, 0.03, 0.04, 0.06])), 2)
        p = float(rng.uniform(0.0, 1.0))
        vol = float(rng.choice([0.0, 5.0]))
        b = bracket(A, f"{bid:.2f}", f"{ask:.2f}", p=p, volume_20m=vol)
        opened = [
            i
            for i in s.on_event(snapshot(minute(0), [b]), account())
            if isinstance(i, PlaceLimit | PlaceTaker)
        ]
        screen = s.screen(
            p=np.array([[p]]),
            yes_bid=np.array([[bid]]),
            yes_ask=np.array([[ask]]),
            volume_20m=np.array([[vol]]),
            signal=np.array([[0.5]]),
        )
        if opened:
            assert screen[0, 0], (bid, ask, p, vol)
