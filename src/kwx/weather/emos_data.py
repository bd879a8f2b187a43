"""The EMOS inputs from the store: guidance members as issued in time, and what settled.

For target climate day D, a member's value is the newest ``wx.guidance`` row of that model
issued at or before the deadline, the start of D's climate day (local standard midnight) plus
``lead_hours`` (negative: earlier). Guidance issued later is never seen, even when it exists in
the table: the day-ahead distribution is what could be known when the day began. ``y`` is the
official maximum from ``wx.settlement`` (the same source preference as the measurement model).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg

from kwx.domain.climate_day import climate_day_window
from kwx.registry import City
from kwx.weather.emos_walk import SPREAD_SUFFIX
from kwx.weather.measurement import SETTLEMENT_PREFERENCE

Conn = psycopg.Connection[tuple[object, ...]]


def day_deadlines(city: City, days: list[dt.date], lead_hours: float = 0.0) -> pd.Series:
    """target date → the latest issue time (UTC) a member may have to be used for that day."""
    offset = dt.timedelta(hours=lead_hours)
    return pd.Series(
        [climate_day_window(city.timezone, d)[0] + offset for d in days],
        index=pd.Index(days),
        dtype="datetime64[ns, UTC]",
    )


def load_guidance_frame(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    lead_hours: float = 0.0,
) -> pd.DataFrame:
    """Index: target date; columns: one per model (°F), ``<model>_spread`` where the model has
    an ensemble spread, ``y`` (official max, NaN if unsettled), ``issued_at`` (the newest issue
    time used that day)."""
    rows = conn.execute(
        "SELECT model, target_date, issued_at, tmax_f, spread_f FROM wx.guidance "
        "WHERE city = %s AND target_date BETWEEN %s AND %s AND tmax_f IS NOT NULL",
        (city.key, date_from, date_to),
    ).fetchall()
    settled = conn.execute(
        "SELECT DISTINCT ON (climate_date) climate_date, tmax_final FROM wx.settlement "
        "WHERE city = %s AND climate_date BETWEEN %s AND %s AND tmax_final IS NOT NULL "
        "ORDER BY climate_date, array_position(%s::text[], source)",
        (city.key, date_from, date_to, list(SETTLEMENT_PREFERENCE)),
    ).fetchall()
    conn.commit()
    raw = pd.DataFrame(rows, columns=["model", "target_date", "issued_at", "tmax_f", "spread_f"])
    if raw.empty:
        return pd.DataFrame(columns=["y", "issued_at"])
    raw["issued_at"] = pd.to_datetime(raw["issued_at"], utc=True)
    days = sorted(set(raw["target_date"]))
    deadline = day_deadlines(city, days, lead_hours)
    raw = raw[raw["issued_at"].to_numpy() <= deadline.loc[raw["target_date"]].to_numpy()]
    latest = raw.sort_values("issued_at").groupby(["target_date", "model"]).tail(1)
    wide = latest.pivot(index="target_date", columns="model", values="tmax_f").astype(float)
    spreads = latest[latest["spread_f"].notna()].pivot(
        index="target_date", columns="model", values="spread_f"
    )
    for model in spreads.columns:
        wide[f"{model}{SPREAD_SUFFIX}"] = spreads[model].astype(float).reindex(wide.index)
    wide.columns = [str(c) for c in wide.columns]
    y = pd.Series({d: float(str(v)) for d, v in settled}, dtype=float)
    wide["y"] = y.reindex(wide.index).to_numpy() if len(y) else np.nan
    wide["issued_at"] = latest.groupby("target_date")["issued_at"].max().reindex(wide.index)
    wide.index.name = "target_date"
    return wide.sort_index()
