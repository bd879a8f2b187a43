"""Climate-day windows: fixed local-standard-time days, including across DST changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.domain.climate_day import climate_date_of, climate_day_window, standard_offset

ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
]
HOUR = dt.timedelta(hours=1)
MICRO = dt.timedelta(microseconds=1)

zones = st.sampled_from(ZONES)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2037, 12, 31))


@pytest.mark.parametrize(
    ("tz", "hours"),
    [
        ("America/New_York", -5),
        ("America/Chicago", -6),
        ("America/Denver", -7),
        ("America/Phoenix", -7),
        ("America/Los_Angeles", -8),
        ("UTC", 0),
        ("Australia/Sydney", 10),  # southern hemisphere: DST is in January
    ],
)
def test_standard_offset(tz: str, hours: int) -> None:
    assert standard_offset(tz) == dt.timedelta(hours=hours)


def test_standard_offset_unknown_zone() -> None:
    with pytest.raises(ValueError, match="Nowhere/Special"):
        standard_offset("Nowhere/Special")


@pytest.mark.parametrize(
    ("tz", "day", "start_utc"),
    [
        ("America/Chicago", dt.date(2024, 7, 4), dt.datetime(2024, 7, 4, 6, tzinfo=dt.UTC)),
        ("America/Chicago", dt.date(2024, 1, 4), dt.datetime(2024, 1, 4, 6, tzinfo=dt.UTC)),
        ("America/New_York", dt.date(2024, 8, 15), dt.datetime(2024, 8, 15, 5, tzinfo=dt.UTC)),
        ("America/Denver", dt.date(2024, 12, 1), dt.datetime(2024, 12, 1, 7, tzinfo=dt.UTC)),
        ("America/Phoenix", dt.date(2024, 7, 4), dt.datetime(2024, 7, 4, 7, tzinfo=dt.UTC)),
        ("America/Los_Angeles", dt.date(2024, 7, 4), dt.datetime(2024, 7, 4, 8, tzinfo=dt.UTC)),
    ],
)
def test_window_examples(tz: str, day: dt.date, start_utc: dt.datetime) -> None:
    assert climate_day_window(tz, day) == (start_utc, start_utc + dt.timedelta(days=1))


def test_window_rejects_datetime() -> None:
    with pytest.raises(TypeError):
        climate_day_window("America/Chicago", dt.datetime(2024, 7, 4, 12))


def test_warm_hour_after_local_midnight_belongs_to_previous_day() -> None:
    # 00:30 CDT on 5 July is 23:30 CST on 4 July: it counts toward the 4 July high.
    ts = dt.datetime(2024, 7, 5, 0, 30, tzinfo=ZoneInfo("America/Chicago"))
    assert climate_date_of("America/Chicago", ts) == dt.date(2024, 7, 4)
    # ...whereas in Phoenix (no DST) local midnight is the boundary all year.
    ts_phx = dt.datetime(2024, 7, 5, 0, 30, tzinfo=ZoneInfo("America/Phoenix"))
    assert climate_date_of("America/Phoenix", ts_phx) == dt.date(2024, 7, 5)


def test_climate_date_of_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        climate_date_of("America/Chicago", dt.datetime(2024, 7, 4, 12))


@given(zones, dates)
def test_window_is_24h_utc(tz: str, day: dt.date) -> None:
    start, end = climate_day_window(tz, day)
    assert start.utcoffset() == dt.timedelta(0)
    assert end - start == dt.timedelta(days=1)


@given(zones, dates)
def test_consecutive_days_tile(tz: str, day: dt.date) -> None:
    _, end = climate_day_window(tz, day)
    next_start, _ = climate_day_window(tz, day + dt.timedelta(days=1))
    assert end == next_start


@given(zones, dates)
def test_window_edges_map_back(tz: str, day: dt.date) -> None:
    start, end = climate_day_window(tz, day)
    assert climate_date_of(tz, start) == day
    assert climate_date_of(tz, end - MICRO) == day
    assert climate_date_of(tz, end) == day + dt.timedelta(days=1)
    assert climate_date_of(tz, start - MICRO) == day - dt.timedelta(days=1)


@given(zones, dates)
def test_window_starts_at_standard_midnight_on_local_clock(tz: str, day: dt.date) -> None:
    start, _ = climate_day_window(tz, day)
    local = start.astimezone(ZoneInfo(tz))
    assert local.date() == day
    on_dst = local.dst() != dt.timedelta(0)
    assert local.time() == (dt.time(1) if on_dst else dt.time(0))
    if tz == "America/Phoenix":
        assert local.time() == dt.time(0)


@given(
    zones,
    st.datetimes(
        min_value=dt.datetime(2000, 1, 2),
        max_value=dt.datetime(2037, 12, 30),
        timezones=st.just(dt.UTC),
    ),
)
def test_instant_lies_in_its_days_window(tz: str, ts: dt.datetime) -> None:
    start, end = climate_day_window(tz, climate_date_of(tz, ts))
    assert start <= ts < end


def _dst_change_dates(tz: str, year: int) -> list[dt.date]:
    """Dates on which the zone's civil UTC offset at local noon differs from the day before."""
    zone = ZoneInfo(tz)
    changes = []
    day = dt.date(year, 1, 1)
    prev = dt.datetime.combine(day, dt.time(12), tzinfo=zone).utcoffset()
    while day.year == year:
        day += dt.timedelta(days=1)
        offset = dt.datetime.combine(day, dt.time(12), tzinfo=zone).utcoffset()
        if offset != prev:
            changes.append(day)
        prev = offset
    return changes


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("year", [2007, 2023, 2024, 2026])
def test_dst_transition_days_are_24h(tz: str, year: int) -> None:
    changes = _dst_change_dates(tz, year)
    assert len(changes) == (0 if tz == "America/Phoenix" else 2)
    for day in changes:
        for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)):
            start, end = climate_day_window(tz, d)
            assert end - start == dt.timedelta(days=1)
            assert start.astimezone(dt.timezone(standard_offset(tz))).time() == dt.time(0)


def test_chicago_2024_transitions_exact() -> None:
    tz = "America/Chicago"
    zone = ZoneInfo(tz)
    # Spring forward happens at 02:00 local, after the climate day has begun at 00:00 CST.
    start, end = climate_day_window(tz, dt.date(2024, 3, 10))
    assert start == dt.datetime(2024, 3, 10, 6, tzinfo=dt.UTC)
    assert start.astimezone(zone).time() == dt.time(0)
    assert end.astimezone(zone) == dt.datetime(2024, 3, 11, 1, tzinfo=zone)
    # Fall back: the day starts 01:00 CDT and ends 00:00 CST; the civil day has 25 hours.
    start, end = climate_day_window(tz, dt.date(2024, 11, 3))
    assert start == dt.datetime(2024, 11, 3, 6, tzinfo=dt.UTC)
    assert start.astimezone(zone).time() == dt.time(1)
    assert end.astimezone(zone).time() == dt.time(0)
    assert end - start == 24 * HOUR
