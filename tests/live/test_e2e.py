"""The agent in live mode against `kwx sim` over a replayed real day, faults on; then paper.

The day is KXHIGHCHI 2024-12-05 (trades only), 14:30 → 16:30 UTC, the simulator replaying it
in lock-step with the loop while it drops the WebSocket every 0.7 s, spends sequence numbers
without sending (gaps), sends book deltas and fills twice, and answers REST with 429 bursts
and 503s. Afterwards the simulator runs on to the close and settles. Checked against what the
simulator itself says (its REST portfolio endpoints, its balance), never against our records:

* no order was sent twice (by client_order_id and by exchange order id), and every exchange
  order is one of our decisions;
* our positions equal the exchange's, market by market, to the 1/100 ¢;
* every strategy evaluation and every intent is in exec.decisions;
* our P&L from exec.fills and the settled results equals the change of the exchange balance;
* the same day in paper mode (the backtest's venue, maker-b fills) makes the same decisions,
  minute by minute, and the same fills.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.backtest.ledger import FillRecord, Settlement
from kwx.backtest.metrics import compute_metrics
from kwx.config import Settings
from kwx.live.kalshi_venue import KalshiVenue
from kwx.live.runner import LiveOutcome, LiveRun
from kwx.sim.faults import FaultConfig
from kwx.sim.replay import ReplayData
from kwx.sim.simulator import SimConfig, Simulator
from kwx.sources.kalshi_models import MarketPosition
from kwx.sources.kalshi_models import Order as WireOrder
from kwx.store.engine import connect
from tests.conftest import needs_data
from tests.live.conftest import DAY, FAULTS, KEY_ID, at, live_run, rest_client

pytestmark = needs_data()

START, UNTIL = at("2024-12-05T14:30:00"), at("2024-12-05T16:30:00")
D = Decimal


@dataclass
class Outcome:
    run: LiveRun
    out: LiveOutcome
    decisions: list[tuple[dt.datetime, str, dict[str, Any]]]
    fills: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    exchange_orders: list[WireOrder]
    exchange_positions: list[MarketPosition]
    pnl_exchange: Decimal
    results: dict[str, str]


def _run(
    mode: str, settings: Settings, replay: ReplayData, key: rsa.RSAPrivateKey, faults: str
) -> Outcome:
    sim = Simulator(
        replay,
        SimConfig(
            start=START,
            public_key=key.public_key(),
            key_id=KEY_ID,
            faults=FaultConfig.parse(faults, seed=11),
            rate_limit=False,
        ),
    ).start()
    try:
        with connect(settings) as conn:
            run = live_run(conn, settings, sim, key, mode, UNTIL)
            out = run.run()
            decisions: list[tuple[dt.datetime, str, dict[str, Any]]] = []
            for ts, ticker, payload in conn.execute(
                "SELECT ts, ticker, payload FROM exec.decisions WHERE mode = %s "
                "AND run_id = %s ORDER BY decision_id",
                (mode, out.run_id),
            ).fetchall():
                assert isinstance(ts, dt.datetime) and isinstance(payload, dict)
                decisions.append((ts, str(ticker), payload))
            fills = conn.execute(
                "SELECT fill_id, order_id, client_order_id::text, ticker, event_ticker, city, "
                "side, action, price, count_fp, fee, is_taker, ts FROM exec.fills "
                "WHERE mode = %s AND run_id = %s ORDER BY ts, fill_id",
                (mode, out.run_id),
            ).fetchall()
            orders = conn.execute(
                "SELECT client_order_id::text, order_id, status, ticker, side, action, price, "
                "count_fp FROM exec.orders WHERE mode = %s AND run_id = %s",
                (mode, out.run_id),
            ).fetchall()
            conn.commit()
        rest = rest_client(sim, key)
        exchange_orders = list(rest.iter_orders())
        exchange_positions = list(rest.iter_positions(settlement_status="all"))
        close = max(m.settle_time for m in replay.markets.values())
        sim.advance_to(close + dt.timedelta(minutes=1))
        pnl = rest.balance().balance - SimConfig().balance
        results = {t: m.result for t, m in replay.markets.items()}
    finally:
        sim.stop()
    return Outcome(
        run,
        out,
        decisions,
        list(fills),
        list(orders),
        exchange_orders,
        exchange_positions,
        pnl,
        results,
    )


@pytest.fixture(scope="module")
def live(day_settings: Settings, replay: ReplayData, private_key: rsa.RSAPrivateKey) -> Outcome:
    return _run("live", day_settings, replay, private_key, FAULTS)


@pytest.fixture(scope="module")
def paper(day_settings: Settings, replay: ReplayData, private_key: rsa.RSAPrivateKey) -> Outcome:
    return _run("paper", day_settings, replay, private_key, FAULTS)


def test_the_live_run_traded_through_every_fault(live: Outcome) -> None:
    stats = live.out.stats
    assert stats["steps"] == 121 and live.out.agent.fills > 5
    assert stats["stream"]["disconnects"] >= 2 and stats["stream"]["error"] is None
    client = live.run.stream.client if live.run.stream else None
    assert client is not None and client.stats.gaps > 0 and client.stats.duplicates > 0
    statuses = live.run.rest.stats.statuses
    assert statuses.get(429, 0) > 0 and statuses.get(503, 0) > 0
    kinds = live.out.agent.intents
    assert kinds["resting"] > 0 and kinds["filled"] > 0 and kinds["canceled"] > 0


def test_no_order_was_sent_twice(live: Outcome) -> None:
    exchange = live.exchange_orders
    assert exchange, "the run placed no order"
    client_ids = [o.client_order_id for o in exchange]
    assert len(set(client_ids)) == len(client_ids)
    assert len({o.order_id for o in exchange}) == len(exchange)
    ours = {str(r[0]): r for r in live.orders}
    for o in exchange:  # every exchange order is one of ours, under its own id
        assert o.client_order_id in ours and ours[str(o.client_order_id)][1] == o.order_id
    assert sorted(r[1] for r in live.orders if r[1] and not str(r[1]).startswith("unsent")) == (
        sorted(o.order_id for o in exchange)
    )
    # One exchange order per placement the agent decided (amends re-place).
    placed = [
        p
        for _, _, p in live.decisions
        if p.get("intent") in ("limit", "taker", "amend")
        and not str(p["outcome"]).startswith(("rejected", "not amended"))
    ]
    assert len(placed) == len(exchange)
    assert not any(r[2] == "pending" for r in live.orders)


def test_positions_equal_the_exchange(live: Outcome) -> None:
    venue = live.run.venue
    assert isinstance(venue, KalshiVenue)
    ours = {t: p for t, p in venue.positions().items()}
    theirs = {p.ticker: p for p in live.exchange_positions}
    assert set(ours) == set(theirs) and any(p.position != 0 for p in theirs.values())
    q = D("0.0001")
    for ticker, p in theirs.items():
        mine = ours[ticker]
        assert mine.yes_count == p.position, ticker
        assert mine.cost.quantize(q) == p.market_exposure, ticker
        assert mine.realized.quantize(q) == p.realized_pnl, ticker
        assert mine.fees == p.fees_paid, ticker


def test_every_decision_is_logged(live: Outcome) -> None:
    evaluations = [p for _, _, p in live.decisions if p.get("kind") == "evaluation"]
    intents = [p for _, _, p in live.decisions if p.get("kind") is None]
    agent = live.out.agent
    assert len(evaluations) == agent.strategy_calls == live.run.logged.evaluations  # type: ignore[union-attr]
    assert len(intents) == sum(agent.intents.values())
    # Each evaluation's intents are the intent rows that follow it at the same minute.
    by_minute: dict[dt.datetime, list[dict[str, Any]]] = {}
    for ts, _, p in live.decisions:
        by_minute.setdefault(ts, []).append(p)
    for rows in by_minute.values():
        asked = [i for p in rows if p.get("kind") == "evaluation" for i in p["intents"]]
        done = [p for p in rows if p.get("kind") is None]  # no risk-forced intents here
        assert [i["intent"] for i in asked] == [p["intent"] for p in done]
    # An evaluation carries what the strategy saw.
    first = evaluations[0]["brackets"]
    some = next(iter(first.values()))
    for field in ("p_mkt", "p_wx", "p_fused_norm", "hazard_next_60m", "signal", "features"):
        assert field in some
    assert any(b["p_wx"] is not None for e in evaluations for b in e["brackets"].values())


def test_pnl_equals_the_exchange_accounting(live: Outcome) -> None:
    records = [
        FillRecord(
            ts=r[12],
            ticker=r[3],
            event_ticker=r[4],
            city=r[5],
            side=r[6],
            action=r[7],
            price=r[8],
            count=r[9],
            fee=r[10],
            is_taker=r[11],
            hazard_next_60m=None,
            p_fused_norm=None,
            order_id=r[1],
        )
        for r in live.fills
    ]
    settlements = [
        Settlement(t, t.rsplit("-", 1)[0], "chicago", DAY, "yes" if r == "yes" else "no", UNTIL)
        for t, r in live.results.items()
    ]
    metrics = compute_metrics(records, settlements)
    assert metrics.net_pnl == live.pnl_exchange
    assert len(records) == live.out.agent.fills


def _norm(value: Any) -> Any:
    """Decisions with what legitimately differs between venues taken out: order ids, and
    the spelling of numbers (the exchange says 10.00 where the strategy said 10)."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if k != "order_id"}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        if value.startswith("resting "):
            return "resting"
        if re.fullmatch(r"-?\d+(\.\d+)?", value):
            return format(Decimal(value).normalize(), "f")
        match = re.fullmatch(r"filled (\S+) at (\S+)", value)
        if match:
            a, b = (format(Decimal(x).normalize(), "f") for x in match.groups())
            return f"filled {a} at {b}"
    return value


@pytest.mark.xfail(
    strict=True,
    reason="known divergence (issue 13 → 14): the backtest's maker fills now need a print "
    "through the limit and its takers are depth-limited, while the simulator's own matching "
    "(sim/fills.py 'cross') still fills at the limit and any size; paper and the simulator "
    "agree again once both use the one venue core of issue 14 (strict: an XPASS fails)",
)
def test_paper_makes_the_same_decisions(live: Outcome, paper: Outcome) -> None:
    def seq(o: Outcome) -> list[str]:
        return [
            json.dumps([ts.isoformat(), t, _norm(p)], sort_keys=True) for ts, t, p in o.decisions
        ]

    assert len(live.decisions) > 100
    assert seq(paper) == seq(live)

    def fills(o: Outcome) -> dict[tuple[Any, ...], tuple[Decimal, Decimal]]:
        """Contracts and fees per market, side, action, price and liquidity (one print
        may fill a resting order in one piece in paper and in two at the exchange)."""
        out: dict[tuple[Any, ...], tuple[Decimal, Decimal]] = {}
        for r in o.fills:
            key = (r[3], r[6], r[7], r[8], r[11])
            count, fee = out.get(key, (D(0), D(0)))
            out[key] = (count + r[9], fee + r[10])
        return out

    assert fills(paper) == fills(live)
