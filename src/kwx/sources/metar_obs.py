"""METAR decoding for station observations, keeping the precision each group really has.

The settlement maximum is a whole-°F number, and the observations that bound it come in
three precisions (weather-sources.md §7): the body's whole °C (5-minute and most specials),
the remarks' ``T`` group in tenths of °C (hourly routine reports), and the 6-hour maximum
group ``1sTTT`` whose tenths of °C round-trip to the exact whole °F the ASOS measured. The
reading records which precision its temperature came from, so the measurement model can
treat a whole-°C value as the ±1 °F interval it is.

Decoding is the ``metar`` package's; this module pins the year and month (a METAR carries
only the day), insists on a station and a time, and turns every failure into
:class:`MetarParseError` with the raw text.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import pandas as pd
from metar import Metar
from metar.Datatypes import temperature

from kwx.registry import City

__all__ = [
    "OBS_FRAME_COLUMNS",
    "MetarParseError",
    "MetarReading",
    "c_to_f",
    "finish_obs_frame",
    "metar_obs_frame",
    "parse_metar",
    "parse_metar_collective",
    "relative_humidity",
    "split_collective",
]

OBS_FRAME_COLUMNS: Final = (
    "city",
    "source",
    "ts",
    "temp_f",
    "dewpoint_f",
    "rel_humidity",
    "wind_speed_mph",
    "wind_dir_deg",
    "temp_c",
    "max_temp_6h_f",
    "raw",
)

_T_GROUP_RE: Final = re.compile(r"\sRMK\s.*?\bT[01]\d{3}(?:[01]\d{3})?\b")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]+")
_HEADER_LINE_RE: Final = re.compile(
    r"^(?:\d{3}|[A-Z]{4}\d{0,2}\s+[A-Z]{4}\s+\d{6}(?:\s+[A-Z]{3})?|METAR|SPECI|[A-Z0-9]{4,6})\s*$"
)
# What every decodable report starts with: optional type and COR, station, DDHHMMZ.
_START_RE: Final = re.compile(
    r"^(?:(?:METAR|SPECI)\s+)?(?:COR\s+)?[A-Z][A-Z0-9]{3}\s+\d{6}Z(?:\s|$)"
)


class MetarParseError(ValueError):
    """A METAR that cannot be decoded; ``raw`` keeps the text for inspection."""

    def __init__(self, message: str, raw: str) -> None:
        self.raw = raw
        super().__init__(f"{message}: {raw!r}")


@dataclass(frozen=True, slots=True)
class MetarReading:
    """One decoded METAR/SPECI.

    ``temp_c`` is the T group's tenths when present (``temp_from_t_group``), else the body's
    whole degrees. ``max_temp_6h_f`` is the 6-hour maximum rounded to the whole °F it encodes.
    """

    station: str
    ts: dt.datetime
    temp_c: float | None
    temp_f: float | None
    dewpoint_f: float | None
    max_temp_6h_f: float | None
    wind_speed_mph: float | None
    wind_dir_deg: float | None
    raw: str
    dewpoint_c: float | None = None
    min_temp_6h_f: float | None = None
    max_temp_24h_f: float | None = None
    min_temp_24h_f: float | None = None
    temp_from_t_group: bool = False
    report_type: str = "METAR"
    decode_complete: bool = True


def c_to_f(value: float | None) -> float | None:
    """°C to °F, rounded to 1/100 so tenths-°C inputs give clean numbers (23.3 → 73.94)."""
    if value is None or math.isnan(value):
        return None
    return round(value * 9.0 / 5.0 + 32.0, 2)


def _whole_f(value: float | None) -> float | None:
    converted = c_to_f(value)
    return None if converted is None else float(math.floor(converted + 0.5))


def relative_humidity(temp_c: float | None, dewpoint_c: float | None) -> float | None:
    """Relative humidity in % from temperature and dew point (Magnus, Alduchov-Eskridge)."""
    if temp_c is None or dewpoint_c is None:
        return None
    a, b = 17.625, 243.04
    rh = 100.0 * math.exp(a * dewpoint_c / (b + dewpoint_c) - a * temp_c / (b + temp_c))
    return round(min(rh, 100.0), 1)


def _clean(raw: str) -> str:
    text = _CONTROL_RE.sub(" ", raw).strip()
    text = text.rstrip("=").strip()
    return " ".join(text.split())


def parse_metar(raw: str, *, year: int, month: int) -> MetarReading:
    """Decode one METAR/SPECI observed in ``year``-``month`` (UTC).

    Unknown remarks are tolerated (``decode_complete`` says whether the body decoded fully);
    a report without a readable station and time raises :class:`MetarParseError`.
    """
    code = _clean(raw)
    if not code:
        raise MetarParseError("empty METAR", raw)
    if not _START_RE.match(code):
        raise MetarParseError("does not start with a station and a DDHHMMZ time group", raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            decoded = Metar.Metar(code, month=month, year=year, strict=False)
    except Exception as exc:  # the package raises bare exceptions on odd input
        raise MetarParseError(f"undecodable METAR ({exc})", raw) from exc
    if decoded.station_id is None or decoded.time is None:
        raise MetarParseError("no station and time group", raw)

    temp_c = decoded.temp.value("C") if decoded.temp is not None else None
    dew_c = decoded.dewpt.value("C") if decoded.dewpt is not None else None
    speed = decoded.wind_speed.value("MPH") if decoded.wind_speed is not None else None
    direction = decoded.wind_dir.value() if decoded.wind_dir is not None else None
    if speed == 0.0:
        direction = None  # calm: a direction of 0 would read as "from the north"

    def group(value: temperature | None) -> float | None:
        return _whole_f(value.value("C")) if value is not None else None

    return MetarReading(
        station=decoded.station_id,
        ts=decoded.time.replace(tzinfo=dt.UTC),
        temp_c=round(temp_c, 1) if temp_c is not None else None,
        temp_f=c_to_f(temp_c),
        dewpoint_f=c_to_f(dew_c),
        max_temp_6h_f=group(decoded.max_temp_6hr),
        wind_speed_mph=round(speed, 2) if speed is not None else None,
        wind_dir_deg=direction,
        raw=raw.strip(),
        dewpoint_c=round(dew_c, 1) if dew_c is not None else None,
        min_temp_6h_f=group(decoded.min_temp_6hr),
        max_temp_24h_f=group(decoded.max_temp_24hr),
        min_temp_24h_f=group(decoded.min_temp_24hr),
        temp_from_t_group=temp_c is not None and bool(_T_GROUP_RE.search(" " + code)),
        report_type=decoded.type,
        decode_complete=decoded.decode_completed,
    )


def split_collective(text: str) -> list[str]:
    """Individual reports of a WMO METAR/SPECI bulletin (``=``-terminated, wrapped lines)."""
    text = text.replace("\r", "").replace("\x00", " ")
    kept: list[str] = []
    for line in text.split("\n"):
        stripped = _CONTROL_RE.sub(" ", line).rstrip()
        if not stripped.strip():
            continue
        if not stripped[0].isspace() and _HEADER_LINE_RE.match(stripped.strip()):
            continue
        kept.append(stripped.strip())
    joined = " ".join(kept)
    return [part.strip() for part in joined.split("=") if part.strip()]


def parse_metar_collective(
    text: str, *, year: int, month: int
) -> tuple[list[MetarReading], list[MetarParseError]]:
    """Decode every report of a bulletin; bad ones come back as errors, not exceptions."""
    readings: list[MetarReading] = []
    errors: list[MetarParseError] = []
    for raw in split_collective(text):
        try:
            readings.append(parse_metar(raw, year=year, month=month))
        except MetarParseError as exc:
            errors.append(exc)
    return readings, errors


def metar_obs_frame(
    readings: Iterable[MetarReading], city: City | str, source: str = "metar"
) -> pd.DataFrame:
    """Rows for the OBS writer, one per (city, source, ts); a later duplicate wins."""
    key = city if isinstance(city, str) else city.key
    rows = [
        {
            "city": key,
            "source": source,
            "ts": pd.Timestamp(r.ts),
            "temp_f": r.temp_f,
            "dewpoint_f": r.dewpoint_f,
            "rel_humidity": relative_humidity(r.temp_c, r.dewpoint_c),
            "wind_speed_mph": r.wind_speed_mph,
            "wind_dir_deg": r.wind_dir_deg,
            "temp_c": r.temp_c,
            "max_temp_6h_f": r.max_temp_6h_f,
            "raw": r.raw,
        }
        for r in readings
    ]
    return finish_obs_frame(pd.DataFrame(rows, columns=list(OBS_FRAME_COLUMNS)))


def finish_obs_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes every OBS frame shares; unique (city, source, ts)."""
    frame = frame.loc[:, list(OBS_FRAME_COLUMNS)].copy()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for col in OBS_FRAME_COLUMNS[3:10]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["raw"] = frame["raw"].astype("object")
    frame = frame.drop_duplicates(["city", "source", "ts"], keep="last")
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)
