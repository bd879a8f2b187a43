"""The Hawkes estimator recovers known parameters from simulated processes (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kwx.features.hawkes import (
    HawkesParams,
    fit_hawkes,
    intensity_at,
    log_likelihood,
    simulate_hawkes,
)


@pytest.mark.parametrize(
    ("truth", "seed"),
    [
        (HawkesParams(0.5, 0.6, 2.0), 0),
        (HawkesParams(0.5, 0.6, 2.0), 1),
        (HawkesParams(0.2, 0.85, 10.0), 2),
        (HawkesParams(1.0, 0.3, 0.5), 3),
    ],
)
def test_fit_recovers_simulated_parameters(truth: HawkesParams, seed: int) -> None:
    horizon = 4000.0
    times = simulate_hawkes(truth, horizon, seed)
    expected_n = truth.mu * horizon / (1 - truth.branching)
    assert abs(times.size - expected_n) < 0.15 * expected_n  # the simulator is right too
    fit = fit_hawkes(times, horizon)
    assert fit.mu == pytest.approx(truth.mu, rel=0.2)
    assert fit.branching == pytest.approx(truth.branching, abs=0.07)
    assert fit.beta == pytest.approx(truth.beta, rel=0.25)
    # it is a maximum: at least as likely as the truth and as nearby points
    ll = log_likelihood(times, horizon, fit)
    assert ll == pytest.approx(fit.loglik, rel=1e-9)
    assert ll >= log_likelihood(times, horizon, truth)
    for bump in (0.95, 1.05):
        for p in (
            HawkesParams(fit.mu * bump, fit.branching, fit.beta),
            HawkesParams(fit.mu, min(fit.branching * bump, 0.98), fit.beta),
            HawkesParams(fit.mu, fit.branching, fit.beta * bump),
        ):
            assert log_likelihood(times, horizon, p) <= ll + 1e-6


def test_a_poisson_process_fits_with_little_branching() -> None:
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0, 2000, 1000))
    fit = fit_hawkes(times, 2000.0)
    assert fit.branching < 0.1
    assert fit.mu / (1 - fit.branching) == pytest.approx(0.5, rel=0.05)  # the mean rate


def test_intensity_by_hand() -> None:
    # events at 1 and 2 minutes, μ = 0.5, n = 0.6, β = 2: λ(t) = 0.5 + 1.2 Σ e^{−2(t − tᵢ)}
    lam = intensity_at([1.0, 2.0], [0.5, 1.0, 1.5, 3.0], 0.5, 0.6, 2.0)
    expected = [0.5, 0.5, 0.5 + 1.2 * math.exp(-1), 0.5 + 1.2 * (math.exp(-4) + math.exp(-2))]
    assert lam == pytest.approx(expected)  # an event at exactly t does not count at t


def test_intensity_with_changing_parameters_and_nan() -> None:
    lam = intensity_at([1.0], [0.5, 2.0, 3.0], [np.nan, 0.5, 1.0], [np.nan, 0.6, 0.5], [1, 2, 1])
    assert np.isnan(lam[0])
    assert lam[1:] == pytest.approx([0.5 + 1.2 * math.exp(-2), 1.0 + 0.5 * math.exp(-2)])


def test_too_few_or_unsorted_events_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_hawkes([1.0, 2.0], 10.0)
    with pytest.raises(ValueError, match="sorted"):
        fit_hawkes(np.r_[np.arange(30.0)[::-1]], 40.0)
