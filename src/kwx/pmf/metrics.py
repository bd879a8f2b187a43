"""Probability metrics shared by fusion, the cross-bracket models and their calibrators.

Binary metrics (Brier, ECE, reliability) score one yes/no probability per row; bracket metrics
(log-loss of the winner, mean per-bracket Brier, RPS) score a whole PMF per event and minute.
Well-kept libraries are used where they already define the metric (ROC AUC from scikit-learn,
the ranked probability score from scoringrules); ECE and the reliability curve are ours because
their binning conventions matter and must be stated exactly: ``n_bins`` equal-width bins on
[0, 1], bin ``i`` holding ``i/n <= p < (i+1)/n`` and p = 1.0 going to the last bin.

Every function takes array-likes and returns plain floats (or numpy arrays), so the callers can
write them straight into JSON or a database row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scoringrules as sr
from scipy.stats import bootstrap
from sklearn.metrics import roc_auc_score

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _binary_inputs(p: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validated 1-D probability and outcome arrays of equal, non-zero length."""
    pa = np.asarray(p, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if pa.shape != ya.shape:
        raise ValueError(f"p has {pa.size} values but y has {ya.size}")
    if pa.size == 0:
        raise ValueError("no predictions to score")
    if not np.all(np.isfinite(pa)) or np.any((pa < 0.0) | (pa > 1.0)):
        raise ValueError("p must be finite probabilities in [0, 1]")
    if np.any((ya != 0.0) & (ya != 1.0)):
        raise ValueError("y must be 0/1 outcomes")
    return pa, ya


def brier(p: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Binary Brier score: the mean of (p − y)²; 0 is perfect, 0.25 is a coin at 0.5."""
    pa, ya = _binary_inputs(p, y)
    return float(np.mean((pa - ya) ** 2))


def _bin_index(p: FloatArray, n_bins: int) -> IntArray:
    """Equal-width bin of each probability; p = 1.0 belongs to the last bin, not a new one."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    idx = np.floor(p * n_bins).astype(np.int64)
    return np.clip(idx, 0, n_bins - 1)


def reliability_curve(
    p: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = 10
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Per non-empty bin (in bin order): mean predicted probability, observed frequency, count."""
    pa, ya = _binary_inputs(p, y)
    idx = _bin_index(pa, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=pa, minlength=n_bins)
    sum_y = np.bincount(idx, weights=ya, minlength=n_bins)
    keep = counts > 0
    n = counts[keep]
    return sum_p[keep] / n, sum_y[keep] / n, n.astype(np.int64)


def ece(p: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_bins (count/N)·|mean p − observed frequency|."""
    mean_p, freq, n = reliability_curve(p, y, n_bins)
    return float(np.sum(n * np.abs(mean_p - freq)) / np.sum(n))


def binary_metrics(p: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float]:
    """Accuracy at 0.5, ROC AUC (NaN when only one class is present), Brier, ECE (10 and 20
    bins) and the positive rate of the outcomes — the figures every model run records."""
    pa, ya = _binary_inputs(p, y)
    auc = float(roc_auc_score(ya, pa)) if 0.0 < ya.mean() < 1.0 else float("nan")
    return {
        "accuracy": float(np.mean((pa >= 0.5) == (ya == 1.0))),
        "roc_auc": auc,
        "brier": brier(pa, ya),
        "ece10": ece(pa, ya, 10),
        "ece20": ece(pa, ya, 20),
        "positive_rate": float(ya.mean()),
        "n": float(pa.size),
    }


PmfInput = npt.ArrayLike | Sequence[npt.ArrayLike]


def _pmf_rows(pmf: Any, winner: npt.ArrayLike) -> tuple[list[FloatArray], IntArray]:
    """One 1-D probability vector per event (events may have different numbers of brackets)
    and the 0-based index of each event's winning bracket, validated."""
    rows: list[FloatArray]
    if isinstance(pmf, np.ndarray) and pmf.ndim == 2:
        rows = [np.asarray(r, dtype=np.float64) for r in pmf]
    elif isinstance(pmf, np.ndarray) and pmf.ndim == 1 and pmf.dtype != object:
        rows = [pmf.astype(np.float64)]
    else:
        rows = [np.asarray(r, dtype=np.float64).ravel() for r in pmf]
    w = np.asarray(winner).astype(np.int64).ravel()
    if len(rows) != w.size:
        raise ValueError(f"{len(rows)} PMFs but {w.size} winners")
    if not rows:
        raise ValueError("no PMFs to score")
    for i, (r, k) in enumerate(zip(rows, w, strict=True)):
        if r.size < 2:
            raise ValueError(f"event {i}: a PMF needs at least 2 brackets, got {r.size}")
        if not 0 <= k < r.size:
            raise ValueError(f"event {i}: winner index {k} outside 0..{r.size - 1}")
        if not np.all(np.isfinite(r)) or np.any(r < 0.0):
            raise ValueError(f"event {i}: probabilities must be finite and non-negative")
    return rows, w


def winner_losses(pmf: PmfInput, winner: npt.ArrayLike, eps: float = 1e-6) -> FloatArray:
    """−log p(winning bracket) per event, p clipped below at ``eps`` so one zero cannot make
    it infinite (a forecast that ruled the winner out still costs −log eps ≈ 13.8)."""
    rows, w = _pmf_rows(pmf, winner)
    pw = np.array([r[k] for r, k in zip(rows, w, strict=True)], dtype=np.float64)
    out: FloatArray = -np.log(np.clip(pw, eps, 1.0))
    return out


def log_loss_winner(pmf: PmfInput, winner: npt.ArrayLike, eps: float = 1e-6) -> float:
    """Mean −log p(winning bracket) (see `winner_losses` for the clipping)."""
    return float(np.mean(winner_losses(pmf, winner, eps)))


def paired_gain_interval(
    loss_ref: npt.ArrayLike,
    loss_new: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    level: float = 0.95,
    n_resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """How much lower `loss_new` is than `loss_ref` on average (positive: new is better), and
    a percentile bootstrap interval for it that resamples whole groups.

    Why groups: rows of one event (its hours) share the day's weather and the winner, so
    they are not independent draws; resampling events keeps each event's rows together and
    the interval honest about having 40 days rather than 320 rows. The point estimate is the
    plain row mean of the differences, the statistic is Σ diff / Σ rows over the resampled
    groups (scipy's paired bootstrap over the per-group sums). Deterministic for a seed.
    """
    ref = np.asarray(loss_ref, dtype=np.float64).ravel()
    new = np.asarray(loss_new, dtype=np.float64).ravel()
    keys = np.asarray(groups).ravel()
    if not (ref.size == new.size == keys.size):
        raise ValueError(f"sizes differ: {ref.size} ref, {new.size} new, {keys.size} groups")
    if ref.size == 0:
        raise ValueError("no losses to compare")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(new))):
        raise ValueError("losses must be finite")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, group_of = np.unique(keys, return_inverse=True)
    diff_sum = np.bincount(group_of, weights=ref - new)
    count = np.bincount(group_of).astype(np.float64)
    gain = float(diff_sum.sum() / count.sum())
    if diff_sum.size < 2:
        return gain, gain, gain

    def ratio(d: FloatArray, c: FloatArray, axis: int = -1) -> FloatArray:
        out: FloatArray = d.sum(axis=axis) / c.sum(axis=axis)
        return out

    interval = bootstrap(
        (diff_sum, count),
        ratio,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return gain, float(interval.low), float(interval.high)


def mean_bracket_brier(pmf: PmfInput, winner: npt.ArrayLike) -> float:
    """Mean over events and brackets of (p_k − 1[k = winner])² (every bracket weighs the same,
    so events with more brackets weigh more)."""
    rows, w = _pmf_rows(pmf, winner)
    total = 0.0
    count = 0
    for r, k in zip(rows, w, strict=True):
        onehot = np.zeros(r.size)
        onehot[k] = 1.0
        total += float(np.sum((r - onehot) ** 2))
        count += r.size
    return total / count


def rps(pmf: PmfInput, winner: npt.ArrayLike) -> float:
    """Mean ranked probability score divided by K − 1 (so 0 is perfect and 1 the worst, for
    any number of brackets), via scoringrules' ``rps_score``; events are grouped by K so each
    group is one vectorised call."""
    rows, w = _pmf_rows(pmf, winner)
    by_k: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_k.setdefault(r.size, []).append(i)
    total = 0.0
    for k, members in by_k.items():
        fct = np.stack([rows[i] for i in members])
        onehot = np.zeros_like(fct)
        onehot[np.arange(len(members)), w[members]] = 1.0
        scores = np.asarray(sr.rps_score(onehot, fct, onehot=True), dtype=np.float64)
        total += float(np.sum(scores)) / (k - 1)
    return total / len(rows)
