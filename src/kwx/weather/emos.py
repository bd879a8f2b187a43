"""EMOS: a calibrated Gaussian for a day's official maximum from station guidance members.

Ensemble model output statistics (Gneiting et al. 2005, "non-homogeneous Gaussian
regression"): the official Tmax Y given guidance members x_1 … x_k is modelled as

    Y ~ N(mu, sigma²),  mu = a + Σ b_i·x_i,  sigma² = c + d·S²

where S is a spread: the ensemble's own (GEFS ``spread_f``) when the caller supplies one, else
the spread of the members around their mean. Why this shape: guidance members disagree most
on the days that are hard to forecast, so their spread is the natural, measured scale of the
day's uncertainty; regression on the members de-biases each one (gridded maxima run cold by
1–2 °F) and weights the sharper ones more. b_i ≥ 0 and c, d ≥ 0 keep the fit sensible with
highly collinear members (a negative weight on one model offsetting another is overfit noise).

The fit minimises the mean **CRPS** of the Gaussian (closed form, below), the proper score the
forecasts are judged by, rather than the likelihood: minimum-CRPS fits are less driven by a
few gross outliers and give sharper, still calibrated, distributions (Gneiting 2005, §3).

The estimator follows scikit-learn's contract (parameters plain, ``fit`` learns, fitted state
ends in ``_``, ``predict`` has no side effects); ``predict`` returns (mu, sigma).
Walk-forward, bias correction and missing members are handled by `kwx.weather.emos_walk`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from kwx.domain.brackets import Bracket

SpreadKind = Literal["members", "last_column", "none"]
# sigma² never below this (°F²): a zero-variance Gaussian has an infinite CRPS gradient and
# no settled value is known to better than the 1 °F rounding of the climate report.
MIN_VARIANCE = 0.05
_SQRT_PI = math.sqrt(math.pi)


def crps_normal(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of N(mu, sigma²) at y (Gneiting et al. 2005, eq. 5), in the units of y.

    CRPS = sigma·[z·(2Φ(z) − 1) + 2φ(z) − 1/√π],  z = (y − mu)/sigma.
    """
    mu, sigma, y = np.asarray(mu, float), np.asarray(sigma, float), np.asarray(y, float)
    z = (y - mu) / sigma
    out: np.ndarray = sigma * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * _pdf(z) - 1.0 / _SQRT_PI)
    return out


def _pdf(z: np.ndarray) -> np.ndarray:
    """The standard normal density (scipy.stats' is slow for the optimiser's small calls)."""
    out: np.ndarray = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return out


def _crps_and_grads(
    mu: np.ndarray, sigma: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CRPS with its derivatives with respect to mu and sigma (for an exact gradient)."""
    z = (y - mu) / sigma
    cdf, pdf = ndtr(z), _pdf(z)
    crps = sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / _SQRT_PI)
    d_mu = -(2.0 * cdf - 1.0)
    d_sigma = 2.0 * pdf - 1.0 / _SQRT_PI
    return crps, d_mu, d_sigma


@dataclass(frozen=True)
class _Design:
    members: np.ndarray  # (n, k)
    spread2: np.ndarray  # (n,) S²


class EmosRegressor(BaseEstimator):  # type: ignore[misc]
    """Minimum-CRPS non-homogeneous Gaussian regression of Y on guidance members.

    Parameters
    ----------
    spread:
        ``"members"``: S² is the variance of the members around their mean (0 with one
        member, leaving sigma² = c); ``"last_column"``: the last column of X is an ensemble
        spread S (°F), the other columns the members; ``"none"``: sigma² = c.
    nonnegative:
        Constrain b_i ≥ 0 (c, d ≥ 0 always).
    max_iter:
        L-BFGS-B iterations.
    """

    def __init__(
        self,
        spread: SpreadKind = "members",
        nonnegative: bool = True,
        max_iter: int = 500,
    ) -> None:
        self.spread = spread
        self.nonnegative = nonnegative
        self.max_iter = max_iter

    def _design(self, X: Any) -> _Design:  # noqa: N803
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise ValueError(f"EMOS: X must be 2-D (days × members), got shape {arr.shape}")
        if self.spread == "last_column":
            if arr.shape[1] < 2:
                raise ValueError("EMOS: spread='last_column' needs a member and a spread column")
            members, spread2 = arr[:, :-1], arr[:, -1] ** 2
        elif self.spread == "members":
            members = arr
            spread2 = arr.var(axis=1) if arr.shape[1] > 1 else np.zeros(len(arr))
        elif self.spread == "none":
            members, spread2 = arr, np.zeros(len(arr))
        else:
            raise ValueError(f"EMOS: unknown spread {self.spread!r}")
        if not np.isfinite(members).all() or not np.isfinite(spread2).all():
            raise ValueError("EMOS: X has missing values; fit per available subset of members")
        return _Design(members, spread2)

    def fit(self, X: Any, y: Any) -> EmosRegressor:  # noqa: N803
        """Minimise the mean CRPS over (a, b, c, d) with L-BFGS-B and the exact gradient."""
        design = self._design(X)
        target = np.asarray(y, dtype=float)
        n, k = design.members.shape
        if target.shape != (n,):
            raise ValueError(f"EMOS: y has shape {target.shape}, X has {n} rows")
        if n < k + 3:
            raise ValueError(f"EMOS: {n} training days are too few for {k} member(s)")
        if not np.isfinite(target).all():
            raise ValueError("EMOS: y has missing values")
        # Centre the members and the target: the intercept is then O(1), which keeps the
        # problem well conditioned (raw temperatures are ~50 °F from the origin).
        x_mean, y_mean = design.members.mean(axis=0), float(target.mean())
        xc, yc = design.members - x_mean, target - y_mean
        s2 = design.spread2
        has_spread = self.spread != "none" and float(s2.max()) > 0.0

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            a, b, c, d = theta[0], theta[1 : k + 1], theta[k + 1], theta[k + 2]
            mu = a + xc @ b
            var = np.maximum(c + d * s2, MIN_VARIANCE)
            sigma = np.sqrt(var)
            crps, d_mu, d_sigma = _crps_and_grads(mu, sigma, yc)
            d_var = d_sigma / (2.0 * sigma) * (c + d * s2 > MIN_VARIANCE)
            grad = np.empty_like(theta)
            grad[0] = d_mu.mean()
            grad[1 : k + 1] = (d_mu[:, None] * xc).mean(axis=0)
            grad[k + 1] = d_var.mean()
            grad[k + 2] = (d_var * s2).mean()
            return float(crps.mean()), grad

        resid0 = yc - xc.mean(axis=1)
        theta0 = np.concatenate([[resid0.mean()], np.full(k, 1.0 / k), [resid0.var() + 0.5], [0.0]])
        lower_b = 0.0 if self.nonnegative else None
        bounds = (
            [(None, None)]
            + [(lower_b, None)] * k
            + [(MIN_VARIANCE, None)]
            + [(0.0, None if has_spread else 0.0)]
        )
        # One BLAS thread: the problem is tiny, and a multi-threaded BLAS on a busy machine made
        # each L-BFGS-B step ~20x slower (measured: 1.0 s vs 0.06 s for a 2-year fit).
        with threadpool_limits(limits=1):
            result = minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.max_iter},
            )
        theta = result.x
        self.coef_ = np.asarray(theta[1 : k + 1], dtype=float)
        self.intercept_ = float(y_mean + theta[0] - self.coef_ @ x_mean)
        self.c_ = float(theta[k + 1])
        self.d_ = float(theta[k + 2])
        self.n_members_ = k
        self.n_train_ = n
        self.train_crps_ = float(result.fun)
        self.converged_ = bool(result.success)
        return self

    def predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """(mu, sigma) per row of X, in °F."""
        if not hasattr(self, "coef_"):
            raise ValueError("EMOS: predict before fit")
        design = self._design(X)
        if design.members.shape[1] != self.n_members_:
            raise ValueError(
                f"EMOS: fitted on {self.n_members_} member(s), X has {design.members.shape[1]}"
            )
        mu = self.intercept_ + design.members @ self.coef_
        sigma = np.sqrt(np.maximum(self.c_ + self.d_ * design.spread2, MIN_VARIANCE))
        return mu, sigma

    def score_crps(self, X: Any, y: Any) -> float:  # noqa: N803
        """Mean CRPS (°F) on (X, y): lower is better."""
        mu, sigma = self.predict(X)
        return float(crps_normal(mu, sigma, np.asarray(y, dtype=float)).mean())


def bracket_probabilities(mu: float, sigma: float, brackets: Sequence[Bracket]) -> np.ndarray:
    """P(YES) per bracket when the official maximum is N(mu, sigma²) rounded to whole °F.

    The climate report publishes whole degrees, so bracket [lo, hi] (integers, inclusive) wins
    with probability Φ((hi + ½ − mu)/sigma) − Φ((lo − ½ − mu)/sigma); an open end is ±∞. A
    ladder that covers every integer sums to exactly 1. For predictors and pools that want the
    guidance's own view of the brackets (the day-ahead p_emos) beside the Monte Carlo's.
    """
    out = np.empty(len(brackets))
    for i, bracket in enumerate(brackets):
        lo, hi = bracket.integer_range()
        upper = 1.0 if hi is None else float(ndtr((hi + 0.5 - mu) / sigma))
        lower = 0.0 if lo is None else float(ndtr((lo - 0.5 - mu) / sigma))
        out[i] = max(upper - lower, 0.0)
    return out
