"""EMOS: the closed-form CRPS, recovery of known coefficients, and no look-ahead in the walk."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr

from kwx.weather.emos import EmosRegressor, bracket_probabilities, crps_normal
from kwx.weather.emos_walk import WalkConfig, raw_member_scores, score_walk, walk_forward


def test_crps_closed_form_equals_scoringrules() -> None:
    rng = np.random.default_rng(1)
    mu, sigma, y = rng.normal(60, 10, 500), rng.uniform(0.3, 6, 500), rng.normal(60, 12, 500)
    np.testing.assert_allclose(crps_normal(mu, sigma, y), sr.crps_normal(y, mu, sigma), rtol=1e-9)


def _synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two members and a spread column; truth from known a, b, c, d."""
    truth = rng.normal(65, 15, n)
    x1 = truth + rng.normal(-2.0, 2.0, n)  # runs cold
    x2 = truth + rng.normal(1.0, 3.0, n)
    spread = rng.uniform(0.5, 4.0, n)
    mu = 1.5 + 0.7 * x1 + 0.3 * x2
    y = mu + rng.normal(0, 1, n) * np.sqrt(0.8 + 0.6 * spread**2)
    return np.column_stack([x1, x2, spread]), y


def test_emos_recovers_known_coefficients() -> None:
    x, y = _synthetic(20_000, np.random.default_rng(7))
    model = EmosRegressor(spread="last_column").fit(x, y)
    assert model.converged_
    np.testing.assert_allclose(model.coef_, [0.7, 0.3], atol=0.02)
    assert model.intercept_ == pytest.approx(1.5, abs=0.6)
    assert model.c_ == pytest.approx(0.8, abs=0.25)
    assert model.d_ == pytest.approx(0.6, abs=0.05)
    mu, sigma = model.predict(x[:3])
    np.testing.assert_allclose(mu, 1.5 + x[:3, :2] @ [0.7, 0.3], atol=0.3)
    np.testing.assert_allclose(sigma, np.sqrt(0.8 + 0.6 * x[:3, 2] ** 2), rtol=0.05)


def test_emos_weights_stay_nonnegative_and_beat_the_raw_member() -> None:
    rng = np.random.default_rng(3)
    x, y = _synthetic(3000, rng)
    noise = (y + rng.normal(0, 30, len(y)))[:, None]  # a useless member
    model = EmosRegressor(spread="members").fit(np.hstack([x[:, :2], noise]), y)
    assert (model.coef_ >= 0).all()
    assert model.coef_[2] < 0.05
    assert model.score_crps(np.hstack([x[:, :2], noise]), y) < np.abs(y - x[:, 0]).mean()


def test_emos_refuses_missing_values_and_unfitted_predict() -> None:
    with pytest.raises(ValueError, match="predict before fit"):
        EmosRegressor().predict(np.ones((2, 2)))
    x = np.ones((10, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        EmosRegressor().fit(x, np.ones(10))


def _frame(days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = [dt.date(2023, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    season = 60 + 20 * np.sin(np.arange(days) * 2 * np.pi / 365.25)
    y = np.round(season + rng.normal(0, 5, days))
    frame = pd.DataFrame(
        {
            "gfs_mos": y + rng.normal(-1, 2, days),
            "nbm": y + rng.normal(1.5, 1.5, days),
            "gefs_mean": y + rng.normal(-2, 3, days),
            "gefs_mean_spread": rng.uniform(1, 3, days),
            "y": y,
        },
        index=pd.Index(index),
    )
    frame.loc[frame.index[::9], "nbm"] = np.nan  # a member missing on some days
    return frame


def test_walk_forward_has_no_look_ahead() -> None:
    """Changing day D's and later days' guidance and outcomes moves no forecast before D."""
    frame = _frame(400)
    config = WalkConfig(window="rolling", window_days=200, refit_every=7, min_train=40)
    first, last = dt.date(2023, 4, 1), dt.date(2024, 2, 1)
    before = walk_forward(frame, first, last, config).set_index("date")
    cut = dt.date(2023, 9, 15)
    changed = frame.copy()
    future = changed.index >= cut
    changed.loc[future, "y"] += 25.0
    changed.loc[future, ["gfs_mos", "nbm"]] -= 10.0
    after = walk_forward(changed, first, last, config).set_index("date")
    past = before.index < cut
    pd.testing.assert_frame_equal(before.loc[past], after.loc[after.index < cut])
    # …and the change does move the forecasts that are allowed to see it.
    later = before.index >= cut + dt.timedelta(days=20)
    assert not np.allclose(before.loc[later, "mu"], after.loc[later, "mu"])


def test_walk_forward_leaves_out_the_day_before() -> None:
    """The day before D is not settled when D's forecast is needed: it must not count."""
    frame = _frame(300)
    config = WalkConfig(window="expanding", refit_every=1, min_train=30)
    day = dt.date(2023, 8, 1)
    base = walk_forward(frame, day, day, config)
    changed = frame.copy()
    changed.loc[changed.index == day - dt.timedelta(days=1), "y"] += 40.0
    assert walk_forward(changed, day, day, config)["mu"].iloc[0] == base["mu"].iloc[0]
    changed = frame.copy()
    changed.loc[changed.index == day - dt.timedelta(days=2), "y"] += 40.0
    assert walk_forward(changed, day, day, config)["mu"].iloc[0] != base["mu"].iloc[0]


@pytest.mark.parametrize("window", ["rolling", "seasonal", "expanding"])
def test_walk_forward_per_subset_and_better_than_raw(window: str) -> None:
    frame = _frame(730, seed=5)
    config = WalkConfig(window=window, min_train=40, bias_days=20)  # type: ignore[arg-type]
    result = score_walk(walk_forward(frame, dt.date(2024, 1, 1), dt.date(2024, 12, 30), config))
    assert len(result) > 350
    missing = frame["nbm"].isna()
    used = result.set_index("date")["members"]
    for day in frame.index[missing & (frame.index >= dt.date(2024, 1, 1))][:5]:
        assert "nbm" not in used.loc[day].split(",")
    raw = raw_member_scores(frame, pd.Index(result["date"]))
    assert result["crps"].mean() < raw["crps"].min()


def test_bracket_probabilities_round_to_whole_degrees_and_sum_to_one() -> None:
    from decimal import Decimal

    from kwx.domain.brackets import Bracket

    ladder = [
        Bracket.from_strikes("less", None, Decimal(80)),
        Bracket.from_strikes("between", Decimal("80"), Decimal("81")),
        Bracket.from_strikes("between", Decimal("82"), Decimal("83")),
        Bracket.from_strikes("greater", Decimal(83), None),
    ]
    p = bracket_probabilities(81.0, 1.5, ladder)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # 80..81 wins for an official 80 or 81: the normal mass on [79.5, 81.5).
    z = (np.array([79.5, 81.5]) - 81.0) / 1.5
    from scipy.stats import norm

    assert p[1] == pytest.approx(norm.cdf(z[1]) - norm.cdf(z[0]), rel=1e-9)
    assert p[1] > p[0] and p[1] > p[3]
