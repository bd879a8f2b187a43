"""The market-anchored pool: a fusion that starts at the market and moves only where it pays.

    log p_fused_k ∝ a·log p_mkt_k + b·log p_wx_k + c·log(1 − p_mkt_k)
                    + d·δ_k + e·δ_k²,        δ_k = clip((centre_k − q50) / 5 °F, ±3)

normalised over the event's brackets, with one coefficient vector θ = (a, b, c, d, e) per
bucket of local hours (the hours left in the day change what the market knows, so the hour
is a bucket rather than a term). Why these terms:

- a, b ≥ 0 and free (they need not sum to 1): a > 1 sharpens the market, a < 1 flattens it,
  b > 0 lets the weather model in, b = 0 keeps it out — the old log pool forced a + b = 1, so
  it could only trade the market's sharpness for p_wx's;
- c·log(1 − p_mkt) bends the price's favourite–longshot shape (with a, it is a two-parameter
  logit transform of the price), so a biased market can be de-biased with no weather at all;
- δ, δ² are the bracket's distance from the weather model's median Tmax (`tmax_q50`, the
  forecast baseline early in the day, floored by the running maximum later): a shift and a
  widening or narrowing of the market around it.

θ is the maximum-likelihood fit of the settled bracket with a Gaussian prior centred on
θ0 = (1, 0, 0, 0, 0) — exactly p_fused = p_mkt — whose strength λ (penalty λ‖θ − θ0‖² on the
mean log-likelihood, one λ per hour bucket) is chosen on later days than the fit saw
(`choose_strength`). With λ = ∞ the pool *is* the market; the data must pay for every step
away from it.

`AnchoredPool` follows the scikit-learn estimator contract: plain hyper-parameters in the
constructor, `fit` learns `coef_`, `predict` has no side effects. Arrays: one row per (event,
minute), one column per bracket in ladder order, NaN-padded on the right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import logsumexp

from kwx.domain.brackets import Bracket, StrikeType

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TERMS = ("log_p_mkt", "log_p_wx", "log_1m_p_mkt", "d_median", "d_median_sq")
PRIOR = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
# Local-hour buckets (their first hours): night, dawn, morning, midday, afternoon, evening.
HOUR_EDGES = (0, 4, 8, 12, 16, 20)
D_SCALE_F = 5.0
D_CLIP = 3.0
MKT_GUARD = 1e-12
# Box on θ: a, b in [0, 5]; the shape terms within ±10 (far beyond anything fitted).
BOUNDS = [(0.0, 5.0), (0.0, 5.0), (-10.0, 10.0), (-10.0, 10.0), (-10.0, 10.0)]
STRENGTHS = (math.inf, 1.0, 0.1, 0.01, 0.001)
SE_RULE = 1.0


def bracket_centre(bracket: Bracket) -> float:
    """A representative settled value of a bracket (°F): the middle of a closed one, one
    and a half degrees inside an open tail's strike (the tails' mass sits near the strike)."""
    floor = None if bracket.floor is None else float(bracket.floor)
    cap = None if bracket.cap is None else float(bracket.cap)
    match bracket.strike_type:
        case StrikeType.BETWEEN:
            assert floor is not None and cap is not None
            return (floor + cap) / 2.0
        case StrikeType.LESS | StrikeType.LESS_OR_EQUAL:
            assert cap is not None
            return cap - 1.5
        case _:
            assert floor is not None
            return floor + 1.5


@dataclass(frozen=True)
class AnchoredInputs:
    """What the pool reads per event-minute: (n, K) p_mkt, p_wx and bracket centres (NaN on
    padding), and per row the weather median q50 (°F) and the local hour of the climate day."""

    p_mkt: FloatArray
    p_wx: FloatArray
    centre: FloatArray
    q50: FloatArray
    hour: FloatArray

    def __post_init__(self) -> None:
        shape = self.p_mkt.shape
        if self.p_wx.shape != shape or self.centre.shape != shape:
            raise ValueError(
                f"p_mkt {shape}, p_wx {self.p_wx.shape} and centre {self.centre.shape} differ"
            )
        if self.q50.shape != (shape[0],) or self.hour.shape != (shape[0],):
            raise ValueError(f"q50 and hour need one value per row ({shape[0]})")

    def __len__(self) -> int:
        return int(self.p_mkt.shape[0])

    def take(self, idx: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> AnchoredInputs:
        return AnchoredInputs(
            self.p_mkt[idx], self.p_wx[idx], self.centre[idx], self.q50[idx], self.hour[idx]
        )

    def complete(self) -> npt.NDArray[np.bool_]:
        """Rows with every input: p_mkt, p_wx and a centre on the same brackets, q50, hour."""
        valid = ~np.isnan(self.p_mkt)
        ok: npt.NDArray[np.bool_] = np.all(valid == ~np.isnan(self.p_wx), axis=1)
        ok &= np.all(valid == ~np.isnan(self.centre), axis=1)
        ok &= valid.any(axis=1) & np.isfinite(self.q50) & np.isfinite(self.hour)
        return ok


def design(inputs: AnchoredInputs, p_floor: float) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The (n, K, len(TERMS)) term tensor (0 on padding) and the mask of real brackets."""
    valid = ~np.isnan(inputs.p_mkt)
    pm = np.nan_to_num(inputs.p_mkt)
    pw = np.nan_to_num(inputs.p_wx)
    d = np.clip((np.nan_to_num(inputs.centre) - inputs.q50[:, None]) / D_SCALE_F, -D_CLIP, D_CLIP)
    terms = np.stack(
        [
            np.log(np.maximum(pm, MKT_GUARD)),
            np.log(np.maximum(pw, p_floor)),
            np.log(np.maximum(1.0 - pm, MKT_GUARD)),
            d,
            d * d,
        ],
        axis=2,
    )
    return np.where(valid[:, :, None], terms, 0.0), valid


def _softmax(score: FloatArray, valid: npt.NDArray[np.bool_]) -> FloatArray:
    z = np.where(valid, score, -np.inf)
    out: FloatArray = np.where(valid, np.exp(z - logsumexp(z, axis=1, keepdims=True)), np.nan)
    return out


def bucket_of(hour: FloatArray, edges: tuple[int, ...] = HOUR_EDGES) -> IntArray:
    """Index of each row's hour bucket."""
    idx: IntArray = (np.searchsorted(np.asarray(edges), np.floor(hour), side="right") - 1).astype(
        np.int64
    )
    return np.clip(idx, 0, len(edges) - 1)


class AnchoredPool:
    """Estimator of the market-anchored pool (see the module docstring).

    Parameters
    ----------
    strength : λ, the prior's pull towards p_fused = p_mkt (∞: the pool is the market); one
        value for every hour bucket, or one per bucket.
    p_floor : floor on p_wx before its log (p_wx is exactly 0 where the running max rules a
        bracket out; b ≥ 0 and the floor decide how hard to believe that).
    hour_edges : first local hour of each bucket with its own coefficients.
    """

    def __init__(
        self,
        *,
        strength: float | tuple[float, ...] = 0.01,
        p_floor: float = 1e-3,
        hour_edges: tuple[int, ...] = HOUR_EDGES,
    ) -> None:
        self.strength = strength
        self.p_floor = p_floor
        self.hour_edges = hour_edges

    def _strengths(self) -> list[float]:
        """λ per hour bucket."""
        if isinstance(self.strength, tuple):
            if len(self.strength) != len(self.hour_edges):
                raise ValueError(
                    f"{len(self.strength)} strengths for {len(self.hour_edges)} hour buckets"
                )
            return [float(v) for v in self.strength]
        return [float(self.strength)] * len(self.hour_edges)

    def _check_params(self) -> None:
        if not all(v >= 0.0 for v in self._strengths()):
            raise ValueError(f"strength must be ≥ 0 (∞ allowed), got {self.strength}")
        if not 0.0 < self.p_floor < 1.0:
            raise ValueError(f"p_floor must be in (0, 1), got {self.p_floor}")
        edges = list(self.hour_edges)
        if not edges or edges[0] != 0 or edges != sorted(set(edges)) or edges[-1] > 23:
            raise ValueError(f"hour_edges must rise from 0 within 0..23, got {edges}")

    @staticmethod
    def _objective(
        theta: FloatArray,
        terms: FloatArray,
        valid: npt.NDArray[np.bool_],
        win: IntArray,
        strength: float,
    ) -> tuple[float, FloatArray]:
        """Mean −log p(winner) + λ‖θ − θ0‖², and its gradient."""
        n = terms.shape[0]
        score = terms @ theta
        z = np.where(valid, score, -np.inf)
        lse = logsumexp(z, axis=1)
        rows = np.arange(n)
        p = np.where(valid, np.exp(z - lse[:, None]), 0.0)
        nll = float(np.mean(lse - score[rows, win]))
        expected = np.einsum("nk,nkj->nj", p, terms)
        grad = (expected - terms[rows, win]).mean(axis=0)
        diff = theta - PRIOR
        return nll + strength * float(diff @ diff), grad + 2.0 * strength * diff

    def fit(self, inputs: AnchoredInputs, winner: npt.ArrayLike) -> Self:
        """θ per hour bucket by penalised maximum likelihood of `winner` (0-based index)."""
        self._check_params()
        win = np.asarray(winner).astype(np.int64).ravel()
        if win.size != len(inputs):
            raise ValueError(f"{win.size} winners for {len(inputs)} rows")
        if not np.all(inputs.complete()):
            raise ValueError("inputs have incomplete rows: keep only AnchoredInputs.complete()")
        terms, valid = design(inputs, self.p_floor)
        if np.any(win < 0) or np.any(win >= valid.shape[1]):
            raise ValueError("a winner index points outside its row's brackets")
        if not np.all(valid[np.arange(win.size), win]):
            raise ValueError("a winner index points at a padded bracket")
        buckets = bucket_of(inputs.hour, self.hour_edges)
        coef = np.tile(PRIOR, (len(self.hour_edges), 1))
        rows = np.zeros(len(self.hour_edges), dtype=np.int64)
        converged = True
        for j, lam in enumerate(self._strengths()):
            mine = buckets == j
            rows[j] = int(mine.sum())
            if not math.isfinite(lam) or rows[j] == 0:
                continue  # the prior alone: the market
            result = minimize(
                self._objective,
                PRIOR.copy(),
                args=(terms[mine], valid[mine], win[mine], lam),
                jac=True,
                method="L-BFGS-B",
                bounds=BOUNDS,
            )
            coef[j] = result.x
            converged &= bool(result.success)
        self.coef_ = coef
        self.rows_per_bucket_ = rows
        self.converged_ = converged
        return self

    def predict(self, inputs: AnchoredInputs) -> FloatArray:
        """p_fused (normalised over each row's brackets; NaN on padding). Rows must be
        complete; at θ = θ0 this is p_mkt exactly."""
        if not np.all(inputs.complete()):
            raise ValueError("inputs have incomplete rows: keep only AnchoredInputs.complete()")
        terms, valid = design(inputs, self.p_floor)
        theta = self.coef_[bucket_of(inputs.hour, self.hour_edges)]
        score = np.einsum("nkj,nj->nk", terms, theta)
        out = _softmax(score, valid)
        # At the prior the pool is the market bit for bit, not a renormalised copy whose last
        # digits differ: a report must read a tie there, never a 1e-16 "gain".
        at_prior = np.all(theta == PRIOR, axis=1)
        out[at_prior] = np.where(valid[at_prior], inputs.p_mkt[at_prior], np.nan)
        return out

    def neg_log_likelihood(self, inputs: AnchoredInputs, winner: npt.ArrayLike) -> float:
        """Mean −log p_fused(winner)."""
        p = self.predict(inputs)
        win = np.asarray(winner).astype(np.int64).ravel()
        return float(-np.mean(np.log(p[np.arange(win.size), win])))


def choose_strength(
    inputs: AnchoredInputs,
    winner: npt.ArrayLike,
    day: npt.ArrayLike,
    *,
    strengths: tuple[float, ...] = STRENGTHS,
    holdout_days: int = 30,
    p_floor: float = 1e-3,
    hour_edges: tuple[int, ...] = HOUR_EDGES,
) -> tuple[tuple[float, ...], dict[str, dict[str, float]]]:
    """The prior's strength per hour bucket by one walk-forward step inside the training days.

    Fit on all but the last `holdout_days` days (at most a third of them) at every λ, score
    the held-out rest, and keep, per hour bucket, the strongest λ whose held-out log-loss is
    within `SE_RULE` standard errors (of the paired difference, over held-out days) of that
    bucket's best — the one-standard-error rule: a weaker prior must beat a stronger one by
    more than the day-to-day noise before the pool may leave the market. Returns λ per bucket
    and the held-out log-loss of every λ per bucket (keys: first hour "00", then str(λ)).
    """
    win = np.asarray(winner).astype(np.int64).ravel()
    days = np.asarray(day)
    unique = np.unique(days)
    n_hold = min(holdout_days, len(unique) // 3)
    if n_hold < 2:
        return (math.inf,) * len(hour_edges), {}
    cut = unique[-n_hold]
    fit_rows, hold_rows = days < cut, days >= cut
    held = inputs.take(hold_rows)
    rows = np.arange(int(hold_rows.sum()))
    bucket = bucket_of(held.hour, hour_edges)
    ordered = sorted(strengths, reverse=True)
    losses: dict[float, FloatArray] = {}
    for lam in ordered:
        model = AnchoredPool(strength=lam, p_floor=p_floor, hour_edges=hour_edges)
        model.fit(inputs.take(fit_rows), win[fit_rows])
        losses[lam] = -np.log(model.predict(held)[rows, win[hold_rows]])
    chosen: list[float] = []
    scores: dict[str, dict[str, float]] = {}
    for j, first in enumerate(hour_edges):
        mine = bucket == j
        if not mine.any():
            chosen.append(math.inf)
            continue
        _, day_index = np.unique(days[hold_rows][mine], return_inverse=True)
        counts = np.bincount(day_index)
        per_day = {
            lam: np.bincount(day_index, weights=v[mine]) / counts for lam, v in losses.items()
        }
        means = {lam: float(v.mean()) for lam, v in per_day.items()}
        scores[f"{first:02d}"] = {str(lam): v for lam, v in means.items()}
        best = min(ordered, key=lambda lam: means[lam])
        pick = best
        for lam in ordered:  # strongest first
            diff = per_day[lam] - per_day[best]
            se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else 0.0
            if means[lam] <= means[best] + SE_RULE * se:
                pick = lam
                break
        chosen.append(pick)
    return tuple(chosen), scores
