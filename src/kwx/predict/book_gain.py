"""What book features are worth to the move classifiers: with vs without, walk-forward by day.

The data are the markets with real quotes (`kwx.features.book_data`): the Chicago 1-minute
candles with bid/ask (May 2025) and the New York top-of-book logs (Dec 2025 – Jan 2026).
Neither has the panels the trained classifiers read for most of its days (the New York days
have no candles, trades, weather runs or market metadata; Chicago's market rows exist for
May 1–8 only), so both variants here are built from the same quote series, minute by minute:

* **without** — the classifier's own market kinematics (`BASE_FEATURES`): mid, spread,
  velocity, acceleration, the 5-minute mid change, 1- and 5-minute volume (candles only; 0
  elsewhere), minutes to the end of the climate day and the local hour (sin, cos);
* **with** — the same plus every `kwx.features.book.BOOK_FEATURES` column.

Rows and labels follow `kwx.predict.dataset`: a row is a market at a minute end τ with a
two-sided quote; y = 1 if mid(τ+Δ) − mid(τ) ≥ ε, 0 if ≤ −ε, and rows that move less are dropped.
Features use only events stamped before τ; only the label reads τ+Δ.

Walk-forward by climate day: each test day d is predicted by a model fitted on the days up to
d − 2 (the day before d is left out because its market trades until the evening of d − 1,
after d's own market opened at 10:00 that morning). The first `MIN_TRAIN_DAYS` days only
train. Pooled out-of-sample AUC, Brier and ECE (10 bins) of both variants, and their
differences with 95 % intervals from a bootstrap that resamples whole test days (paired: both
variants see the same resampled days). ``verdict`` reads the ΔAUC interval: ahead (above 0),
behind (below 0) or tie.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score

from kwx.domain.climate_day import standard_offset
from kwx.domain.tickers import parse_market_ticker
from kwx.features.book import BOOK_FEATURES, NS_PER_MIN, book_features, fill_book_features
from kwx.features.book_data import BookSource, MarketBook, load_market_book, markets_with_book
from kwx.pmf.metrics import brier, ece
from kwx.predict.dataset import DEFAULT_EPSILON, FLOAT_SLACK, Conn, horizon_minutes
from kwx.predict.models import check_model_type, make_model, resolve_params
from kwx.registry import default_registry

F64 = npt.NDArray[np.float64]

BASE_FEATURES: Final = (
    "mid",
    "spread",
    "velocity",
    "acceleration",
    "mid_change_5m",
    "log_volume_1m",
    "log_volume_5m",
    "minutes_to_day_end",
    "hour_sin",
    "hour_cos",
)
MIN_TRAIN_DAYS: Final = 5
GAP_DAYS: Final = 1
DEFAULT_BOOTSTRAP: Final = 1000

# The datasets with real quotes: (store source, series) per name.
DATASETS: Final[dict[str, tuple[BookSource, str]]] = {
    "chicago-candles": ("candles", "KXHIGHCHI"),
    "ny-top-of-book": ("top_of_book", "KXHIGHNY"),
}

__all__ = [
    "BASE_FEATURES",
    "DATASETS",
    "GainResult",
    "book_gain",
    "load_feature_rows",
    "market_feature_rows",
    "walk_forward",
]


def _shift(x: F64, k: int) -> F64:
    """x[i − k] (NaN where i − k < 0); k < 0 looks ahead."""
    out = np.full(x.size, np.nan)
    if k >= 0:
        out[k:] = x[: x.size - k]
    else:
        out[:k] = x[-k:]
    return out


def market_feature_rows(book: MarketBook) -> pd.DataFrame:
    """Every minute of one market with a two-sided quote at τ: meta, base and book features,
    and the mids at τ + 1 and τ + 5 minutes (for labels; never features)."""
    grid = book.minute_ends()
    feats = book_features(grid, book.quotes, book.trades, book.cancels)
    mid = feats.mid
    parsed = parse_market_ticker(book.ticker)
    city = default_registry().by_series(parsed.event.series)
    climate = parsed.event.climate_date
    day_end = dt.datetime.combine(climate + dt.timedelta(days=1), dt.time(0), dt.UTC)
    day_end_ns = int((day_end - standard_offset(city.timezone)).timestamp()) * 1_000_000_000
    out: dict[str, Any] = {
        "ticker": book.ticker,
        "climate_date": climate,
        "ts_ns": grid,
        "mid": mid,
        "spread": feats.columns["spread"],
    }
    prev = _shift(mid, 1)
    velocity = mid - prev
    out["velocity"] = np.nan_to_num(velocity)
    out["acceleration"] = np.nan_to_num(velocity - (prev - _shift(mid, 2)))
    out["mid_change_5m"] = np.nan_to_num(mid - _shift(mid, 5))
    vol = np.zeros(grid.size)
    if book.volume.size:  # candle minutes: the one ending at τ started at τ − 1 minute
        pos = np.searchsorted(grid - NS_PER_MIN, book.volume_minute_ns)
        ok = (pos < grid.size) & (
            grid[np.minimum(pos, grid.size - 1)] - NS_PER_MIN == book.volume_minute_ns
        )
        vol[pos[ok]] = np.nan_to_num(book.volume[ok])
    out["log_volume_1m"] = np.log1p(np.maximum(vol, 0.0))
    vol5 = np.convolve(vol, np.ones(5))[: vol.size]
    out["log_volume_5m"] = np.log1p(np.maximum(vol5, 0.0))
    out["minutes_to_day_end"] = (day_end_ns - grid) / NS_PER_MIN
    local = pd.DatetimeIndex(pd.to_datetime(grid, utc=True)).tz_convert(city.timezone)
    hour = np.asarray(local.hour + local.minute / 60.0, dtype=np.float64)
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)
    out.update(fill_book_features(feats.columns))
    out["mid_ahead_1m"] = _shift(mid, -1)
    out["mid_ahead_5m"] = _shift(mid, -5)
    frame = pd.DataFrame(out)
    keep = np.isfinite(frame["mid"].to_numpy()) & np.isfinite(frame["spread"].to_numpy())
    result: pd.DataFrame = frame.loc[keep].reset_index(drop=True)
    return result


def load_feature_rows(
    conn: Conn,
    dataset: str,
    *,
    on_market: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """`market_feature_rows` of every market of a dataset in the store."""
    try:
        source, series = DATASETS[dataset]
    except KeyError:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}") from None
    tickers = markets_with_book(conn, source, series)
    conn.commit()
    if on_start is not None:
        on_start(len(tickers))
    if not tickers:
        raise ValueError(f"{dataset}: no {source} rows for {series} in the store")
    parts = []
    for ticker in tickers:
        book = load_market_book(conn, ticker, source)
        conn.commit()
        part = market_feature_rows(book)
        if len(part):
            parts.append(part)
        if on_market is not None:
            on_market(ticker)
    return pd.concat(parts, ignore_index=True)


def labelled(rows: pd.DataFrame, horizon: str, epsilon: float = DEFAULT_EPSILON) -> pd.DataFrame:
    """The rows whose mid moved by at least ε over the horizon, with ``y`` (1 = up)."""
    ahead = rows[f"mid_ahead_{horizon_minutes(horizon)}m"].to_numpy(np.float64)
    change = ahead - rows["mid"].to_numpy(np.float64)
    keep = np.isfinite(change) & (np.abs(change) >= epsilon - FLOAT_SLACK)
    out: pd.DataFrame = rows.loc[keep].copy()
    out["y"] = (change[keep] > 0).astype(np.int64)
    result: pd.DataFrame = out.reset_index(drop=True)
    return result


def walk_forward(
    rows: pd.DataFrame,
    features: Sequence[str],
    model: str = "logreg",
    *,
    min_train_days: int = MIN_TRAIN_DAYS,
    gap_days: int = GAP_DAYS,
) -> pd.DataFrame:
    """Out-of-sample P(up) for each test day's rows (columns climate_date, y, p), each day
    predicted by a model fitted on the days ≤ d − 1 − gap_days."""
    kind = check_model_type(model)
    params = resolve_params(kind)
    days = sorted(set(rows["climate_date"]))
    parts = []
    for i, day in enumerate(days):
        if i < min_train_days:
            continue
        cutoff = day - dt.timedelta(days=gap_days + 1)
        train = rows[rows["climate_date"] <= cutoff]
        test = rows[rows["climate_date"] == day]
        if test.empty or train["y"].nunique() < 2:
            continue
        estimator = make_model(kind, params)
        estimator.fit(train[list(features)], train["y"].to_numpy())
        up = list(estimator.classes_).index(1)
        p = estimator.predict_proba(test[list(features)])[:, up]
        parts.append(pd.DataFrame({"climate_date": day, "y": test["y"].to_numpy(), "p": p}))
    if not parts:
        raise ValueError(f"walk-forward: fewer than {min_train_days + 1} days with rows")
    return pd.concat(parts, ignore_index=True)


def _auc(y: F64, p: F64) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan")


@dataclass(frozen=True)
class GainResult:
    """One dataset × horizon: pooled out-of-sample scores of both variants and the gain."""

    dataset: str
    horizon: str
    model: str
    test_days: int
    test_rows: int
    positive_rate: float
    without: dict[str, float]
    with_book: dict[str, float]
    delta: dict[str, tuple[float, float, float]]  # metric → (point, lo95, hi95)

    @property
    def verdict(self) -> str:
        _, lo, hi = self.delta["roc_auc"]
        return "ahead" if lo > 0 else "behind" if hi < 0 else "tie"

    @property
    def target_met(self) -> bool:
        point, lo, _ = self.delta["roc_auc"]
        return point >= 0.05 and lo > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "horizon": self.horizon,
            "model": self.model,
            "test_days": self.test_days,
            "test_rows": self.test_rows,
            "positive_rate": round(self.positive_rate, 4),
            "without": {k: round(v, 4) for k, v in self.without.items()},
            "with_book": {k: round(v, 4) for k, v in self.with_book.items()},
            "delta": {k: [round(x, 4) for x in v] for k, v in self.delta.items()},
            "verdict": self.verdict,
            "target_met": self.target_met,
        }


def _scores(y: F64, p: F64) -> dict[str, float]:
    return {"roc_auc": _auc(y, p), "brier": brier(p, y), "ece10": ece(p, y, 10)}


def book_gain(
    rows: pd.DataFrame,
    dataset: str,
    horizon: str,
    model: str = "logreg",
    *,
    epsilon: float = DEFAULT_EPSILON,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> GainResult:
    """Walk-forward both variants on the labelled rows and bootstrap the differences by day."""
    data = labelled(rows, horizon, epsilon)
    base = walk_forward(data, BASE_FEATURES, model)
    full = walk_forward(data, (*BASE_FEATURES, *BOOK_FEATURES), model)
    y = base["y"].to_numpy(np.float64)
    pa = base["p"].to_numpy(np.float64)
    pb = full["p"].to_numpy(np.float64)
    days = base["climate_date"].to_numpy()
    uniq = np.unique(days)
    index = [np.flatnonzero(days == d) for d in uniq]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"roc_auc": [], "brier": [], "ece10": []}
    for _ in range(n_boot):
        pick = np.concatenate([index[i] for i in rng.integers(0, uniq.size, uniq.size)])
        a, b = _scores(y[pick], pa[pick]), _scores(y[pick], pb[pick])
        for k in draws:
            draws[k].append(b[k] - a[k])
    without, with_book = _scores(y, pa), _scores(y, pb)
    delta = {}
    for k, values in draws.items():
        finite = np.asarray([v for v in values if np.isfinite(v)])
        lo, hi = (
            (float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975)))
            if finite.size
            else (float("nan"), float("nan"))
        )
        delta[k] = (with_book[k] - without[k], lo, hi)
    return GainResult(
        dataset=dataset,
        horizon=horizon,
        model=model,
        test_days=int(uniq.size),
        test_rows=int(y.size),
        positive_rate=float(y.mean()),
        without=without,
        with_book=with_book,
        delta=delta,
    )
