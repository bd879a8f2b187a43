"""Calibrators on synthetic miscalibrated forecasts (they must fix them), their stored
parameters, and the rule that picks the default."""

from __future__ import annotations

import numpy as np
import pytest

from kwx.pmf.metrics import brier, ece
from kwx.predict.calibration import (
    BRIER_TIE,
    Candidate,
    IsotonicCalibrator,
    PlattCalibrator,
    calibrator_from_params,
    choose_default,
    logit,
    make_calibrator,
)


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities, outcomes drawn from them, and an overconfident, biased forecast
    σ(2.5·logit(p) + 0.7)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < p).astype(np.float64)
    q = 1.0 / (1.0 + np.exp(-(2.5 * logit(p) + 0.7)))
    return p, y, q


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_fix_a_miscalibrated_forecast(method: str) -> None:
    _, y_fit, q_fit = _miscalibrated(20_000, seed=1)
    p_new, y_new, q_new = _miscalibrated(20_000, seed=2)
    cal = make_calibrator(method).fit(q_fit, y_fit)
    fixed = cal.predict(q_new)
    before, after = ece(q_new, y_new, 10), ece(fixed, y_new, 10)
    assert before > 0.05  # the forecast really is off
    assert after < 0.02 and after < before / 4
    assert ece(fixed, y_new, 20) < ece(q_new, y_new, 20) / 3
    assert brier(fixed, y_new) < brier(q_new, y_new) - 0.005
    # Nothing beats the truth by more than noise.
    assert brier(fixed, y_new) > brier(p_new, y_new) - 0.003


def test_platt_recovers_the_distortion() -> None:
    _, y, q = _miscalibrated(50_000, seed=3)
    cal = PlattCalibrator().fit(q, y)
    # q = σ(2.5·logit p + 0.7) ⇒ logit p = 0.4·logit q − 0.28.
    assert cal.a_ == pytest.approx(0.4, abs=0.02)
    assert cal.b_ == pytest.approx(-0.28, abs=0.03)


def test_calibrators_round_trip_through_their_parameters() -> None:
    _, y, q = _miscalibrated(5_000, seed=4)
    grid = np.linspace(0.0, 1.0, 101)
    np.testing.assert_array_equal(make_calibrator("identity").fit(q, y).predict(grid), grid)
    for method in ("identity", "platt", "isotonic"):
        cal = make_calibrator(method).fit(q, y)
        again = calibrator_from_params(method, cal.params())
        np.testing.assert_allclose(again.predict(grid), cal.predict(grid))
    iso = IsotonicCalibrator().fit(q, y)
    out = iso.predict(grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0.0 and out.max() <= 1.0


def test_calibration_refuses_one_class() -> None:
    with pytest.raises(ValueError, match="both outcomes"):
        PlattCalibrator().fit([0.2, 0.7], [1, 1])
    with pytest.raises(ValueError, match="method"):
        make_calibrator("beta")


def _c(method: str, b: float, e: float, run: int = 1, model: str = "logreg") -> Candidate:
    return Candidate(model_type=model, method=method, run_id=run, test_brier=b, test_ece10=e)


def test_default_rule() -> None:
    # Lower Brier and lower ECE: clear.
    assert choose_default([_c("platt", 0.24, 0.02), _c("isotonic", 0.23, 0.01)]).method == (
        "isotonic"
    )
    # Conflict: Brier decides.
    assert choose_default([_c("platt", 0.24, 0.01), _c("isotonic", 0.23, 0.05)]).method == (
        "isotonic"
    )
    # Brier tied within BRIER_TIE: the lower ECE.
    tied = [_c("platt", 0.2300, 0.03), _c("isotonic", 0.2300 + BRIER_TIE / 2, 0.01)]
    assert choose_default(tied).method == "isotonic"
    # Everything tied: the simpler method (identity, Platt, isotonic); then the earlier run.
    assert choose_default([_c("isotonic", 0.23, 0.01), _c("platt", 0.23, 0.01)]).method == "platt"
    three = [_c("isotonic", 0.23, 0.01), _c("identity", 0.23, 0.01), _c("platt", 0.23, 0.01)]
    assert choose_default(three).method == "identity"
    # The model as it is stays the default when both calibrators do worse on test.
    worse = [_c("identity", 0.235, 0.011), _c("platt", 0.237, 0.037), _c("isotonic", 0.24, 0.04)]
    assert choose_default(worse).method == "identity"
    runs = [_c("platt", 0.23, 0.01, run=7, model="gbdt"), _c("platt", 0.23, 0.01, run=3)]
    assert choose_default(runs).run_id == 3
    with pytest.raises(ValueError, match="no calibrators"):
        choose_default([])
