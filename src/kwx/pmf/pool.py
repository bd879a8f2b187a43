"""The logarithmic pool of p_mkt and p_wx, and its weight model as an estimator.

    log p_fused_k ∝ w_mkt · log p_mkt_k + (1 − w_mkt) · log p_wx_k
    w_mkt = σ(α0 + α1·z(log(volume_20m + 1)) + α2·z(hazard_next_60m)
              + α3·z(mkt_volatility) + α4·z(minutes_to_close))

with z(·) the feature standardised by its training mean and standard deviation. A geometric
pool keeps what both sources rule out ruled out, and one weight per event and minute keeps the
ladder's shape; the weight moves with how much the market has traded, how likely a new high
is in the next hour, how jumpy the market is and how much of the day is left.

`LogPool` follows scikit-learn's estimator contract: constructor arguments are plain
hyper-parameters, `fit` learns the state that ends in `_`, `predict*` have no side effects.
α is the maximum-likelihood estimate of the realized winning bracket (L-BFGS-B with an exact
gradient, box bounds keeping σ away from exactly 0/1), cross-checked by a coarse grid search
whose best point also seeds the optimiser. p_wx is floored at `p_floor` before logs (it is
exactly 0 on brackets the running maximum rules out, and how hard to believe such a zero is a
property of the weather model); p_mkt is not: it is already kept off zero where it is built
(`kwx.pmf.market`), and flooring it too would pull p_fused away from p_mkt exactly where the
fit says to trust the market (w_mkt → 1), costing log-loss at the late hours for nothing. Only
an exact zero in p_mkt is guarded, at MKT_GUARD.

Arrays: one row per (event, minute), one column per bracket in ladder order; events with
fewer brackets are padded with NaN on the right.
"""

from __future__ import annotations

import itertools
from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FEATURES = ("log_volume_20m", "hazard_next_60m", "mkt_volatility", "minutes_to_close")
N_ALPHA = 1 + len(FEATURES)
GRID_ROWS = 8000
# Guards log(0) on p_mkt only; far below the 0.005 floor p_mkt is built with.
MKT_GUARD = 1e-12


def _logs(p: FloatArray, floor: float) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """log(max(p, floor)) with padding (NaN) → 0, and the mask of real brackets."""
    valid = ~np.isnan(p)
    return np.where(valid, np.log(np.maximum(np.nan_to_num(p), floor)), 0.0), valid


def pool(
    p_mkt: npt.ArrayLike, p_wx: npt.ArrayLike, w_mkt: npt.ArrayLike, p_floor: float = 1e-4
) -> tuple[FloatArray, FloatArray]:
    """The pooled PMF per row: (unnormalised exp of the weighted log sum, normalised).

    With w_mkt = 1 this is p_mkt exactly; p_floor applies to p_wx; padding stays NaN.
    """
    pm = np.atleast_2d(np.asarray(p_mkt, dtype=np.float64))
    pw = np.atleast_2d(np.asarray(p_wx, dtype=np.float64))
    if pm.shape != pw.shape:
        raise ValueError(f"p_mkt has shape {pm.shape} but p_wx {pw.shape}")
    w = np.asarray(w_mkt, dtype=np.float64).reshape(-1, 1)
    if w.shape[0] != pm.shape[0]:
        raise ValueError(f"{w.shape[0]} weights for {pm.shape[0]} rows")
    a, valid = _logs(pm, MKT_GUARD)
    b, valid_w = _logs(pw, p_floor)
    if not np.array_equal(valid, valid_w):
        raise ValueError("p_mkt and p_wx must be missing (padded) on the same brackets")
    z = np.where(valid, w * a + (1.0 - w) * b, -np.inf)
    unnorm = np.where(valid, np.exp(z), np.nan)
    norm = np.where(valid, np.exp(z - logsumexp(z, axis=1, keepdims=True)), np.nan)
    return unnorm, norm


class LogPool:
    """Estimator of the pool's weight model (see the module docstring).

    Parameters
    ----------
    p_floor : floor on p_wx before taking logs.
    l2 : ridge penalty on α (per sample), tiny: it only keeps a flat direction finite.
    bound : |α_j| ≤ bound in the optimiser and the grid.
    grid : run the coarse grid search (the cross-check); off only to save time in tests.
    """

    def __init__(
        self, *, p_floor: float = 1e-4, l2: float = 1e-6, bound: float = 10.0, grid: bool = True
    ) -> None:
        self.p_floor = p_floor
        self.l2 = l2
        self.bound = bound
        self.grid = grid

    # ------------------------------------------------------------------ validation helpers
    def _check_params(self) -> None:
        if not 0.0 < self.p_floor < 1.0:
            raise ValueError(f"p_floor must be in (0, 1), got {self.p_floor}")
        if self.l2 < 0.0 or self.bound <= 0.0:
            raise ValueError("l2 must be ≥ 0 and bound > 0")

    @staticmethod
    def _check_inputs(
        x: npt.ArrayLike, p_mkt: npt.ArrayLike, p_wx: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        xa = np.atleast_2d(np.asarray(x, dtype=np.float64))
        pm = np.atleast_2d(np.asarray(p_mkt, dtype=np.float64))
        pw = np.atleast_2d(np.asarray(p_wx, dtype=np.float64))
        if xa.shape[1] != len(FEATURES):
            raise ValueError(f"X needs {len(FEATURES)} columns {FEATURES}, got {xa.shape[1]}")
        if not (xa.shape[0] == pm.shape[0] == pw.shape[0]) or pm.shape != pw.shape:
            raise ValueError(f"row counts differ: X {xa.shape}, p_mkt {pm.shape}, p_wx {pw.shape}")
        if not np.all(np.isfinite(xa)):
            raise ValueError("X has missing or infinite features")
        return xa, pm, pw

    def _design(self, x: FloatArray) -> FloatArray:
        z = (x - self.mean_) / self.scale_
        return np.hstack([np.ones((x.shape[0], 1)), z])

    # ------------------------------------------------------------------ objective
    def _objective(
        self,
        alpha: FloatArray,
        design: FloatArray,
        b: FloatArray,
        d: FloatArray,
        win: IntArray,
    ) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood of the winners and its gradient in α.

        `b` is log p_wx with −inf on padding, `d` = log p_mkt − log p_wx (0 on padding), so
        z = b + w·d is the pooled log score of each bracket.
        """
        n = design.shape[0]
        w = expit(design @ alpha)
        z = b + w[:, None] * d
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - top)
        total = e.sum(axis=1)
        rows = np.arange(n)
        loglik = z[rows, win] - top[:, 0] - np.log(total)
        g = d[rows, win] - (e * d).sum(axis=1) / total  # ∂ log p_win / ∂w
        grad = -(design.T @ (g * w * (1.0 - w))) / n + 2.0 * self.l2 * alpha
        nll = -float(np.mean(loglik)) + self.l2 * float(alpha @ alpha)
        return nll, grad

    def _grid_search(
        self, design: FloatArray, b: FloatArray, d: FloatArray, win: IntArray
    ) -> tuple[FloatArray, float]:
        """Coarse grid: α0 in 13 steps over [−6, 6], each slope in {−1, 0, 1}; searched on a
        fixed random subsample of at most GRID_ROWS rows (it is a cross-check, not the fit),
        the best point scored again on all rows."""
        if design.shape[0] > GRID_ROWS:
            pick = np.random.default_rng(0).choice(design.shape[0], GRID_ROWS, replace=False)
            sub = (design[pick], b[pick], d[pick], win[pick])
        else:
            sub = (design, b, d, win)
        best = (np.zeros(N_ALPHA), np.inf)
        for a0 in np.linspace(-6.0, 6.0, 13):
            for slopes in itertools.product((-1.0, 0.0, 1.0), repeat=N_ALPHA - 1):
                alpha = np.array([a0, *slopes])
                nll, _ = self._objective(alpha, *sub)
                if nll < best[1]:
                    best = (alpha, nll)
        return best[0], self._objective(best[0], design, b, d, win)[0]

    # ------------------------------------------------------------------ estimator API
    def fit(
        self,
        x: npt.ArrayLike,
        p_mkt: npt.ArrayLike,
        p_wx: npt.ArrayLike,
        winner: npt.ArrayLike,
    ) -> Self:
        """Learn α by maximum likelihood of `winner` (0-based bracket index per row)."""
        self._check_params()
        xa, pm, pw = self._check_inputs(x, p_mkt, p_wx)
        win = np.asarray(winner).astype(np.int64).ravel()
        if win.size != xa.shape[0]:
            raise ValueError(f"{win.size} winners for {xa.shape[0]} rows")
        if xa.shape[0] < 2 * N_ALPHA:
            raise ValueError(f"too few rows to fit {N_ALPHA} parameters: {xa.shape[0]}")
        a, valid = _logs(pm, MKT_GUARD)
        b, valid_w = _logs(pw, self.p_floor)
        if not np.array_equal(valid, valid_w):
            raise ValueError("p_mkt and p_wx must be missing (padded) on the same brackets")
        if (
            np.any(win < 0)
            or np.any(win >= pm.shape[1])
            or not np.all(valid[np.arange(win.size), win])
        ):
            raise ValueError("a winner index points outside its row's brackets")
        d = a - b
        b = np.where(valid, b, -np.inf)
        self.mean_ = xa.mean(axis=0)
        scale = xa.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        design = self._design(xa)
        starts = [np.zeros(N_ALPHA)]
        if self.grid:
            self.grid_alpha_, self.grid_nll_ = self._grid_search(design, b, d, win)
            starts.append(self.grid_alpha_)
        best = None
        for start in starts:
            result = minimize(
                self._objective,
                start,
                args=(design, b, d, win),
                jac=True,
                method="L-BFGS-B",
                bounds=[(-self.bound, self.bound)] * N_ALPHA,
            )
            if best is None or result.fun < best.fun:
                best = result
        assert best is not None
        self.alpha_ = np.asarray(best.x, dtype=np.float64)
        self.nll_ = float(best.fun)
        self.converged_ = bool(best.success)
        self.n_samples_ = int(xa.shape[0])
        return self

    def weight(self, x: npt.ArrayLike) -> FloatArray:
        """w_mkt per row."""
        xa = np.atleast_2d(np.asarray(x, dtype=np.float64))
        w: FloatArray = expit(self._design(xa) @ self.alpha_)
        return w

    def predict_pooled(
        self, x: npt.ArrayLike, p_mkt: npt.ArrayLike, p_wx: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(w_mkt, p_fused unnormalised, p_fused normalised) per row."""
        xa, pm, pw = self._check_inputs(x, p_mkt, p_wx)
        w = self.weight(xa)
        unnorm, norm = pool(pm, pw, w, self.p_floor)
        return w, unnorm, norm

    def predict(self, x: npt.ArrayLike, p_mkt: npt.ArrayLike, p_wx: npt.ArrayLike) -> FloatArray:
        """p_fused_norm per row."""
        return self.predict_pooled(x, p_mkt, p_wx)[2]

    def neg_log_likelihood(
        self, x: npt.ArrayLike, p_mkt: npt.ArrayLike, p_wx: npt.ArrayLike, winner: npt.ArrayLike
    ) -> float:
        """Mean −log p_fused_norm(winner) (no penalty, no clipping beyond p_floor)."""
        p = self.predict(x, p_mkt, p_wx)
        win = np.asarray(winner).astype(np.int64).ravel()
        return float(-np.mean(np.log(p[np.arange(win.size), win])))
