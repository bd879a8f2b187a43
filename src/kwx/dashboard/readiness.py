"""Go-live readiness: the criteria for trading a city with real money, as a verdict.

A city is ready when all four hold (each shown with its figure, so a "no" says why):

1. **Weeks of paper**: at least ``MIN_PAPER_DAYS`` (four weeks) of climate days on which a
   paper run evaluated the city. Fewer, and the verdict is plainly "not enough paper data":
   no other criterion can be judged on less.
2. **P&L and its interval**: the paper fills' P&L after fees (the backtest's metrics, see
   :mod:`kwx.dashboard.pnl`), with a 95 % interval on the mean daily P&L; the lower end must be
   above zero — a tie with zero is not an edge.
3. **Calibration stable**: over the last 30 settled days the ECE of p_fused_norm (p_wx where
   the store has no fused probability) is at most ``ece_max``, and that window's Brier
   interval reaches down to the Brier of the days before it (it has not got significantly
   worse).
4. **Drawdown within limit**: the paper run's maximum drawdown is at most
   ``DRAWDOWN_DAYS`` × the risk manager's daily loss limit per city.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

from kwx.backtest.metrics import compute_metrics
from kwx.dashboard import calibration, queries
from kwx.dashboard.pnl import daily_interval, run_fills, settlements
from kwx.dashboard.queries import Conn, jsonable
from kwx.registry import CityRegistry, default_registry
from kwx.strategy.config import RiskConfig

MIN_PAPER_DAYS: Final = 28
DRAWDOWN_DAYS: Final = 3


def _paper_days(conn: Conn, city: str, tz: str) -> int:
    row = conn.execute(
        """
        SELECT count(DISTINCT (ts AT TIME ZONE %s)::date) FROM exec.decisions
        WHERE mode = 'paper' AND payload->>'kind' = 'evaluation' AND payload->>'city' = %s
        """,
        (tz, city),
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def _calibration(conn: Conn, city_key: str, registry: CityRegistry, ece_max: float) -> Any:
    s = queries.series_in_use(conn).get(city_key)
    if s is None:
        return {"ok": False, "text": "no probabilities stored"}
    city = registry.by_key(city_key)
    last = s.last_ts.date()
    first = max(s.first_ts.date(), last - dt.timedelta(days=4 * calibration.WINDOW))
    frame = calibration.morning_sample(conn, city, s.mc_version, first, last)
    for model in ("p_fused_norm", "p_wx"):
        roll = calibration.rolling(frame, model) if not frame.empty else {"day": []}
        n = len(roll["day"])
        if n == 0:
            continue
        ece_last, lo_last = roll["ece"][-1], roll["brier_lo"][-1]
        before = n - calibration.WINDOW
        prev = roll["brier"][before - 1] if before > 0 else None
        worse = prev is not None and not math.isnan(lo_last) and lo_last > prev
        ok = ece_last <= ece_max and not worse and n >= calibration.WINDOW
        text = (
            f"{model}: 30-day ECE {ece_last:.3f} (max {ece_max:g}), Brier {roll['brier'][-1]:.4f}"
        )
        text += f" (95% lo {lo_last:.4f}) vs {prev:.4f} before" if prev is not None else ""
        if n < calibration.WINDOW:
            text += f"; only {n} settled days"
        return {"ok": ok, "text": text, "model": model, "ece": ece_last}
    return {"ok": False, "text": "no settled days scored"}


def verdicts(
    conn: Conn, registry: CityRegistry | None = None, ece_max: float = 0.10
) -> list[dict[str, Any]]:
    """One verdict per city the store holds probabilities or paper runs for."""
    registry = registry or default_registry()
    limit = DRAWDOWN_DAYS * RiskConfig().max_daily_loss_city
    paper_runs = queries._rows(
        conn, "SELECT run_id, cities FROM exec.live_runs WHERE mode = 'paper' ORDER BY run_id"
    )
    keys = set(queries.series_in_use(conn)) | {c for r in paper_runs for c in r["cities"]}
    out: list[dict[str, Any]] = []
    for key in sorted(keys):
        try:
            city = registry.by_key(key)
        except KeyError:
            continue
        days = _paper_days(conn, key, city.timezone)
        fills = [
            f
            for r in paper_runs
            if key in r["cities"]
            for f in run_fills(conn, "paper", r["run_id"])
            if f.city in ("", key)
        ]
        m = compute_metrics(fills, settlements(conn, sorted({f.ticker for f in fills})))
        daily = [float(x) for x in m.daily["pnl"]] if not m.daily.empty else []
        mean, lo, hi = daily_interval(daily)
        pnl_ok = not math.isnan(lo) and lo > 0
        dd_ok = m.max_drawdown <= limit
        cal = _calibration(conn, key, registry, ece_max)
        criteria = {
            "paper": {
                "ok": days >= MIN_PAPER_DAYS,
                "text": f"{days} paper days ({days / 7:.1f} weeks) of {MIN_PAPER_DAYS} needed",
            },
            "pnl": {
                "ok": pnl_ok,
                "text": (
                    f"net {m.net_pnl} over {len(daily)} days; mean/day {mean:.2f} "
                    f"[{lo:.2f}, {hi:.2f}] 95% — " + ("ahead" if pnl_ok else "tie or behind")
                )
                if daily
                else "no settled paper P&L",
                "net_pnl": m.net_pnl,
            },
            "calibration": cal,
            "drawdown": {
                "ok": dd_ok,
                "text": f"max drawdown {m.max_drawdown} (limit {limit}: "
                f"{DRAWDOWN_DAYS} × daily loss limit {RiskConfig().max_daily_loss_city})",
                "max_drawdown": m.max_drawdown,
            },
        }
        if days < MIN_PAPER_DAYS:
            verdict = f"not enough paper data ({days} of {MIN_PAPER_DAYS} days)"
        elif all(c["ok"] for c in criteria.values()):
            verdict = "ready"
        else:
            failed = [k for k, c in criteria.items() if not c["ok"]]
            verdict = "not ready: " + ", ".join(failed)
        out.append({"city": key, "verdict": verdict, "criteria": criteria})
    shown: list[dict[str, Any]] = jsonable(out)
    return shown
