"""The evaluation across cities: pooled figures and the issue's targets, met or not.

Why targets in the output: a result that is read only as a table invites reading a tie as a
win. Each target is stated with the measured value next to it and a plain met / missed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from kwx.evaluate.plan import Skipped
from kwx.evaluate.run import CityEvaluation, pnl_interval, pooled_daily_sharpe

#: The issue's bars (issue 13): pooled midnight Brier of p_fused, ECE per city, Sharpe.
BRIER_MIDNIGHT_MAX = 0.085
ECE_MAX = 0.02
SHARPE_MIN = 1.5


def summarise(
    results: Sequence[CityEvaluation],
    skipped: Sequence[Skipped],
    date_from: dt.date,
    date_to: dt.date,
) -> dict[str, Any]:
    """Per-city figures, pooled figures and the targets as one JSON-ready dict."""
    cities = [r.as_dict() for r in results]
    midnight = [
        (h["brier"].get("p_fused_norm"), h["n_events"])
        for c in cities
        for h in c["hours"]
        if h["hour"] == "00" and h["brier"].get("p_fused_norm") is not None
    ]
    n_mid = sum(n for _, n in midnight)
    brier_mid = sum(b * n for b, n in midnight) / n_mid if n_mid else None
    fill_models = sorted({fm for r in results for fm in r.backtests})
    pooled: dict[str, Any] = {}
    for fm in fill_models:
        # Every city ran every fill model (evaluate_city runs the same list for each).
        daily = [r.daily_pnl[fm] for r in results if fm in r.daily_pnl]
        total, lo, hi = pnl_interval(daily, date_from, date_to)
        contracts = sum(
            (
                Decimal(str(r.backtests[fm]["contracts_traded"]))
                for r in results
                if fm in r.backtests
            ),
            Decimal(0),
        )
        pooled[fm] = {
            "net_pnl": round(total, 2),
            "net_pnl_ci95": [round(lo, 2), round(hi, 2)],
            "contracts": str(contracts),
            "net_pnl_per_contract": round(total / float(contracts), 4) if contracts else None,
            "sharpe_daily": pooled_daily_sharpe(daily, date_from, date_to),
        }
    targets = _targets(cities, brier_mid, pooled)
    return {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "cities": cities,
        "skipped": [{"city": s.city.key, "reason": s.reason} for s in skipped],
        "pooled": {"brier_p_fused_00": brier_mid, "n_events_00": n_mid, "backtests": pooled},
        "targets": targets,
    }


def _targets(
    cities: list[dict[str, Any]], brier_mid: float | None, pooled: dict[str, Any]
) -> list[dict[str, Any]]:
    behind = [
        f"{c['city']} {h['hour']}"
        for c in cities
        for h in c["hours"]
        if h["hour"] != "all" and h["verdict"] == "behind"
    ]
    ahead_cities = [c["city"] for c in cities if c["verdicts"]["ahead"] >= 2]
    ece = {
        c["city"]: next(h["ece"].get("p_fused_norm") for h in c["hours"] if h["hour"] == "all")
        for c in cities
    }
    ece_missed = [k for k, v in ece.items() if v is None or v > ECE_MAX]
    queue = pooled.get("queue", {})
    queue_cities_losing = [
        c["city"]
        for c in cities
        if "queue" in c["backtests"] and Decimal(str(c["backtests"]["queue"]["net_pnl"])) <= 0
    ]
    sharpe = queue.get("sharpe_daily")
    return [
        {
            "target": "p_fused behind p_mkt at no local hour in any city",
            "value": behind or "none behind",
            "met": not behind and bool(cities),
        },
        {
            "target": "p_fused ahead of p_mkt at two or more hours in at least three cities",
            "value": ahead_cities,
            "met": len(ahead_cities) >= 3,
        },
        {
            "target": f"pooled mean per-bracket Brier of p_fused at local midnight ≤ "
            f"{BRIER_MIDNIGHT_MAX}",
            "value": brier_mid,
            "met": brier_mid is not None and brier_mid <= BRIER_MIDNIGHT_MAX,
        },
        {
            "target": f"ECE of p_fused ≤ {ECE_MAX} in every city",
            "value": ece,
            "met": bool(cities) and not ece_missed,
        },
        {
            "target": "queue-fill P&L after fees > 0 in every city",
            "value": queue_cities_losing or "no city at or below 0",
            "met": bool(cities) and not queue_cities_losing,
        },
        {
            "target": f"pooled daily Sharpe (queue fills) ≥ {SHARPE_MIN}",
            "value": sharpe,
            "met": sharpe is not None and sharpe >= SHARPE_MIN,
        },
    ]
