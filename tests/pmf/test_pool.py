"""The logarithmic pool and its weight estimator on data drawn from the model itself."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.optimize import check_grad

from kwx.pmf.pool import FEATURES, LogPool, pool

TRUE_ALPHA = np.array([0.8, 1.0, -0.7, 0.5, -1.2])


def _synthetic(n: int, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Features, two unrelated PMFs (some rows with 5 brackets, padded) and winners drawn
    from the pool with TRUE_ALPHA."""
    rng = np.random.default_rng(seed)
    k = 6
    p_mkt = rng.dirichlet(np.full(k, 0.7), size=n)
    p_wx = rng.dirichlet(np.full(k, 0.7), size=n)
    short = np.arange(n) < n // 10
    for p in (p_mkt, p_wx):
        p[short, k - 1] = np.nan
        p[short, : k - 1] /= p[short, : k - 1].sum(axis=1, keepdims=True)
    x = np.column_stack(
        [
            rng.gamma(2.0, 1.0, n),
            rng.uniform(0.0, 1.0, n),
            rng.gamma(2.0, 0.01, n),
            rng.uniform(0.0, 1440.0, n),
        ]
    )
    truth = LogPool()
    truth.mean_, truth.scale_, truth.alpha_ = x.mean(axis=0), x.std(axis=0), TRUE_ALPHA
    fused = truth.predict(x, p_mkt, p_wx)
    cdf = np.nancumsum(fused, axis=1)
    winner = (rng.random(n)[:, None] > cdf).sum(axis=1)
    winner = np.minimum(winner, np.where(short, k - 2, k - 1))
    return x, p_mkt, p_wx, winner.astype(np.float64)


def test_pool_with_full_market_weight_is_p_mkt() -> None:
    p_mkt = np.array([[0.2, 0.5, 0.3], [0.6, 0.4, np.nan]])
    p_wx = np.array([[0.0, 0.1, 0.9], [0.5, 0.5, np.nan]])
    unnorm, norm = pool(p_mkt, p_wx, [1.0, 1.0])
    np.testing.assert_allclose(unnorm, p_mkt)
    np.testing.assert_allclose(norm, p_mkt)
    # w = 0: p_wx, its zero floored at 1e-4 before normalising.
    _, norm0 = pool(p_mkt, p_wx, [0.0, 0.0])
    np.testing.assert_allclose(norm0[0], np.array([1e-4, 0.1, 0.9]) / 1.0001)
    # The floor is p_wx's: a market longshot below it stays where the market put it, so
    # trusting the market fully costs nothing against the market.
    longshot = np.array([[0.004, 0.296, 0.7]])
    _, full = pool(longshot, np.array([[0.0, 0.5, 0.5]]), [1.0], p_floor=1e-2)
    np.testing.assert_allclose(full, longshot)


def test_pool_by_hand_and_sums_to_one() -> None:
    p_mkt = np.array([[0.25, 0.25, 0.5]])
    p_wx = np.array([[0.5, 0.25, 0.25]])
    unnorm, norm = pool(p_mkt, p_wx, [0.5])
    # geometric means: √(.25·.5), √(.25·.25), √(.5·.25)
    expected = np.sqrt(np.array([0.125, 0.0625, 0.125]))
    np.testing.assert_allclose(unnorm[0], expected)
    np.testing.assert_allclose(norm[0], expected / expected.sum())
    rng = np.random.default_rng(3)
    pm, pw = rng.dirichlet(np.ones(7), 50), rng.dirichlet(np.ones(7), 50)
    _, many = pool(pm, pw, rng.uniform(0, 1, 50))
    np.testing.assert_allclose(many.sum(axis=1), 1.0)


def test_pool_refuses_mismatched_padding() -> None:
    with pytest.raises(ValueError, match="same brackets"):
        pool([[0.5, 0.5, np.nan]], [[0.3, 0.3, 0.4]], [0.5])


def test_gradient_is_exact() -> None:
    x, p_mkt, p_wx, winner = _synthetic(2000, seed=1)
    model = LogPool()
    model.mean_, model.scale_ = x.mean(axis=0), x.std(axis=0)
    a = np.log(np.maximum(np.nan_to_num(p_mkt), 1e-4))
    b = np.log(np.maximum(np.nan_to_num(p_wx), 1e-4))
    valid = ~np.isnan(p_mkt)
    args = (model._design(x), np.where(valid, b, -np.inf), np.where(valid, a - b, 0.0))
    win = winner.astype(np.int64)

    def f(alpha: npt.NDArray[np.float64]) -> float:
        return model._objective(alpha, *args, win)[0]

    def g(alpha: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return model._objective(alpha, *args, win)[1]

    assert check_grad(f, g, np.array([0.3, -0.2, 0.5, 0.1, -0.4])) < 1e-5


def test_fit_recovers_the_weights_that_generated_the_data() -> None:
    x, p_mkt, p_wx, winner = _synthetic(20000, seed=7)
    model = LogPool(grid=False).fit(x, p_mkt, p_wx, winner)
    assert model.converged_
    np.testing.assert_allclose(model.alpha_, TRUE_ALPHA, atol=0.15)
    # A wrong model (the market alone) explains the draws worse than the fitted pool.
    market_only = LogPool()
    market_only.mean_, market_only.scale_ = model.mean_, model.scale_
    market_only.alpha_ = np.array([20.0, 0, 0, 0, 0])
    assert model.neg_log_likelihood(x, p_mkt, p_wx, winner) < market_only.neg_log_likelihood(
        x, p_mkt, p_wx, winner
    )


def test_grid_cross_check_agrees_with_the_optimiser() -> None:
    x, p_mkt, p_wx, winner = _synthetic(4000, seed=11)
    model = LogPool().fit(x, p_mkt, p_wx, winner)
    # The grid's best point is a coarse version of the optimum and never beats it.
    assert model.nll_ <= model.grid_nll_ + 1e-9
    assert model.grid_nll_ - model.nll_ < 0.05
    assert np.all(np.abs(model.grid_alpha_ - model.alpha_) <= 1.0)


def test_predict_has_no_side_effects() -> None:
    x, p_mkt, p_wx, winner = _synthetic(500, seed=5)
    model = LogPool(grid=False).fit(x, p_mkt, p_wx, winner)
    alpha, x0, pm0 = model.alpha_.copy(), x.copy(), p_mkt.copy()
    first = model.predict(x, p_mkt, p_wx)
    second = model.predict(x, p_mkt, p_wx)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(model.alpha_, alpha)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(p_mkt, pm0)
    w = model.weight(x)
    assert np.all((w > 0) & (w < 1))


def test_fit_rejects_bad_input() -> None:
    x, p_mkt, p_wx, winner = _synthetic(200, seed=2)
    with pytest.raises(ValueError, match=f"{len(FEATURES)} columns"):
        LogPool().fit(x[:, :3], p_mkt, p_wx, winner)
    with pytest.raises(ValueError, match="winner index"):
        LogPool().fit(x, p_mkt, p_wx, np.full(200, 9))
    with pytest.raises(ValueError, match="missing or infinite"):
        bad = x.copy()
        bad[0, 1] = np.nan
        LogPool().fit(bad, p_mkt, p_wx, winner)
    with pytest.raises(ValueError, match="p_floor"):
        LogPool(p_floor=0.0).fit(x, p_mkt, p_wx, winner)
