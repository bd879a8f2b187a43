"""Walk-forward CRPS of the EMOS distribution against the raw members and public anchors.

Every score is out of sample: each day's distribution comes from `walk_forward`, fitted only on
days settled before it. A raw member is scored as a point forecast (its CRPS is its absolute
error). Intervals resample whole days (95% percentile bootstrap); a paired interval on the
difference EMOS − best raw member says ahead / tie / behind. The public anchors are fixed
figures from published walk-forward studies, not re-measured here; beating one means the upper
end of EMOS's interval is below it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kwx.weather.emos_walk import (
    WalkConfig,
    raw_member_scores,
    score_walk,
    walk_forward,
    walk_forward_auto,
)

# city key → (what the anchor is, its walk-forward CRPS in °F)
ANCHORS: dict[str, tuple[str, float]] = {
    "new_york": ("Central Park NBM", 1.34),
    "chicago": ("Midway MOS", 1.87),
    "miami": ("Miami MOS", 0.91),
}
AUTO_LABEL = "auto: best of the above by trailing 90-day CRPS"
DEFAULT_CONFIGS: tuple[WalkConfig, ...] = (
    WalkConfig(window="rolling", window_days=365),
    WalkConfig(window="rolling", window_days=90),
    WalkConfig(window="seasonal"),
    WalkConfig(window="seasonal", bias_days=30),
    WalkConfig(window="expanding", bias_days=30),
)


@dataclass(frozen=True)
class EvalRow:
    config: str
    crps: float
    crps_lo: float
    crps_hi: float
    mae: float
    sigma: float
    pit_coverage_80: float  # share of days inside the central 80% interval (0.80 if calibrated)
    n: int
    diff_best_raw: float  # EMOS − best raw member, CRPS °F
    diff_lo: float
    diff_hi: float


def bootstrap_mean(
    values: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling days."""
    if values.size == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, values.size, size=(n, values.size))
    means = values[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def evaluate(
    frame: pd.DataFrame,
    date_from: dt.date,
    date_to: dt.date,
    configs: tuple[WalkConfig, ...] = DEFAULT_CONFIGS,
    seed: int = 0,
    auto: bool = True,
) -> tuple[list[EvalRow], pd.DataFrame]:
    """One row per configuration (+ the trailing-CRPS choice among them when there are
    several), and the raw members' scores on the last one's days."""
    rows: list[EvalRow] = []
    raw = pd.DataFrame(columns=["model", "crps", "bias", "n"])
    runs: list[tuple[str, pd.DataFrame]] = [
        (c.label(), walk_forward(frame, date_from, date_to, c)) for c in configs
    ]
    if auto and len(configs) > 1:
        runs.append((AUTO_LABEL, walk_forward_auto(frame, date_from, date_to, configs)))
    for label, walk in runs:
        rng = np.random.default_rng(seed)
        scored = score_walk(walk)
        if scored.empty:
            continue
        raw = raw_member_scores(frame, pd.Index(scored["date"]))
        best = str(raw.sort_values("crps").iloc[0]["model"])
        truth = frame.loc[frame.index.isin(scored["date"])]
        best_err = (truth["y"] - truth[best]).abs().reindex(scored["date"]).to_numpy()
        diff = scored["crps"].to_numpy() - best_err
        ok = np.isfinite(diff)
        z = np.abs((scored["y"].to_numpy() - scored["mu"].to_numpy()) / scored["sigma"].to_numpy())
        lo, hi = bootstrap_mean(scored["crps"].to_numpy(), rng)
        dlo, dhi = bootstrap_mean(diff[ok], rng)
        rows.append(
            EvalRow(
                label,
                float(scored["crps"].mean()),
                lo,
                hi,
                float(scored["abs_err"].mean()),
                float(scored["sigma"].mean()),
                float((z <= 1.2816).mean()),
                len(scored),
                float(diff[ok].mean()),
                dlo,
                dhi,
            )
        )
    return rows, raw


def verdict(lo: float, hi: float) -> str:
    """'ahead' when the interval of (EMOS − other) is below 0, 'behind' above, else 'tie'."""
    if hi < 0:
        return "ahead"
    if lo > 0:
        return "behind"
    return "tie"
