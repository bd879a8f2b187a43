"""The main job's plan: which days a city can be modelled on, and the chronological split.

`kwx quickstart` fits everything on the first 70% of a city's settled market days and
backtests the rest. The split is by climate date, so nothing fitted has seen a test day; the
weather parameters are fitted on the observation and forecast history up to the last training
day only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from kwx.registry import City
from kwx.weather.climo import CLIMO_SOURCE, WINDOW_DAYS, build_climo_forecasts

Conn = psycopg.Connection[tuple[object, ...]]
TRAIN_SHARE = 0.7
MIN_DAYS = 10


@dataclass(frozen=True)
class Plan:
    """The days of one city and how they are used."""

    city: City
    train: list[dt.date]
    test: list[dt.date]
    fit_from: dt.date  # first day of the weather history the parameters are fitted on
    obs_source: str
    forecast_source: str

    @property
    def fit_to(self) -> dt.date:
        return self.train[-1]

    @property
    def days(self) -> list[dt.date]:
        return [*self.train, *self.test]


def range_notes(plan: Plan, date_from: dt.date | None, date_to: dt.date | None) -> list[str]:
    """What the asked range has that the data lacks: --to past the last settled day (or
    --from before the first) would otherwise silently run on less than was asked for."""
    notes = []
    if date_to is not None and plan.days[-1] < date_to:
        notes.append(
            f"--to {date_to} is past the data: the last settled {plan.city.key} day in the "
            f"store is {plan.days[-1]}"
        )
    if date_from is not None and plan.days[0] > date_from:
        notes.append(
            f"--from {date_from} is before the data: the first settled {plan.city.key} day "
            f"in the store is {plan.days[0]}"
        )
    return notes


class PlanError(ValueError):
    """The store lacks what the main job needs; the message says what to import or fetch."""


def settled_days(
    conn: Conn, city: City, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> list[dt.date]:
    """Climate dates with a settled market ladder for the city."""
    rows = conn.execute(
        "SELECT DISTINCT climate_date FROM kalshi.markets WHERE series_ticker = %s "
        "AND settled_tmax IS NOT NULL AND climate_date IS NOT NULL "
        "AND (%s::date IS NULL OR climate_date >= %s::date) "
        "AND (%s::date IS NULL OR climate_date <= %s::date) ORDER BY 1",
        (city.series, date_from, date_from, date_to, date_to),
    ).fetchall()
    conn.commit()
    return [r[0] for r in rows if isinstance(r[0], dt.date)]


def _best_source(conn: Conn, sql: str, params: tuple[object, ...]) -> tuple[str, dt.date] | None:
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    if row is None or row[0] is None:
        return None
    first = row[1]
    assert isinstance(first, dt.datetime)
    return str(row[0]), first.date()


def make_plan(
    conn: Conn,
    city: City,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    *,
    train_share: float = TRAIN_SHARE,
    climo_fallback: bool = True,
) -> Plan:
    """Days with settled markets, split chronologically; the best observation and forecast
    sources the store holds for the city. Without any forecast history, and with
    ``climo_fallback``, climatological forecasts are built from the observations first."""
    days = settled_days(conn, city, date_from, date_to)
    if len(days) < MIN_DAYS:
        raise PlanError(
            f"{city.key}: {len(days)} settled market day(s) in the store, need at least "
            f"{MIN_DAYS}; import data (--from-files) or widen --from/--to"
        )
    obs = _best_source(
        conn,
        "SELECT o.source, min(o.ts) FROM wx.obs o JOIN meta.obs_source_rank r USING (source) "
        "WHERE o.city = %s AND o.ts < %s GROUP BY o.source, r.rank ORDER BY count(*) > 1000 "
        "DESC, r.rank LIMIT 1",
        (city.key, dt.datetime.combine(days[-1], dt.time(), dt.UTC)),
    )
    if obs is None:
        raise PlanError(f"{city.key}: no weather observations in the store")
    forecast = _best_source(
        conn,
        "SELECT source, min(valid_at) FROM wx.forecast WHERE city = %s GROUP BY source "
        "ORDER BY source = 'climo', count(*) DESC LIMIT 1",
        (city.key,),
    )
    if forecast is None and climo_fallback:
        # No forecast history (Visual Crossing needs a key, NWS keeps no archive): forecast
        # from the station's own recent past instead.
        built = build_climo_forecasts(conn, city, obs[0], obs[1], days[-1])
        if built:
            forecast = (CLIMO_SOURCE, obs[1] + dt.timedelta(days=WINDOW_DAYS))
    if forecast is None:
        raise PlanError(
            f"{city.key}: no weather forecasts in the store and too little observation "
            "history to forecast from; the weather model needs a forecast history (Visual "
            "Crossing: set VC_API_KEY and run kwx ingest backfill --source vc, or import "
            "../shared/data)"
        )
    n_train = max(1, min(len(days) - 1, round(len(days) * train_share)))
    return Plan(
        city=city,
        train=days[:n_train],
        test=days[n_train:],
        fit_from=max(obs[1], forecast[1]),
        obs_source=obs[0],
        forecast_source=forecast[0],
    )
