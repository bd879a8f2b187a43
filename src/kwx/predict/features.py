"""The classifiers' features: a pure, row-wise function of panel rows at t.

Training and the live loop call the same `feature_frame` on rows of the same shape (the
columns of `feat.minute_panel_full`, read with `PANEL_SELECT`), so the model sees in production
exactly what it was fit on. Every feature of a row is computed from that row alone; the row
itself holds only what was known at its `ts` (the panels' convention: candles closed by ts,
observations stamped at or before ts), so no feature can look ahead.

Missing values are filled here, with a 0/1 indicator saying so, rather than in the models:
the logistic regression cannot take NaN, and one fill for both model types keeps their
feature matrices identical. The fills are neutral values, not guesses about the market:

* no two-sided quote → spread 1 (the whole price range is open) and ``no_quote`` = 1;
* no trade in the minute → CLV 0; no previous minute → velocity / acceleration 0;
* an edge bracket has no neighbour on one side → that side's gap and velocity 0 (the
  ``lower_tail`` / ``upper_tail`` indicators tell the model which side is missing);
* no observation → temperature distances 0 and ``no_obs`` = 1;
* no weather model row → p_wx = mid (no disagreement), hazards 0 and ``no_wx`` = 1.

Temperatures enter as distances to the bracket's winning integer interval (from
`kwx.domain.brackets.Bracket.integer_range`), clipped to ±`TEMP_CLIP_F`: an open tail is
"far" (+`TEMP_CLIP_F`) on its open side. ``ruled_out`` is 1 when the running maximum is
already above the bracket's top — the bracket can no longer win.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import standard_offset
from kwx.registry import default_registry

FloatArray = npt.NDArray[np.float64]

TEMP_CLIP_F: Final = 20.0
MINUTES_PER_DAY: Final = 1440

# The panel columns the features read (numeric ones are cast to float8 by PANEL_SELECT).
NUMERIC_COLUMNS: Final = (
    "floor_strike",
    "cap_strike",
    "yes_bid",
    "yes_ask",
    "mid",
    "spread",
    "clv",
    "velocity",
    "acceleration",
    "volume_1m",
    "volume_delta",
    "volume_5m",
    "volume_20m",
    "left_mid",
    "right_mid",
    "left_velocity",
    "right_velocity",
    "ras",
    "temp_1m",
    "temp_5m",
    "running_max_f",
    "p_wx",
    "hazard_next_5m",
    "hazard_next_60m",
)
REQUIRED_COLUMNS: Final = (
    "city",
    "ts",
    "ts_local",
    "strike_type",
    "has_trade",
    *NUMERIC_COLUMNS,
)

# The select list for `feat.minute_panel_with_weather p LEFT JOIN pmf.minute f`: the panel's
# numerics as float8 (Decimal rows are slow to fetch and to convert), keys kept as they are.
PANEL_SELECT: Final = ", ".join(
    [
        "p.ticker",
        "p.event_ticker",
        "p.city",
        "p.climate_date",
        "p.ts",
        "p.ts_local",
        "p.strike_type",
        "p.bracket_index",
        "p.has_trade",
    ]
    + [
        f"f.{c}" if c in ("p_wx", "hazard_next_5m", "hazard_next_60m") else f"p.{c}::float8"
        for c in NUMERIC_COLUMNS
    ]
)

FEATURES: Final = (
    "mid",
    "spread",
    "no_quote",
    "clv",
    "has_trade",
    "velocity",
    "acceleration",
    "ras",
    "triad_mass",
    "left_gap",
    "right_gap",
    "left_velocity",
    "right_velocity",
    "lower_tail",
    "upper_tail",
    "log_volume_1m",
    "log_volume_5m",
    "log_volume_20m",
    "volume_delta",
    "minutes_to_day_end",
    "local_hour",
    "hour_sin",
    "hour_cos",
    "temp_above_lo",
    "temp_below_hi",
    "max_above_lo",
    "max_below_hi",
    "temp_trend_5m",
    "ruled_out",
    "no_obs",
    "p_wx",
    "wx_edge",
    "hazard_next_5m",
    "hazard_next_60m",
    "no_wx",
)


class FeatureError(ValueError):
    """Panel rows that cannot be turned into features (a missing column, a bad bracket)."""


def _signed_log1p(x: FloatArray) -> FloatArray:
    """log(1 + |x|) with x's sign: volume changes span 0 to thousands of contracts."""
    out: FloatArray = np.sign(x) * np.log1p(np.abs(x))
    return out


@functools.lru_cache(maxsize=4096)
def _integer_range(strike_type: str, floor: float, cap: float) -> tuple[float, float]:
    """The bracket's winning integers [lo, hi] as floats; ±inf on an open side."""
    bracket = Bracket.from_strikes(
        strike_type,
        None if np.isnan(floor) else Decimal(repr(floor)),
        None if np.isnan(cap) else Decimal(repr(cap)),
    )
    lo, hi = bracket.integer_range()
    return (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


@functools.lru_cache(maxsize=64)
def _lst_offset_minutes(city: str) -> float:
    tz = default_registry().by_key(city).timezone
    return standard_offset(tz).total_seconds() / 60.0


def _bracket_edges(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    keys = list(
        zip(
            frame["strike_type"].astype(str),
            frame["floor_strike"].to_numpy(np.float64, na_value=np.nan),
            frame["cap_strike"].to_numpy(np.float64, na_value=np.nan),
            strict=True,
        )
    )
    lo = np.empty(len(keys))
    hi = np.empty(len(keys))
    for i, (kind, floor, cap) in enumerate(keys):
        try:
            lo[i], hi[i] = _integer_range(kind, float(floor), float(cap))
        except ValueError as exc:
            ticker = frame["ticker"].iloc[i] if "ticker" in frame else f"row {i}"
            raise FeatureError(f"panel row {ticker}: bracket: {exc}") from exc
    return lo, hi


def _distance(a: FloatArray, b: FloatArray) -> FloatArray:
    """a − b clipped to ±TEMP_CLIP_F (an infinite edge is simply far); NaN stays NaN."""
    with np.errstate(invalid="ignore"):
        return np.clip(a - b, -TEMP_CLIP_F, TEMP_CLIP_F)


def feature_frame(panel: pd.DataFrame) -> pd.DataFrame:
    """The model's features (columns `FEATURES`, float64, no NaN) for each panel row, in the
    rows' order and with their index. Raises `FeatureError` naming any missing column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in panel.columns]
    if missing:
        raise FeatureError(f"panel rows lack column(s) {', '.join(missing)}")
    n = len(panel)
    if n == 0:
        return pd.DataFrame({f: pd.Series(dtype=np.float64) for f in FEATURES})

    def col(name: str) -> FloatArray:
        return pd.to_numeric(panel[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)

    mid = col("mid")
    if np.isnan(mid).any():
        raise FeatureError("panel rows without a mid cannot be scored (filter them first)")
    out: dict[str, FloatArray] = {"mid": mid}
    spread = col("spread")
    out["no_quote"] = np.isnan(spread).astype(np.float64)
    out["spread"] = np.nan_to_num(spread, nan=1.0)
    out["clv"] = np.nan_to_num(col("clv"))
    out["has_trade"] = np.asarray(panel["has_trade"].fillna(False), dtype=bool).astype(np.float64)
    for name in ("velocity", "acceleration", "ras", "left_velocity", "right_velocity"):
        out[name] = np.nan_to_num(col(name))
    left, right = col("left_mid"), col("right_mid")
    out["triad_mass"] = mid + np.nan_to_num(left) + np.nan_to_num(right)
    out["left_gap"] = np.nan_to_num(left - mid)
    out["right_gap"] = np.nan_to_num(right - mid)
    kind = panel["strike_type"].astype(str).to_numpy()
    out["lower_tail"] = np.isin(kind, ("less", "less_or_equal")).astype(np.float64)
    out["upper_tail"] = np.isin(kind, ("greater", "greater_or_equal")).astype(np.float64)
    for name in ("volume_1m", "volume_5m", "volume_20m"):
        out[f"log_{name}"] = np.log1p(np.maximum(np.nan_to_num(col(name)), 0.0))
    out["volume_delta"] = _signed_log1p(np.nan_to_num(col("volume_delta")))

    ts = pd.to_datetime(panel["ts"], utc=True)
    offset = panel["city"].astype(str).map(_lst_offset_minutes).to_numpy(np.float64)
    lst_minute = (ts.dt.hour * 60 + ts.dt.minute).to_numpy(np.float64) + offset
    out["minutes_to_day_end"] = MINUTES_PER_DAY - np.mod(lst_minute, MINUTES_PER_DAY)
    local = pd.to_datetime(panel["ts_local"])
    hour = np.asarray(local.dt.hour + local.dt.minute / 60.0, dtype=np.float64)
    out["local_hour"] = hour
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)

    lo, hi = _bracket_edges(panel)
    temp, temp5, rmax = col("temp_1m"), col("temp_5m"), col("running_max_f")
    no_obs = np.isnan(temp) | np.isnan(rmax)
    out["temp_above_lo"] = np.nan_to_num(_distance(temp, lo))
    out["temp_below_hi"] = np.nan_to_num(_distance(hi, temp))
    out["max_above_lo"] = np.nan_to_num(_distance(rmax, lo))
    out["max_below_hi"] = np.nan_to_num(_distance(hi, rmax))
    out["temp_trend_5m"] = np.nan_to_num(np.clip(temp - temp5, -TEMP_CLIP_F, TEMP_CLIP_F))
    with np.errstate(invalid="ignore"):
        out["ruled_out"] = (rmax > hi).astype(np.float64)
    out["no_obs"] = no_obs.astype(np.float64)

    p_wx = col("p_wx")
    no_wx = np.isnan(p_wx)
    out["p_wx"] = np.where(no_wx, mid, p_wx)
    out["wx_edge"] = np.where(no_wx, 0.0, p_wx - mid)
    out["hazard_next_5m"] = np.nan_to_num(col("hazard_next_5m"))
    out["hazard_next_60m"] = np.nan_to_num(col("hazard_next_60m"))
    out["no_wx"] = no_wx.astype(np.float64)
    frame = pd.DataFrame({f: out[f] for f in FEATURES}, index=panel.index)
    assert not frame.isna().any().any(), "feature fills left a NaN"
    return frame
