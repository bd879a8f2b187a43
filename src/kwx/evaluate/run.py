"""`kwx evaluate`: every stage of kwx scored on days no fit has seen, city by city.

Why one command: the edge kwx claims is the pool's gain over the market and the P&L that gain
buys, and both are easy to overstate — an in-sample fit, a lucky split, quotes kinder than the
book. Here each city is run exactly as a user would run it (the weather model fitted on the
history before the range, p_mkt, the pool walked forward fold by fold, the classifiers fitted
before the range, the agent backtested with every fill model) and scored against the market
with event-bootstrap intervals, so a "tie" reads as a tie.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from kwx.backtest.report import metrics_dict
from kwx.backtest.runner import run_backtest
from kwx.config import Settings
from kwx.evaluate.plan import CityPlan
from kwx.pmf.edge import measure_edge_cells
from kwx.pmf.fusion import walk_forward
from kwx.pmf.market import write_p_mkt
from kwx.pmf.report import FUSED, fusion_report
from kwx.predict.api import train_and_calibrate
from kwx.weather.pipeline import fit_all, run_days
from kwx.weather.skill import collect, score

Conn = psycopg.Connection[tuple[object, ...]]

FILL_MODELS = ("taker", "maker-a", "maker-b", "queue")
#: The market-anchored pool (it can only add to p_mkt: shrunk to it where p_wx says nothing).
POOL_MODEL = "anchored"
#: Monte Carlo paths for the CRPS re-simulation at the skill hours (a diagnostic, not trading).
SKILL_PATHS = 1000
BOOTSTRAP_RESAMPLES = 2000


@dataclass
class CityEvaluation:
    """What one city's evaluation measured (JSON-ready through :meth:`as_dict`)."""

    plan: CityPlan
    by_hour: pd.DataFrame  # fusion_report's table: hour × model
    skill: pd.DataFrame  # weather.skill.score: hour, model, rps_norm, brier, log_loss, crps, n
    backtests: dict[str, dict[str, Any]] = field(default_factory=dict)
    daily_pnl: dict[str, dict[dt.date, Decimal]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def hours(self) -> list[dict[str, Any]]:
        """Per local hour: log-loss of p_fused, p_mkt and p_wx, the gain and its interval,
        the verdict ahead / tie / behind."""
        out: list[dict[str, Any]] = []
        for hour, part in self.by_hour.groupby("hour", sort=False):
            rows = {str(r["model"]): r for _, r in part.iterrows()}
            fused = rows[FUSED]
            lo, hi = float(fused["gain_lo"]), float(fused["gain_hi"])
            out.append(
                {
                    "hour": str(hour),
                    "n_events": int(fused["n_events"]),
                    "log_loss": {m: _num(rows[m]["log_loss"]) for m in rows},
                    "brier": {m: _num(rows[m]["brier"]) for m in rows},
                    "ece": {m: _num(rows[m]["ece"]) for m in rows},
                    "gain_vs_mkt": _num(fused["gain_vs_mkt"]),
                    "gain_ci": [_num(lo), _num(hi)],
                    "verdict": verdict(lo, hi),
                }
            )
        return out

    def crps(self) -> dict[str, dict[str, float | None]]:
        """CRPS (°F) of the Tmax distribution by hour and model (p_wx, p_mkt, climatology)."""
        out: dict[str, dict[str, float | None]] = {}
        for _, row in self.skill.iterrows():
            hour = f"{int(str(row['hour'])):02d}"
            out.setdefault(hour, {})[str(row["model"])] = _num(row["crps"])
        return out

    def as_dict(self) -> dict[str, Any]:
        hours = self.hours()
        tally = {v: sum(h["verdict"] == v for h in hours if h["hour"] != "all") for v in VERDICTS}
        return {
            "city": self.plan.city.key,
            "scored_from": self.plan.scored[0].isoformat(),
            "scored_to": self.plan.scored[-1].isoformat(),
            "n_scored_days": len(self.plan.scored),
            "fits_end": self.plan.fit_to.isoformat(),
            "weather_fit": [self.plan.weather_from.isoformat(), self.plan.weather_to.isoformat()],
            "train_days": len(self.plan.train),
            "obs_source": self.plan.obs_source,
            "forecast_source": self.plan.forecast_source,
            "hours": hours,
            "verdicts": tally,
            "crps": self.crps(),
            "backtests": self.backtests,
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            "notes": [*self.plan.notes, *self.notes],
        }


VERDICTS = ("ahead", "tie", "behind")


def verdict(lo: float, hi: float) -> str:
    """ahead when the gain's interval lies wholly above 0, behind wholly below, else tie."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "tie"
    if lo > 0:
        return "ahead"
    if hi < 0:
        return "behind"
    return "tie"


def _num(value: object) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    try:
        x = float(str(value))
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def evaluate_city(
    conn: Conn,
    settings: Settings,
    plan: CityPlan,
    *,
    mc_version: str,
    fill_models: Sequence[str] = FILL_MODELS,
    step_days: int = 30,
    paths: int = 4000,
    out_dir: Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CityEvaluation:
    """Run and score one city (see the module docstring); every fit ends on plan.fit_to."""
    city = plan.city
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if on_stage is not None:
            on_stage(f"{city.key}: {name}")
        timings[name] = now - clock
        clock = now

    fit_all(
        conn,
        city,
        plan.weather_from,
        plan.weather_to,
        obs_source=plan.obs_source,
        forecast_source=plan.forecast_source,
        version=mc_version,
    )
    stage("weather fit")
    days = plan.run_days
    ran = run_days(
        conn,
        city,
        days,
        paths=paths,
        mc_version=mc_version,
        obs_source=plan.obs_source,
        forecast_source=plan.forecast_source,
        params_version=mc_version,
    )
    stage("weather run")
    notes = [f"weather model skipped {line}" for line in ran.skipped]
    write_p_mkt(conn, city.key, days[0], days[-1], mc_version=mc_version)
    stage("p_mkt")
    # The pool is walked forward from the middle of the training days, so that the edge cells
    # the strategy trades in are measured on days the pool never saw, all before the range.
    edge_from = plan.edge_from
    walk_forward(
        conn,
        city.key,
        days[0],
        days[-1],
        edge_from,
        step_days=step_days,
        mc_version=mc_version,
        version=f"{mc_version}-walk",
        model=POOL_MODEL,
    )
    stage("pool walk-forward")
    cells = measure_edge_cells(conn, city.key, edge_from, plan.fit_to, mc_version=mc_version)
    opened = [c.label for c in cells if c.open]
    notes.append(
        f"edge cells measured on {edge_from} → {plan.fit_to} (walk-forward, before the range): "
        + (
            f"{len(opened)} of {len(cells)} open ({', '.join(opened)})"
            if opened
            else f"none of {len(cells)} open, so the strategy enters nothing"
        )
    )
    stage("edge cells")
    by_hour = fusion_report(conn, city.key, plan.scored[0], plan.scored[-1], mc_version=mc_version)
    stage("scores")
    skill = score(
        collect(
            conn,
            city,
            plan.scored[0],
            plan.scored[-1],
            mc_version,
            params_version=mc_version,
            paths=SKILL_PATHS,
        )
    )
    stage("CRPS")
    result = CityEvaluation(plan, by_hour, skill, notes=notes, timings=timings)
    try:
        train_and_calibrate(
            conn, settings, city.key, plan.train[0], plan.fit_to, mc_version=mc_version
        )
    except ValueError as exc:
        notes.append(f"move classifiers not fitted ({exc}); backtests run without them")
    stage("classifiers")
    for fill_model in fill_models:
        report_path = (
            out_dir / f"evaluate_{city.key}_{fill_model}.html" if out_dir is not None else None
        )
        outcome = run_backtest(
            conn,
            settings,
            city.key,
            plan.scored[0],
            plan.scored[-1],
            fill_model=fill_model,
            mc_version=mc_version,
            report_path=report_path,
            write_report_file=report_path is not None,
        )
        metrics = metrics_dict(outcome.metrics)
        contracts = outcome.metrics.contracts_traded
        metrics["net_pnl_per_contract"] = (
            str((outcome.metrics.net_pnl / contracts).quantize(Decimal("0.0001")))
            if contracts
            else None
        )
        metrics["run_id"] = outcome.run_id
        metrics["notes"] = outcome.notes
        result.backtests[fill_model] = metrics
        result.daily_pnl[fill_model] = {
            d: Decimal(p)
            for d, p in zip(
                outcome.metrics.daily["climate_date"], outcome.metrics.daily["pnl"], strict=True
            )
        }
        if outcome.report_path is not None:
            result.reports[fill_model] = str(outcome.report_path)
        stage(f"backtest {fill_model}")
    return result


def pooled_daily_sharpe(
    daily: Sequence[dict[dt.date, Decimal]], first: dt.date, last: dt.date
) -> float | None:
    """Sharpe (√365) of the summed daily P&L over every day of [first, last] (days without a
    position count as 0, as they are in a real account)."""
    n = (last - first).days + 1
    if n < 2:
        return None
    total = np.zeros(n)
    for series in daily:
        for day, pnl in series.items():
            i = (day - first).days
            if 0 <= i < n:
                total[i] += float(pnl)
    sd = float(np.std(total, ddof=1))
    return float(np.mean(total) / sd * math.sqrt(365)) if sd > 0 else None


def pnl_interval(
    daily: Sequence[dict[dt.date, Decimal]], first: dt.date, last: dt.date, seed: int = 0
) -> tuple[float, float, float]:
    """Total P&L over the range and a 95% interval from resampling whole days."""
    n = (last - first).days + 1
    total = np.zeros(max(n, 0))
    for series in daily:
        for day, pnl in series.items():
            i = (day - first).days
            if 0 <= i < n:
                total[i] += float(pnl)
    if n < 2:
        s = float(total.sum())
        return s, s, s
    rng = np.random.default_rng(seed)
    sums = total[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].sum(axis=1)
    lo, hi = np.quantile(sums, [0.025, 0.975])
    return float(total.sum()), float(lo), float(hi)
