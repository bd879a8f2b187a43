"""p_fused for the minutes at hand, when pmf.minute does not have it yet: the fusion live.

`kwx fusion run` pools a finished range from the store: p_mkt from `feat.minute_panel_base`
(`kwx.pmf.market`), p_wx from the weather model, α from `model.fusion_config`. A live day's
minutes are fused by nobody, so the live loop pools them itself from the panel it already
holds — the backtest's arrays, whose row t carries only candles closed by t, and whose p_mkt
the panel completes with `kwx.pmf.market`'s own rules where the store has none — with the
same functions: `market_feature_arrays` for the weight's market features and the stored
config's estimator — the `LogPool`, or the `AnchoredPool` fed with the panel's `tmax_q50`,
the events' bracket centres and the local hour from the same minutes_to_close. A test checks
that this equals what `kwx fusion run` stored, minute for minute, on real days.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kwx.backtest.loader import MINUTES_PER_DAY
from kwx.backtest.panel import Panel
from kwx.pmf.anchored import AnchoredInputs, AnchoredPool, bracket_centre
from kwx.pmf.market import market_feature_arrays
from kwx.pmf.pool import LogPool

__all__ = ["fuse_panel"]

FloatArray = npt.NDArray[np.float64]


def fuse_panel(model: LogPool | AnchoredPool, panel: Panel) -> FloatArray:
    """p_fused_norm on the panel's (E, T, K) grid: NaN on padding and at minutes lacking an
    input (no price on any bracket, no p_wx, no hazard)."""
    e_n, t_n, k_n = panel.shape
    c = panel.cols
    out = np.full((e_n, t_n, k_n), np.nan)
    elapsed = np.arange(MINUTES_PER_DAY, dtype=np.float64)
    for e in range(e_n):
        real = np.flatnonzero(panel.tid_grid[e] >= 0)
        if real.size == 0:
            continue
        p_mkt = c["p_mkt"][e][:, real]
        volume, volatility, to_close = market_feature_arrays(
            c["volume_20m"][e][:, real], p_mkt, elapsed
        )
        p_wx = c["p_wx"][e][:, real]
        hazard = c["hazard_next_60m"][e][:, real[0]]
        x = np.column_stack([np.log1p(np.maximum(volume, 0.0)), hazard, volatility, to_close])
        ok = ~np.isnan(p_mkt).any(axis=1) & ~np.isnan(p_wx).any(axis=1) & np.isfinite(x).all(axis=1)
        if isinstance(model, AnchoredPool):
            brackets = panel.events[e].brackets
            centre = np.array([bracket_centre(brackets[k]) for k in real], dtype=np.float64)
            inputs = AnchoredInputs(
                p_mkt,
                p_wx,
                np.broadcast_to(centre, p_mkt.shape).copy(),
                c["tmax_q50"][e][:, real[0]],
                (MINUTES_PER_DAY - to_close) / 60.0,
            )
            ok &= inputs.complete()
            if ok.any():
                rows = np.flatnonzero(ok)
                out[e, rows[:, None], real[None, :]] = model.predict(inputs.take(ok))
            continue
        if ok.any():
            fused = model.predict(x[ok], p_mkt[ok], p_wx[ok])
            rows = np.flatnonzero(ok)
            out[e, rows[:, None], real[None, :]] = fused
    return out
