"""Hazard-aware Monte Carlo of today's official maximum, minute by minute, with no look-ahead.

At minute t of the climate day the official whole-°F maximum is
``round_half_up(max(M_t, future path max)) + measurement offset``, where ``M_t`` is the running
maximum of what has been observed by t and the future path is the baseline plus an AR(1)
residual started from the last observed residual. Everything at t is computed from
``obs[:t + 1]`` only.

Why the fast engine can reuse random numbers: the residual ``L`` minutes after its anchor
(the last observation) is ``P_L · e + W_L``, where ``P_L`` is the product of the per-step ρ and
``W_L`` is the same AR(1) started from zero. Because the lead buckets are counted from the
anchor, ``W`` has one law for every t, so one bank of ``paths × 1441`` deviation paths per day
serves all 1,440 timestamps exactly: each t sees 4,000 paths with exactly the right conditional
distribution (lead-bucketed ρ and σ included), only correlated across t. What remains per
(t, path) is ``max_L (d_t(L) + W_L)`` with a deterministic ``d_t``; a cache-blocked, vectorised
numba kernel does it, skipping blocks of minutes that provably cannot raise the maximum above
what is already known (running max or the path's maximum so far). The naive engine, which draws
fresh paths for every timestamp, is kept as the reference and for the benchmark.

Probabilities are rounded to multiples of 2⁻⁴⁰ so that a row sums to exactly 1 in any summation
order and a bracket the running maximum rules out stays exactly 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from kwx.domain.brackets import Bracket, validate_ladder

# numba makes a city-year take seconds; without it the numpy twins are exact but slow.
try:
    import numba  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_NUMBA = False
else:
    _HAVE_NUMBA = True

__all__ = [
    "HAZARD_MINUTES",
    "MINUTES_PER_DAY",
    "QUANTILE_LEVELS",
    "DayResult",
    "McParams",
    "MeasurementModel",
    "run_day",
    "run_day_naive",
    "uses_numba",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
F32Array = npt.NDArray[np.float32]

MINUTES_PER_DAY: Final = 1440
QUANTILE_LEVELS: Final = (0.05, 0.25, 0.5, 0.75, 0.95)
HAZARD_MINUTES: Final = (5, 60)

# Lead rows of the deviation bank: L = 0 … 1440. L = 1440 is reached only when nothing has been
# observed yet and the paths cover the whole day from just before minute 0.
_NL: Final = MINUTES_PER_DAY + 1
# Paths per cache tile (four AVX-512 vectors of float32) and minutes per pruning block.
_TW: Final = 64
_BL: Final = 32
_NEG: Final = -3.0e38  # "no value yet"; finite so that fast-math comparisons stay well defined
# Probabilities are multiples of 2**-40: sums of them up to 1 are exact in float64.
_QUANTUM: Final = 2**40
# Skip a block only if its bound is below the threshold by more than float32 rounding could add.
_PRUNE_MARGIN: Final = 1e-3


def uses_numba() -> bool:
    """Whether the compiled kernels run; without numba the numpy twins give the same numbers."""
    return _HAVE_NUMBA


# ---------------------------------------------------------------------------------------------
# Model inputs


@dataclass(frozen=True, eq=False)
class McParams:
    """AR(1) of the residual (observation − baseline) with ρ and σ per lead bucket.

    ``edges`` are the buckets' lower bounds in minutes of lead (the first is 0, the last bucket
    is open-ended), ``rho`` the per-minute autocorrelation and ``sigma`` the per-minute innovation
    sd in °F. Lead is counted from the residual's anchor, the last observation: the one-minute
    step that ends L minutes after it uses the bucket holding ``L - 1``, so with edges
    ``[0, 60, …]`` the first 60 steps use bucket 0.
    """

    edges: IntArray
    rho: FloatArray
    sigma: FloatArray

    def __post_init__(self) -> None:
        edges = np.array(self.edges, dtype=np.int64).reshape(-1)
        rho = np.array(self.rho, dtype=np.float64).reshape(-1)
        sigma = np.array(self.sigma, dtype=np.float64).reshape(-1)
        if edges.size == 0 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"lead edges must start at 0 and increase, got {edges.tolist()}")
        if rho.shape != edges.shape or sigma.shape != edges.shape:
            raise ValueError(
                f"need one rho and one sigma per lead bucket: {edges.size} edges, "
                f"{rho.size} rho, {sigma.size} sigma"
            )
        if not np.all(np.isfinite(rho)) or np.any(np.abs(rho) > 1):
            raise ValueError(f"rho must lie in [-1, 1], got {rho.tolist()}")
        if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
            raise ValueError(f"sigma must be finite and non-negative, got {sigma.tolist()}")
        for name, value in (("edges", edges), ("rho", rho), ("sigma", sigma)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @classmethod
    def constant(cls, rho: float, sigma: float) -> McParams:
        """One bucket for every lead: the plain AR(1)."""
        return cls(np.array([0]), np.array([rho]), np.array([sigma]))

    def per_step(self, n_steps: int) -> tuple[FloatArray, FloatArray]:
        """ρ and σ of the step ending at lead L, for L = 0 … n_steps (index 0 is unused)."""
        lead_before = np.arange(-1, n_steps, dtype=np.int64)
        bucket = np.searchsorted(self.edges, np.maximum(lead_before, 0), side="right") - 1
        rho = self.rho[bucket].copy()
        sigma = self.sigma[bucket].copy()
        rho[0], sigma[0] = 1.0, 0.0
        return rho, sigma


@dataclass(frozen=True, eq=False)
class MeasurementModel:
    """The pmf of (official whole-°F maximum − round(observed running maximum)).

    It is what turns the maximum of what our source saw into the number the climate report
    will print; it is added to every path, independently of the path.
    """

    offsets: IntArray
    probs: FloatArray

    def __post_init__(self) -> None:
        offsets = np.array(self.offsets, dtype=np.int64).reshape(-1)
        probs = np.array(self.probs, dtype=np.float64).reshape(-1)
        if offsets.size == 0 or offsets.shape != probs.shape:
            raise ValueError("need as many probabilities as offsets, and at least one")
        if np.unique(offsets).size != offsets.size:
            raise ValueError(f"offsets repeat: {offsets.tolist()}")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0) or abs(probs.sum() - 1) > 1e-6:
            raise ValueError(f"probabilities must be non-negative and sum to 1: {probs.tolist()}")
        order = np.argsort(offsets)
        offsets, probs = offsets[order], probs[order] / probs.sum()
        for name, value in (("offsets", offsets), ("probs", probs)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @classmethod
    def exact(cls) -> MeasurementModel:
        """The official value is the rounded observed maximum (no measurement error)."""
        return cls(np.array([0]), np.array([1.0]))

    def as_pmf(self) -> tuple[int, FloatArray]:
        """(smallest offset, dense pmf from it to the largest offset)."""
        lo = int(self.offsets[0])
        dense = np.zeros(int(self.offsets[-1]) - lo + 1)
        dense[self.offsets - lo] = self.probs
        return lo, dense


@dataclass(frozen=True, eq=False)
class DayResult:
    """Per-timestamp outputs of one city-day; row i belongs to minute ``times[i]``.

    ``pmf[i, k]`` is P(official = support_lo + k); ``p_bracket`` follows the order of the
    brackets passed in. Rows of both sum to exactly 1. Hazards are NaN while nothing has been
    observed (there is no running maximum to beat). Quantiles are whole °F of the official value
    at ``QUANTILE_LEVELS``. The support is chosen for the whole day, so it may move when later
    observations change; the probability of a given integer at t never does.
    """

    times: IntArray
    running_max: FloatArray
    support_lo: int
    pmf: FloatArray
    p_bracket: FloatArray
    hazard_5m: FloatArray
    hazard_60m: FloatArray
    quantiles: FloatArray
    paths: int

    def pmf_at(self, i: int) -> dict[int, float]:
        """The non-zero part of row i's pmf, keyed by whole °F."""
        row = self.pmf[i]
        return {self.support_lo + int(k): float(row[k]) for k in np.flatnonzero(row)}


@dataclass(frozen=True)
class _Day:
    """What each timestamp may know: derived from ``obs[:t + 1]`` only."""

    times: IntArray
    baseline: FloatArray  # (rows, 1440)
    row: IntArray  # baseline row of each timestamp
    running_max: FloatArray  # NaN before the first observation
    anchor: IntArray  # minute of the last observation; -1 when there is none
    resid: FloatArray  # residual at the anchor (0 when there is none)
    lo: IntArray  # first lead that lies in the future of t
    hi: IntArray  # one past the last lead of the day


def _prepare(baseline: npt.ArrayLike, obs: npt.ArrayLike, times: npt.ArrayLike | None) -> _Day:
    obs_arr = np.asarray(obs, dtype=np.float64)
    if obs_arr.shape != (MINUTES_PER_DAY,):
        raise ValueError(f"obs must have {MINUTES_PER_DAY} minutes, got shape {obs_arr.shape}")
    if times is None:
        times_arr = np.arange(MINUTES_PER_DAY, dtype=np.int64)
    else:
        times_arr = np.asarray(times, dtype=np.int64).reshape(-1)
        if times_arr.size == 0:
            raise ValueError("times is empty")
        if times_arr[0] < 0 or times_arr[-1] >= MINUTES_PER_DAY or np.any(np.diff(times_arr) <= 0):
            raise ValueError("times must be increasing minutes of the day in [0, 1439]")
    base = np.asarray(baseline, dtype=np.float64)
    if base.shape == (MINUTES_PER_DAY,):
        base2d = base.reshape(1, -1)
        row = np.zeros(times_arr.size, dtype=np.int64)
    elif base.shape == (times_arr.size, MINUTES_PER_DAY):
        base2d = base
        row = np.arange(times_arr.size, dtype=np.int64)
    else:
        raise ValueError(f"baseline must be (1440,) or (len(times), 1440), got shape {base.shape}")
    if not np.all(np.isfinite(base2d)):
        raise ValueError("baseline must be finite everywhere")
    seen = ~np.isnan(obs_arr)
    running = np.fmax.accumulate(obs_arr)  # fmax skips NaN: the max of what was seen so far
    last = np.maximum.accumulate(np.where(seen, np.arange(MINUTES_PER_DAY), -1))
    running_t = running[times_arr]
    anchor = last[times_arr]
    has = anchor >= 0
    resid = np.zeros(times_arr.size)
    resid[has] = obs_arr[anchor[has]] - base2d[row[has], anchor[has]]
    # Without any observation nothing of the day is known: cover it all, from residual 0.
    lo = np.where(has, times_arr - anchor + 1, 1)
    hi = MINUTES_PER_DAY - anchor
    return _Day(times_arr, base2d, row, running_t, anchor, resid, lo, hi)


# ---------------------------------------------------------------------------------------------
# Shared finishing: counts of the rounded path maximum → official pmf, brackets, quantiles


def _round_half_up(x: FloatArray) -> FloatArray:
    return np.floor(x + 0.5)


def _finish(
    day: _Day,
    counts: IntArray,
    support_lo: int,
    measurement: MeasurementModel,
    brackets: Sequence[Bracket],
    hazards: tuple[FloatArray, FloatArray],
    paths: int,
    row_shift: FloatArray | None = None,
) -> DayResult:
    """Turn per-row counts of the official-before-offset value into the published figures.

    ``row_shift`` (°F per row, fractional allowed) moves each row's measurement offset: the
    calibration by hour of day (`kwx.weather.calibration`). A fraction f of a degree puts
    (1 − f) of the mass on the whole-degree shift below it and f on the one above.
    """
    off_lo, off_pmf = measurement.as_pmf()
    n_rows, width = counts.shape
    freq = counts / paths
    if row_shift is None:
        raw = np.zeros((n_rows, width + off_pmf.size - 1))
        for k, prob in enumerate(off_pmf):
            if prob > 0:
                raw[:, k : k + width] += prob * freq
        lo = support_lo + off_lo
    else:
        shift = np.asarray(row_shift, dtype=np.float64).reshape(-1)
        if shift.shape != (n_rows,) or not np.all(np.isfinite(shift)):
            raise ValueError(f"row_shift needs {n_rows} finite values, got shape {shift.shape}")
        whole = np.floor(shift).astype(np.int64)
        frac = (shift - whole)[:, None]
        w_lo = int(whole.min())
        raw = np.zeros((n_rows, width + off_pmf.size + int(whole.max()) - w_lo))
        for u in np.unique(whole):
            rows = np.flatnonzero(whole == u)
            for k, prob in enumerate(off_pmf):
                if prob > 0:
                    at = k + int(u) - w_lo
                    raw[rows, at : at + width] += prob * (1.0 - frac[rows]) * freq[rows]
                    raw[rows, at + 1 : at + 1 + width] += prob * frac[rows] * freq[rows]
        lo = support_lo + off_lo + w_lo
    quanta = _quantize(raw)
    pmf = quanta / _QUANTUM
    p_bracket = _bracket_probs(quanta, lo, brackets)
    cdf = np.cumsum(quanta, axis=1)
    quantiles = np.empty((n_rows, len(QUANTILE_LEVELS)))
    for j, level in enumerate(QUANTILE_LEVELS):
        # A level hit exactly (up to the rounding to quanta) counts as reached.
        quantiles[:, j] = lo + np.argmax(cdf >= (level - 1e-9) * _QUANTUM, axis=1)
    hz5, hz60 = hazards
    nothing_seen = np.isnan(day.running_max)
    return DayResult(
        times=day.times,
        running_max=day.running_max,
        support_lo=lo,
        pmf=pmf,
        p_bracket=p_bracket,
        hazard_5m=np.where(nothing_seen, np.nan, hz5),
        hazard_60m=np.where(nothing_seen, np.nan, hz60),
        quantiles=quantiles,
        paths=paths,
    )


def _quantize(raw: FloatArray) -> IntArray:
    """Integer multiples of 2**-40 summing to exactly 2**40 per row; zeros stay zero."""
    quanta = np.floor(raw * _QUANTUM + 0.5).astype(np.int64)
    rows = np.arange(raw.shape[0])
    quanta[rows, np.argmax(raw, axis=1)] += _QUANTUM - quanta.sum(axis=1)
    return quanta


def _bracket_probs(quanta: IntArray, support_lo: int, brackets: Sequence[Bracket]) -> FloatArray:
    if not brackets:
        return np.zeros((quanta.shape[0], 0))
    validate_ladder(brackets)
    width = quanta.shape[1]
    cum = np.zeros((quanta.shape[0], width + 1), dtype=np.int64)
    np.cumsum(quanta, axis=1, out=cum[:, 1:])
    out = np.empty((quanta.shape[0], len(brackets)), dtype=np.int64)
    for j, bracket in enumerate(brackets):
        b_lo, b_hi = bracket.integer_range()
        start = 0 if b_lo is None else min(max(b_lo - support_lo, 0), width)
        stop = width if b_hi is None else min(max(b_hi - support_lo + 1, 0), width)
        out[:, j] = cum[:, stop] - cum[:, start] if stop > start else 0
    return out / _QUANTUM


def _counts_from_values(values: IntArray) -> tuple[IntArray, int]:
    """Per-row counts of integer values (rows × paths) over one common support."""
    lo, hi = int(values.min()), int(values.max())
    width = hi - lo + 1
    flat = (values - lo) + width * np.arange(values.shape[0])[:, None]
    counts = np.bincount(flat.ravel(), minlength=width * values.shape[0])
    return counts.reshape(values.shape[0], width).astype(np.int64), lo


# ---------------------------------------------------------------------------------------------
# The naive reference: fresh paths for every timestamp, one minute at a time


def run_day_naive(
    baseline: npt.ArrayLike,
    obs: npt.ArrayLike,
    params: McParams,
    measurement: MeasurementModel,
    brackets: Sequence[Bracket],
    *,
    paths: int = 4000,
    rng: np.random.Generator,
    times: npt.ArrayLike | None = None,
) -> DayResult:
    """The straightforward loop: per timestamp, simulate fresh paths minute by minute.

    Kept as the reference the fast engine is tested against and as the benchmark's baseline.
    The measurement offset is sampled per path, as a plain simulation would.
    """
    if paths < 1:
        raise ValueError("paths must be at least 1")
    day = _prepare(baseline, obs, times)
    rho, sigma = params.per_step(_NL - 1)
    officials = np.empty((day.times.size, paths), dtype=np.int64)
    hz = np.zeros((2, day.times.size))
    for i in range(day.times.size):
        base = day.baseline[day.row[i]]
        s, lo, hi = int(day.anchor[i]), int(day.lo[i]), int(day.hi[i])
        running = np.full(paths, -np.inf)
        resid = np.full(paths, day.resid[i])
        noise = rng.standard_normal((max(hi - 1, 0), paths))
        seen = day.running_max[i]
        for lead in range(1, hi):
            resid = rho[lead] * resid + sigma[lead] * noise[lead - 1]
            if lead >= lo:
                np.maximum(running, base[s + lead] + resid, out=running)
            if lead == lo + HAZARD_MINUTES[0] - 1:
                hz[0, i] = np.mean(running > seen)
            if lead == lo + HAZARD_MINUTES[1] - 1:
                hz[1, i] = np.mean(running > seen)
        # Windows cut short by the end of the day.
        if hi - lo < HAZARD_MINUTES[0]:
            hz[0, i] = np.mean(running > seen)
        if hi - lo < HAZARD_MINUTES[1]:
            hz[1, i] = np.mean(running > seen)
        top = running if np.isnan(seen) else np.maximum(running, seen)
        officials[i] = _round_half_up(top).astype(np.int64) + rng.choice(
            measurement.offsets, size=paths, p=measurement.probs
        )
    counts, lo_k = _counts_from_values(officials)
    return _finish(day, counts, lo_k, MeasurementModel.exact(), brackets, (hz[0], hz[1]), paths)


# ---------------------------------------------------------------------------------------------
# The fast engine


def run_day(
    baseline: npt.ArrayLike,
    obs: npt.ArrayLike,
    params: McParams,
    measurement: MeasurementModel,
    brackets: Sequence[Bracket],
    *,
    paths: int = 4000,
    rng: np.random.Generator,
    times: npt.ArrayLike | None = None,
    row_shift: npt.ArrayLike | None = None,
) -> DayResult:
    """p per bracket, hazards and Tmax quantiles at each minute of one climate day.

    ``baseline`` is the expected temperature path (°F), either one for the day or one row per
    timestamp (the forecast-timeline baseline changes as forecasts are issued); ``obs`` is the
    minute grid of observations, NaN where there is none. Row i uses ``obs[:times[i] + 1]``
    only. The brackets must tile the integers (``validate_ladder``). ``row_shift`` (°F, one
    per timestamp) moves the measurement offset row by row (see `_finish`).
    """
    if paths < 1:
        raise ValueError("paths must be at least 1")
    day = _prepare(baseline, obs, times)
    rho, sigma = params.per_step(_NL - 1)
    decay = np.cumprod(rho)  # P_L: what is left of the anchor residual L minutes later
    n_tiles = -(-paths // _TW)
    # Uniforms rather than normals: numpy's normal sampler is four times slower than its
    # uniforms, and the inverse-CDF transform runs in parallel inside the bank kernel.
    uniforms = rng.random((n_tiles, _NL, _TW))
    bank, tile_block_max = _deviation_bank(uniforms, rho, sigma)
    drift, block_max, order, n_far = _drift_rows(
        day.baseline, day.row, day.anchor, day.resid, day.lo, day.hi, decay
    )
    seen = np.where(np.isnan(day.running_max), _NEG, day.running_max)
    path_max, hits = _path_maxima(
        bank, drift, block_max, order, n_far, tile_block_max, day.lo, day.hi, seen, paths
    )
    counts, lo_k = _rounded_counts(path_max, seen, paths)
    hazards = (hits[0].sum(axis=0) / paths, hits[1].sum(axis=0) / paths)
    shift = None if row_shift is None else np.asarray(row_shift, dtype=np.float64)
    return _finish(day, counts, lo_k, measurement, brackets, hazards, paths, shift)


# The kernels below are plain Python over numpy arrays so that numba can compile them; each has
# a vectorised numpy twin used when numba is missing (exact, only slow) and in the tests.


# Acklam's rational approximation of the standard normal quantile: relative error below 1.2e-9,
# far under float32 resolution, and no rejection step, so every tile draws the same way.
_A = (
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.3577518672690,
    -30.66479806614716,
    2.506628277459239,
)
_B = (
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
)
_C = (
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
)
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
_P_LOW: Final = 0.02425
_U_MIN: Final = 2.0**-54


def _normal_quantile_py(u: float) -> float:
    if u < _P_LOW or u > 1.0 - _P_LOW:
        q = math.sqrt(-2.0 * math.log(u if u < 0.5 else 1.0 - u))
        x = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
        return x if u < 0.5 else -x
    q = u - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


def _deviation_bank_py(
    uniforms: FloatArray, rho: FloatArray, sigma: FloatArray
) -> tuple[F32Array, F32Array]:
    """AR(1) deviations from a zero start, lead by lead, and their maxima per block of leads.

    Layout (tile, lead, path-in-tile) keeps one tile's leads contiguous for the max kernel.
    """
    n_tiles, n_lead, width = uniforms.shape
    n_blocks = -(-n_lead // _BL)
    bank = np.empty((n_tiles, n_lead, width), dtype=np.float32)
    block = np.full((n_tiles, n_blocks), _NEG, dtype=np.float32)
    for tile in _prange(n_tiles):
        prev = np.zeros(width)
        for j in range(width):
            bank[tile, 0, j] = 0.0
        block[tile, 0] = 0.0
        for lead in range(1, n_lead):
            r = rho[lead]
            s = sigma[lead]
            top = np.float32(_NEG)
            for j in range(width):
                # u is a multiple of 2**-53 in [0, 1); 0 would map to -inf.
                u = max(uniforms[tile, lead, j], _U_MIN)
                value = r * prev[j] + s * _normal_quantile(u)
                prev[j] = value
                bank[tile, lead, j] = value
                top = max(top, np.float32(value))
            blk = lead // _BL
            block[tile, blk] = max(block[tile, blk], top)
    return bank, block


def _deviation_bank_np(
    uniforms: FloatArray, rho: FloatArray, sigma: FloatArray
) -> tuple[F32Array, F32Array]:
    n_tiles, n_lead, width = uniforms.shape
    u = np.maximum(uniforms, _U_MIN)
    q = u - 0.5
    r = q * q
    central = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    central /= ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(-2.0 * np.log(np.minimum(u, 1.0 - u)))
    tail = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
        (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0
    )
    normals = np.where((u < _P_LOW) | (u > 1.0 - _P_LOW), np.where(u < 0.5, tail, -tail), central)
    bank = np.empty((n_tiles, n_lead, width), dtype=np.float32)
    prev = np.zeros((n_tiles, width))
    bank[:, 0, :] = 0.0
    for lead in range(1, n_lead):
        prev = rho[lead] * prev + sigma[lead] * normals[:, lead, :]
        bank[:, lead, :] = prev
    n_blocks = -(-n_lead // _BL)
    padded = np.full((n_tiles, n_blocks * _BL, width), _NEG, dtype=np.float32)
    padded[:, :n_lead] = bank
    return bank, padded.reshape(n_tiles, n_blocks, _BL * width).max(axis=2)


def _drift_rows_py(
    baseline: FloatArray,
    row: IntArray,
    anchor: IntArray,
    resid: FloatArray,
    lo: IntArray,
    hi: IntArray,
    decay: FloatArray,
) -> tuple[F32Array, F32Array, npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Per timestamp: the deterministic part d_t(L) = baseline + P_L·e, and the pruning plan.

    Beyond the first hour (the hazard windows, always done in full) the leads are cut into
    blocks of ``_BL`` minutes, listed by their largest d_t so that the blocks most likely to hold
    the maximum come first and raise the bar the others must clear.
    """
    n_rows = anchor.shape[0]
    n_blocks = -(-_NL // _BL)
    drift = np.empty((n_rows, _NL), dtype=np.float32)
    block_max = np.full((n_rows, n_blocks), _NEG, dtype=np.float32)
    order = np.zeros((n_rows, n_blocks), dtype=np.int32)
    n_far = np.zeros(n_rows, dtype=np.int32)
    for i in _prange(n_rows):
        s = anchor[i]
        e = resid[i]
        base_row = row[i]
        for lead in range(lo[i], hi[i]):
            drift[i, lead] = baseline[base_row, s + lead] + decay[lead] * e
        far0 = min(lo[i] + HAZARD_MINUTES[1], hi[i])
        count = 0
        if far0 < hi[i]:
            for blk in range(far0 // _BL, (hi[i] - 1) // _BL + 1):
                top = np.float32(_NEG)
                for lead in range(max(blk * _BL, far0), min(blk * _BL + _BL, hi[i])):
                    top = max(top, drift[i, lead])
                block_max[i, blk] = top
                # insertion sort, largest first
                k = count
                while k > 0 and block_max[i, order[i, k - 1]] < top:
                    order[i, k] = order[i, k - 1]
                    k -= 1
                order[i, k] = blk
                count += 1
        n_far[i] = count
    return drift, block_max, order, n_far


def _drift_rows_np(
    baseline: FloatArray,
    row: IntArray,
    anchor: IntArray,
    resid: FloatArray,
    lo: IntArray,
    hi: IntArray,
    decay: FloatArray,
) -> tuple[F32Array, F32Array, npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """The drift rows only: the numpy path-maxima twin does not prune."""
    n_rows = anchor.size
    leads = np.arange(_NL)
    minute = np.clip(anchor[:, None] + leads[None, :], 0, MINUTES_PER_DAY - 1)
    drift = baseline[row[:, None], minute] + decay[None, :] * resid[:, None]
    inside = (leads[None, :] >= lo[:, None]) & (leads[None, :] < hi[:, None])
    n_blocks = -(-_NL // _BL)
    empty = np.zeros((n_rows, n_blocks), dtype=np.int32)
    return (
        np.where(inside, drift, _NEG).astype(np.float32),
        np.full((n_rows, n_blocks), _NEG, dtype=np.float32),
        empty,
        np.zeros(n_rows, dtype=np.int32),
    )


def _rows1_py(acc: F32Array, lane: F32Array, drift: F32Array, lead: int) -> None:
    d = drift[lead]
    for j in range(_TW):
        v = d + lane[lead, j]
        acc[j] = v if v > acc[j] else acc[j]


def _rows4_py(acc: F32Array, lane: F32Array, drift: F32Array, lead: int) -> None:
    d0, d1, d2, d3 = drift[lead], drift[lead + 1], drift[lead + 2], drift[lead + 3]
    for j in range(_TW):
        a = max(d0 + lane[lead, j], d1 + lane[lead + 1, j])
        b = max(d2 + lane[lead + 2, j], d3 + lane[lead + 3, j])
        a = max(a, b)
        acc[j] = a if a > acc[j] else acc[j]


def _rows8_py(acc: F32Array, lane: F32Array, drift: F32Array, lead: int) -> None:
    """Eight leads per pass over the accumulator: the loop is bound by loads, not arithmetic."""
    d0, d1, d2, d3 = drift[lead], drift[lead + 1], drift[lead + 2], drift[lead + 3]
    d4, d5, d6, d7 = drift[lead + 4], drift[lead + 5], drift[lead + 6], drift[lead + 7]
    for j in range(_TW):
        a = max(d0 + lane[lead, j], d1 + lane[lead + 1, j])
        b = max(d2 + lane[lead + 2, j], d3 + lane[lead + 3, j])
        c = max(d4 + lane[lead + 4, j], d5 + lane[lead + 5, j])
        e = max(d6 + lane[lead + 6, j], d7 + lane[lead + 7, j])
        a = max(max(a, b), max(c, e))
        acc[j] = a if a > acc[j] else acc[j]


def _span_py(acc: F32Array, lane: F32Array, drift: F32Array, start: int, stop: int) -> None:
    lead = start
    while lead + 8 <= stop:
        _rows8(acc, lane, drift, lead)
        lead += 8
    if lead + 4 <= stop:
        _rows4(acc, lane, drift, lead)
        lead += 4
    while lead < stop:
        _rows1(acc, lane, drift, lead)
        lead += 1


def _lowest_py(acc: F32Array) -> float:
    low = acc[0]
    for j in range(1, _TW):
        low = min(low, acc[j])
    return float(low)


def _path_maxima_py(
    bank: F32Array,
    drift: F32Array,
    block_max: F32Array,
    order: npt.NDArray[np.int32],
    n_far: npt.NDArray[np.int32],
    tile_block_max: F32Array,
    lo: IntArray,
    hi: IntArray,
    seen: FloatArray,
    paths: int,
) -> tuple[F32Array, npt.NDArray[np.int32]]:
    """Each path's maximum over the future of each timestamp, and the hazard-window hits.

    Exact where it matters: minutes are skipped only when no value among them can exceed both
    the running maximum M_t and the path's maximum so far, so ``max(M_t, result)`` is the true
    ``max(M_t, path max)`` and the hazard hits (path max over the window > M_t) are exact.
    """
    n_tiles = bank.shape[0]
    n_rows = lo.shape[0]
    n_blocks = tile_block_max.shape[1]
    out = np.empty((n_rows, n_tiles * _TW), dtype=np.float32)
    hits = np.zeros((2, n_tiles, n_rows), dtype=np.int32)
    for tile in _prange(n_tiles):
        lane = bank[tile]
        acc = np.empty(_TW, dtype=np.float32)
        live = min(_TW, paths - tile * _TW)
        tile_top = np.float64(_NEG)
        for blk in range(n_blocks):
            tile_top = max(tile_top, np.float64(tile_block_max[tile, blk]))
        for i in range(n_rows):
            d = drift[i]
            m = seen[i]
            start = lo[i]
            stop5 = min(start + HAZARD_MINUTES[0], hi[i])
            stop60 = min(start + HAZARD_MINUTES[1], hi[i])
            for j in range(_TW):
                acc[j] = _NEG
            # The hazard hour: skipped whole when even its highest possible value is below M_t
            # (then nothing in it can be a new high, nor matter for the day's maximum).
            near_top = np.float64(_NEG)
            for lead in range(start, stop60):
                near_top = max(near_top, np.float64(d[lead]))
            near_noise = np.float64(_NEG)
            if stop60 > start:
                for blk in range(start // _BL, (stop60 - 1) // _BL + 1):
                    near_noise = max(near_noise, np.float64(tile_block_max[tile, blk]))
            if near_top + near_noise + _PRUNE_MARGIN > m:
                _span(acc, lane, d, start, stop5)
                count = 0
                for j in range(live):
                    if acc[j] > m:
                        count += 1
                hits[0, tile, i] = count
                _span(acc, lane, d, stop5, stop60)
                count = 0
                for j in range(live):
                    if acc[j] > m:
                        count += 1
                hits[1, tile, i] = count
            bar = max(m, _lowest(acc))
            for k in range(n_far[i]):
                blk = order[i, k]
                top = np.float64(block_max[i, blk]) + _PRUNE_MARGIN
                if top + tile_top <= bar:
                    break  # the blocks left have lower drift still
                if top + tile_block_max[tile, blk] <= bar:
                    continue
                _span(acc, lane, d, max(blk * _BL, stop60), min(blk * _BL + _BL, hi[i]))
                bar = max(m, _lowest(acc))
            for j in range(_TW):
                out[i, tile * _TW + j] = acc[j]
    return out, hits


def _path_maxima_np(
    bank: F32Array,
    drift: F32Array,
    block_max: F32Array,
    order: npt.NDArray[np.int32],
    n_far: npt.NDArray[np.int32],
    tile_block_max: F32Array,
    lo: IntArray,
    hi: IntArray,
    seen: FloatArray,
    paths: int,
) -> tuple[F32Array, npt.NDArray[np.int32]]:
    n_tiles = bank.shape[0]
    flat = bank.transpose(1, 0, 2).reshape(_NL, n_tiles * _TW)
    out = np.full((lo.size, flat.shape[1]), _NEG, dtype=np.float32)
    hits = np.zeros((2, 1, lo.size), dtype=np.int32)
    for i in range(lo.size):
        start, stop = int(lo[i]), int(hi[i])
        if stop <= start:
            continue
        values = drift[i, start:stop, None] + flat[start:stop, :paths]
        running = np.maximum.accumulate(values, axis=0)
        for k, minutes in enumerate(HAZARD_MINUTES):
            hits[k, 0, i] = np.count_nonzero(running[min(minutes, stop - start) - 1] > seen[i])
        out[i, :paths] = running[-1]
    return out, hits


def _rounded_counts_py(path_max: F32Array, seen: FloatArray, paths: int) -> tuple[IntArray, int]:
    """Per-row counts of round_half_up(max(M_t, path max)), computed in float64.

    Float64 so that the running maximum itself is never rounded into a lower whole degree.
    """
    n_rows = path_max.shape[0]
    row_lo = np.empty(n_rows, dtype=np.int64)
    row_hi = np.empty(n_rows, dtype=np.int64)
    for i in _prange(n_rows):
        m = seen[i]
        low = np.int64(2**62)
        high = -np.int64(2**62)
        for j in range(paths):
            k = np.int64(math.floor(max(m, np.float64(path_max[i, j])) + 0.5))
            low = min(low, k)
            high = max(high, k)
        row_lo[i] = low
        row_hi[i] = high
    lo = row_lo.min()
    counts = np.zeros((n_rows, row_hi.max() - lo + 1), dtype=np.int64)
    for i in _prange(n_rows):
        m = seen[i]
        for j in range(paths):
            k = np.int64(math.floor(max(m, np.float64(path_max[i, j])) + 0.5))
            counts[i, k - lo] += 1
    return counts, lo


def _rounded_counts_np(path_max: F32Array, seen: FloatArray, paths: int) -> tuple[IntArray, int]:
    top = np.maximum(path_max[:, :paths].astype(np.float64), seen[:, None])
    return _counts_from_values(_round_half_up(top).astype(np.int64))


def _identity_range(n: int) -> range:
    return range(n)


_prange: Callable[[int], range] = _identity_range

if _HAVE_NUMBA:
    _prange = cast(Callable[[int], range], numba.prange)
    _fast = {"nsz", "arcp", "contract"}
    _inline = numba.njit(inline="always", fastmath=_fast, boundscheck=False, cache=True)
    _kernel = numba.njit(parallel=True, fastmath=_fast, boundscheck=False, cache=True)
    _normal_quantile = cast(Callable[[float], float], _inline(_normal_quantile_py))
    _rows1 = cast(Callable[[F32Array, F32Array, F32Array, int], None], _inline(_rows1_py))
    _rows4 = cast(Callable[[F32Array, F32Array, F32Array, int], None], _inline(_rows4_py))
    _rows8 = cast(Callable[[F32Array, F32Array, F32Array, int], None], _inline(_rows8_py))
    _span = cast(Callable[[F32Array, F32Array, F32Array, int, int], None], _inline(_span_py))
    _lowest = cast(Callable[[F32Array], float], _inline(_lowest_py))
    _deviation_bank = cast(
        Callable[[FloatArray, FloatArray, FloatArray], tuple[F32Array, F32Array]],
        _kernel(_deviation_bank_py),
    )
    _drift_rows = cast(Any, _kernel(_drift_rows_py))
    _path_maxima = cast(Any, _kernel(_path_maxima_py))
    _rounded_counts = cast(
        Callable[[F32Array, FloatArray, int], tuple[IntArray, int]], _kernel(_rounded_counts_py)
    )
else:  # pragma: no cover - depends on the environment
    _normal_quantile, _lowest, _span = _normal_quantile_py, _lowest_py, _span_py
    _rows1, _rows4, _rows8 = _rows1_py, _rows4_py, _rows8_py
    _deviation_bank = _deviation_bank_np
    _drift_rows = _drift_rows_np
    _path_maxima = _path_maxima_np
    _rounded_counts = _rounded_counts_np
