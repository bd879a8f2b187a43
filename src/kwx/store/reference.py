"""Reference data the SQL needs from code: the city registry, mirrored into meta.city."""

from __future__ import annotations

import psycopg

from kwx.domain.climate_day import standard_offset
from kwx.registry import CityRegistry, default_registry


def sync_cities(
    conn: psycopg.Connection[tuple[object, ...]], registry: CityRegistry | None = None
) -> int:
    """Upsert every registry city (the climate-day views need each one's LST offset)."""
    registry = registry or default_registry()
    rows = [
        (
            c.key,
            c.series,
            c.station_icao,
            c.cli_product,
            c.timezone,
            int(standard_offset(c.timezone).total_seconds() // 60),
            c.lat,
            c.lon,
        )
        for c in registry
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO meta.city (key, series_ticker, station_icao, cli_product, timezone, "
            "lst_offset_minutes, lat, lon) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET series_ticker = excluded.series_ticker, "
            "station_icao = excluded.station_icao, cli_product = excluded.cli_product, "
            "timezone = excluded.timezone, lst_offset_minutes = excluded.lst_offset_minutes, "
            "lat = excluded.lat, lon = excluded.lon",
            rows,
        )
    return len(rows)
