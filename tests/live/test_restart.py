"""Restart safety: `kwx run --mode live` killed with SIGKILL mid-order, then started again.

A real subprocess trades against an in-process simulator (manual speed, so the market
stands still at 14:37 UTC on 2024-12-05, a minute at which the strategy places two resting
limit orders). A test hook (``KWX_TEST_CRASH_AT``) makes the process kill itself with SIGKILL
at the dangerous points: right after the ``pending`` row of an order is committed (the request
never left), or right after the request was sent (the exchange has the order; we never read the
answer). The second start reconciles before it trades. Whatever the point, the exchange ends
with exactly the orders one uninterrupted decision makes — found by running the same minute in
paper mode first — each once, and no ``pending`` row is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kwx.config import Settings
from kwx.live.kalshi_venue import CRASH_ENV, v2_side
from kwx.sim.simulator import Simulator
from kwx.store.engine import connect
from tests.conftest import needs_data
from tests.live.conftest import KEY_ID, at, live_run, rest_client

pytestmark = needs_data()

T0 = at("2024-12-05T14:37:00")
D = Decimal


def _reference(
    settings: Settings, sim: Simulator, key: rsa.RSAPrivateKey
) -> Counter[tuple[str, str, Decimal, Decimal]]:
    """(ticker, V2 side, YES price, count) of what one uninterrupted decision at T0 places
    (paper mode: nothing reaches the exchange)."""
    with connect(settings) as conn:
        run = live_run(conn, settings, sim, key, "paper", T0, history=False)
        outcome = run.run()
        rows = conn.execute(
            "SELECT ticker, payload FROM exec.decisions WHERE mode = 'paper' AND run_id = %s "
            "AND payload->>'intent' IN ('limit', 'taker')",
            (outcome.run_id,),
        ).fetchall()
    out: Counter[tuple[str, str, Decimal, Decimal]] = Counter()
    for ticker, p in rows:
        assert isinstance(p, dict)
        book, price = v2_side(
            "yes" if p["side"] == "yes" else "no",
            "buy" if p["action"] == "buy" else "sell",
            D(p["price"]),
        )
        out[(str(ticker), book, price, D(p["count"]))] += 1
    return out


def _kwx_run(
    sim: Simulator, settings: Settings, key_file: Path, tmp: Path, crash: str | None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KWX_DATABASE_URL": settings.kwx_database_url.get_secret_value()
        if settings.kwx_database_url
        else "",
        "KWX_DATA_DIR": str(tmp),
        "KALSHI_REST_BASE_URL": sim.rest_url,
        "KALSHI_WS_URL": sim.ws_url,
        "KALSHI_API_KEY_ID": KEY_ID,
        "KALSHI_PRIVATE_KEY_PATH": str(key_file),
        "TRADE_MODE": "live",
        "HTTP_TIMEOUT_S": "5",
        "COLUMNS": "200",
    }
    env.pop(CRASH_ENV, None)
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kwx.cli",
            "run",
            "--mode",
            "live",
            "--live",
            "--city",
            "chicago",
            "--clock",
            "exchange",
            "--max-steps",
            "1",
            "--no-history",
            "--weather",
            "store",
            "--no-edge-gate",
            "--keep-orders",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
        check=False,
    )


@pytest.mark.parametrize("crash", ["after_pending:1", "after_send:2"])
def test_kill_9_mid_order_then_restart_never_duplicates(
    crash: str,
    day_settings: Settings,
    make_sim: Callable[..., Simulator],
    private_key: rsa.RSAPrivateKey,
    key_file: Path,
    tmp_path: Path,
) -> None:
    sim = make_sim(T0)
    reference = _reference(day_settings, sim, private_key)
    assert sum(reference.values()) >= 2, "the strategy must place two orders at T0 for this test"
    rest = rest_client(sim, private_key)

    first = _kwx_run(sim, day_settings, key_file, tmp_path, crash)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    with connect(day_settings) as conn:
        pending = conn.execute(
            "SELECT client_order_id::text, order_id FROM exec.orders WHERE mode = 'live' "
            "AND status = 'pending' AND exchange = %s",
            (sim.rest_url,),
        ).fetchall()
    assert len(pending) == 1 and pending[0][1] is None
    killed_id = str(pending[0][0])
    before = {o.client_order_id: o for o in rest.iter_orders()}
    point, _, n = crash.partition(":")
    assert (killed_id in before) == (point == "after_send")  # the crash was where we wanted
    assert len(before) == int(n) - (point == "after_pending")

    second = _kwx_run(sim, day_settings, key_file, tmp_path, None)
    assert second.returncode == 0, second.stderr[-3000:]
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    assert killed_id in stats["reconcile"]["resent" if point == "after_pending" else "adopted"]

    after = list(rest.iter_orders())
    ids = [o.client_order_id for o in after]
    assert len(ids) == len(set(ids))  # by client id …
    assert len({o.order_id for o in after}) == len(after)  # … and by exchange id
    placed: Counter[tuple[str, str, Decimal, Decimal]] = Counter(
        (o.ticker, str(o.book_side), o.yes_price or D(0), o.initial_count or D(0)) for o in after
    )
    assert placed == reference  # what one uninterrupted decision places, nothing more
    with connect(day_settings) as conn:
        rows: dict[str, object] = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT client_order_id::text, order_id FROM exec.orders WHERE mode = 'live' "
                "AND exchange = %s",
                (sim.rest_url,),
            ).fetchall()
        )
        left = conn.execute(
            "SELECT count(*) FROM exec.orders WHERE mode = 'live' AND status = 'pending' "
            "AND exchange = %s",
            (sim.rest_url,),
        ).fetchone()
    assert left is not None and left[0] == 0
    assert {o.client_order_id: o.order_id for o in after} == {
        k: v for k, v in rows.items() if v is not None
    }


def test_a_pending_order_too_old_to_send_is_expired_not_sent(
    day_settings: Settings, make_sim: Callable[..., Simulator], private_key: rsa.RSAPrivateKey
) -> None:
    """A decision left pending by a crash long ago is stale: a restart never sends it."""
    import datetime as dt

    from kwx.live.order_ledger import OrderLedger, client_order_id
    from kwx.sources.kalshi_models import OrderRequest

    sim = make_sim(T0)
    decided = T0 - dt.timedelta(minutes=10)
    ticker = "KXHIGHCHI-24DEC05-B26.5"
    with connect(day_settings) as conn:
        run = live_run(conn, day_settings, sim, private_key, "live", T0, history=False)
        coid = client_order_id(
            run.rest.base_url, ticker, "yes", "buy", "limit", D("0.20"), D(5), decided, 0
        )
        request = OrderRequest(
            ticker, "bid", D(5), D("0.20"), "good_till_canceled", client_order_id=coid
        )
        with connect(day_settings, autocommit=True) as ledger_conn:
            OrderLedger(ledger_conn, mode="live", exchange=run.rest.base_url).pending(
                client_order_id=coid,
                run_id=None,
                ticker=ticker,
                event_ticker="KXHIGHCHI-24DEC05",
                side="yes",
                action="buy",
                kind="limit",
                price=D("0.20"),
                count=D(5),
                decided_at=decided,
                request=request.to_json(),
            )
        outcome = run.run()
        status = conn.execute(
            "SELECT status FROM exec.orders WHERE client_order_id = %s", (coid,)
        ).fetchone()
    assert outcome.reconcile is not None and outcome.reconcile.expired == [coid]
    assert status is not None and status[0] == "expired"
    assert coid not in {o.client_order_id for o in rest_client(sim, private_key).iter_orders()}
