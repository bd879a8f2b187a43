"""Skill metrics by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr

from kwx.domain.brackets import Bracket
from kwx.weather.skill import EventHour, crps_integer, score, spread_over_degrees


def test_metrics_by_hand() -> None:
    row = EventHour(
        "E",
        12,
        1,
        {
            "p_wx": np.array([0.2, 0.5, 0.3]),
            "p_mkt": np.array([0.0, 1.0, 0.0]),
            "climatology": np.array([1 / 3, 1 / 3, 1 / 3]),
        },
    )
    table = score([row]).set_index("model")
    # RPS: cumulative (0.2, 0.7, 1) vs (0, 1, 1) → 0.04 + 0.09 = 0.13, over K − 1 = 2.
    assert table.loc["p_wx", "rps_norm"] == pytest.approx(0.065)
    assert table.loc["p_wx", "brier"] == pytest.approx((0.04 + 0.25 + 0.09) / 3)
    assert table.loc["p_wx", "log_loss"] == pytest.approx(-np.log(0.5))
    assert table.loc["p_mkt", "rps_norm"] == 0.0 and table.loc["p_mkt", "brier"] == 0.0
    assert table.loc["climatology", "log_loss"] == pytest.approx(np.log(3))
    assert set(table["n"]) == {1}


def test_a_certain_wrong_forecast_is_capped() -> None:
    row = EventHour(
        "E",
        0,
        0,
        {
            "p_wx": np.array([0.0, 1.0]),
            "p_mkt": np.array([0.5, 0.5]),
            "climatology": np.array([0.5, 0.5]),
        },
    )
    table = score([row]).set_index("model")
    assert table.loc["p_wx", "log_loss"] == pytest.approx(-np.log(1e-6))
    assert table.loc["p_wx", "rps_norm"] == pytest.approx(1.0)


def test_integer_crps_is_the_ensemble_crps_of_its_samples() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        pmf = rng.dirichlet(np.ones(6))
        counts = rng.multinomial(400, pmf)
        samples = np.repeat(np.arange(80, 86), counts).astype(float)
        observed = int(rng.integers(76, 90))
        exact = crps_integer(counts / counts.sum(), 80, observed)
        assert exact == pytest.approx(
            float(sr.crps_ensemble(float(observed), samples, estimator="nrg")), rel=1e-9
        )
    # By hand: all mass on 81, observed 83 → |81 − 83| = 2.
    assert crps_integer(np.array([0.0, 1.0]), 80, 83) == pytest.approx(2.0)


def test_bracket_mass_is_spread_over_its_degrees() -> None:
    brackets = [
        Bracket.from_strikes("less", None, 80),
        Bracket.from_strikes("between", 80, 81),
        Bracket.from_strikes("greater", 81, None),
    ]
    pmf, lo = spread_over_degrees(np.array([0.3, 0.4, 0.3]), brackets)
    # Degrees 77 … 84: ≤ 79 (77, 78, 79) share 0.3, 80–81 share 0.4, ≥ 82 (82, 83, 84) 0.3.
    assert lo == 77
    assert pmf == pytest.approx([0.1, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.1])
