"""The weather Monte Carlo: hand-checkable cases, no look-ahead, and fast-vs-naive agreement."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest

from kwx.bench.mc_bench import (
    synthetic_day,
    synthetic_ladder,
    synthetic_measurement,
    synthetic_params,
)
from kwx.domain.brackets import Bracket, StrikeType
from kwx.weather import mc
from kwx.weather.mc import (
    MINUTES_PER_DAY,
    QUANTILE_LEVELS,
    DayResult,
    McParams,
    MeasurementModel,
    run_day,
    run_day_naive,
)

MINUTES = np.arange(MINUTES_PER_DAY)
EXACT = MeasurementModel.exact()


def ladder(*middles: int) -> list[Bracket]:
    """Two-degree middles starting at each given floor, with the tails around them."""
    lo, hi = min(middles), max(middles) + 1
    return [
        Bracket(StrikeType.LESS, None, Decimal(lo)),
        *(Bracket(StrikeType.BETWEEN, Decimal(m), Decimal(m + 1)) for m in middles),
        Bracket(StrikeType.GREATER, Decimal(hi), None),
    ]


LADDER = ladder(76, 78, 80, 82, 84, 86)  # ≤75, 76-77, …, 86-87, ≥88


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_rows_sum_to_one(result: DayResult) -> None:
    for table in (result.p_bracket, result.pmf):
        assert np.all(table.sum(axis=1) == 1.0)
        for row in table:
            assert sum(row.tolist()) == 1.0  # left to right, not only numpy's pairwise sum
            assert math.fsum(row.tolist()) == 1.0


def test_sigma_zero_gives_the_deterministic_maximum() -> None:
    baseline = 70 + 10 * np.cos(2 * np.pi * (MINUTES - 900) / MINUTES_PER_DAY)  # peak 80 at 15:00
    obs = np.full(MINUTES_PER_DAY, np.nan)
    obs[:481] = baseline[:481] + 1.3  # 1.3 °F warmer than expected until 08:00
    params = McParams(np.array([0, 60]), np.array([0.99, 0.999]), np.array([0.0, 0.0]))
    times = [300, 480, 600, 900, 1439]
    result = run_day(baseline, obs, params, EXACT, LADDER, paths=64, rng=rng(), times=times)
    rho, _ = params.per_step(MINUTES_PER_DAY)
    decay = np.cumprod(rho)
    for i, t in enumerate(times):
        s = min(t, 480)
        future = MINUTES[t < MINUTES]
        path = baseline[future] + decay[future - s] * 1.3
        top = max(np.nanmax(obs[: t + 1]), path.max() if future.size else -np.inf)
        expected = math.floor(top + 0.5)
        assert result.pmf_at(i) == {expected: 1.0}
        assert np.all(result.quantiles[i] == expected)
        winner = next(j for j, b in enumerate(LADDER) if b.wins(expected))
        assert result.p_bracket[i].tolist() == [
            1.0 if j == winner else 0.0 for j in range(len(LADDER))
        ]


def test_the_last_minute_is_the_measurement_model_around_the_running_max() -> None:
    obs = np.full(MINUTES_PER_DAY, 70.0)
    obs[900] = 80.5  # rounds half up to 81
    measurement = MeasurementModel(np.array([-1, 0, 1, 2]), np.array([0.05, 0.7, 0.2, 0.05]))
    params = McParams.constant(0.995, 0.15)
    result = run_day(np.full(1440, 70.0), obs, params, measurement, LADDER, rng=rng(), times=[1439])
    pmf = result.pmf_at(0)
    assert pmf.keys() == {80, 81, 82, 83}
    for value, prob in zip((80, 81, 82, 83), (0.05, 0.7, 0.2, 0.05), strict=True):
        assert pmf[value] == pytest.approx(prob, abs=1e-12)
    assert result.quantiles[0].tolist() == [80, 81, 81, 81, 82]  # cdf 0.05, 0.75, 0.95
    assert result.hazard_5m[0] == 0.0 and result.hazard_60m[0] == 0.0
    assert_rows_sum_to_one(result)


def test_brackets_the_running_max_rules_out_get_exactly_zero() -> None:
    baseline = 70 + 10 * np.cos(2 * np.pi * (MINUTES - 900) / MINUTES_PER_DAY)
    obs = baseline + 0.4
    obs[700] = 85.2  # a spike: the official value is at least 85 - 1 = 84 from here on
    measurement = MeasurementModel(np.array([-1, 0, 1]), np.array([0.1, 0.8, 0.1]))
    params = McParams.constant(0.995, 0.3)
    result = run_day(baseline, obs, params, measurement, LADDER, paths=500, rng=rng())
    after = result.times >= 700
    ruled_out = [j for j, b in enumerate(LADDER) if (b.integer_range()[1] or 999) < 84]
    assert ruled_out == [0, 1, 2, 3, 4]
    assert np.all(result.p_bracket[after][:, ruled_out] == 0.0)
    assert np.all(result.p_bracket[after][:, 5] > 0)  # 84-85 still possible
    before = result.p_bracket[~after]
    assert np.any(before[:, 3] > 0)  # … while 80-81 was possible before the spike
    assert_rows_sum_to_one(result)
    assert np.all(np.diff(result.quantiles, axis=1) >= 0)


def test_hazards_are_zero_far_below_the_running_max_and_one_far_above() -> None:
    params = McParams.constant(0.995, 0.15)
    baseline = np.full(MINUTES_PER_DAY, 60.0)
    obs = np.full(MINUTES_PER_DAY, np.nan)
    obs[100] = 90.0  # running max 90, while the residual at the last observation is 0
    obs[101:601] = 60.0
    low = run_day(baseline, obs, params, EXACT, LADDER, rng=rng(), times=[300, 600])
    assert low.hazard_5m.tolist() == [0.0, 0.0]
    assert low.hazard_60m.tolist() == [0.0, 0.0]
    assert low.running_max.tolist() == [90.0, 90.0]

    rising = np.where(MINUTES <= 600, 60.0, 100.0)  # expected to jump 40 °F after 10:00
    high = run_day(rising, obs, params, EXACT, LADDER, rng=rng(), times=[600])
    assert high.hazard_5m[0] == 1.0 and high.hazard_60m[0] == 1.0

    nothing = run_day(baseline, np.full(1440, np.nan), params, EXACT, LADDER, rng=rng(), times=[0])
    assert np.isnan(nothing.hazard_5m[0]) and np.isnan(nothing.running_max[0])
    assert_rows_sum_to_one(nothing)


def test_a_realistic_day_has_monotone_quantiles_and_rows_summing_to_one() -> None:
    baseline, obs = synthetic_day(200, rng(5))
    obs[::7] = np.nan  # gaps: the residual is anchored at the last observation
    result = run_day(
        baseline,
        obs,
        synthetic_params(),
        synthetic_measurement(),
        synthetic_ladder(baseline),
        paths=400,
        rng=rng(),
    )
    assert result.p_bracket.shape == (MINUTES_PER_DAY, 6)
    assert result.quantiles.shape == (MINUTES_PER_DAY, len(QUANTILE_LEVELS))
    assert np.all(np.diff(result.quantiles, axis=1) >= 0)
    assert np.all((result.hazard_5m <= result.hazard_60m) | np.isnan(result.hazard_5m))
    seen = result.running_max[~np.isnan(result.running_max)]
    assert seen.size == MINUTES_PER_DAY - 1 and np.all(np.diff(seen) >= 0)
    assert_rows_sum_to_one(result)


@pytest.mark.parametrize("engine", [run_day, run_day_naive])
def test_no_look_ahead(engine: object) -> None:
    assert engine is run_day or engine is run_day_naive
    baseline, obs = synthetic_day(150, rng(1))
    params, measurement = synthetic_params(), synthetic_measurement()
    times = [0, 200, 599, 600, 601, 900, 1439] if engine is run_day_naive else None
    paths = 300
    cut = 600
    future = obs.copy()
    future[cut + 1 :] = rng(9).normal(95.0, 5.0, MINUTES_PER_DAY - cut - 1)  # a heat wave
    future[cut + 1 :: 3] = np.nan
    ladder_ = synthetic_ladder(baseline)
    a = engine(baseline, obs, params, measurement, ladder_, paths=paths, rng=rng(4), times=times)
    b = engine(baseline, future, params, measurement, ladder_, paths=paths, rng=rng(4), times=times)
    assert isinstance(a, DayResult) and isinstance(b, DayResult)
    past = np.flatnonzero(a.times <= cut)
    assert past.size > 0
    for i in past.tolist():
        assert a.p_bracket[i].tolist() == b.p_bracket[i].tolist()
        assert a.pmf_at(i) == b.pmf_at(i)
        assert a.quantiles[i].tolist() == b.quantiles[i].tolist()
        assert a.hazard_5m[i] == b.hazard_5m[i] and a.hazard_60m[i] == b.hazard_60m[i]
        assert a.running_max[i] == b.running_max[i]
    assert not np.array_equal(a.p_bracket[-1], b.p_bracket[-1])  # the future did change


def _within_mc_error(
    fast: npt.NDArray[np.float64], naive: npt.NDArray[np.float64], paths: int
) -> npt.NDArray[np.bool_]:
    """|Δp| ≤ 4 sd of the difference of two independent N-path estimates, + 1e-3.

    Both sides carry Monte Carlo error, so the yardstick is sqrt(2 p(1 − p)/N), not the error
    of one estimate: with dozens of comparisons per test the latter would fail by chance.
    """
    p = (fast + naive) / 2
    ok: npt.NDArray[np.bool_] = np.abs(fast - naive) <= 4 * np.sqrt(2 * p * (1 - p) / paths) + 1e-3
    return ok


@pytest.mark.parametrize(
    ("day", "seeds", "gap"),
    [(40, (11, 12), 1), (190, (21, 22), 1), (300, (31, 32), 5)],
)
def test_fast_engine_stays_within_monte_carlo_error_of_fresh_paths(
    day: int, seeds: tuple[int, int], gap: int
) -> None:
    paths = 4000
    baseline, obs = synthetic_day(day, rng(day))
    sparse = np.full(MINUTES_PER_DAY, np.nan)
    sparse[::gap] = obs[::gap]
    params = McParams(  # strongly lead-dependent, so a wrong lead would show
        np.array([0, 30, 120, 360]),
        np.array([0.98, 0.99, 0.995, 0.998]),
        np.array([0.3, 0.2, 0.15, 0.1]),
    )
    measurement, ladder_ = synthetic_measurement(), synthetic_ladder(baseline)
    times = [0, 360, 600, 780, 880, 960, 1100, 1380]
    fast = run_day(
        baseline, sparse, params, measurement, ladder_, paths=paths, rng=rng(seeds[0]), times=times
    )
    naive = run_day_naive(
        baseline, sparse, params, measurement, ladder_, paths=paths, rng=rng(seeds[1]), times=times
    )
    rows = np.searchsorted(fast.times, times)
    assert np.all(_within_mc_error(fast.p_bracket[rows], naive.p_bracket, paths))
    for name in ("hazard_5m", "hazard_60m"):
        assert np.all(_within_mc_error(getattr(fast, name)[rows], getattr(naive, name), paths))
    assert np.all(np.abs(fast.quantiles[rows] - naive.quantiles) <= 1)


@pytest.mark.skipif(not mc.uses_numba(), reason="the compiled kernels need numba")
def test_pruned_kernel_matches_the_brute_force_twin() -> None:
    """Skipping blocks of minutes must never change a rounded maximum or a hazard hit."""
    baseline, obs = synthetic_day(120, rng(3))
    obs[900:] = np.nan
    day = mc._prepare(baseline, obs, None)
    rho, sigma = synthetic_params().per_step(mc._NL - 1)
    uniforms = rng(8).random((5, mc._NL, mc._TW))
    bank, tile_block_max = mc._deviation_bank(uniforms, rho, sigma)
    bank_np, tile_block_np = mc._deviation_bank_np(uniforms, rho, sigma)
    np.testing.assert_allclose(bank, bank_np, atol=2e-5)
    np.testing.assert_allclose(tile_block_max, tile_block_np, atol=2e-5)
    rows = mc._drift_rows(
        day.baseline, day.row, day.anchor, day.resid, day.lo, day.hi, np.cumprod(rho)
    )
    seen = np.where(np.isnan(day.running_max), mc._NEG, day.running_max)
    paths = 5 * mc._TW - 7  # a ragged last tile
    args = (bank, *rows, tile_block_max, day.lo, day.hi, seen, paths)
    path_max, hits = mc._path_maxima(*args)
    path_max_np, hits_np = mc._path_maxima_np(*args)
    counts, lo = mc._rounded_counts(path_max, seen, paths)
    counts_np, lo_np = mc._rounded_counts_np(path_max_np, seen, paths)
    assert lo == lo_np
    np.testing.assert_array_equal(counts, counts_np)
    np.testing.assert_array_equal(hits.sum(axis=1), hits_np.sum(axis=1))


def test_a_baseline_per_timestamp_is_used_row_by_row() -> None:
    baseline, obs = synthetic_day(10, rng(2))
    params, measurement, ladder_ = synthetic_params(), synthetic_measurement(), LADDER
    times = [100, 700, 1000]
    one = run_day(baseline, obs, params, measurement, ladder_, paths=500, rng=rng(), times=times)
    rows = np.tile(baseline, (3, 1))
    many = run_day(rows, obs, params, measurement, ladder_, paths=500, rng=rng(), times=times)
    np.testing.assert_array_equal(one.p_bracket, many.p_bracket)
    rows[1] += 30.0  # only the 11:40 row expects a heat spike
    hot = run_day(rows, obs, params, measurement, ladder_, paths=500, rng=rng(), times=times)
    assert np.all(hot.quantiles[1] > one.quantiles[1] + 5)
    np.testing.assert_array_equal(hot.p_bracket[[0, 2]], one.p_bracket[[0, 2]])


def test_lead_buckets_count_the_step_that_ends_at_each_lead() -> None:
    params = McParams(np.array([0, 60, 180]), np.array([0.9, 0.8, 0.7]), np.array([1, 2, 3]))
    rho, sigma = params.per_step(200)
    assert rho[0] == 1.0 and sigma[0] == 0.0
    assert set(rho[1:61]) == {0.9} and rho[61] == 0.8 and rho[180] == 0.8 and rho[181] == 0.7
    assert sigma[200] == 3.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: McParams(np.array([5]), np.array([0.9]), np.array([0.1])), "start at 0"),
        (lambda: McParams(np.array([0, 60]), np.array([0.9]), np.array([0.1, 0.1])), "one rho"),
        (lambda: McParams.constant(1.5, 0.1), "rho"),
        (lambda: McParams.constant(0.9, -1.0), "sigma"),
        (lambda: MeasurementModel(np.array([0, 1]), np.array([0.5, 0.6])), "sum to 1"),
        (lambda: MeasurementModel(np.array([0, 0]), np.array([0.5, 0.5])), "repeat"),
    ],
)
def test_invalid_parameters_are_refused(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_invalid_inputs_are_refused() -> None:
    params = McParams.constant(0.995, 0.15)
    flat = np.full(MINUTES_PER_DAY, 70.0)
    with pytest.raises(ValueError, match="1440 minutes"):
        run_day(flat, flat[:-1], params, EXACT, LADDER, rng=rng())
    with pytest.raises(ValueError, match="increasing"):
        run_day(flat, flat, params, EXACT, LADDER, rng=rng(), times=[5, 5])
    with pytest.raises(ValueError, match="baseline"):
        run_day(flat[:100], flat, params, EXACT, LADDER, rng=rng())
    with pytest.raises(ValueError, match="gap"):
        run_day(flat, flat, params, EXACT, LADDER[:2] + LADDER[3:], rng=rng(), times=[0])


def test_a_row_shift_moves_the_measurement_offset_row_by_row() -> None:
    """Calibration by hour of day: whole degrees move the pmf, a fraction splits each degree's
    mass between its two neighbours, and rows keep summing to one."""
    obs = np.full(MINUTES_PER_DAY, 70.0)
    obs[900] = 80.5  # running max rounds to 81 from 15:00 on
    measurement = MeasurementModel(np.array([-1, 0, 1, 2]), np.array([0.05, 0.7, 0.2, 0.05]))
    params = McParams.constant(0.995, 0.15)

    def at_end(shifts: list[float]) -> DayResult:
        return run_day(
            np.full(1440, 70.0),
            obs,
            params,
            measurement,
            LADDER,
            rng=rng(),
            times=[1438, 1439],
            row_shift=shifts,
        )

    plain = run_day(np.full(1440, 70.0), obs, params, measurement, LADDER, rng=rng(), times=[1439])
    assert plain.pmf_at(0) == pytest.approx({80: 0.05, 81: 0.7, 82: 0.2, 83: 0.05}, abs=1e-12)
    mixed = at_end([0.0, 1.0])
    assert mixed.pmf_at(0) == pytest.approx(plain.pmf_at(0), abs=1e-12)
    assert mixed.pmf_at(1) == pytest.approx({81: 0.05, 82: 0.7, 83: 0.2, 84: 0.05}, abs=1e-12)
    half = at_end([0.5, -1.25])
    assert half.pmf_at(0) == pytest.approx(
        {80: 0.025, 81: 0.375, 82: 0.45, 83: 0.125, 84: 0.025}, abs=1e-12
    )
    # −1.25 = −2 + 0.75: a quarter of each degree's mass two below, three quarters one below.
    assert half.pmf_at(1) == pytest.approx(
        {78: 0.0125, 79: 0.0375 + 0.175, 80: 0.525 + 0.05, 81: 0.15 + 0.0125, 82: 0.0375},
        abs=1e-12,
    )
    assert_rows_sum_to_one(half)
    with pytest.raises(ValueError, match="row_shift"):
        at_end([0.0])
