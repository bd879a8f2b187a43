"""Signals: hand-computed values, and no look-ahead (change the future, the past stays)."""

from __future__ import annotations

import numpy as np
import pytest

from kwx.strategy.config import SignalConfig
from kwx.strategy.signals import (
    compute_signals,
    flow_percentile,
    hazard_score,
    neighbour_relative,
    pooled_probability,
    rolling_z,
    value_edge,
)
from tests.engine.helpers import D

NAN = np.nan


def test_rolling_z_by_hand() -> None:
    x = np.array([[1.0, 3.0], [5.0, NAN], [2.0, 2.0]])
    z = rolling_z(x, window=2, min_obs=3, clip=10.0)
    # Row 0: 2 values < min_obs. Row 1: window {1, 3, 5}: mean 3, var 8/3.
    assert np.isnan(z[0]).all()
    sd = np.sqrt(8 / 3)
    assert z[1, 0] == pytest.approx((5 - 3) / sd) and np.isnan(z[1, 1])
    # Row 2: window rows 1..2 → {5, 2, 2}: mean 3, var (4 + 1 + 1)/3 = 2.
    assert z[2, 0] == pytest.approx((2 - 3) / np.sqrt(2))
    assert rolling_z(np.array([[100.0], [0.0], [0.0]]), 3, 2, 1.0)[1, 0] == -1.0  # clipped


def test_flow_percentile_against_previous_days_only() -> None:
    flow = np.array([[0.0], [10.0], [20.0], [5.0], [10.0], [30.0]])
    day = np.array([0, 0, 0, 1, 1, 2])
    pct = flow_percentile(flow, day, lookback_days=1, sample_every=1)
    assert np.isnan(pct[:3]).all()  # day 0 has no history
    # Day 1 against day 0 {0, 10, 20}: 5 → rank 1/3 → 2·(1/3) − 1; 10 → mid-rank 1.5/3 → 0.
    assert pct[3, 0] == pytest.approx(2 * (1 / 3) - 1)
    assert pct[4, 0] == pytest.approx(0.0)
    # Day 2 against day 1 only {5, 10}: 30 is above both → +1.
    assert pct[5, 0] == pytest.approx(1.0)


def test_hazard_score_moves_mass_up_from_the_running_max() -> None:
    p_wx = np.array([[0.0, 0.6, 0.3, 0.1], [0.0, 0.0, 0.0, 1.0]])
    h = np.full(p_wx.shape, 0.4)
    score = hazard_score(h, p_wx)
    assert score.tolist() == [[0.0, -0.4, 0.4, 0.0], [0.0, 0.0, 0.0, -0.4]]


def test_neighbour_relative() -> None:
    p = np.array([[0.2, 0.6, 0.4, NAN]])
    rel = neighbour_relative(p)
    assert rel[0, :3] == pytest.approx([0.2 - 0.6, 0.6 - 0.3, 0.4 - 0.6])


def test_pool_falls_back_only_where_p_fused_norm_is_missing() -> None:
    fused = np.array([[0.7, 0.3], [NAN, NAN]])
    p_mkt = np.array([[0.5, 0.5], [0.4, 0.6]])
    p_wx = np.array([[0.9, 0.1], [0.8, 0.2]])
    p, fallback = pooled_probability(fused, p_mkt, p_wx, w_wx=0.5)
    assert p[0].tolist() == [0.7, 0.3]
    assert p[1] == pytest.approx([0.6, 0.4])
    assert fallback.tolist() == [[False, False], [True, True]]


def test_value_edge_after_fees_by_hand() -> None:
    # Buy YES at 0.40 with p = 0.55, taker: fee ceil(0.07·10·0.4·0.6 = 0.168) = 0.17 → 0.017/ct.
    assert value_edge(0.55, "yes", D("0.40"), D("10"), is_taker=True, fee_type="quadratic") == D(
        "0.133"
    )
    # Buy NO at 1 − bid = 0.62 with p = 0.30: (1 − 0.30) − 0.62 − 0 (maker, quadratic) = 0.08.
    assert value_edge(0.30, "no", D("0.62"), D("10"), is_taker=False, fee_type="quadratic") == D(
        "0.08"
    )
    # Maker fees where the series charges them: ceil(0.0175·10·0.62·0.38 = 0.04123) = 0.05.
    assert value_edge(
        0.30, "no", D("0.62"), D("10"), is_taker=False, fee_type="quadratic_with_maker_fees"
    ) == D("0.075")


def _inputs(rng: np.random.Generator, n: int, k: int) -> dict[str, np.ndarray]:
    return {
        "ras": rng.normal(size=(n, k)),
        "velocity": rng.normal(size=(n, k)),
        "flow": rng.normal(size=(n, k)) * 10,
        "hazard_60m": rng.uniform(size=(n, k)),
        "p_wx": rng.dirichlet(np.ones(k), size=n),
        "p_cal": rng.uniform(size=(n, k)),
    }


def test_signals_have_no_look_ahead() -> None:
    """S at minute n uses rows ≤ n: rewriting every row after n leaves rows ≤ n unchanged."""
    rng = np.random.default_rng(7)
    n, k, cut = 3 * 1440, 6, 2 * 1440 + 333
    cfg = SignalConfig(window_min=120, min_obs=10, flow_lookback_days=1)
    day = np.repeat(np.arange(3), 1440)
    exists = np.ones((n, k), dtype=bool)
    base = _inputs(rng, n, k)
    before = compute_signals(**base, exists=exists, day_of_row=day, config=cfg)
    changed = {name: arr.copy() for name, arr in base.items()}
    noise = _inputs(np.random.default_rng(99), n, k)
    for name in changed:
        changed[name][cut + 1 :] = noise[name][cut + 1 :]
    after = compute_signals(**changed, exists=exists, day_of_row=day, config=cfg)
    for term in ("signal", "ras_z", "velocity_z", "flow_pct", "hazard", "relative_cal"):
        a, b = getattr(before, term), getattr(after, term)
        np.testing.assert_array_equal(a[: cut + 1], b[: cut + 1], err_msg=term)
        assert not np.array_equal(a[cut + 1 :], b[cut + 1 :]), term  # the future did change
    # And the terms are what S is made of.
    s = before
    expected = (
        cfg.alpha * np.nan_to_num(s.ras_z)
        + cfg.beta * np.nan_to_num(s.velocity_z)
        + cfg.gamma * np.nan_to_num(s.flow_pct)
        + cfg.delta * s.hazard
        + cfg.epsilon * np.nan_to_num(s.relative_cal)
    )
    np.testing.assert_allclose(s.signal, expected)
