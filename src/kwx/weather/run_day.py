"""`kwx weather run-day`: p_wx, hazards and Tmax quantiles for every minute of a city-day.

Inputs are assembled minute by minute so that row t uses only what existed at t:
- observations are placed on the minute at or after their stamp (a reading stamped 14:53:40
  is first usable at 14:54), from the best-ranked source that reported that day;
- the baseline at t is the latest forecast issued before t (the template — hold the last
  observation — when no forecast exists); today's error against it is the residual the
  Monte Carlo starts from and decays, so the baseline itself is not shifted by it;
- the residual AR(1) parameters, the measurement model and the calibration shift by hour
  (`kwx.weather.calibration`) come from `kwx weather fit-params`.
Results are written to pmf.minute under an mc_version, one row per bracket and minute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.brackets import Bracket
from kwx.domain.climate_day import climate_day_window
from kwx.registry import City
from kwx.store.writers import PMF_WX
from kwx.weather.baseline import MINUTES_PER_DAY, baseline_at, minute_grid, to_grid
from kwx.weather.calibration import load_tmax_shift, shift_by_minute
from kwx.weather.mc import DayResult, McParams, MeasurementModel, run_day

Conn = psycopg.Connection[tuple[object, ...]]

# Minutes between routine reports of each observation source. The measurement model maps the
# maximum of what a source *reports* to the official value, so the simulated maximum must be
# taken over the minutes the source would report too: an hourly proxy's maximum over all
# 1,440 simulated minutes picks up within-hour wiggles its reports never show, and runs warm.
SOURCE_CADENCE_MIN: dict[str, int] = {"asos1min": 1, "asos5min": 5, "metar": 60, "era5": 60}
# Baseline value at minutes the source does not report: finite (the engine requires it) and
# far below any temperature, so such minutes never set the maximum.
OFF_CADENCE_F = -1.0e4


@dataclass(frozen=True)
class DayInputs:
    city: City
    climate_date: dt.date
    start: dt.datetime
    event_ticker: str
    tickers: list[str]
    brackets: list[Bracket]
    obs_source: str
    obs: np.ndarray  # (1440,), NaN where nothing new was observed in that minute
    baseline: np.ndarray  # (1440, 1440): row t is the path expected at t
    params: McParams
    measurement: MeasurementModel
    # (1440,) calibration shift of the official-value pmf per minute (`kwx.weather.
    # calibration`), None when the parameters were fitted without one.
    tmax_shift: np.ndarray | None = None

    def shift_at(self, times: np.ndarray) -> np.ndarray | None:
        """The calibration shift at the given minutes, for ``run_day(row_shift=…)``."""
        return None if self.tmax_shift is None else self.tmax_shift[times]


def _one(conn: Conn, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    rows = conn.execute(sql, params).fetchall()
    conn.commit()
    return rows


def load_brackets(conn: Conn, city: City, day: dt.date) -> tuple[str, list[str], list[Bracket]]:
    rows = _one(
        conn,
        "SELECT ticker, event_ticker, strike_type, floor_strike, cap_strike "
        "FROM kalshi.markets WHERE series_ticker = %s AND climate_date = %s "
        "ORDER BY ticker",
        (city.series, day),
    )
    if not rows:
        raise ValueError(f"no {city.series} markets for {day}: import or backfill them first")
    brackets = [Bracket.from_strikes(str(r[2]), r[3], r[4]) for r in rows]  # type: ignore[arg-type]
    return str(rows[0][1]), [str(r[0]) for r in rows], brackets


def load_observations(
    conn: Conn, city: City, start: dt.datetime, source: str | None
) -> tuple[str, np.ndarray]:
    """The day's readings of one source on the minute grid (ceil: never early)."""
    end = start + dt.timedelta(minutes=MINUTES_PER_DAY)
    if source is None:
        best = _one(
            conn,
            "SELECT o.source FROM wx.obs o JOIN meta.obs_source_rank r "
            "USING (source) WHERE o.city = %s AND o.ts > %s AND o.ts <= %s "
            "GROUP BY o.source, r.rank ORDER BY r.rank LIMIT 1",
            (city.key, start - dt.timedelta(minutes=1), end),
        )
        if not best:
            raise ValueError(f"no observations for {city.key} on the climate day from {start}")
        source = str(best[0][0])
    rows = _one(
        conn,
        "SELECT ts, temp_f FROM wx.obs WHERE city = %s AND source = %s "
        "AND ts > %s AND ts <= %s AND temp_f IS NOT NULL ORDER BY ts",
        (city.key, source, start - dt.timedelta(minutes=1), end - dt.timedelta(minutes=1)),
    )
    obs = np.full(MINUTES_PER_DAY, np.nan)
    for ts, temp in rows:
        assert isinstance(ts, dt.datetime)
        index = int(np.ceil((ts - start).total_seconds() / 60.0))
        if 0 <= index < MINUTES_PER_DAY:
            obs[index] = float(str(temp))
    return source, obs


def diurnal_grid(bias: np.ndarray, grid: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """The hourly mean residuals on the minute grid, each at its hour's middle, interpolated
    around the clock so that the baseline has no step at the top of each hour."""
    local = grid.tz_convert(timezone)
    hour = local.hour + local.minute / 60.0
    centers = np.arange(-1, 25) + 0.5
    values = np.concatenate([[bias[-1]], bias, [bias[0]]])
    out: np.ndarray = np.interp(np.asarray(hour, dtype=float), centers, values)
    return out


def load_bias(conn: Conn, city: City, version: str) -> np.ndarray | None:
    """The fitted diurnal bias (24 values), or None for parameters fitted without one."""
    rows = _one(
        conn,
        "SELECT local_hour, mean_f FROM wx.baseline_bias WHERE city = %s AND version = %s "
        "ORDER BY local_hour",
        (city.key, version),
    )
    if len(rows) != 24:
        return None
    return np.array([float(str(r[1])) for r in rows])


def load_baselines(
    conn: Conn,
    city: City,
    start: dt.datetime,
    obs: np.ndarray,
    source: str,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Row t: the latest forecast issued before minute t (plus the diurnal bias when one is
    fitted); the template where no forecast exists yet."""
    end = start + dt.timedelta(minutes=MINUTES_PER_DAY)
    rows = _one(
        conn,
        "SELECT issued_at, valid_at, temp_f FROM wx.forecast WHERE city = %s "
        "AND source = %s AND issued_at < %s AND temp_f IS NOT NULL "
        "AND valid_at BETWEEN %s AND %s",
        (city.key, source, end, start - dt.timedelta(hours=3), end + dt.timedelta(hours=3)),
    )
    grid = minute_grid(start)
    shift = diurnal_grid(bias, grid, city.timezone) if bias is not None else 0.0
    issues: list[tuple[dt.datetime, np.ndarray]] = []
    if rows:
        frame = pd.DataFrame(rows, columns=["issued_at", "valid_at", "temp_f"])
        for issued, part in frame.groupby("issued_at"):
            series = pd.Series(
                part["temp_f"].astype(float).to_numpy(),
                index=pd.DatetimeIndex(part["valid_at"]).tz_convert("UTC"),
            )
            issues.append(
                (
                    pd.Timestamp(str(issued)).to_pydatetime(),
                    to_grid(series.sort_index(), grid) + shift,
                )
            )
        issues.sort(key=lambda item: item[0])
    out = np.empty((MINUTES_PER_DAY, MINUTES_PER_DAY))
    issued_min = np.array([(i - start).total_seconds() / 60.0 for i, _ in issues])
    for t in range(MINUTES_PER_DAY):
        # Strictly before minute t: a forecast issued exactly at t is not yet usable at t.
        k = int(np.searchsorted(issued_min, float(t), side="left")) - 1
        out[t] = baseline_at(issues[k][1] if k >= 0 else None, obs, t)
    return out


def mask_to_cadence(baseline: np.ndarray, obs: np.ndarray, cadence: int) -> np.ndarray:
    """Row t keeps only the minutes at whole multiples of ``cadence`` after t's last report.

    Before the first report of the day the phase is unknown and every minute is kept. Uses
    ``obs[:t + 1]`` only (the anchor), like everything else at t.
    """
    if cadence <= 1:
        return baseline
    minutes = np.arange(MINUTES_PER_DAY)
    anchor = np.maximum.accumulate(np.where(~np.isnan(obs), minutes, -1))
    off = ((minutes[None, :] - anchor[:, None]) % cadence != 0) & (anchor[:, None] >= 0)
    out = baseline.copy()
    out[off] = OFF_CADENCE_F
    return out


def load_params(conn: Conn, city: City, version: str) -> McParams:
    rows = _one(
        conn,
        "SELECT lead_bucket, rho, sigma FROM wx.mc_params WHERE city = %s AND version = %s",
        (city.key, version),
    )
    if not rows:
        raise ValueError(
            f"no wx.mc_params for {city.key} version {version}: run kwx weather fit-params first"
        )
    buckets = sorted(
        (int(str(b).split("-")[0].rstrip("m+")), float(str(r)), float(str(s))) for b, r, s in rows
    )
    edges = [0] + [b[0] for b in buckets[1:]]  # the first fitted bucket also covers lead 0
    return McParams(
        np.array(edges), np.array([b[1] for b in buckets]), np.array([b[2] for b in buckets])
    )


def load_measurement(conn: Conn, city: City, source: str, month: int = 0) -> MeasurementModel:
    """The pmf for the climate day's month when one is fitted, else the all-year one."""
    rows = _one(
        conn,
        "SELECT offset_f, prob FROM wx.measurement_model WHERE city = %s AND source = %s "
        "AND month = (SELECT max(month) FROM wx.measurement_model WHERE city = %s "
        "AND source = %s AND month IN (0, %s)) ORDER BY offset_f",
        (city.key, source, city.key, source, month),
    )
    if not rows:
        raise ValueError(
            f"no measurement model for {city.key}/{source}: run kwx weather fit-params first"
        )
    probs = np.array([float(str(r[1])) for r in rows])
    return MeasurementModel(np.array([int(str(r[0])) for r in rows]), probs / probs.sum())


def load_day(
    conn: Conn,
    city: City,
    day: dt.date,
    *,
    obs_source: str | None = None,
    forecast_source: str = "vc",
    version: str = "v1",
    brackets: bool = True,
    calibrated: bool = True,
) -> DayInputs:
    """Everything the engine needs for a city-day. ``brackets=False`` leaves the ladder out
    (days without markets, e.g. when fitting the calibration); ``calibrated=False`` leaves
    the calibration shift out (what that fit runs on)."""
    start, _ = climate_day_window(city.timezone, day)
    event, tickers, ladder = load_brackets(conn, city, day) if brackets else ("", [], [])
    source, obs = load_observations(conn, city, start, obs_source)
    shift = load_tmax_shift(conn, city, version) if calibrated else None
    return DayInputs(
        city,
        day,
        start,
        event,
        tickers,
        ladder,
        source,
        obs,
        mask_to_cadence(
            load_baselines(
                conn, city, start, obs, forecast_source, bias=load_bias(conn, city, version)
            ),
            obs,
            SOURCE_CADENCE_MIN.get(source, 1),
        ),
        load_params(conn, city, version),
        load_measurement(conn, city, source, day.month),
        None if shift is None else shift_by_minute(shift),
    )


def pmf_frame(inputs: DayInputs, result: DayResult, mc_version: str) -> pd.DataFrame:
    """pmf.minute rows: one per bracket and minute of the day."""
    n = result.times.size
    ts = pd.DatetimeIndex([inputs.start + dt.timedelta(minutes=int(m)) for m in result.times])
    parts = []
    for k, ticker in enumerate(inputs.tickers):
        frame = pd.DataFrame(
            {
                "ticker": ticker,
                "ts": ts,
                "mc_version": mc_version,
                "city": inputs.city.key,
                "event_ticker": inputs.event_ticker,
                "p_wx": result.p_bracket[:, k],
                "hazard_next_5m": result.hazard_5m,
                "hazard_next_60m": result.hazard_60m,
            }
        )
        for j, name in enumerate(("tmax_q05", "tmax_q25", "tmax_q50", "tmax_q75", "tmax_q95")):
            frame[name] = result.quantiles[:, j]
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    assert len(out) == n * len(inputs.tickers)
    return out


def day_rng(seed: int, day: dt.date, city: City) -> np.random.Generator:
    """Per city-day, so that a day's numbers never depend on which other days ran."""
    return np.random.default_rng([seed, day.toordinal(), sum(map(ord, city.key))])


def run_city_day(
    conn: Conn,
    city: City,
    day: dt.date,
    *,
    paths: int = 4000,
    seed: int = 0,
    mc_version: str = "v1",
    obs_source: str | None = None,
    forecast_source: str = "vc",
    params_version: str = "v1",
) -> int:
    inputs = load_day(
        conn,
        city,
        day,
        obs_source=obs_source,
        forecast_source=forecast_source,
        version=params_version,
    )
    rng = day_rng(seed, day, city)
    result = run_day(
        inputs.baseline,
        inputs.obs,
        inputs.params,
        inputs.measurement,
        inputs.brackets,
        paths=paths,
        rng=rng,
        row_shift=inputs.tmax_shift,
    )
    frame = pmf_frame(inputs, result, mc_version)
    with conn.transaction(), conn.cursor() as cur:
        return PMF_WX.write(cur, frame)
