"""Walk-forward EMOS: a forecast for day D from a fit on days that were settled before D.

The guidance frame has one row per target climate date (index), one column per guidance
member (°F; NaN where that model has nothing issued in time), optional ``<model>_spread``
columns (an ensemble's own spread) and ``y``, the official maximum (NaN where not settled).

Rules, and why:

- **No look-ahead.** A fit used on day D sees only days ≤ D − ``gap_days`` (default 2: the
  official maximum of D − 1 is published on the morning of D, after a forecast for D made the
  evening before is needed). Fits are refreshed every ``refit_every`` days on a fixed grid of
  refit dates r ≤ D, and a day uses the fit of its grid date, so no fit ever depends on the day
  it forecasts or on any later one.
- **Bias correction by the training window.** ``rolling``: the last ``window_days`` days (the
  fit follows slow drifts: model upgrades, seasons); ``seasonal``: the same calendar weeks
  (±``season_halfwidth`` days) of earlier years plus the last ``recent_days`` days (season-
  specific biases, e.g. gridded maxima running colder in summer, with a recent anchor);
  ``expanding``: everything before. Optionally ``bias_days`` adds the mean error of the last
  N training days to mu (a fast trailing correction on top of a long window).
- **Short history.** Where the window holds fewer than ``min_train`` settled days (a station's
  first year under a seasonal window), the fit falls back to every settled day before.
- **Missing members: refit per available subset.** Each day uses exactly the members issued in
  time for it, fitted on the training days where all of them exist; if that leaves fewer than
  ``min_train`` days, the member with the fewest training days is dropped and the rest retried.
  Imputing a missing member from the others would claim information the day does not have.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from kwx.weather.emos import EmosRegressor, crps_normal

WindowKind = Literal["rolling", "seasonal", "expanding"]
SPREAD_SUFFIX = "_spread"


@dataclass(frozen=True)
class WalkConfig:
    window: WindowKind = "rolling"
    window_days: int = 365
    season_halfwidth: int = 45
    recent_days: int = 30
    refit_every: int = 7
    min_train: int = 60
    gap_days: int = 2
    bias_days: int = 0

    def label(self) -> str:
        base = {
            "rolling": f"rolling {self.window_days}d",
            "seasonal": f"seasonal ±{self.season_halfwidth}d + last {self.recent_days}d",
            "expanding": "expanding",
        }[self.window]
        return base + (f", bias {self.bias_days}d" if self.bias_days else "")


def member_columns(frame: pd.DataFrame) -> list[str]:
    """The guidance members in a frame: every column but ``y`` and the spreads."""
    return [
        c
        for c in frame.columns
        if c not in ("y", "issued_at") and not str(c).endswith(SPREAD_SUFFIX)
    ]


def refit_date(day: dt.date, first: dt.date, config: WalkConfig) -> dt.date:
    """The grid date whose fit a forecast for ``day`` uses (never after ``day``)."""
    step = max(1, config.refit_every)
    return min(day, first + dt.timedelta(days=((day - first).days // step) * step))


def training_days(dates: np.ndarray, refit: dt.date, config: WalkConfig) -> np.ndarray:
    """Boolean mask over ``dates`` (datetime64[D]) of the days a fit made on ``refit`` may see."""
    cutoff = np.datetime64(refit - dt.timedelta(days=config.gap_days), "D")
    mask = dates <= cutoff
    if config.window == "rolling":
        mask &= dates > cutoff - np.timedelta64(config.window_days, "D")
    elif config.window == "seasonal":
        lag = (np.datetime64(refit, "D") - dates).astype(float)
        cyc = np.abs(((lag + 182.625) % 365.25) - 182.625)  # distance in days of the year
        recent = dates > cutoff - np.timedelta64(config.recent_days, "D")
        mask &= (cyc <= config.season_halfwidth) | recent
    return np.asarray(mask)


@dataclass(frozen=True)
class _Fitted:
    cols: list[int]  # column indices into the design matrix (members, then the spread)
    members: list[str]
    spread: bool
    model: EmosRegressor
    bias: float


def _fit_subset(
    design: np.ndarray,
    y: np.ndarray,
    names: list[str],
    spread_of: dict[int, int],
    train: np.ndarray,
    members: list[int],
    config: WalkConfig,
) -> _Fitted | None:
    """Fit on the training rows where all members exist, dropping sparse members if needed."""
    chosen = list(members)
    settled = train & np.isfinite(y)
    while chosen:
        spread_col = next((spread_of[m] for m in chosen if m in spread_of), None)
        cols = chosen + ([spread_col] if spread_col is not None else [])
        rows = settled & np.isfinite(design[:, cols]).all(axis=1)
        if rows.sum() >= max(config.min_train, len(chosen) + 3):
            model = EmosRegressor(spread="last_column" if spread_col is not None else "members")
            model.fit(design[rows][:, cols], y[rows])
            bias = 0.0
            if config.bias_days > 0:
                recent = np.flatnonzero(rows)[-config.bias_days :]
                mu_r, _ = model.predict(design[recent][:, cols])
                bias = float(np.mean(y[recent] - mu_r))
            return _Fitted(cols, [names[m] for m in chosen], spread_col is not None, model, bias)
        coverage = np.isfinite(design[settled][:, chosen]).sum(axis=0)
        chosen.pop(int(np.argmin(coverage)))
    return None


def walk_forward(
    frame: pd.DataFrame,
    date_from: dt.date,
    date_to: dt.date,
    config: WalkConfig | None = None,
) -> pd.DataFrame:
    """One row per day in [date_from, date_to] with guidance: mu, sigma (°F), y, the members
    used and the number of training days. Days with no usable fit are left out."""
    config = config or WalkConfig()
    frame = frame.sort_index()
    names = member_columns(frame)
    spread_names = [m + SPREAD_SUFFIX for m in names if m + SPREAD_SUFFIX in frame.columns]
    design = frame[names + spread_names].to_numpy(dtype=float)
    spread_of = {
        names.index(c[: -len(SPREAD_SUFFIX)]): len(names) + i for i, c in enumerate(spread_names)
    }
    y = frame["y"].to_numpy(dtype=float)
    days = [d if isinstance(d, dt.date) else pd.Timestamp(d).date() for d in frame.index]
    dates = np.array(days, dtype="datetime64[D]")
    cache: dict[tuple[tuple[int, ...], dt.date], _Fitted | None] = {}
    out: list[dict[str, object]] = []
    for i, day in enumerate(days):
        if not date_from <= day <= date_to:
            continue
        available = tuple(int(m) for m in np.flatnonzero(np.isfinite(design[i, : len(names)])))
        if not available:
            continue
        refit = refit_date(day, date_from, config)
        key = (available, refit)
        if key not in cache:
            fitted_now = _fit_subset(
                design,
                y,
                names,
                spread_of,
                training_days(dates, refit, config),
                list(available),
                config,
            )
            if fitted_now is None and config.window != "expanding":
                # Too short a history for the window (the first season of a station): fit on
                # everything settled before instead of forecasting nothing.
                fitted_now = _fit_subset(
                    design,
                    y,
                    names,
                    spread_of,
                    training_days(dates, refit, dataclasses.replace(config, window="expanding")),
                    list(available),
                    config,
                )
            cache[key] = fitted_now
        fitted = cache[key]
        if fitted is None or not np.isfinite(design[i, fitted.cols]).all():
            continue
        mu, sigma = fitted.model.predict(design[i, fitted.cols][None, :])
        out.append(
            {
                "date": day,
                "mu": float(mu[0]) + fitted.bias,
                "sigma": float(sigma[0]),
                "y": float(y[i]),
                "members": ",".join(fitted.members),
                "n_train": fitted.model.n_train_,
            }
        )
    return pd.DataFrame(out, columns=["date", "mu", "sigma", "y", "members", "n_train"])


def score_walk(result: pd.DataFrame) -> pd.DataFrame:
    """Add the CRPS (°F) and the absolute error of mu where the day is settled."""
    scored = result[result["y"].notna()].copy()
    scored["crps"] = crps_normal(
        scored["mu"].to_numpy(), scored["sigma"].to_numpy(), scored["y"].to_numpy()
    )
    scored["abs_err"] = (scored["y"] - scored["mu"]).abs()
    return scored


def raw_member_scores(frame: pd.DataFrame, days: pd.Index) -> pd.DataFrame:
    """Each raw member as a point forecast on the given days: its CRPS is its mean absolute
    error (the CRPS of a point mass), its bias the mean of y − member."""
    sub = frame.loc[frame.index.isin(days)]
    rows = []
    for m in member_columns(frame):
        ok = sub[m].notna() & sub["y"].notna()
        if not ok.any():
            continue
        err = sub.loc[ok, "y"] - sub.loc[ok, m]
        rows.append(
            {
                "model": m,
                "crps": float(err.abs().mean()),
                "bias": float(err.mean()),
                "n": int(ok.sum()),
            }
        )
    return pd.DataFrame(rows, columns=["model", "crps", "bias", "n"])


def walk_forward_auto(
    frame: pd.DataFrame,
    date_from: dt.date,
    date_to: dt.date,
    configs: tuple[WalkConfig, ...],
    lookback_days: int = 90,
    gap_days: int = 2,
) -> pd.DataFrame:
    """Each day, the configuration whose walk-forward CRPS over the last ``lookback_days``
    settled days (up to D − ``gap_days``) was lowest; the first one until any is scored.

    Why: which window wins differs by station (a seasonal one in New York and Chicago, a long
    rolling one with a trailing bias in Miami, 2024); picking it on the past only keeps the
    choice itself out of sample, unlike picking the best row of an evaluation table.
    """
    warm = date_from - dt.timedelta(days=lookback_days + gap_days)
    walks = [
        score_walk_all(walk_forward(frame, warm, date_to, c)).set_index("date") for c in configs
    ]
    out = []
    for day in sorted(set().union(*(w.index[w.index >= date_from] for w in walks))):
        cutoff = day - dt.timedelta(days=gap_days)
        start = cutoff - dt.timedelta(days=lookback_days)
        scores = []
        for w in walks:
            past = w["crps"][(w.index > start) & (w.index <= cutoff)].dropna()
            scores.append(float(past.mean()) if len(past) else np.inf)
        best = int(np.argmin(scores)) if np.isfinite(min(scores)) else 0
        if day not in walks[best].index:
            continue
        row = walks[best].loc[day]
        out.append(
            {
                "date": day,
                "mu": float(row["mu"]),
                "sigma": float(row["sigma"]),
                "y": float(row["y"]),
                "members": f"{row['members']} ({configs[best].label()})",
                "n_train": int(row["n_train"]),
            }
        )
    return pd.DataFrame(out, columns=["date", "mu", "sigma", "y", "members", "n_train"])


def score_walk_all(result: pd.DataFrame) -> pd.DataFrame:
    """Like `score_walk`, keeping unsettled days (their CRPS is NaN)."""
    scored = result.copy()
    scored["crps"] = crps_normal(
        scored["mu"].to_numpy(), scored["sigma"].to_numpy(), scored["y"].to_numpy()
    )
    return scored
