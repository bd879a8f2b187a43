"""Fill the weather replay server from the store: observations and climate reports of a city.

What the IEM and api.weather.gov clients will be served, as of the simulated clock:

* ``wx.obs`` station feeds by source: ``asos1min`` → IEM one-minute CSV; ``metar`` → the IEM
  METAR archive (raw text) and api.weather.gov observations (unless ``nws`` rows exist);
  ``nws`` → api.weather.gov observations.
* When the store holds no station observations for the window (offline, the usual case: see
  ../shared/data/README), the best proxy series (ERA5 at the city centre) is served on the
  one-minute and api.weather.gov endpoints instead, at its own timestamps, and the summary
  says so. It is a proxy, not the settlement station.
* ``wx.product`` CLI texts verbatim, issued at their ``issued_at``.
* ``wx.guidance`` station MOS and NBM maxima (the models IEM's MOS archive serves) as MOS CSV
  rows of their run, each served from its ``issued_at``; a row without its run time (or valid
  time: file imports have none, 00Z after the target day is used, local afternoon or evening
  anywhere in the registry) is rebuilt from what is stored.
* A climate day with no stored CLI but a stored settlement (``wx.settlement``) gets a final CLI
  written in the real layout, carrying that maximum and issued at ``first_published_at``, or,
  when that is unknown, 90 minutes after the climate day ends (local standard midnight).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from kwx.domain.climate_day import climate_day_window, standard_offset
from kwx.registry import City
from kwx.sim.weather_server import WeatherReplayServer
from kwx.sources.mos import IEM_MODELS

__all__ = ["STATION_SOURCES", "WeatherSummary", "load_weather", "synthetic_cli"]

STATION_SOURCES = ("asos1min", "metar", "nws")
SETTLEMENT_PREFERENCE = ("official", "cli", "iem", "acis", "ncei")
CLI_DELAY = dt.timedelta(minutes=90)
_ZONE_NAMES = {-5: "EST", -6: "CST", -7: "MST", -8: "PST", -9: "AKST", -10: "HST", -4: "AST"}
_MPH_PER_KNOT = 1.150779


@dataclass
class WeatherSummary:
    """What was loaded, for the start-up banner."""

    observations: dict[str, int] = field(default_factory=dict)
    proxy: str | None = None
    cli_stored: int = 0
    cli_synthesized: int = 0
    guidance: int = 0

    def describe(self) -> str:
        obs = ", ".join(f"{k} {v}" for k, v in sorted(self.observations.items())) or "none"
        text = f"observations: {obs}"
        if self.proxy:
            text += f" (no station data stored: serving the {self.proxy} proxy as the station)"
        return text + (
            f"; CLI reports: {self.cli_stored} stored, {self.cli_synthesized} written from "
            f"wx.settlement; station guidance: {self.guidance} MOS/NBM maxima"
        )


def _f(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if math.isnan(out) else out


def _c(temp_f: float | None) -> float | None:
    return None if temp_f is None else round((temp_f - 32.0) * 5.0 / 9.0, 1)


def load_weather(
    conn: psycopg.Connection[Any],
    server: WeatherReplayServer,
    city: City,
    start: dt.datetime,
    end: dt.datetime,
) -> WeatherSummary:
    """Load observations and CLI reports of ``city`` for [start − 2 days, end + 2 days]."""
    lo, hi = start - dt.timedelta(days=2), end + dt.timedelta(days=2)
    summary = WeatherSummary()
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT source, ts, temp_f, dewpoint_f, rel_humidity, wind_speed_mph, wind_dir_deg, "
            "temp_c, raw FROM wx.obs WHERE city = %s AND ts BETWEEN %s AND %s ORDER BY ts",
            [city.key, lo, hi],
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT product_id, pil, issued_at, climate_date, text FROM wx.product "
            "WHERE pil = %s AND issued_at BETWEEN %s AND %s ORDER BY issued_at",
            [city.cli_product, lo, hi + dt.timedelta(days=5)],
        )
        products = cur.fetchall()
        cur.execute(
            "SELECT climate_date, source, tmax_first, tmax_final, first_published_at "
            "FROM wx.settlement WHERE city = %s AND climate_date BETWEEN %s AND %s",
            [city.key, lo.date(), hi.date()],
        )
        settlements = cur.fetchall()
        cur.execute(
            "SELECT model, issued_at, target_date, tmax_f, spread_f, extra->>'run_at' AS run_at, "
            "extra->>'valid_at' AS valid_at FROM wx.guidance WHERE city = %s "
            "AND target_date BETWEEN %s AND %s AND model = ANY(%s) ORDER BY issued_at",
            [city.key, lo.date(), hi.date(), list(IEM_MODELS)],
        )
        guidance = cur.fetchall()

    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(str(r["source"]), []).append(r)
    station = [s for s in STATION_SOURCES if s in by_source]
    proxy = None
    if not station and by_source:
        proxy = sorted(by_source)[0]
        summary.proxy = proxy
    for source in [*station, *([proxy] if proxy else [])]:
        summary.observations[source] = len(by_source[source])
        for r in by_source[source]:
            temp_f = _f(r["temp_f"])
            if source in ("asos1min", proxy):
                wind = _f(r["wind_speed_mph"])
                server.add_asos1min(
                    city.iem_station,
                    r["ts"],
                    {
                        "tmpf": temp_f,
                        "dwpf": _f(r["dewpoint_f"]),
                        "sknt": None if wind is None else wind / _MPH_PER_KNOT,
                        "drct": _f(r["wind_dir_deg"]),
                    },
                )
            if source == "metar" and r["raw"]:
                server.add_metar(city.iem_station, r["ts"], str(r["raw"]), tmpf=temp_f)
            if source == "nws" or (source == "metar" and "nws" not in by_source) or source == proxy:
                temp_c = _f(r["temp_c"])
                wind_mph = _f(r["wind_speed_mph"])
                server.add_observation(
                    city.station_icao,
                    r["ts"],
                    raw_message=str(r["raw"]) if source != proxy and r["raw"] else None,
                    temp_c=temp_c if temp_c is not None else _c(temp_f),
                    dewpoint_c=_c(_f(r["dewpoint_f"])),
                    rel_humidity=_f(r["rel_humidity"]),
                    wind_dir_deg=_f(r["wind_dir_deg"]),
                    wind_speed_kmh=None if wind_mph is None else wind_mph * 1.609344,
                )

    summary.guidance = _load_guidance(server, city, guidance)
    covered: set[dt.date] = set()
    for p in products:
        server.add_product(
            str(p["product_id"]), pil=str(p["pil"]), issued_at=p["issued_at"], text=str(p["text"])
        )
        summary.cli_stored += 1
        if p["climate_date"] is not None:
            covered.add(p["climate_date"])
    best: dict[dt.date, dict[str, Any]] = {}
    for s in settlements:
        rank = (
            SETTLEMENT_PREFERENCE.index(s["source"])
            if s["source"] in SETTLEMENT_PREFERENCE
            else len(SETTLEMENT_PREFERENCE)
        )
        day = s["climate_date"]
        if day not in best or rank < best[day]["rank"]:
            best[day] = {**s, "rank": rank}
    for day, s in sorted(best.items()):
        if day in covered:
            continue
        issued = s["first_published_at"] or climate_day_window(city.timezone, day)[1] + CLI_DELAY
        text = synthetic_cli(city, day, int(s["tmax_first"]), issued)
        server.add_product(
            f"{issued:%Y%m%d%H%M}-SIM-{city.cli_product}",
            pil=city.cli_product,
            issued_at=issued,
            text=text,
            cccc="KSIM",
            wmo="CDUS40",
        )
        summary.cli_synthesized += 1
    return summary


def _load_guidance(server: WeatherReplayServer, city: City, rows: list[dict[str, Any]]) -> int:
    """wx.guidance maxima back into IEM MOS CSV rows, each visible from its issue time."""
    loaded = 0
    for r in rows:
        if r["run_at"] is None:
            continue
        runtime = dt.datetime.fromisoformat(str(r["run_at"]).replace("Z", "+00:00"))
        valid = (
            dt.datetime.fromisoformat(str(r["valid_at"]).replace("Z", "+00:00"))
            if r["valid_at"]
            else dt.datetime.combine(r["target_date"] + dt.timedelta(days=1), dt.time(), dt.UTC)
        )
        code, column = IEM_MODELS[str(r["model"])]
        spread = _f(r["spread_f"])
        body = (
            f"runtime,ftime,model,station,{column},xnd\n"
            f"{runtime:%Y-%m-%d %H:%M:%S},{valid:%Y-%m-%d %H:%M:%S},{code},{city.station_icao},"
            f"{float(r['tmax_f']):.1f},{'' if spread is None else f'{spread:.1f}'}\n"
        )
        server.add_mos_csv(body, delay=r["issued_at"] - runtime)
        loaded += 1
    return loaded


def synthetic_cli(city: City, day: dt.date, tmax: int, issued_at: dt.datetime) -> str:
    """A final CLI (the ``YESTERDAY`` block of the next morning) in the real layout."""
    hours = int(standard_offset(city.timezone).total_seconds() // 3600)
    zone = _ZONE_NAMES.get(hours, "UTC")
    local = issued_at.astimezone(dt.timezone(dt.timedelta(hours=hours)))
    utc = issued_at.astimezone(dt.UTC)
    clock = f"{local.hour % 12 or 12}{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    name = city.name.upper()
    return "\n".join(
        [
            "000",
            f"CDUS40 KSIM {utc:%d%H%M}",
            city.cli_product,
            "",
            "CLIMATE REPORT",
            f"NATIONAL WEATHER SERVICE {name} (SIMULATOR REPLAY OF A STORED VALUE)",
            f"{clock} {zone} {local:%a %b} {local.day} {local.year}".upper(),
            "",
            "...................................",
            "",
            f"...THE {name} CLIMATE SUMMARY FOR {day:%B} {day.day} {day.year}...".upper(),
            "",
            "WEATHER ITEM   OBSERVED TIME   RECORD YEAR NORMAL DEPARTURE LAST",
            "                VALUE   (LST)  VALUE       VALUE  FROM      YEAR",
            "..................................................................",
            "TEMPERATURE (F)",
            " YESTERDAY",
            f"  MAXIMUM        {tmax:3d}    MM",
            "  MINIMUM         MM    MM",
            "..................................................................",
            "",
            "$$",
            "",
        ]
    )
