"""The agent with a scripted strategy against the simulated venue on a hand-made day.

Every figure below is worked out by hand from the quotes and prints of the day.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from kwx.backtest.fills import MakerB
from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import compute_metrics
from kwx.engine.agent import Agent
from kwx.engine.clock import HistoricalClock
from kwx.engine.journal import Journal
from kwx.engine.ports import Cancel, Intent, MarketStep, PlaceLimit, PlaceTaker
from kwx.engine.sim_venue import SimulatedVenue
from kwx.engine.tape import ArrayTape
from kwx.strategy.config import RiskConfig
from kwx.strategy.risk import RiskManager
from tests.engine.helpers import (
    DAY,
    EVENT,
    T0,
    D,
    ListFeed,
    ScriptedStrategy,
    bracket,
    minute,
    snapshot,
)

Conn = psycopg.Connection[tuple[object, ...]]
A, B = f"{EVENT}-B40.5", f"{EVENT}-B42.5"
UTC = dt.UTC


def _day() -> tuple[ListFeed, ArrayTape]:
    steps = []
    for k in range(8):
        snap = snapshot(
            minute(k),
            [bracket(A, "0.40", "0.44", index=0), bracket(B, "0.28", "0.70", index=1)],
        )
        if k >= 5:  # A's bid has risen by the time we sell
            snap = snapshot(
                minute(k),
                [bracket(A, "0.50", "0.52", index=0), bracket(B, "0.28", "0.70", index=1)],
            )
        steps.append(MarketStep(minute(k), (snap,)))
    secs = dt.timedelta(seconds=30)
    tape = ArrayTape.from_rows(
        [
            # Before our NO bid exists (minute 0): must never fill it.
            (B, minute(0) + secs, D("50"), D("0.70"), "yes"),
            # YES takers lift NO bids through 0.30: at 0.29 (YES 0.71), then at 0.28 (YES 0.72).
            # (A print at our 0.30 itself would not fill maker-b: the queue ahead is unknown.)
            (B, minute(3) + secs, D("7"), D("0.71"), "yes"),
            (B, minute(4) + secs, D("5"), D("0.72"), "yes"),
            # A NO taker at YES 0.70 hits YES bids: not our side, no fill.
            (B, minute(4) + secs, D("9"), D("0.70"), "no"),
        ]
    )
    return ListFeed(steps), tape


def test_scripted_day_fills_positions_and_pnl_by_hand(conn: Conn) -> None:
    feed, tape = _day()
    script: dict[dt.datetime, list[Intent]] = {
        minute(0): [PlaceTaker(A, "yes", "buy", D("0.46"), D("10"), "test")],
        minute(1): [PlaceLimit(B, "no", "buy", D("0.30"), D("10"), "test")],
        minute(5): [PlaceTaker(A, "yes", "sell", D("0.49"), D("4"), "test")],
        minute(6): [PlaceTaker(A, "yes", "sell", D("0.49"), D("40"), "too many")],
    }
    strategy = ScriptedStrategy(script)
    venue = SimulatedVenue(tape, MakerB(slippage=D("0.01")), id_prefix="t1")
    journal = Journal(conn, mode="backtest", run_id=77)
    agent = Agent(
        strategy=strategy,
        risk=RiskManager(RiskConfig()),
        clock=HistoricalClock(T0),
        feed=feed,
        venue=venue,
        journal=journal,
    )
    stats = agent.run()

    fills = venue.fills
    # Buy 10 A at ask 0.44 + 1¢ = 0.45: fee ceil(0.07·10·0.45·0.55 = 0.17325) = 0.18.
    assert (fills[0].ticker, fills[0].price, fills[0].count, fills[0].fee) == (
        A,
        D("0.45"),
        D("10"),
        D("0.18"),
    )
    assert fills[0].is_taker and fills[0].ts == minute(0)
    # NO 0.30 fills 7 from the 0.29 print, then the remaining 3 from the 0.28 one;
    # the earlier 50 (before placement) and the NO taker's print never touch it. Makers in a
    # quadratic series pay nothing.
    no_fills = [(f.count, f.price, f.fee, f.is_taker, f.ts) for f in fills if f.ticker == B]
    assert no_fills == [
        (D("7"), D("0.30"), D("0.00"), False, minute(3) + dt.timedelta(seconds=30)),
        (D("3"), D("0.30"), D("0.00"), False, minute(4) + dt.timedelta(seconds=30)),
    ]
    # Sell 4 A at bid 0.50 − 1¢ = 0.49: fee ceil(0.07·4·0.49·0.51 = 0.069972) = 0.07.
    sell = [f for f in fills if f.action == "sell"]
    assert [(f.price, f.count, f.fee) for f in sell] == [(D("0.49"), D("4"), D("0.07"))]
    # Selling 40 when 6 are held is refused by risk before it reaches the venue.
    assert stats.intents["rejected"] == 1

    pos = venue.positions()
    assert (pos[A].yes_count, pos[A].cost, pos[A].realized, pos[A].fees) == (
        D("6"),
        D("2.70"),
        D("0.16"),
        D("0.25"),
    )
    assert (pos[B].yes_count, pos[B].cost) == (D("-10"), D("3.00"))

    # Settle: A wins, B loses (so our NO pays). A: −4.50 + 1.96 + 6 − 0.25 = 3.21;
    # B: 10 − 3.00 = 7.00. Net 10.21.
    records = [
        FillRecord(
            f.ts,
            f.ticker,
            f.event_ticker,
            f.city,
            f.side,
            f.action,
            f.price,
            f.count,
            f.fee,
            f.is_taker,
            None,
            None,
            f.order_id,
        )
        for f in fills
    ]
    settled = dt.datetime(2024, 12, 2, 5, 0, tzinfo=UTC)
    metrics = compute_metrics(
        records,
        [
            Settlement(A, EVENT, "chicago", DAY, "yes", settled),
            Settlement(B, EVENT, "chicago", DAY, "no", settled),
        ],
    )
    assert metrics.net_pnl == D("10.21")
    assert metrics.fees == D("0.25")

    # The ledger: 4 orders (one refused never reached the venue), 4 fills, 4 decisions.
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM exec.orders WHERE run_id = 77), "
        "(SELECT count(*) FROM exec.fills WHERE run_id = 77), "
        "(SELECT count(*) FROM exec.decisions WHERE run_id = 77)"
    ).fetchone()
    assert counts == (3, 4, 4)
    statuses = {
        str(r[0]): str(r[1])
        for r in conn.execute("SELECT order_id, status FROM exec.orders WHERE run_id = 77")
    }
    assert statuses == {"t1-1": "filled", "t1-2": "filled", "t1-3": "filled"}
    rejected = conn.execute(
        "SELECT payload->>'outcome' FROM exec.decisions WHERE run_id = 77 "
        "AND payload->>'reason' = 'too many'"
    ).fetchone()
    assert rejected is not None and "exceeds holding" in str(rejected[0])


def test_cancel_before_the_print_means_no_fill(conn: Conn) -> None:
    feed, tape = _day()
    script: dict[dt.datetime, list[Intent]] = {
        minute(1): [PlaceLimit(B, "no", "buy", D("0.30"), D("10"), "test")],
        minute(3): [Cancel("t2-1", "changed my mind")],
    }
    venue = SimulatedVenue(tape, MakerB(), id_prefix="t2")
    Agent(
        strategy=ScriptedStrategy(script),
        risk=RiskManager(RiskConfig()),
        clock=HistoricalClock(T0),
        feed=feed,
        venue=venue,
        journal=Journal(None, mode="backtest", run_id=None),
    ).run()
    # Cancelled at 18:03:00, the 0.30 print came at 18:03:30: nothing fills.
    assert venue.fills == []
    assert venue.order("t2-1").status == "canceled"


def test_clock_refuses_to_go_back() -> None:
    clock = HistoricalClock(T0)
    clock.wait_until(minute(2))
    try:
        clock.wait_until(minute(1))
    except ValueError as exc:
        assert "cannot go back" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("the clock went back")
