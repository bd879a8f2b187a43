"""The NWS climate day: midnight to midnight local *standard* time, all year.

Kalshi's daily-high markets settle on the NWS Daily Climate Report (CLI), whose day runs on
local standard time even while daylight saving time is in force (1 am to 1 am on the local
clock in summer). The window is therefore a fixed UTC interval for a given station, and a civil
``zoneinfo`` midnight would put the 00:00-00:59 daylight-time hour on the wrong day.

We still take the zone *name* (``America/Chicago``) rather than a hard-coded offset per city, so
that adding a city never means editing a table here: the standard offset is read off the tz
database once per zone.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["climate_date_of", "climate_day_window", "standard_offset"]

_DAY = dt.timedelta(days=1)
# Two probe instants half a year apart: in either hemisphere one of them falls outside DST.
# A fixed recent year keeps the answer stable; zones whose standard offset changed long ago
# (or changes in the future) are not something a daily-high market cares about.
_PROBES = (
    dt.datetime(2024, 1, 15, 12, tzinfo=dt.UTC),
    dt.datetime(2024, 7, 15, 12, tzinfo=dt.UTC),
)


@lru_cache(maxsize=64)
def standard_offset(tz_name: str) -> dt.timedelta:
    """Return the zone's standard (non-DST) UTC offset, e.g. -6 h for ``America/Chicago``.

    Derived from the tz database rather than a per-city table so that Phoenix (no DST) and any
    future city come out right without special cases. Raises ``ValueError`` for an unknown zone
    or one that is on DST at both probe dates (no such zone exists today).
    """
    try:
        zone = ZoneInfo(tz_name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError subclasses KeyError
        raise ValueError(f"unknown time zone {tz_name!r}") from exc
    for probe in _PROBES:
        local = probe.astimezone(zone)
        dst = local.dst()
        offset = local.utcoffset()
        if dst is not None and offset is not None and dst == dt.timedelta(0):
            return offset
    raise ValueError(f"time zone {tz_name!r} has no standard-time period to read an offset from")


def _standard_zone(tz_name: str) -> dt.timezone:
    return dt.timezone(standard_offset(tz_name))


def climate_day_window(tz_name: str, local_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return the UTC-aware ``[start, end)`` of the climate day ``local_date`` in ``tz_name``.

    The window is always exactly 24 hours (no 23/25 h days at DST changes), because the CLI
    ignores daylight time; e.g. Chicago 2024-07-04 is 2024-07-04T06:00Z to 2024-07-05T06:00Z.
    """
    if isinstance(local_date, dt.datetime):
        # A datetime is a date subclass; silently dropping its time would hide a caller bug.
        raise TypeError("climate_day_window takes a date, not a datetime")
    start_local = dt.datetime.combine(local_date, dt.time(0), tzinfo=_standard_zone(tz_name))
    start = start_local.astimezone(dt.UTC)
    return start, start + _DAY


def climate_date_of(tz_name: str, ts: dt.datetime) -> dt.date:
    """Return the climate day that the instant ``ts`` belongs to.

    Naive datetimes are rejected: guessing whether they are UTC or local is exactly the kind of
    off-by-one-hour mistake the climate day invites.
    """
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"climate_date_of needs a timezone-aware datetime, got naive {ts!r}")
    return ts.astimezone(_standard_zone(tz_name)).date()
