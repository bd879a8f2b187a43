"""The kill switch in live mode: trading stops and resting orders are cancelled *at the
exchange*; a run that ends cancels what it left resting (unless told to keep it).

The day loss limit is set to 5¢, so the first position that marks below its cost trips the
switch on the real day's prices (14:30 → 15:30 UTC, 2024-12-05); what happened is read back
from the simulator's own order list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.config import Settings
from kwx.sim.simulator import Simulator
from kwx.store.engine import connect
from kwx.strategy.config import ExecutionConfig, RiskConfig, StrategyConfig
from tests.conftest import needs_data
from tests.live.conftest import at, live_run, rest_client

pytestmark = needs_data()

START, UNTIL = at("2024-12-05T14:30:00"), at("2024-12-05T15:30:00")


def _decisions(settings: Settings, run_id: int) -> list[tuple[dt.datetime, str, dict[str, Any]]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT ts, ticker, payload FROM exec.decisions WHERE mode = 'live' AND run_id = %s "
            "ORDER BY decision_id",
            (run_id,),
        ).fetchall()
    out = []
    for ts, ticker, payload in rows:
        assert isinstance(ts, dt.datetime) and isinstance(payload, dict)
        out.append((ts, str(ticker), payload))
    return out


def test_kill_switch_cancels_resting_orders_at_the_exchange(
    day_settings: Settings, make_sim: Callable[..., Simulator], private_key: rsa.RSAPrivateKey
) -> None:
    sim = make_sim(START)
    config = StrategyConfig(
        execution=ExecutionConfig(taker_slippage=Decimal(0), edge_gate=False),
        risk=RiskConfig(max_daily_loss_city=Decimal("0.05")),
    )
    with connect(day_settings) as conn:
        run = live_run(
            conn, day_settings, sim, private_key, "live", UNTIL, config=config, cancel_on_exit=False
        )
        outcome = run.run()
    decisions = _decisions(day_settings, outcome.run_id)
    killed = {ts for ts, _, p in decisions if p.get("kind") == "evaluation" and p["risk"]["killed"]}
    assert killed, "the 5¢ limit never tripped: the test lost its point"
    first = min(killed)
    forced = [(ts, p) for ts, _, p in decisions if str(p.get("reason", "")).startswith("kill")]
    assert forced and all(p["intent"] == "cancel" for _, p in forced)
    # Every order resting when the switch tripped was cancelled then, at the exchange too.
    resting_then = {
        o["order_id"]
        for ts, _, p in decisions
        if ts == first and p.get("kind") == "evaluation"
        for o in p["resting"]
    }
    cancelled = {p["order_id"] for ts, p in forced if ts == first}
    assert resting_then and resting_then == cancelled
    exchange = {o.order_id: o for o in rest_client(sim, private_key).iter_orders()}
    for order_id in cancelled:
        assert exchange[order_id].status == "canceled"
    # While killed, nothing new reaches the exchange: entries are refused by risk.
    for ts, _, p in decisions:
        if ts in killed and p.get("intent") in ("limit", "taker") and p["action"] == "buy":
            assert p["outcome"].startswith("rejected: kill switch")
    with connect(day_settings) as conn:
        actions: dict[object, object] = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT order_id, action FROM exec.orders WHERE mode = 'live' AND run_id = %s",
                (outcome.run_id,),
            ).fetchall()
        )
    for o in exchange.values():
        assert o.created_time is not None
        decided = o.created_time + dt.timedelta(microseconds=1)  # lock-step: just before t
        if decided in killed:
            assert actions[o.order_id] == "sell"


def test_a_run_that_ends_cancels_what_it_left_resting(
    day_settings: Settings, make_sim: Callable[..., Simulator], private_key: rsa.RSAPrivateKey
) -> None:
    sim = make_sim(at("2024-12-05T14:37:00"))  # two limits go out at once, and rest
    with connect(day_settings) as conn:
        run = live_run(conn, day_settings, sim, private_key, "live", at("2024-12-05T14:37:00"))
        outcome = run.run()
    assert outcome.agent.intents["resting"] >= 2
    orders = list(rest_client(sim, private_key).iter_orders())
    assert len(orders) == outcome.agent.intents["resting"]
    assert all(o.status == "canceled" for o in orders)
    assert "cancelled 2 resting order(s) on exit" in run.notes
