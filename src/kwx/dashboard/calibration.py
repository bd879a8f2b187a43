"""Calibration drift and Monte Carlo health of the stored probabilities, on settled days.

The sample is one snapshot a day: every bracket of the day's event at the *morning* minute
(10:00 local standard time, when the market is open and most of the day is still ahead),
scored against its settled result. One row per bracket and day keeps the days equally
weighted and the reads cheap (an index lookup per day, not a scan of the city-year).

* Brier and ECE: :func:`kwx.pmf.metrics.brier`, :func:`kwx.pmf.metrics.ece` over the
  brackets of the window's days; log-loss: :func:`kwx.pmf.metrics.winner_losses` of each
  event's PMF. Rolling over ``window`` settled days; the band is the mean ± 1.96 standard
  errors of the daily values inside the window (days are the draws).
* Reliability: :func:`kwx.pmf.metrics.reliability_curve` over every settled row.
* PIT of the morning Tmax distribution: where the settled maximum fell among the stored
  quantiles (q05, q25, q50, q75, q95); a calibrated model puts 5/20/25/25/20/5 % in the bins.
* Σp (p_wx and raw p_fused over the event) and the ruled-out mass (p_wx on brackets whose
  top is already below the observed running maximum at that minute): both say whether the
  Monte Carlo is healthy (Σp ≈ 1, ruled-out mass ≈ 0). The observed maximum is the best-ranked
  source's (a proxy such as ERA5 where no station feed is stored), not the official value the
  model conditions on, so a small mass on the bracket just below it is the measurement model
  at work; a large or persistent one is not.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from kwx.dashboard.queries import Conn, _rows, jsonable, series_in_use
from kwx.domain.climate_day import climate_day_window
from kwx.pmf.metrics import FloatArray, brier, ece, reliability_curve, winner_losses
from kwx.registry import City, CityRegistry, default_registry

MORNING: Final = dt.timedelta(hours=10)
MODELS: Final = ("p_fused_norm", "p_mkt", "p_wx")
PIT_EDGES: Final = ("tmax_q05", "tmax_q25", "tmax_q50", "tmax_q75", "tmax_q95")
PIT_EXPECTED: Final = (0.05, 0.20, 0.25, 0.25, 0.20, 0.05)
WINDOW: Final = 30
MAX_DAYS: Final = 400
ECE_BINS: Final = 10


def morning_sample(
    conn: Conn, city: City, mc_version: str, first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Every bracket of each settled day's event at 10:00 LST, with the running maximum."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)][-MAX_DAYS:]
    starts = [climate_day_window(city.timezone, d)[0] for d in days]
    stamps = [s + MORNING for s in starts]
    rows = _rows(
        conn,
        """
        WITH d0(day, day_start, ts) AS (
            SELECT * FROM unnest(%(days)s::date[], %(starts)s::timestamptz[],
                                 %(stamps)s::timestamptz[])),
        d AS (
            SELECT d0.*, rm.running_max FROM d0 LEFT JOIN LATERAL (
                SELECT max(o.temp_f) AS running_max FROM wx.obs o
                JOIN meta.obs_source_rank r ON r.source = o.source
                WHERE o.city = %(city)s AND o.ts >= d0.day_start AND o.ts <= d0.ts
                GROUP BY r.rank ORDER BY r.rank LIMIT 1
            ) rm ON true)
        SELECT d.day, p.ts, p.event_ticker, p.ticker, p.p_mkt, p.p_wx, p.p_fused,
               p.p_fused_norm, p.tmax_q05, p.tmax_q25, p.tmax_q50, p.tmax_q75, p.tmax_q95,
               m.result, m.settled_tmax, m.floor_strike, m.cap_strike, d.running_max
        FROM d
        -- LATERAL + OFFSET 0 (not flattened): one index lookup per day, whatever the
        -- planner's row estimates say.
        CROSS JOIN LATERAL (
            SELECT * FROM pmf.minute p
            WHERE p.city = %(city)s AND p.mc_version = %(v)s AND p.ts = d.ts OFFSET 0) p
        JOIN kalshi.markets m ON m.ticker = p.ticker AND m.climate_date = d.day
        WHERE m.result IN ('yes', 'no')
        ORDER BY d.day, p.ticker
        """,
        {"days": days, "starts": starts, "stamps": stamps, "city": city.key, "v": mc_version},
    )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for col in ("floor_strike", "cap_strike"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["y"] = (frame["result"] == "yes").astype(float)
    return frame


@dataclass(frozen=True)
class _Daily:
    """Per-day scores of one probability (days in order) and its ECE bin sums."""

    days: list[dt.date]
    brier: FloatArray
    log_loss: FloatArray
    n: FloatArray  # (days, bins) counts
    sp: FloatArray  # Σp per day and bin
    sy: FloatArray  # Σy per day and bin
    p: FloatArray  # every scored row
    y: FloatArray


def _daily(frame: pd.DataFrame, model: str) -> _Daily | None:
    """Score the days on which every bracket has this probability and exactly one won:
    per day the Brier over its brackets, −log p(winner) of its event, and the ECE bin sums
    (count, Σp, Σy per bin) so that windows pool exactly by adding days."""
    days, idx = np.unique(frame["day"].to_numpy(), return_inverse=True)
    p = frame[model].to_numpy(dtype=float)
    y = frame["y"].to_numpy(dtype=float)
    n_days = len(days)
    missing = np.bincount(idx, weights=np.isnan(p).astype(float), minlength=n_days)
    wins = np.bincount(idx, weights=y, minlength=n_days)
    ok_day = (missing == 0) & (wins == 1.0)
    if not ok_day.any():
        return None
    keep = ok_day[idx]
    remap = np.cumsum(ok_day) - 1
    d_idx = remap[idx[keep]]
    p, y = np.clip(p[keep], 0.0, 1.0), y[keep]
    m = int(ok_day.sum())
    count = np.bincount(d_idx, minlength=m).astype(float)
    brier_day = np.bincount(d_idx, weights=(p - y) ** 2, minlength=m) / count
    order = np.argsort(d_idx, kind="stable")
    splits = np.cumsum(count.astype(np.int64))[:-1]
    pmfs = np.split(p[order], splits)
    winners = [int(np.argmax(w)) for w in np.split(y[order], splits)]
    bins = np.clip(np.floor(p * ECE_BINS).astype(np.int64), 0, ECE_BINS - 1)
    cell = d_idx * ECE_BINS + bins

    def sums(weights: FloatArray | None) -> FloatArray:
        out: FloatArray = np.bincount(cell, weights=weights, minlength=m * ECE_BINS).astype(float)
        return out.reshape(m, ECE_BINS)

    return _Daily(
        days=list(days[ok_day]),
        brier=brier_day,
        log_loss=winner_losses(pmfs, winners),
        n=sums(None),
        sp=sums(p),
        sy=sums(y),
        p=p,
        y=y,
    )


def _band(values: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[float, float, float]:
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def rolling(frame: pd.DataFrame, model: str, window: int = WINDOW) -> dict[str, list[Any]]:
    """Rolling Brier (with its band), log-loss and ECE of one probability over settled days.

    The window's ECE pools its days' bins: the binning of :func:`kwx.pmf.metrics.ece`."""
    out: dict[str, list[Any]] = {
        k: [] for k in ("day", "brier", "brier_lo", "brier_hi", "log_loss", "ece")
    }
    d = _daily(frame, model)
    if d is None:
        return out
    cn, csp, csy = (np.vstack([np.zeros(ECE_BINS), a.cumsum(axis=0)]) for a in (d.n, d.sp, d.sy))
    for i in range(len(d.days)):
        lo_i = max(0, i - window + 1)
        mean, lo, hi = _band(d.brier[lo_i : i + 1])
        wn, wsp, wsy = cn[i + 1] - cn[lo_i], csp[i + 1] - csp[lo_i], csy[i + 1] - csy[lo_i]
        keep = wn > 0
        out["day"].append(d.days[i])
        out["brier"].append(mean)
        out["brier_lo"].append(lo)
        out["brier_hi"].append(hi)
        out["log_loss"].append(float(d.log_loss[lo_i : i + 1].mean()))
        out["ece"].append(float(np.abs(wsp[keep] - wsy[keep]).sum() / wn[keep].sum()))
    return out


def headline(frame: pd.DataFrame, model: str) -> dict[str, float | None]:
    """Whole-sample Brier, ECE (10 bins) and log-loss of one probability, and its days."""
    d = _daily(frame, model)
    if d is None:
        return {"brier": None, "ece": None, "log_loss": None, "n_days": 0}
    return {
        "brier": brier(d.p, d.y),
        "ece": ece(d.p, d.y, ECE_BINS),
        "log_loss": float(d.log_loss.mean()),
        "n_days": float(len(d.days)),
    }


def pit_histogram(frame: pd.DataFrame) -> dict[str, Any]:
    """Share of settled days whose maximum fell in each inter-quantile bin of the morning
    Tmax distribution, beside the share a calibrated distribution puts there."""
    days = frame.dropna(subset=["settled_tmax", *PIT_EDGES]).drop_duplicates("day")
    counts = [0] * (len(PIT_EDGES) + 1)
    for _, r in days.iterrows():
        edges = [float(r[q]) for q in PIT_EDGES]
        counts[int(np.searchsorted(edges, float(r["settled_tmax"]), side="right"))] += 1
    n = sum(counts)
    return {
        "bins": ["<q05", "q05–q25", "q25–q50", "q50–q75", "q75–q95", ">q95"],
        "observed": [c / n if n else None for c in counts],
        "expected": list(PIT_EXPECTED),
        "n_days": n,
    }


def mc_health(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Per day: Σ p_wx, Σ raw p_fused over the event, and the p_wx mass already ruled out
    (brackets whose top is below the running maximum; None without observations)."""
    days, idx = np.unique(frame["day"].to_numpy(), return_inverse=True)
    n = len(days)
    p_wx = frame["p_wx"].to_numpy(dtype=float)
    p_fused = frame["p_fused"].to_numpy(dtype=float)
    rmax = pd.to_numeric(frame["running_max"], errors="coerce").to_numpy(dtype=float)
    cap = frame["cap_strike"].to_numpy(dtype=float)
    ruled = np.nan_to_num(p_wx) * (cap < rmax)  # NaN cap (a top tail) or NaN max: False

    def total(x: FloatArray) -> list[float | None]:
        have = np.bincount(idx, weights=(~np.isnan(x)).astype(float), minlength=n) > 0
        sums = np.bincount(idx, weights=np.nan_to_num(x), minlength=n)
        return [float(v) if h else None for v, h in zip(sums, have, strict=True)]

    has_max = np.bincount(idx, weights=(~np.isnan(rmax)).astype(float), minlength=n) > 0
    ruled_sum = np.bincount(idx, weights=ruled, minlength=n)
    return {
        "day": list(days),
        "sum_p_wx": total(p_wx),
        "sum_p_fused": total(p_fused),
        "ruled_out": [float(v) if h else None for v, h in zip(ruled_sum, has_max, strict=True)],
    }


def reliability(frame: pd.DataFrame, model: str) -> dict[str, list[float]]:
    """Reliability curve (10 bins) of one probability over every settled row."""
    rows = frame.dropna(subset=[model])
    if rows.empty:
        return {"mean_p": [], "freq": [], "n": []}
    mean_p, freq, n = reliability_curve(np.clip(rows[model].to_numpy(float), 0, 1), rows["y"])
    return {"mean_p": mean_p.tolist(), "freq": freq.tolist(), "n": n.astype(float).tolist()}


def models_page(
    conn: Conn, registry: CityRegistry | None = None, days: int = 365, only: str | None = None
) -> dict[str, Any]:
    """Per city in pmf.minute (its version in use; ``only`` one city): rolling scores of each
    probability, reliability, PIT, Monte Carlo health over the last ``days`` of the series."""
    registry = registry or default_registry()
    cities: list[dict[str, Any]] = []
    for key, s in sorted(series_in_use(conn).items()):
        if only is not None and key != only:
            continue
        try:
            city = registry.by_key(key)
        except KeyError:
            continue
        last = s.last_ts.date()
        first = max(s.first_ts.date(), last - dt.timedelta(days=days - 1))
        frame = morning_sample(conn, city, s.mc_version, first, last)
        entry: dict[str, Any] = {"city": key, "mc_version": s.mc_version, "n_rows": len(frame)}
        if not frame.empty:
            entry["n_days"] = int(frame["day"].nunique())
            entry["rolling"] = {m: rolling(frame, m) for m in MODELS}
            entry["headline"] = {m: headline(frame, m) for m in MODELS}
            entry["reliability"] = {m: reliability(frame, m) for m in MODELS}
            entry["pit"] = pit_histogram(frame)
            entry["mc"] = mc_health(frame)
        cities.append(entry)
    return jsonable({"window": WINDOW, "cities": cities})
