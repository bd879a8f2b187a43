"""Which days `kwx evaluate` scores and which days each fit may see.

Why a plan of its own: the evaluation's whole worth is that no fit sees a scored day. For a
scored range [from, to] every fit — the weather parameters, the pool, the classifiers — ends
on ``from − 2``: the official high of ``from − 1`` is published only on the morning of
``from``, so even that day is not known when the first scored day opens. Inside the range
the pool is refitted fold by fold on an expanding window with the same gap (walk-forward).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg

from kwx.quickstart import PlanError, make_plan, settled_days
from kwx.registry import City, CityRegistry

Conn = psycopg.Connection[tuple[object, ...]]

#: Days between the last fitted day and the first scored one (see the module docstring).
GAP_DAYS = 2
#: The longest weather history one fit uses (18 months: every season once, recent regimes).
WEATHER_FIT_DAYS = 548
#: Settled market days before ``from`` the pool and the classifiers train on at most.
TRAIN_DAYS = 180
#: Fewer settled training days than this and the city is skipped with the reason.
MIN_TRAIN_DAYS = 20
#: Fewer weather days than this before ``from`` and the weather model cannot be fitted.
MIN_WEATHER_DAYS = 60


@dataclass(frozen=True)
class CityPlan:
    """One city's evaluation: the scored days and the days each fit may use."""

    city: City
    scored: list[dt.date]
    train: list[dt.date]
    weather_from: dt.date
    weather_to: dt.date
    obs_source: str
    forecast_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def fit_to(self) -> dt.date:
        """The last day any fit may see."""
        return self.scored[0] - dt.timedelta(days=GAP_DAYS)

    @property
    def edge_from(self) -> dt.date:
        """The first day whose p_fused is walk-forward inside the training days: the pool's
        first fold trains on the half before it, the edge cells are measured from it on."""
        return self.train[len(self.train) // 2]

    @property
    def run_days(self) -> list[dt.date]:
        """Every day the weather model must be run on: the training days and the scored."""
        return [*self.train, *self.scored]


@dataclass(frozen=True)
class Skipped:
    """A city the range cannot evaluate, and why."""

    city: City
    reason: str


def plan_city(
    conn: Conn,
    city: City,
    date_from: dt.date,
    date_to: dt.date,
    *,
    train_days: int = TRAIN_DAYS,
    weather_fit_days: int = WEATHER_FIT_DAYS,
) -> CityPlan:
    """The plan for one city, or PlanError saying what the store lacks."""
    scored = settled_days(conn, city, date_from, date_to)
    if not scored:
        raise PlanError(f"{city.key}: no settled market days in {date_from} → {date_to}")
    fit_to = scored[0] - dt.timedelta(days=GAP_DAYS)
    train = settled_days(conn, city, fit_to - dt.timedelta(days=train_days - 1), fit_to)
    if len(train) < MIN_TRAIN_DAYS:
        raise PlanError(
            f"{city.key}: {len(train)} settled market day(s) in the {train_days} days before "
            f"{scored[0]} (need {MIN_TRAIN_DAYS} to fit the pool and the classifiers without "
            "seeing a scored day); start --from later or import earlier markets"
        )
    # Sources: the ones the main job would pick for the whole range (no values are read).
    sources = make_plan(conn, city, None, date_to, train_share=0.5)
    weather_from = max(sources.fit_from, fit_to - dt.timedelta(days=weather_fit_days - 1))
    if (fit_to - weather_from).days + 1 < MIN_WEATHER_DAYS:
        raise PlanError(
            f"{city.key}: weather history before {scored[0]} starts {sources.fit_from}, "
            f"fewer than {MIN_WEATHER_DAYS} days to fit the weather model on"
        )
    notes = []
    if sources.obs_source == "era5":
        notes.append(
            "intraday observations: ERA5 hourly at the city centre, a proxy, not the "
            "settlement station"
        )
    return CityPlan(
        city=city,
        scored=scored,
        train=train,
        weather_from=weather_from,
        weather_to=fit_to,
        obs_source=sources.obs_source,
        forecast_source=sources.forecast_source,
        notes=notes,
    )


def plan_all(
    conn: Conn,
    registry: CityRegistry,
    date_from: dt.date,
    date_to: dt.date,
    cities: list[City] | None = None,
    *,
    train_days: int = TRAIN_DAYS,
    weather_fit_days: int = WEATHER_FIT_DAYS,
) -> tuple[list[CityPlan], list[Skipped]]:
    """Plans for the given cities, or for every registry city with settled markets in the
    range; cities that cannot be evaluated come back with the reason."""
    if cities is None:
        cities = [c for c in registry if settled_days(conn, c, date_from, date_to)]
    plans: list[CityPlan] = []
    skipped: list[Skipped] = []
    for city in cities:
        try:
            plans.append(
                plan_city(
                    conn,
                    city,
                    date_from,
                    date_to,
                    train_days=train_days,
                    weather_fit_days=weather_fit_days,
                )
            )
        except PlanError as exc:
            skipped.append(Skipped(city, str(exc)))
    return plans, skipped
