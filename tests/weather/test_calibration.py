"""The calibration by hour of day: hand-checked shifts, recovery of a known bias, storage,
and the engine run with it (`kwx.weather.calibration`)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest
from scipy.stats import norm

from kwx.registry import default_registry
from kwx.weather.calibration import (
    HourShifts,
    fit_hour_shifts,
    load_tmax_shift,
    shift_by_minute,
    shifted_probability,
    store_tmax_shift,
)

Conn = psycopg.Connection[tuple[object, ...]]
CHICAGO = default_registry().by_key("chicago")


def test_shifted_probability_by_hand() -> None:
    pmf = np.array([0.2, 0.5, 0.3])  # 80, 81, 82
    shifts = np.array([0.0, 1.0, 0.5, -1.0, 3.0, -0.25])
    got = shifted_probability(80, pmf, 81, shifts)
    # 0.5 as is; one up brings 80's 0.2; half up: half of 81 stays, half of 80 arrives;
    # one down brings 82's 0.3; three up leaves nothing; −0.25 = −1 + 0.75: a quarter of
    # the mass comes down from 82 and three quarters of 81's stays.
    np.testing.assert_allclose(got, [0.5, 0.2, 0.35, 0.3, 0.0, 0.25 * 0.3 + 0.75 * 0.5])


def _discrete_normal(mean: float, sd: float, lo: int, width: int) -> np.ndarray:
    edges = lo + np.arange(width + 1) - 0.5
    p = np.diff(norm.cdf(edges, mean, sd))
    out: np.ndarray = p / p.sum()
    return out


def test_a_known_warm_bias_is_recovered_at_every_hour() -> None:
    """A model 2 °F warm at night and right by evening: the fit finds about −2 → 0, and the
    settled values score better after it."""
    rng = np.random.default_rng(4)
    bias = np.where(np.arange(24) < 12, 2.0, 0.0)
    samples = []
    for _ in range(400):
        truth = rng.normal(75.0, 6.0)
        settled = int(np.floor(rng.normal(truth, 2.0) + 0.5))
        rows = np.vstack([_discrete_normal(truth + bias[h], 2.0, 50, 50) for h in range(24)])
        samples.append((50, rows, settled))
    fit = fit_hour_shifts(samples, smooth=0)
    assert fit.n_days == 400
    np.testing.assert_allclose(fit.shift[:12], -2.0, atol=0.5)
    np.testing.assert_allclose(fit.shift[12:], 0.0, atol=0.5)
    assert np.all(fit.log_loss_after <= fit.log_loss_before + 1e-12)
    assert fit.log_loss_after[:12].mean() < fit.log_loss_before[:12].mean() - 0.05
    with pytest.raises(ValueError, match="no settled days"):
        fit_hour_shifts([])


def test_shift_by_minute_interpolates_between_whole_hours() -> None:
    shift = np.arange(24, dtype=float)
    minute = shift_by_minute(shift)
    assert minute.shape == (1440,)
    assert minute[0] == 0.0 and minute[60] == 1.0 and minute[90] == pytest.approx(1.5)
    assert minute[1410] == pytest.approx(23.0 * 0.5)  # 23:30, half way back to hour 0's 0


def test_store_and_load_the_shifts(conn: Conn) -> None:
    day = dt.date(2024, 1, 1)
    assert load_tmax_shift(conn, CHICAGO, "v1") is None
    fit = HourShifts(np.linspace(-2, 0, 24), np.full(24, 2.0), np.full(24, 1.9), 30)
    store_tmax_shift(conn, CHICAGO, "v1", fit, day, day)
    loaded = load_tmax_shift(conn, CHICAGO, "v1")
    assert loaded is not None
    np.testing.assert_allclose(loaded, fit.shift)
    assert load_tmax_shift(conn, CHICAGO, "v2") is None
    store_tmax_shift(conn, CHICAGO, "v1", None, day, day)  # refit without: none left
    assert load_tmax_shift(conn, CHICAGO, "v1") is None
