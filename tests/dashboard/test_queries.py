"""The dashboard's reads against the real test store (no browser): what each page is fed."""

from __future__ import annotations

import datetime as dt

import numpy as np

from kwx.dashboard import calibration, pnl, queries, readiness
from kwx.domain.climate_day import climate_day_window
from kwx.store.engine import connect
from tests.conftest import needs_data
from tests.dashboard.conftest import NOW, Store

pytestmark = needs_data()


def test_pnl_of_a_backtest_equals_the_runs_own_metrics(store: Store) -> None:
    with connect(store.settings) as conn:
        m = pnl.run_metrics(conn, "backtest", store.backtest.run_id)
        paper = pnl.run_metrics(conn, "paper", store.paper_run)
    assert m.n_fills == store.backtest.metrics.n_fills > 0
    assert m.net_pnl == store.backtest.metrics.net_pnl
    assert m.maker_fees == store.backtest.metrics.maker_fees
    assert paper.net_pnl == m.net_pnl  # the paper rows are the backtest's fills


def test_now_state_shows_the_minute_at_or_before_now_and_never_after(store: Store) -> None:
    with connect(store.settings) as conn:
        state = queries.now_state(conn, NOW)
        later = queries.now_state(conn, NOW + dt.timedelta(hours=3))
    city = state["cities"][0]
    assert city["city"] == "chicago" and city["ts"] == NOW.isoformat()
    assert later["cities"][0]["ts"] == (NOW + dt.timedelta(hours=3)).isoformat()
    ev = city["events"][0]
    assert abs(ev["sum_p_wx"] - 1.0) < 0.02
    assert ev["running_max"] is not None
    quoted = [r for r in ev["rows"] if r["quotes"]]
    assert len(quoted) == 1 and quoted[0]["quotes"][0]["remaining"] == 5.0
    (run,) = state["runs"]
    assert run["mode"] == "paper" and run["risk"]["risk"]["day_pnl_global"] == "-1.25"


def test_morning_brier_equals_a_hand_computation(store: Store) -> None:
    from kwx.registry import default_registry

    city = default_registry().by_key("chicago")
    day = dt.date(2024, 12, 5)
    ts = climate_day_window(city.timezone, day)[0] + calibration.MORNING
    with connect(store.settings) as conn:
        rows = conn.execute(
            "SELECT p.p_wx, m.result FROM pmf.minute p JOIN kalshi.markets m USING (ticker) "
            "WHERE p.ts = %s AND m.climate_date = %s",
            (ts, day),
        ).fetchall()
        page = calibration.models_page(conn)
    p = np.array([float(r[0]) for r in rows])  # type: ignore[arg-type]
    y = np.array([r[1] == "yes" for r in rows], dtype=float)
    (c,) = page["cities"]
    assert c["headline"]["p_wx"]["brier"] == float(np.mean((p - y) ** 2))
    assert c["headline"]["p_wx"]["n_days"] == 1


def test_readiness_says_not_enough_paper_data(store: Store) -> None:
    with connect(store.settings) as conn:
        (v,) = readiness.verdicts(conn)
    assert v["city"] == "chicago"
    assert v["verdict"].startswith("not enough paper data (1 of 28 days)")


def test_the_future_does_not_move_what_now_shows(store: Store) -> None:
    """Rows after NOW (a later minute, a 200 °F reading) change nothing the Now page shows
    for NOW; written in a transaction that is rolled back."""
    with connect(store.settings) as conn:
        before = queries.now_state(conn, NOW)
        later = NOW + dt.timedelta(minutes=5)
        conn.execute(
            "INSERT INTO pmf.minute (ticker, ts, mc_version, city, event_ticker, p_wx) "
            "SELECT ticker, %s, mc_version, city, event_ticker, 0.5 FROM pmf.minute "
            "WHERE ts = %s ON CONFLICT (ticker, ts, mc_version) DO UPDATE SET p_wx = 0.5",
            (later, NOW),
        )
        conn.execute(
            "INSERT INTO wx.obs (city, source, ts, temp_f) SELECT city, source, %s, 200 "
            "FROM wx.obs WHERE city = 'chicago' GROUP BY city, source",
            (later,),
        )
        after = queries.now_state(conn, NOW)
        moved = queries.now_state(conn, later)
        conn.rollback()
    assert after["cities"] == before["cities"]
    assert moved["cities"][0]["events"][0]["running_max"] == 200.0  # the change is visible


def test_decision_filters(store: Store) -> None:
    with connect(store.settings) as conn:
        everything = queries.decisions(conn, mode="paper", limit=10_000)
        chicago = queries.decisions(conn, mode="paper", city="chicago", limit=10_000)
        miami = queries.decisions(conn, mode="paper", city="miami")
        evaluations = queries.decisions(conn, mode="paper", kind="evaluation")
        newest = everything[0]["decision_id"]
        after = queries.decisions(conn, mode="paper", after_id=newest - 1)
        run = queries.decisions(conn, mode="backtest", run_id=store.backtest.run_id, limit=10**4)
        (stored,) = conn.execute(
            "SELECT count(*) FROM exec.decisions WHERE mode = 'backtest' AND run_id = %s",
            (store.backtest.run_id,),
        ).fetchall()
    assert len(everything) > 1 and len(chicago) == len(everything) and miami == []
    assert evaluations and all(r["kind"] == "evaluation" for r in evaluations)
    assert [r["decision_id"] for r in after] == [newest]
    assert run and len(run) == stored[0]
