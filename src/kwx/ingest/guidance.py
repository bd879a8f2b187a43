"""Station guidance files → ``wx.guidance`` rows (one per city, model, issue time, target day).

Two file shapes are recognised by their columns (see ``kwx.sources.files``):

* **station-wide** (``station_id``, ``target_date_local``, ``asof_utc`` + model columns): one row
  per station and target day. MOS columns ``{gfs,nam}_<element>_<min|max|mean|median>`` are the
  run's values aggregated over the target local day, ``<m>_n_x_max`` being the MOS max
  temperature; gridded columns ``<m>_tmax_f`` are a model's Tmax, ``gefsatmos_tmp_spread_f`` the
  GEFS spread. ``actual_tmax_f`` is the outcome and is never stored as guidance.
* **peak-window, long** (``target_date``, ``model``, ``run_datetime_utc``,
  ``peak_window_max_f``): HRRR and NBM maxima over the afternoon peak window; the city comes
  from a ``station_id`` column when there is one, else from the file name (``peakmax_austin``).

Model vocabulary (``wx.guidance.model``), the same for files and live fetches:

=============  ======================================================================
``gfs_mos``    GFS MOS (MAV) max temperature, the ``X/N`` row
``nam_mos``    NAM MOS (MET) max temperature, the ``X/N`` row
``gfs_mex``    GFS extended MOS (MEX) max temperature, the ``X/N`` row
``nbs``        NBM short-range station bulletin (NBS), ``TXN`` row
``nbe``        NBM extended station bulletin (NBE), ``TXN`` row
``nbm``        NBM gridded Tmax at the station (max of hourly values)
``gfs``        GFS gridded Tmax (max of hourly values; runs cold)
``nam``        NAM gridded Tmax
``hrrr``       HRRR gridded Tmax
``rap``        RAP gridded Tmax
``gefs_mean``  GEFS ensemble-mean Tmax, ``spread_f`` = the ensemble spread
``hrrr_peak``  HRRR maximum over the afternoon peak window
``nbm_peak``   NBM maximum over the afternoon peak window
=============  ======================================================================

**Issue time.** ``issued_at`` is when the guidance could first be known, never earlier: a
file's nominal run time (MOS ``asof_utc`` is the 12Z run; ``run_datetime_utc``) plus the
product's usual publication delay (``PUBLICATION_LAG``), the nominal time being kept in
``extra.run_at``. GribStream's ``asof_utc`` already means "latest run available at that time",
so it is used as is. The delay costs a day-ahead forecast nothing (it is still hours before
the target day starts) and keeps a same-day consumer from reading a run before it existed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kwx.ingest.normalize import ImportContext
from kwx.registry import City, CityRegistry, UnknownCityError
from kwx.sources.files import BadInputError, FileKind, read_table
from kwx.sources.nbm_text import DailyMax
from kwx.store import writers
from kwx.store.writers import Batch

__all__ = [
    "GRIDDED_COLUMNS",
    "GUIDANCE_NORMALIZERS",
    "LIVE_MODELS",
    "MODELS",
    "MOS_PREFIXES",
    "PEAK_MODELS",
    "PUBLICATION_LAG",
    "guidance_frame",
    "maxima_frame",
    "normalize_guidance_peak",
    "normalize_guidance_station",
]

MODELS: tuple[str, ...] = (
    "gfs_mos",
    "nam_mos",
    "gfs_mex",
    "nbs",
    "nbe",
    "nbm",
    "gfs",
    "nam",
    "hrrr",
    "rap",
    "gefs_mean",
    "hrrr_peak",
    "nbm_peak",
)

# MOS aggregate columns by prefix; `<prefix>_n_x_max` is the model's max-temperature forecast.
MOS_PREFIXES: dict[str, str] = {"gfs": "gfs_mos", "nam": "nam_mos"}
# Gridded Tmax columns of the station-wide shape and the model each one is.
GRIDDED_COLUMNS: dict[str, str] = {
    "nbm_tmax_f": "nbm",
    "gfs_tmax_f": "gfs",
    "nam_tmax_f": "nam",
    "hrrr_tmax_f": "hrrr",
    "rap_tmax_f": "rap",
    "gefsatmosmean_tmax_f": "gefs_mean",
}
SPREAD_COLUMNS: dict[str, str] = {"gefsatmos_tmp_spread_f": "gefs_mean"}
PEAK_MODELS: dict[str, str] = {"hrrr": "hrrr_peak", "nbm": "nbm_peak"}

# From a run's nominal time to when its products are out (NCEP production schedules, rounded
# up): GFS MOS ~3.5 h, NAM MOS ~2.5 h, HRRR and NBM ~1-1.5 h after the cycle hour.
PUBLICATION_LAG: dict[str, pd.Timedelta] = {
    "gfs_mos": pd.Timedelta(hours=4),
    "nam_mos": pd.Timedelta(hours=3),
    "gfs_mex": pd.Timedelta(hours=5),
    "nbs": pd.Timedelta(hours=1),
    "nbe": pd.Timedelta(hours=2),
    "hrrr_peak": pd.Timedelta(hours=2),
    "nbm_peak": pd.Timedelta(hours=2),
}
# What the live jobs fetch from IEM's MOS archive for every registry station.
LIVE_MODELS: tuple[str, ...] = ("gfs_mos", "nam_mos", "gfs_mex", "nbs", "nbe")

TMAX_RANGE_F = (-80.0, 140.0)
SPREAD_RANGE_F = (0.0, 60.0)
OUTCOME_COLUMNS = frozenset({"actual_tmax_f"})
_KEY_COLUMNS = ("station_id", "target_date_local", "asof_utc")
GUIDANCE_COLUMNS = (
    "city",
    "station",
    "model",
    "issued_at",
    "target_date",
    "tmax_f",
    "spread_f",
    "source",
    "extra",
)


# ------------------------------------------------------------------------------ validation
def _first(mask: pd.Series[bool] | np.ndarray[Any, Any]) -> int | None:
    idx = np.flatnonzero(np.asarray(mask))
    return int(idx[0]) if idx.size else None


def _fail(source: str, frame: pd.DataFrame, pos: int, col: str, message: str) -> BadInputError:
    raw = frame[col].iloc[pos]
    return BadInputError(
        source, f"{message} (value {raw!r})", row=pos + 1, field=col, raw=repr(raw)
    )


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise BadInputError(source, "required column is missing", field=col)


def _utc(frame: pd.DataFrame, col: str, source: str) -> pd.Series[pd.Timestamp]:
    """A required timestamp column in UTC; naive values are read as UTC."""
    raw = frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    pos = _first(parsed.isna())
    if pos is not None:
        raise _fail(source, frame, pos, col, "not a valid timestamp")
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize("UTC")
    out: pd.Series[pd.Timestamp] = parsed.dt.tz_convert("UTC").dt.as_unit("us")
    return out


def _dates(frame: pd.DataFrame, col: str, source: str) -> pd.Series[Any]:
    """A required calendar-date column (date objects, ISO strings or midnight timestamps)."""
    raw = frame[col]
    parsed = pd.to_datetime(raw.astype("string"), errors="coerce", format="ISO8601")
    bad = parsed.isna() | (parsed.notna() & (parsed != parsed.dt.normalize()))
    pos = _first(bad)
    if pos is not None:
        raise _fail(source, frame, pos, col, "not a calendar date")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.date


def _numbers(
    frame: pd.DataFrame, col: str, source: str, lo: float, hi: float, what: str
) -> pd.Series[float]:
    """An optional numeric column: blanks are NaN, text or out-of-range values are refused."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    pos = _first(values.isna() & raw.notna())
    if pos is None:
        pos = _first(np.isinf(values))
    if pos is not None:
        raise _fail(source, frame, pos, col, f"not a valid {what}")
    pos = _first((values < lo) | (values > hi))
    if pos is not None:
        raise _fail(source, frame, pos, col, f"impossible {what}: outside {lo:g}..{hi:g}")
    return values


# MDL's code for a missing MOS value. A day aggregate that took one in is meaningless (the
# real KMIA file has a NAM day whose max reads 999 and mean 546), so every aggregate of that
# element on that day is dropped, not refused: the rest of the row is good data.
MOS_MISSING_CODE = 999.0
_MOS_COLUMN = re.compile(r"[a-z0-9]+_[a-z0-9_]+_(min|max|mean|median)")


def _without_missing_code(numbers: pd.DataFrame) -> pd.DataFrame:
    out = numbers.copy()
    elements: dict[str, list[str]] = {}
    for col in out.columns:
        elements.setdefault(str(col).rsplit("_", 1)[0], []).append(str(col))
    for cols in elements.values():
        hit = (out[cols] >= MOS_MISSING_CODE).any(axis=1).to_numpy()
        if hit.any():
            out.loc[hit, cols] = np.nan
    return out


def _no_repeats(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    pos = _first(frame.duplicated(columns).to_numpy())
    if pos is not None:
        raise _fail(
            source, frame, pos, columns[-1], f"the same ({', '.join(columns)}) appears twice"
        )


def _cities_from_stations(
    frame: pd.DataFrame, col: str, source: str, registry: CityRegistry
) -> tuple[pd.Series[str], pd.Series[str]]:
    """City key and settlement-station ICAO per row; an unknown station is refused."""
    by_value: dict[str, City] = {}
    values = frame[col].astype("string")
    pos = _first(values.isna())
    if pos is not None:
        raise _fail(source, frame, pos, col, "station is empty")
    for value in pd.unique(values):
        try:
            by_value[str(value)] = registry.resolve(str(value))
        except UnknownCityError as exc:
            pos = int(np.flatnonzero((values == value).to_numpy())[0])
            raise _fail(source, frame, pos, col, f"not a registry station: {exc}") from exc
    cities = values.map({v: c.key for v, c in by_value.items()}).astype(str)
    stations = values.map({v: c.station_icao for v, c in by_value.items()}).astype(str)
    return cities, stations


_PERIOD_SUFFIX = re.compile(r"_\d{4}(-\d{2}){0,2}$")


def _city_from_name(path: Path, registry: CityRegistry) -> City:
    """The city a per-city file is named after: ``peakmax_new_york_2024.parquet`` → new_york.

    The stem is tried whole, then without its leading words, so a product prefix is allowed.
    """
    stem = _PERIOD_SUFFIX.sub("", path.name.split(".")[0])
    words = stem.split("_")
    for start in range(len(words)):
        try:
            return registry.resolve("_".join(words[start:]))
        except UnknownCityError:
            continue
    raise BadInputError(
        str(path), f"cannot tell the city from the file name {path.name!r}: name a city key"
    )


# ------------------------------------------------------------------------------ rows
def _extra_json(
    frame: pd.DataFrame, columns: list[str], strip: str, run_at: pd.Series[Any]
) -> list[str]:
    """Per row, the product's other fields as compact JSON (blanks left out) plus run_at."""
    names = [c.removeprefix(strip) for c in columns]
    values = frame[columns].to_numpy(dtype="float64") if columns else None
    runs = [t.isoformat().replace("+00:00", "Z") for t in run_at]
    out: list[str] = []
    for i, run in enumerate(runs):
        doc: dict[str, object] = {"run_at": run}
        if values is not None:
            for name, v in zip(names, values[i], strict=True):
                if not math.isnan(v):
                    doc[name] = int(v) if v.is_integer() else round(float(v), 4)
        out.append(json.dumps(doc, separators=(",", ":")))
    return out


def guidance_frame(
    *,
    city: pd.Series[str] | str,
    station: pd.Series[str] | str,
    model: str,
    issued_at: pd.Series[pd.Timestamp],
    target_date: pd.Series[Any],
    tmax_f: pd.Series[float],
    spread_f: pd.Series[float] | float = np.nan,
    source: str,
    extra: list[str] | None = None,
) -> pd.DataFrame:
    """Rows in the writer's column order; days the product gave no Tmax for are left out."""
    if model not in MODELS:
        raise ValueError(f"unknown guidance model {model!r}; known: {', '.join(MODELS)}")
    out = pd.DataFrame(
        {
            "city": city,
            "station": station,
            "model": model,
            "issued_at": issued_at,
            "target_date": target_date,
            "tmax_f": tmax_f,
            "spread_f": spread_f,
            "source": source,
            "extra": extra if extra is not None else None,
        },
        index=issued_at.index,
    )
    return out.loc[out["tmax_f"].notna(), list(GUIDANCE_COLUMNS)].reset_index(drop=True)


def normalize_guidance_station(path: Path, ctx: ImportContext) -> list[Batch]:
    """The station-wide shape: MOS day aggregates and/or gridded model Tmax per target day."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    if frame.empty:
        return []
    _require(frame, _KEY_COLUMNS, source)
    registry: CityRegistry = ctx.registry
    cities, stations = _cities_from_stations(frame, "station_id", source, registry)
    targets = _dates(frame, "target_date_local", source)
    asof = _utc(frame, "asof_utc", source)
    _no_repeats(frame.assign(_c=cities.to_numpy()), ["_c", "asof_utc", "target_date_local"], source)

    known = set(_KEY_COLUMNS) | OUTCOME_COLUMNS | set(GRIDDED_COLUMNS) | set(SPREAD_COLUMNS)
    mos_cols = {
        p: [
            c for c in frame.columns if _MOS_COLUMN.fullmatch(str(c)) and str(c).startswith(p + "_")
        ]
        for p in MOS_PREFIXES
    }
    for cols in mos_cols.values():
        known |= set(cols)
    unknown = [c for c in frame.columns if str(c).endswith("_tmax_f") and c not in known]
    if unknown:
        raise BadInputError(
            source,
            f"a Tmax column of a model kwx does not know; known: {', '.join(GRIDDED_COLUMNS)}",
            field=str(unknown[0]),
        )
    label = f"file:{path.name}"
    parts: list[pd.DataFrame] = []
    for prefix, model in MOS_PREFIXES.items():
        cols = mos_cols[prefix]
        main = f"{prefix}_n_x_max"
        if not cols:
            continue
        if main not in frame.columns:
            raise BadInputError(
                source, f"{model} aggregates without the max temperature", field=main
            )
        numbers = _without_missing_code(
            pd.DataFrame({c: _numbers(frame, c, source, -1e6, 1e6, "number") for c in cols})
        )
        tmax = _numbers(numbers, main, source, *TMAX_RANGE_F, "temperature")
        extra_cols = [c for c in cols if c != main]
        parts.append(
            guidance_frame(
                city=cities,
                station=stations,
                model=model,
                issued_at=asof + PUBLICATION_LAG[model],
                target_date=targets,
                tmax_f=tmax,
                source=label,
                extra=_extra_json(numbers, extra_cols, prefix + "_", asof),
            )
        )
    spreads = {
        model: _numbers(frame, col, source, *SPREAD_RANGE_F, "spread")
        for col, model in SPREAD_COLUMNS.items()
        if col in frame.columns
    }
    for col, model in GRIDDED_COLUMNS.items():
        if col not in frame.columns:
            continue
        parts.append(
            guidance_frame(
                city=cities,
                station=stations,
                model=model,
                issued_at=asof,
                target_date=targets,
                tmax_f=_numbers(frame, col, source, *TMAX_RANGE_F, "temperature"),
                spread_f=spreads.get(model, np.nan),
                source=label,
                extra=_extra_json(frame, [], "", asof),
            )
        )
    if not parts:
        raise BadInputError(
            source,
            "no guidance columns: expected <gfs|nam>_n_x_max or one of "
            + ", ".join(GRIDDED_COLUMNS),
        )
    return [Batch(writers.GUIDANCE, pd.concat(parts, ignore_index=True))]


def normalize_guidance_peak(path: Path, ctx: ImportContext) -> list[Batch]:
    """The long peak-window shape: one row per (model, run, target day)."""
    source = str(path)
    frame = read_table(path).reset_index(drop=True)
    if frame.empty:
        return []
    _require(frame, ("target_date", "model", "run_datetime_utc", "peak_window_max_f"), source)
    registry: CityRegistry = ctx.registry
    if "station_id" in frame.columns:
        cities, stations = _cities_from_stations(frame, "station_id", source, registry)
        zones = cities.map({c.key: c.timezone for c in registry})
    else:
        city = _city_from_name(path, registry)
        cities = pd.Series(city.key, index=frame.index)
        stations = pd.Series(city.station_icao, index=frame.index)
        zones = pd.Series(city.timezone, index=frame.index)
    if "timezone" in frame.columns:
        pos = _first(frame["timezone"].astype("string").fillna("") != zones)
        if pos is not None:
            raise _fail(
                source, frame, pos, "timezone", f"not the station's zone ({zones.iloc[pos]})"
            )
    raw_models = frame["model"].astype("string").str.strip().str.lower()
    pos = _first(~raw_models.isin(list(PEAK_MODELS)).fillna(False).astype(bool))
    if pos is not None:
        raise _fail(
            source,
            frame,
            pos,
            "model",
            f"unknown peak-window model; known: {', '.join(PEAK_MODELS)}",
        )
    models = raw_models.map(PEAK_MODELS).astype(str)
    run_at = _utc(frame, "run_datetime_utc", source)
    targets = _dates(frame, "target_date", source)
    tmax = _numbers(frame, "peak_window_max_f", source, *TMAX_RANGE_F, "temperature")
    _no_repeats(
        frame.assign(_c=cities.to_numpy(), _m=models.to_numpy()),
        ["_c", "_m", "run_datetime_utc", "target_date"],
        source,
    )
    parts: list[pd.DataFrame] = []
    for model in PEAK_MODELS.values():
        rows = (models == model).to_numpy()
        if not rows.any():
            continue
        extra = _extra_json(frame.loc[rows], [], "", run_at[rows])
        parts.append(
            guidance_frame(
                city=cities[rows],
                station=stations[rows],
                model=model,
                issued_at=run_at[rows] + PUBLICATION_LAG[model],
                target_date=targets[rows],
                tmax_f=tmax[rows],
                source=f"file:{path.name}",
                extra=extra,
            )
        )
    return [Batch(writers.GUIDANCE, pd.concat(parts, ignore_index=True))]


# ------------------------------------------------------------------------------ live
def maxima_frame(maxima: Sequence[DailyMax], city: City, source: str) -> pd.DataFrame:
    """wx.guidance rows from fetched maxima (kwx.sources.mos / nbm_text).

    The issue time is when the product was received where the source says so (a bulletin's
    entry time at IEM), else the run time plus the product's publication delay. A run that
    repeats a (model, issue time, target day) keeps its last value.
    """
    if not maxima:
        return pd.DataFrame(columns=list(GUIDANCE_COLUMNS))
    bad = [m.model for m in maxima if m.model not in MODELS]
    if bad:
        raise ValueError(f"unknown guidance model {bad[0]!r}; known: {', '.join(MODELS)}")
    issued = [
        pd.Timestamp(m.received_at)
        if m.received_at is not None
        else pd.Timestamp(m.runtime) + PUBLICATION_LAG[m.model]
        for m in maxima
    ]
    out = pd.DataFrame(
        {
            "city": city.key,
            "station": city.station_icao,
            "model": [m.model for m in maxima],
            "issued_at": pd.to_datetime(issued, utc=True),
            "target_date": [m.target_date for m in maxima],
            "tmax_f": [m.tmax_f for m in maxima],
            "spread_f": [np.nan if m.spread_f is None else m.spread_f for m in maxima],
            "source": source,
            "extra": [
                json.dumps(
                    {
                        "run_at": m.runtime.isoformat().replace("+00:00", "Z"),
                        "valid_at": m.valid_at.isoformat().replace("+00:00", "Z"),
                    },
                    separators=(",", ":"),
                )
                for m in maxima
            ],
        }
    )
    return out.drop_duplicates(["model", "issued_at", "target_date"], keep="last").reset_index(
        drop=True
    )


GUIDANCE_NORMALIZERS: dict[FileKind, Callable[[Path, ImportContext], list[Batch]]] = {
    FileKind.GUIDANCE_STATION: normalize_guidance_station,
    FileKind.GUIDANCE_PEAK: normalize_guidance_peak,
}
