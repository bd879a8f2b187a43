"""Skill metrics by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kwx.weather.skill import EventHour, score


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
