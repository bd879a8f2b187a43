"""wx.guidance rows built from the shared guidance files, in the table's real shape.

The importer for these files belongs to the guidance branch; until it lands, the EMOS tests
and the development store need rows shaped like its output (one per city, model, issue time
and target date). The model names follow that branch's: ``gfs_mos``/``nam_mos`` (station MOS
max), ``gfs``, ``nam``, ``hrrr``, ``rap``, ``nbm``, ``gefs_mean`` (+ ``spread_f``), and the
peak-window maxima ``hrrr_peak``/``nbm_peak``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import psycopg

GUIDANCE_COLUMNS = (
    "city",
    "station",
    "model",
    "issued_at",
    "target_date",
    "tmax_f",
    "spread_f",
    "source",
)
_KNYC = {
    "gfs_tmax_f": "gfs",
    "nam_tmax_f": "nam",
    "gefsatmosmean_tmax_f": "gefs_mean",
    "rap_tmax_f": "rap",
    "hrrr_tmax_f": "hrrr",
    "nbm_tmax_f": "nbm",
}


def guidance_frame_from_files(root: Path, city: str) -> pd.DataFrame:
    """Long rows for one city (chicago, miami, new_york, austin) from the shared files."""
    parts: list[pd.DataFrame] = []
    mos = {"chicago": ("mos_kmdw.parquet", "KMDW"), "miami": ("mos_kmia.parquet", "KMIA")}
    if city in mos:
        name, station = mos[city]
        raw = pd.read_parquet(root / name)
        for prefix in ("gfs", "nam"):
            parts.append(
                pd.DataFrame(
                    {
                        "station": station,
                        "model": f"{prefix}_mos",
                        "issued_at": pd.to_datetime(raw["asof_utc"], utc=True),
                        "target_date": pd.to_datetime(raw["target_date_local"]).dt.date,
                        "tmax_f": raw[f"{prefix}_n_x_max"].astype(float),
                        "spread_f": float("nan"),
                        "source": name,
                    }
                )
            )
    if city == "new_york":
        raw = pd.read_csv(root / "gribstream_knyc.csv")
        for col, model in _KNYC.items():
            parts.append(
                pd.DataFrame(
                    {
                        "station": "KNYC",
                        "model": model,
                        "issued_at": pd.to_datetime(raw["asof_utc"], utc=True),
                        "target_date": pd.to_datetime(raw["target_date_local"]).dt.date,
                        "tmax_f": raw[col].astype(float),
                        "spread_f": raw["gefsatmos_tmp_spread_f"].astype(float)
                        if model == "gefs_mean"
                        else float("nan"),
                        "source": "gribstream_knyc.csv",
                    }
                )
            )
    if city in ("chicago", "austin"):
        name = f"peakmax_{city}.parquet"
        raw = pd.read_parquet(root / name)
        parts.append(
            pd.DataFrame(
                {
                    "station": "",
                    "model": raw["model"].astype(str) + "_peak",
                    "issued_at": pd.to_datetime(raw["run_datetime_utc"], utc=True),
                    "target_date": pd.to_datetime(raw["target_date"]).dt.date,
                    "tmax_f": raw["peak_window_max_f"].astype(float),
                    "spread_f": float("nan"),
                    "source": name,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    # MOS writes 999 for "missing"; the importer refuses it, and so does the table.
    out = out[out["tmax_f"].between(-80, 140)]
    out.insert(0, "city", city)
    return out.reset_index(drop=True)


def insert_guidance(
    conn: psycopg.Connection[tuple[object, ...]],
    frame: pd.DataFrame,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> int:
    """Upsert the rows (optionally only target dates in [first, last]) into wx.guidance."""
    if first is not None:
        frame = frame[frame["target_date"] >= first]
    if last is not None:
        frame = frame[frame["target_date"] <= last]
    rows = [
        tuple(None if isinstance(v, float) and v != v else v for v in r)
        for r in frame[list(GUIDANCE_COLUMNS)].itertuples(index=False)
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO wx.guidance (city, station, model, issued_at, target_date, tmax_f, "
            "spread_f, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (city, model, issued_at, target_date) DO UPDATE SET "
            "tmax_f = EXCLUDED.tmax_f, spread_f = EXCLUDED.spread_f",
            rows,
        )
    return len(rows)
