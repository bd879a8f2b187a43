"""Probability metrics against values computed by hand (the arithmetic is in each comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kwx.pmf.metrics import (
    binary_metrics,
    brier,
    ece,
    log_loss_winner,
    mean_bracket_brier,
    paired_gain_interval,
    reliability_curve,
    rps,
    winner_losses,
)


def test_brier_by_hand() -> None:
    # (0.9-1)² + (0.2-0)² + (0.6-0)² + (0.5-1)² = 0.01 + 0.04 + 0.36 + 0.25 = 0.66 → /4
    assert brier([0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]) == pytest.approx(0.165)


def test_brier_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="y has"):
        brier([0.1, 0.2], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier([1.2], [1])
    with pytest.raises(ValueError, match="0/1"):
        brier([0.3], [2])


def test_reliability_curve_and_ece_by_hand() -> None:
    # 10 bins. p=0.05,0.08 → bin 0 (mean .065, freq 0/2); p=0.35 → bin 3 (.35, 1/1);
    # p=0.95, 1.0 → bin 9 (p=1.0 goes to the last bin): mean .975, freq 1/2.
    p = [0.05, 0.08, 0.35, 0.95, 1.0]
    y = [0, 0, 1, 1, 0]
    mean_p, freq, n = reliability_curve(p, y, 10)
    np.testing.assert_allclose(mean_p, [0.065, 0.35, 0.975])
    np.testing.assert_allclose(freq, [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(n, [2, 1, 2])
    # ECE = (2·0.065 + 1·0.65 + 2·0.475) / 5 = (0.13 + 0.65 + 0.95) / 5 = 0.346
    assert ece(p, y, 10) == pytest.approx(0.346)


def test_ece_bin_edges_and_bin_count() -> None:
    # With 2 bins, 0.5 belongs to the upper bin [0.5, 1]: bins {0.2} and {0.5, 0.7}.
    # ECE = (1·|0.2-0| + 2·|0.6-0.5|) / 3 = (0.2 + 0.2) / 3
    assert ece([0.2, 0.5, 0.7], [0, 1, 0], n_bins=2) == pytest.approx(0.4 / 3)
    # One bin: |mean p − mean y| = |0.4667 − 0.3333|
    assert ece([0.2, 0.5, 0.7], [0, 1, 0], n_bins=1) == pytest.approx(abs(1.4 / 3 - 1 / 3))
    # A perfectly calibrated forecast scores 0.
    assert ece([0.25] * 4, [1, 0, 0, 0], 10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="n_bins"):
        ece([0.5], [1], 0)


def test_binary_metrics_by_hand() -> None:
    p = [0.9, 0.2, 0.6, 0.4]
    y = [1, 0, 0, 1]
    m = binary_metrics(p, y)
    # predictions ≥ 0.5: 1,0,1,0 vs 1,0,0,1 → 2 of 4 right
    assert m["accuracy"] == pytest.approx(0.5)
    # positive/negative pairs: (0.9,0.2) ✓ (0.9,0.6) ✓ (0.4,0.2) ✓ (0.4,0.6) ✗ → 3/4
    assert m["roc_auc"] == pytest.approx(0.75)
    # (0.01 + 0.04 + 0.36 + 0.36) / 4
    assert m["brier"] == pytest.approx(0.1925)
    # 10 bins, all singletons: |.9-1| + |.2-0| + |.6-0| + |.4-1| = .1+.2+.6+.6 = 1.5 → /4
    assert m["ece10"] == pytest.approx(0.375)
    assert m["ece20"] == pytest.approx(0.375)
    assert m["positive_rate"] == pytest.approx(0.5)
    assert math.isnan(binary_metrics([0.3, 0.4], [1, 1])["roc_auc"])


def test_log_loss_winner_by_hand() -> None:
    pmf = np.array([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    # −(log 0.5 + log 0.9)/2
    assert log_loss_winner(pmf, [1, 2]) == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2)
    # A ruled-out winner is clipped at eps: −(log 0.2 + log 1e-6)/2
    assert log_loss_winner(pmf, [0, 0]) == pytest.approx(-(math.log(0.2) + math.log(1e-6)) / 2)


def test_winner_losses_by_hand() -> None:
    pmf = [np.array([0.2, 0.5, 0.3]), np.array([0.0, 0.1, 0.6, 0.3])]
    np.testing.assert_allclose(winner_losses(pmf, [1, 0]), [-math.log(0.5), -math.log(1e-6)])


def test_paired_gain_interval_by_hand() -> None:
    # Group a: two rows 1 lower for the new model; group b: one row 1 higher. Point estimate:
    # (1 + 1 − 1)/3. Resamples of two groups: {a,a} → 1, {b,b} → −1, {a,b} → 1/3; {b,b} has
    # probability 1/4, so the 95% percentile interval is exactly [−1, 1].
    ref = np.array([2.0, 2.0, 1.0])
    new = np.array([1.0, 1.0, 2.0])
    gain, lo, hi = paired_gain_interval(ref, new, ["a", "a", "b"])
    assert gain == pytest.approx(1 / 3)
    assert lo == pytest.approx(-1.0) and hi == pytest.approx(1.0)
    # Identical losses tie exactly; a constant shift is known exactly.
    assert paired_gain_interval(ref, ref, ["a", "a", "b"]) == (0.0, 0.0, 0.0)
    assert paired_gain_interval(ref, ref - 0.25, ["a", "a", "b"]) == pytest.approx(
        (0.25, 0.25, 0.25)
    )
    # One group: nothing to resample, the interval is the point.
    assert paired_gain_interval([1.0, 2.0], [0.5, 1.0], [7, 7]) == pytest.approx((0.75,) * 3)


def test_paired_gain_interval_resamples_whole_events() -> None:
    # 30 events of 8 identical hours each: the information is 30 draws, not 240. Treating
    # every row as its own event makes the interval about √8 times too narrow.
    rng = np.random.default_rng(3)
    per_event = rng.normal(0.01, 0.05, 30)
    diff = np.repeat(per_event, 8)
    ref = np.full(diff.size, 1.0)
    events = np.repeat(np.arange(30), 8)
    gain, lo, hi = paired_gain_interval(ref, ref - diff, events)
    _, lo_rows, hi_rows = paired_gain_interval(ref, ref - diff, np.arange(diff.size))
    assert lo < gain < hi
    assert gain == pytest.approx(per_event.mean())
    assert (hi - lo) / (hi_rows - lo_rows) == pytest.approx(np.sqrt(8), rel=0.25)
    # Deterministic for a seed; another seed moves the ends only a little.
    assert paired_gain_interval(ref, ref - diff, events) == (gain, lo, hi)
    other = paired_gain_interval(ref, ref - diff, events, seed=1)
    assert other[1] == pytest.approx(lo, abs=0.005) and other[2] == pytest.approx(hi, abs=0.005)


def test_paired_gain_interval_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        paired_gain_interval([1.0, 2.0], [1.0], [0, 1])
    with pytest.raises(ValueError, match="no losses"):
        paired_gain_interval([], [], [])
    with pytest.raises(ValueError, match="finite"):
        paired_gain_interval([1.0, np.inf], [1.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="level"):
        paired_gain_interval([1.0, 2.0], [1.0, 1.0], [0, 1], level=1.0)


def test_mean_bracket_brier_by_hand() -> None:
    pmf = np.array([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    # event 1, winner 1: .04 + .25 + .09 = .38; event 2, winner 2: 0 + .01 + .01 = .02
    assert mean_bracket_brier(pmf, [1, 2]) == pytest.approx(0.40 / 6)


def test_rps_by_hand_and_ragged() -> None:
    # [0.2, 0.5, 0.3], winner 1: CDF .2,.7,1 vs 0,1,1 → .04 + .09 + 0 = .13, /(K−1=2) = .065
    assert rps(np.array([[0.2, 0.5, 0.3]]), [1]) == pytest.approx(0.065)
    # [0.1,0.2,0.3,0.4], winner 2: CDF .1,.3,.6,1 vs 0,0,1,1 → .01+.09+.16 = .26, /3
    ragged = [np.array([0.2, 0.5, 0.3]), np.array([0.1, 0.2, 0.3, 0.4])]
    assert rps(ragged, [1, 2]) == pytest.approx((0.065 + 0.26 / 3) / 2)
    # Mass on the far end scores worse than mass next to the winner (what RPS is for).
    assert rps(np.array([[0.0, 0.0, 1.0]]), [0]) > rps(np.array([[0.0, 1.0, 0.0]]), [0])
    assert rps(np.array([[0.0, 0.0, 1.0]]), [0]) == pytest.approx(1.0)


def test_bracket_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="winner index 3"):
        rps(np.array([[0.2, 0.5, 0.3]]), [3])
    with pytest.raises(ValueError, match="2 PMFs but 1 winners"):
        log_loss_winner(np.array([[0.5, 0.5], [0.5, 0.5]]), [0])
    with pytest.raises(ValueError, match="non-negative"):
        mean_bracket_brier(np.array([[-0.1, 1.1]]), [0])
