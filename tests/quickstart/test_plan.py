"""The main job's plan: settled days, a chronological 70/30 split, the sources it will use."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from kwx.quickstart import PlanError, make_plan, range_notes, settled_days
from kwx.registry import default_registry

Conn = psycopg.Connection[tuple[object, ...]]
CHICAGO = default_registry().by_key("chicago")
FIRST = dt.date(2024, 9, 1)


def _settled(conn: Conn, n_days: int) -> None:
    for i in range(n_days):
        day = FIRST + dt.timedelta(days=i)
        event = f"KXHIGHCHI-{day:%y%b%d}".upper()
        for code, kind, floor, cap in (("T70", "less", None, 70), ("T69", "greater", 69, None)):
            conn.execute(
                "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
                "strike_type, floor_strike, cap_strike, settled_tmax, metadata_source) "
                "VALUES (%s, %s, 'KXHIGHCHI', %s, %s, %s, %s, 75, 'api')",
                (f"{event}-{code}", event, day, kind, floor, cap),
            )
    # An unsettled day is not part of the plan.
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, metadata_source) VALUES "
        "('KXHIGHCHI-OPEN-T70', 'KXHIGHCHI-OPEN', 'KXHIGHCHI', %s, 'less', NULL, 70, 'api')",
        (FIRST + dt.timedelta(days=n_days),),
    )
    conn.commit()


def _weather(conn: Conn) -> None:
    for source, start, n in (("era5", dt.datetime(2023, 1, 1, tzinfo=dt.UTC), 1500),):
        for h in range(n):
            conn.execute(
                "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', %s, %s, 60)",
                (source, start + dt.timedelta(hours=h)),
            )
    issued = dt.datetime(2023, 2, 1, 12, tzinfo=dt.UTC)
    conn.execute(
        "INSERT INTO wx.forecast (city, source, issued_at, valid_at, temp_f) "
        "VALUES ('chicago', 'vc', %s, %s, 61)",
        (issued, issued + dt.timedelta(hours=3)),
    )
    conn.commit()


def test_split_is_chronological_and_fits_only_on_the_past(conn: Conn) -> None:
    _settled(conn, 20)
    _weather(conn)
    plan = make_plan(conn, CHICAGO)
    assert len(plan.train) == 14 and len(plan.test) == 6
    assert plan.train[-1] < plan.test[0]
    assert plan.days == [FIRST + dt.timedelta(days=i) for i in range(20)]
    assert plan.fit_to == plan.train[-1]  # weather parameters never see a test day
    assert plan.fit_from == dt.date(2023, 2, 1)  # where both observations and forecasts exist
    assert (plan.obs_source, plan.forecast_source) == ("era5", "vc")


def test_date_range_narrows_the_days(conn: Conn) -> None:
    _settled(conn, 20)
    got = settled_days(conn, CHICAGO, FIRST + dt.timedelta(days=5), FIRST + dt.timedelta(days=9))
    assert got == [FIRST + dt.timedelta(days=i) for i in range(5, 10)]


def test_what_is_missing_is_said(conn: Conn) -> None:
    with pytest.raises(PlanError, match="0 settled market day"):
        make_plan(conn, CHICAGO)
    _settled(conn, 20)
    with pytest.raises(PlanError, match="no weather observations"):
        make_plan(conn, CHICAGO)
    conn.execute(
        "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', 'era5', %s, 60)",
        (dt.datetime(2023, 1, 1, tzinfo=dt.UTC),),
    )
    conn.commit()
    with pytest.raises(PlanError, match="no weather forecasts"):
        make_plan(conn, CHICAGO, climo_fallback=False)
    # One observation is too little history to forecast from, even with the fallback.
    with pytest.raises(PlanError, match="too little observation history"):
        make_plan(conn, CHICAGO)


def test_without_forecasts_the_observations_make_one(conn: Conn) -> None:
    _settled(conn, 20)
    start = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    for h in range(24 * 90):
        conn.execute(
            "INSERT INTO wx.obs (city, source, ts, temp_f) VALUES ('chicago', 'metar', %s, %s)",
            (start + dt.timedelta(hours=h), 60 + h % 24),
        )
    conn.commit()
    plan = make_plan(conn, CHICAGO)
    assert (plan.obs_source, plan.forecast_source) == ("metar", "climo")
    assert plan.fit_from == dt.date(2024, 7, 22)
    issued = conn.execute(
        "SELECT min(issued_at), max(issued_at) FROM wx.forecast WHERE source = 'climo'"
    ).fetchone()
    assert issued is not None and isinstance(issued[1], dt.datetime)
    assert issued[1] < dt.datetime.combine(plan.days[-1], dt.time(), dt.UTC)


def test_a_range_past_the_data_is_said(conn: Conn) -> None:
    """`--to` past the last settled day used to run silently on less (issue 15)."""
    _settled(conn, 12)
    _weather(conn)
    last = FIRST + dt.timedelta(days=11)
    asked_to, asked_from = last + dt.timedelta(days=30), FIRST - dt.timedelta(days=5)
    plan = make_plan(conn, CHICAGO, asked_from, asked_to)
    notes = range_notes(plan, asked_from, asked_to)
    assert notes == [
        f"--to {asked_to} is past the data: the last settled chicago day in the store is {last}",
        f"--from {asked_from} is before the data: the first settled chicago day in the store "
        f"is {FIRST}",
    ]
    assert range_notes(plan, FIRST, last) == []
    assert range_notes(plan, None, None) == []
