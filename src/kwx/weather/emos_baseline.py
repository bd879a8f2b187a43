"""The Monte Carlo's baseline from guidance: a day's path whose maximum is the EMOS mean.

Where station guidance exists, the calibrated day-ahead Tmax distribution (`kwx.weather.emos`)
knows the level of the day's high far better than Visual Crossing (CRPS ~1.3–1.6 °F against
VC's day-ahead sd of 3.5–4.9 °F). What guidance does not give is the *shape* of the day, so:

1. **Shape**: the newest Visual Crossing hourly forecast issued before the day starts; where
   there is none (New York), the climatological diurnal profile of the observation source over
   the 21 days before (`kwx.weather.climo`).
2. **Level**: the shape is shifted so that its maximum over the climate day equals the EMOS
   mean *in the units of the observation source*: mu − m, where m is the trailing mean of
   (official − observed) daily maxima over the ``offset_days`` settled days before (D − 2 and
   earlier). Why: the Monte Carlo simulates the observation source's path and only then maps
   its maximum to the official value with the measurement model (official − observed, fitted
   by `kwx weather fit-params`). A baseline peaking at the official mean would count that
   offset twice (the ERA5 proxy runs ~3.6 °F below Midway's official maximum).
3. The path is written to ``wx.forecast`` as source ``emos``, issued one minute before the
   climate day starts (never earlier than the newest guidance it used), valid over the climate
   day ± 3 hours. `kwx weather fit-params --forecast-source emos` then fits the AR(1) residual
   and the calibration shift against this very baseline, and `kwx weather backfill
   --forecast-source emos` runs on it: the fits stay consistent with what the engine simulates.

The EMOS sigma is **not** fed into the residual: the AR(1) σ fitted on observation − this
baseline already measures how far the day strays from it, on the same days; scaling it again
by EMOS's sigma would count the level uncertainty twice. (A day-specific scale, sigma_D over
its fit-range mean, is a possible refinement; it was not measured here.)
The EMOS mean is also stored in ``wx.forecast_daily`` (source ``emos``, ``tmax_f`` = mu) for
predictors that want the guidance median.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.registry import City
from kwx.weather.baseline import latest_forecast_before
from kwx.weather.climo import climo_forecast_frame
from kwx.weather.emos_data import load_guidance_frame
from kwx.weather.emos_walk import WalkConfig, walk_forward
from kwx.weather.measurement import daily_pairs

Conn = psycopg.Connection[tuple[object, ...]]
EMOS_SOURCE = "emos"
OFFSET_DAYS = 90
# The shape's padding either side of the climate day, as the VC and climo forecasts have.
PAD = dt.timedelta(hours=3)
HISTORY_START = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class EmosBuild:
    days: int  # days written
    from_vc: int  # of which shaped by Visual Crossing (the rest: climatological profile)
    skipped: list[str]
    rows: int


def shifted_path(shape: pd.Series, start: dt.datetime, end: dt.datetime, peak: float) -> pd.Series:
    """The shape moved up or down so that its maximum over [start, end) equals ``peak``."""
    day = shape[(shape.index >= start) & (shape.index < end)]
    if day.empty:
        raise ValueError("the shape has no hour inside the climate day")
    return shape + (peak - float(day.max()))


def trailing_offset(
    pairs: pd.DataFrame, day: dt.date, days: int = OFFSET_DAYS, gap_days: int = 2
) -> float | None:
    """Mean of official − observed max over the ``days`` settled days up to D − gap_days."""
    cutoff = day - dt.timedelta(days=gap_days)
    past = pairs[(pairs["date"] <= cutoff) & (pairs["date"] > cutoff - dt.timedelta(days=days))]
    if len(past) < 10:
        return None
    return float((past["official"] - past["observed"]).mean())


def _shape(
    conn: Conn,
    city: City,
    day: dt.date,
    issued: dt.datetime,
    obs: pd.DataFrame,
    shape_source: str,
) -> tuple[pd.Series, bool]:
    """The day's hourly shape as known at ``issued``: VC if issued by then, else climatology."""
    start, end = climate_day_window(city.timezone, day)
    valid = pd.date_range(start - PAD, end + PAD, freq="1h")
    vc = latest_forecast_before(conn, city.key, shape_source, issued, start, end)
    inside = vc[(vc.index >= start) & (vc.index < end)] if not vc.empty else vc
    if len(inside) >= 20:
        x = pd.DatetimeIndex(vc.index).asi8.astype(float)
        values = np.interp(valid.asi8.astype(float), x, vc.to_numpy(dtype=float))
        return pd.Series(values, index=valid), True
    climo = climo_forecast_frame(obs, city, day)
    climo = climo[pd.to_datetime(climo["issued_at"], utc=True) < issued]
    if climo.empty:
        raise ValueError(f"no {shape_source} forecast and too few observations for a profile")
    series = pd.Series(
        climo["temp_f"].astype(float).to_numpy(),
        index=pd.DatetimeIndex(pd.to_datetime(climo["valid_at"], utc=True)),
    )
    return series.reindex(valid).interpolate(limit_direction="both"), False


def build_emos_forecasts(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    obs_source: str = "era5",
    shape_source: str = "vc",
    config: WalkConfig | None = None,
) -> EmosBuild:
    """Write the EMOS baseline for each day in the range that has guidance; idempotent."""
    frame = load_guidance_frame(conn, city, HISTORY_START, date_to)
    if frame.empty:
        raise ValueError(f"no wx.guidance rows for {city.key}: import the guidance first")
    walk = walk_forward(frame.drop(columns=["issued_at"]), date_from, date_to, config)
    pairs = pd.DataFrame(
        daily_pairs(conn, city, obs_source, HISTORY_START, date_to),
        columns=["date", "official", "observed"],
    )
    obs_rows = conn.execute(
        "SELECT ts, temp_f FROM wx.obs WHERE city = %s AND source = %s AND temp_f IS NOT NULL "
        "AND ts >= %s AND ts < %s ORDER BY ts",
        (
            city.key,
            obs_source,
            dt.datetime.combine(date_from - dt.timedelta(days=30), dt.time(), dt.UTC),
            dt.datetime.combine(date_to, dt.time(), dt.UTC),
        ),
    ).fetchall()
    conn.commit()
    obs = pd.DataFrame(obs_rows, columns=["ts", "temp_f"])
    obs["ts"] = pd.to_datetime(obs["ts"], utc=True)
    obs["temp_f"] = obs["temp_f"].astype(float)
    hourly: list[tuple[object, ...]] = []
    daily: list[tuple[object, ...]] = []
    skipped: list[str] = []
    from_vc = 0
    issued_by_day = {d: pd.Timestamp(v).to_pydatetime() for d, v in frame["issued_at"].items()}
    for day, mu in zip(walk["date"], walk["mu"].astype(float), strict=True):
        assert isinstance(day, dt.date)
        start, end = climate_day_window(city.timezone, day)
        guidance_at = issued_by_day[day]
        issued = max(start - dt.timedelta(minutes=1), guidance_at)
        offset = trailing_offset(pairs, day)
        if offset is None:
            skipped.append(f"{day}: fewer than 10 settled days of {obs_source} before it")
            continue
        try:
            shape, is_vc = _shape(conn, city, day, issued, obs, shape_source)
        except ValueError as exc:
            skipped.append(f"{day}: {exc}")
            continue
        from_vc += is_vc
        path = shifted_path(shape, start, end, mu - offset)
        hourly += [
            (city.key, EMOS_SOURCE, issued, ts.to_pydatetime(), round(float(v), 2))
            for ts, v in zip(pd.DatetimeIndex(path.index), path.to_numpy(dtype=float), strict=True)
        ]
        daily.append((city.key, EMOS_SOURCE, issued, day, round(mu, 2)))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (city, source, issued_at, valid_at) "
            "DO UPDATE SET temp_f = EXCLUDED.temp_f",
            hourly,
        )
        cur.executemany(
            "INSERT INTO wx.forecast_daily (city, source, issued_at, target_date, tmax_f) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (city, source, issued_at, target_date) "
            "DO UPDATE SET tmax_f = EXCLUDED.tmax_f",
            daily,
        )
    return EmosBuild(len(daily), from_vc, skipped, len(hourly))
