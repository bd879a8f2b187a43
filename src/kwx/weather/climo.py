"""A forecast made from the station's own recent history, for when no forecast was fetched.

The weather model's baseline is a forecast timeline. Visual Crossing's historical forecasts need
a key; api.weather.gov keeps no archive. Without them, kwx still has the observations it
fetched, and the recent past is a fair forecast of the shape of tomorrow: for each climate day
D, a forecast "issued" at 12:00 UTC the day before gives, for every hour of D, the mean
temperature observed at that local hour over the preceding days. It only ever uses
observations from before its issue time, so it carries no look-ahead, and the engine's bias
correction by today's observations does the rest.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.registry import City

Conn = psycopg.Connection[tuple[object, ...]]
CLIMO_SOURCE = "climo"
WINDOW_DAYS = 21
MIN_HOURS = 24 * 5


def climo_forecast_frame(
    obs: pd.DataFrame, city: City, day: dt.date, *, window_days: int = WINDOW_DAYS
) -> pd.DataFrame:
    """The forecast for climate day ``day`` from ``obs`` (columns ts, temp_f), or empty.

    Rows: issued_at, valid_at (each hour of the climate day plus three either side), temp_f.
    """
    issued = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12), dt.UTC)
    past = obs[(obs["ts"] < issued) & (obs["ts"] >= issued - dt.timedelta(days=window_days))]
    if len(past) < MIN_HOURS:
        return pd.DataFrame(columns=["issued_at", "valid_at", "temp_f"])
    local_hour = pd.DatetimeIndex(past["ts"]).tz_convert(city.timezone).hour
    by_hour = past.groupby(local_hour)["temp_f"].mean().reindex(range(24))
    profile = by_hour.interpolate(limit_direction="both").to_numpy(dtype=float)
    start, end = climate_day_window(city.timezone, day)
    valid = pd.date_range(start - dt.timedelta(hours=3), end + dt.timedelta(hours=3), freq="1h")
    hours = valid.tz_convert(city.timezone).hour.to_numpy()
    return pd.DataFrame(
        {"issued_at": issued, "valid_at": valid, "temp_f": np.round(profile[hours], 1)}
    )


def build_climo_forecasts(
    conn: Conn, city: City, source: str, date_from: dt.date, date_to: dt.date
) -> int:
    """Write climatological forecasts for each climate day in the range; returns rows written.

    Idempotent: a day's forecast is replaced, never duplicated.
    """
    first = dt.datetime.combine(date_from, dt.time(), dt.UTC) - dt.timedelta(days=WINDOW_DAYS + 2)
    last = dt.datetime.combine(date_to, dt.time(), dt.UTC)
    rows = conn.execute(
        "SELECT ts, temp_f FROM wx.obs WHERE city = %s AND source = %s AND temp_f IS NOT NULL "
        "AND ts >= %s AND ts < %s ORDER BY ts",
        (city.key, source, first, last),
    ).fetchall()
    conn.commit()
    obs = pd.DataFrame(rows, columns=["ts", "temp_f"])
    if obs.empty:
        return 0
    obs["ts"] = pd.to_datetime(obs["ts"], utc=True)
    obs["temp_f"] = obs["temp_f"].astype(float)
    rows = []
    day = date_from
    while day <= date_to:
        frame = climo_forecast_frame(obs, city, day)
        rows += [
            (city.key, CLIMO_SOURCE, issued, valid, float(temp))
            for issued, valid, temp in frame.itertuples(index=False)
        ]
        day += dt.timedelta(days=1)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (city, source, issued_at, valid_at) "
            "DO UPDATE SET temp_f = EXCLUDED.temp_f",
            rows,
        )
    return len(rows)
