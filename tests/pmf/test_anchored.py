"""The market-anchored pool on data drawn from the model itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import check_grad

from kwx.domain.brackets import Bracket
from kwx.pmf.anchored import (
    PRIOR,
    TERMS,
    AnchoredInputs,
    AnchoredPool,
    bracket_centre,
    bucket_of,
    choose_strength,
    design,
)

K = 6
TRUE = np.array([1.3, 0.4, 0.0, -0.3, -0.2])


def _inputs(n: int, seed: int) -> AnchoredInputs:
    """Two unrelated PMFs over a 6-bracket ladder (a tenth of rows with 5, padded), bracket
    centres 2 °F apart, a weather median near the middle and hours over the whole day."""
    rng = np.random.default_rng(seed)
    p_mkt = rng.dirichlet(np.full(K, 0.7), size=n)
    p_wx = rng.dirichlet(np.full(K, 0.7), size=n)
    centre = np.tile(70.0 + 2.0 * np.arange(K), (n, 1))
    short = np.arange(n) < n // 10
    for arr in (p_mkt, p_wx, centre):
        arr[short, K - 1] = np.nan
    for p in (p_mkt, p_wx):
        p[short, : K - 1] /= p[short, : K - 1].sum(axis=1, keepdims=True)
    q50 = rng.normal(75.0, 3.0, n)
    hour = rng.uniform(0.0, 24.0, n)
    return AnchoredInputs(p_mkt, p_wx, centre, q50, hour)


def _draw(model: AnchoredPool, inputs: AnchoredInputs, seed: int) -> np.ndarray:
    fused = model.predict(inputs)
    cdf = np.nancumsum(fused, axis=1)
    rng = np.random.default_rng(seed)
    winner = (rng.random(len(inputs))[:, None] > cdf).sum(axis=1)
    sizes = (~np.isnan(inputs.p_mkt)).sum(axis=1)
    return np.asarray(np.minimum(winner, sizes - 1), dtype=np.int64)


def _truth(coef: np.ndarray) -> AnchoredPool:
    truth = AnchoredPool(hour_edges=(0,))
    truth.coef_ = coef.reshape(1, -1)
    return truth


def test_recovers_known_coefficients_by_maximum_likelihood() -> None:
    inputs = _inputs(20_000, 1)
    winner = _draw(_truth(TRUE), inputs, 2)
    fitted = AnchoredPool(strength=0.0, hour_edges=(0,)).fit(inputs, winner)
    np.testing.assert_allclose(fitted.coef_[0], TRUE, atol=0.08)
    assert fitted.converged_


def test_coefficients_per_hour_bucket_are_fitted_apart() -> None:
    inputs = _inputs(30_000, 3)
    night = np.array([0.7, 0.0, 0.0, 0.0, 0.0])
    day = np.array([1.5, 0.6, 0.0, 0.0, 0.0])
    truth = AnchoredPool(hour_edges=(0, 12))
    truth.coef_ = np.vstack([night, day])
    winner = _draw(truth, inputs, 4)
    fitted = AnchoredPool(strength=0.0, hour_edges=(0, 12)).fit(inputs, winner)
    np.testing.assert_allclose(fitted.coef_[0, :2], night[:2], atol=0.1)
    np.testing.assert_allclose(fitted.coef_[1, :2], day[:2], atol=0.1)


def test_infinite_prior_is_the_market_exactly() -> None:
    inputs = _inputs(500, 5)
    winner = _draw(_truth(TRUE), inputs, 6)
    model = AnchoredPool(strength=math.inf).fit(inputs, winner)
    np.testing.assert_array_equal(model.coef_, np.tile(PRIOR, (len(model.hour_edges), 1)))
    np.testing.assert_array_equal(model.predict(inputs), inputs.p_mkt)
    # A strong finite prior stays near the market; a weak one moves towards the truth.
    strong = AnchoredPool(strength=100.0, hour_edges=(0,)).fit(inputs, winner)
    weak = AnchoredPool(strength=1e-4, hour_edges=(0,)).fit(inputs, winner)
    assert np.abs(strong.coef_[0] - PRIOR).max() < 0.02
    assert np.abs(weak.coef_[0] - PRIOR).max() > 0.1


def test_a_and_b_are_never_negative() -> None:
    """Winners drawn against the market and the weather model (a, b < 0 in the truth): the
    fit stops at the bound 0 instead of betting against either."""
    inputs = _inputs(10_000, 7)
    contrarian = np.array([-0.8, -0.8, 0.0, 0.0, 0.0])
    truth = _truth(contrarian)
    winner = _draw(truth, inputs, 8)
    fitted = AnchoredPool(strength=0.0, hour_edges=(0,)).fit(inputs, winner)
    assert fitted.coef_[0, 0] >= 0.0 and fitted.coef_[0, 1] >= 0.0
    assert fitted.coef_[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert fitted.coef_[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_predictions_sum_to_one_over_each_ladder_and_keep_padding() -> None:
    inputs = _inputs(2_000, 9)
    model = _truth(TRUE)
    p = model.predict(inputs)
    np.testing.assert_allclose(np.nansum(p, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(inputs.p_mkt))
    assert np.all(p[~np.isnan(p)] > 0)


def test_gradient_is_exact() -> None:
    inputs = _inputs(300, 10)
    winner = _draw(_truth(TRUE), inputs, 11)
    terms, valid = design(inputs, 1e-3)

    def f(theta: np.ndarray) -> float:
        return AnchoredPool._objective(theta, terms, valid, winner, 0.05)[0]

    def g(theta: np.ndarray) -> np.ndarray:
        return AnchoredPool._objective(theta, terms, valid, winner, 0.05)[1]

    assert check_grad(f, g, np.array([1.1, 0.2, 0.1, -0.1, 0.05])) < 1e-5


def test_choose_strength_keeps_the_market_when_the_data_says_nothing() -> None:
    """Winners drawn from the market itself: on five data sets a prior at least as strong as
    λ = 1 is kept in every hour bucket; winners drawn from TRUE free the pool (λ ≤ 0.01)."""
    days = np.repeat(np.arange(120), 50)
    kept: list[bool] = []
    for seed in range(5):
        inputs = _inputs(6_000, 20 + seed)
        winner = _draw(_truth(PRIOR), inputs, 40 + seed)
        lam, scores = choose_strength(inputs, winner, days, hour_edges=(0, 12))
        assert set(scores) == {"00", "12"}
        assert set(scores["12"]) == {"inf", "1.0", "0.1", "0.01", "0.001"}
        kept.extend(v >= 1.0 for v in lam)
    assert sum(kept) >= 9  # one bucket in ten may move by chance under the one-SE rule
    informative = _draw(_truth(TRUE), inputs, 14)
    lam_info, _ = choose_strength(inputs, informative, days, hour_edges=(0,))
    assert lam_info[0] <= 0.01


def test_bad_inputs_are_clear_errors() -> None:
    inputs = _inputs(50, 15)
    winner = np.zeros(50, dtype=np.int64)
    with pytest.raises(ValueError, match="strength"):
        AnchoredPool(strength=-1.0).fit(inputs, winner)
    with pytest.raises(ValueError, match="2 strengths for 6 hour buckets"):
        AnchoredPool(strength=(1.0, 1.0)).fit(inputs, winner)
    with pytest.raises(ValueError, match="hour_edges"):
        AnchoredPool(hour_edges=(3, 12)).fit(inputs, winner)
    with pytest.raises(ValueError, match="winners for"):
        AnchoredPool().fit(inputs, winner[:10])
    bad = np.full(50, K - 1)  # the padded rows have no sixth bracket
    with pytest.raises(ValueError, match="padded"):
        AnchoredPool().fit(inputs, bad)
    with pytest.raises(ValueError, match="one value per row"):
        AnchoredInputs(inputs.p_mkt, inputs.p_wx, inputs.centre, inputs.q50[:3], inputs.hour)
    missing = AnchoredInputs(
        inputs.p_mkt, inputs.p_wx, inputs.centre, np.full(50, np.nan), inputs.hour
    )
    with pytest.raises(ValueError, match="incomplete"):
        AnchoredPool().fit(missing, winner)


def test_bracket_centres_and_hour_buckets() -> None:
    assert bracket_centre(Bracket.from_strikes("between", 80, 81)) == 80.5
    assert bracket_centre(Bracket.from_strikes("less", None, 78)) == 76.5
    assert bracket_centre(Bracket.from_strikes("greater", 85, None)) == 86.5
    np.testing.assert_array_equal(
        bucket_of(np.array([0.0, 3.99, 4.0, 19.5, 20.0, 23.99])), [0, 0, 1, 4, 5, 5]
    )
    assert len(TERMS) == len(PRIOR)
