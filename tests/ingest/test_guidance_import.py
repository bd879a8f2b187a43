"""Station guidance files (MOS, gridded model Tmax, peak-window maxima) into wx.guidance."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from kwx.domain.climate_day import climate_day_window
from kwx.ingest.file_import import import_directory
from kwx.ingest.guidance import (
    PUBLICATION_LAG,
    normalize_guidance_peak,
    normalize_guidance_station,
)
from kwx.ingest.normalize import ImportContext
from kwx.registry import default_registry
from kwx.sources.files import BadInputError, FileKind, detect
from tests.conftest import DATA, needs_data

Conn = psycopg.Connection[tuple[object, ...]]
CTX = ImportContext(default_registry())
GUIDANCE = DATA / "weather" / "guidance"


def _counts(conn: Conn) -> dict[tuple[str, str], int]:
    rows = conn.execute("SELECT city, model, count(*) FROM wx.guidance GROUP BY 1, 2").fetchall()
    return {(str(c), str(m)): int(str(n)) for c, m, n in rows}


@needs_data()
def test_every_shipped_guidance_file_is_recognised_by_its_columns() -> None:
    kinds = {p.name: detect(p) for p in sorted(GUIDANCE.iterdir())}
    assert kinds == {
        "gribstream_knyc.csv": FileKind.GUIDANCE_STATION,
        "mos_kmdw.parquet": FileKind.GUIDANCE_STATION,
        "mos_kmia.parquet": FileKind.GUIDANCE_STATION,
        "peakmax_austin.parquet": FileKind.GUIDANCE_PEAK,
        "peakmax_chicago.parquet": FileKind.GUIDANCE_PEAK,
    }


@needs_data()
def test_real_guidance_imports_whole_before_its_day_and_idempotently(conn: Conn) -> None:
    summary = import_directory(conn, GUIDANCE, CTX, derive=False)
    assert not summary.failed, [o.message for o in summary.failed]
    assert {o.status for o in summary.outcomes} == {"imported"}

    # Row counts from the files themselves: one row per day the product has a Tmax for;
    # the one KMIA NAM day whose max is MDL's missing code 999 is left out.
    expected: dict[tuple[str, str], int] = {}
    for name, city in (("mos_kmdw", "chicago"), ("mos_kmia", "miami")):
        frame = pd.read_parquet(GUIDANCE / f"{name}.parquet")
        for prefix in ("gfs", "nam"):
            mos = frame[f"{prefix}_n_x_max"]
            expected[(city, f"{prefix}_mos")] = int((mos.notna() & (mos < 999)).sum())
    assert expected[("miami", "nam_mos")] == 6561 - 5 - 1
    grib = pd.read_csv(GUIDANCE / "gribstream_knyc.csv")
    for col, model in (
        ("nbm_tmax_f", "nbm"),
        ("gfs_tmax_f", "gfs"),
        ("nam_tmax_f", "nam"),
        ("hrrr_tmax_f", "hrrr"),
        ("rap_tmax_f", "rap"),
        ("gefsatmosmean_tmax_f", "gefs_mean"),
    ):
        expected[("new_york", model)] = int(grib[col].notna().sum())
    for city in ("chicago", "austin"):
        peak = pd.read_parquet(GUIDANCE / f"peakmax_{city}.parquet")
        for model in ("hrrr", "nbm"):
            expected[(city, f"{model}_peak")] = int((peak["model"] == model).sum())
    assert _counts(conn) == expected

    # Spot values against the files.
    mdw = pd.read_parquet(GUIDANCE / "mos_kmdw.parquet")
    day = mdw[mdw["target_date_local"] == "2024-07-04"].iloc[0]
    row = conn.execute(
        "SELECT station, issued_at, tmax_f, spread_f, extra FROM wx.guidance "
        "WHERE city = 'chicago' AND model = 'gfs_mos' AND target_date = '2024-07-04'"
    ).fetchall()
    assert len(row) == 1
    station, issued, tmax, spread, extra = row[0]
    assert station == "KMDW"
    assert tmax == float(day["gfs_n_x_max"])
    assert spread is None
    assert issued == day["asof_utc"].to_pydatetime() + PUBLICATION_LAG["gfs_mos"]
    assert isinstance(extra, dict)
    assert extra["tmp_max"] == day["gfs_tmp_max"]
    assert extra["run_at"] == "2024-07-03T12:00:00Z"
    assert "actual_tmax_f" not in extra and "tmax_f" not in extra

    nyc = grib[grib["target_date_local"] == "2024-07-04"].iloc[0]
    gefs = conn.execute(
        "SELECT issued_at, tmax_f, spread_f FROM wx.guidance "
        "WHERE city = 'new_york' AND model = 'gefs_mean' AND target_date = '2024-07-04'"
    ).fetchone()
    assert gefs == (
        dt.datetime(2024, 7, 3, 12, tzinfo=dt.UTC),
        pytest.approx(nyc["gefsatmosmean_tmax_f"]),
        pytest.approx(nyc["gefsatmos_tmp_spread_f"]),
    )

    # The outcome is not guidance and is not a settlement either.
    assert conn.execute("SELECT count(*) FROM wx.settlement").fetchone() == (0,)

    # Never usable before it was issued, and every row was issued before its climate day.
    zones = {c.key: c.timezone for c in CTX.registry}
    late = [
        (city, target, issued)
        for city, target, issued in conn.execute(
            "SELECT city, target_date, issued_at FROM wx.guidance"
        ).fetchall()
        if not isinstance(target, dt.date)
        or not isinstance(issued, dt.datetime)
        or issued >= climate_day_window(zones[str(city)], target)[0]
    ]
    assert late == []

    before = conn.execute("SELECT max(updated_at), count(*) FROM wx.guidance").fetchone()
    again = import_directory(conn, GUIDANCE, CTX, force=True, derive=False)
    assert [(o.status, o.rows_stored) for o in again.outcomes] == [("imported", 0)] * 5
    assert conn.execute("SELECT max(updated_at), count(*) FROM wx.guidance").fetchone() == before


def _station_csv(tmp_path: Path, body: str, name: str = "guid.csv") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


HEAD = "station_id,target_date_local,asof_utc,gfs_n_x_max,gfs_n_x_min,nam_n_x_max,nbm_tmax_f\n"


@pytest.mark.parametrize(
    ("body", "row", "field", "words"),
    [
        ("KXYZ,2024-07-04,2024-07-03T12:00:00Z,80,70,81,79\n", 1, "station_id", "registry"),
        ("KMDW,2024-07-04,yesterday,80,70,81,79\n", 1, "asof_utc", "timestamp"),
        (
            "KMDW,2024-07-04T13:00,2024-07-03T12:00:00Z,80,70,81,79\n",
            1,
            "target_date_local",
            "date",
        ),
        ("KMDW,2024-07-04,2024-07-03T12:00:00Z,hot,70,81,79\n", 1, "gfs_n_x_max", "valid"),
        ("KMDW,2024-07-04,2024-07-03T12:00:00Z,80,70,181,79\n", 1, "nam_n_x_max", "impossible"),
        ("KMDW,2024-07-04,2024-07-03T12:00:00Z,80,70,81,-95\n", 1, "nbm_tmax_f", "impossible"),
        ("KMDW,2024-07-04,2024-07-03T12:00:00Z,80,70,81,79\n", 2, "target_date_local", "twice"),
    ],
)
def test_bad_station_rows_name_file_row_and_field(
    tmp_path: Path, body: str, row: int, field: str, words: str
) -> None:
    good = "KMDW,2024-07-04,2024-07-03T12:00:00Z,80,70,81,79\n"
    lines = good + body if row == 2 else body + good.replace("07-04", "07-05")
    path = _station_csv(tmp_path, HEAD + lines)
    with pytest.raises(BadInputError) as err:
        normalize_guidance_station(path, CTX)
    assert (err.value.source, err.value.row, err.value.field) == (str(path), row, field)
    assert words in str(err.value)


def test_unknown_model_column_and_missing_max_are_refused(tmp_path: Path) -> None:
    path = _station_csv(
        tmp_path,
        "station_id,target_date_local,asof_utc,ecmwf_tmax_f\nKMDW,2024-07-04,2024-07-03,80\n",
    )
    with pytest.raises(BadInputError, match="does not know") as err:
        normalize_guidance_station(path, CTX)
    assert err.value.field == "ecmwf_tmax_f"
    path = _station_csv(
        tmp_path,
        "station_id,target_date_local,asof_utc,gfs_tmp_max\nKMDW,2024-07-04,2024-07-03,80\n",
    )
    with pytest.raises(BadInputError, match="without the max temperature") as err:
        normalize_guidance_station(path, CTX)
    assert err.value.field == "gfs_n_x_max"


def test_mos_missing_code_drops_that_element_only(tmp_path: Path) -> None:
    path = _station_csv(
        tmp_path,
        "station_id,target_date_local,asof_utc,nam_n_x_max,nam_n_x_mean,nam_dpt_max,"
        "nam_wsp_max\n"
        "KMIA,2020-08-17,2020-08-16T12:00:00Z,999,546,70,9\n"
        "KMIA,2020-08-18,2020-08-17T12:00:00Z,91,85,999,8\n",
    )
    (batch,) = normalize_guidance_station(path, CTX)
    frame = batch.frame
    assert list(frame["target_date"]) == [dt.date(2020, 8, 18)]
    assert frame["tmax_f"].tolist() == [91.0]
    assert frame["issued_at"].tolist() == [pd.Timestamp("2020-08-17T15:00:00Z")]
    assert frame["extra"].tolist() == [
        '{"run_at":"2020-08-17T12:00:00Z","n_x_mean":85,"wsp_max":8}'
    ]


def test_peak_file_city_from_name_and_bad_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "target_date": [dt.date(2024, 7, 4), dt.date(2024, 7, 4)],
            "model": ["hrrr", "nbm"],
            "run_datetime_utc": pd.to_datetime(["2024-07-03T12:00:00Z"] * 2, utc=True),
            "peak_window_max_f": [88.5, 90.25],
            "timezone": ["America/New_York"] * 2,
        }
    )
    path = tmp_path / "peakmax_new_york_2024.parquet"
    frame.to_parquet(path)
    assert detect(path) is FileKind.GUIDANCE_PEAK
    (batch,) = normalize_guidance_peak(path, CTX)
    got = batch.frame.sort_values("model")
    assert got["city"].tolist() == ["new_york", "new_york"]
    assert got["station"].tolist() == ["KNYC", "KNYC"]
    assert got["model"].tolist() == ["hrrr_peak", "nbm_peak"]
    assert got["tmax_f"].tolist() == [88.5, 90.25]
    assert got["issued_at"].tolist() == [pd.Timestamp("2024-07-03T14:00:00Z")] * 2

    frame.loc[1, "model"] = "ecmwf"
    frame.to_parquet(path)
    with pytest.raises(BadInputError, match="unknown peak-window model") as err:
        normalize_guidance_peak(path, CTX)
    assert (err.value.row, err.value.field) == (2, "model")

    frame.loc[1, "model"] = "nbm"
    frame.to_parquet(tmp_path / "peakmax_chicago.parquet")
    with pytest.raises(BadInputError, match="station's zone") as err:
        normalize_guidance_peak(tmp_path / "peakmax_chicago.parquet", CTX)
    assert (err.value.row, err.value.field) == (1, "timezone")

    frame.to_parquet(tmp_path / "peakmax_atlantis.parquet")
    with pytest.raises(BadInputError, match="cannot tell the city"):
        normalize_guidance_peak(tmp_path / "peakmax_atlantis.parquet", CTX)


@needs_data()
def test_bad_file_is_refused_whole_and_good_rows_survive(conn: Conn, tmp_path: Path) -> None:
    shutil.copy(GUIDANCE / "gribstream_knyc.csv", tmp_path / "gribstream_knyc.csv")
    assert not import_directory(conn, tmp_path, CTX, derive=False).failed
    before = _counts(conn)
    lines = (GUIDANCE / "gribstream_knyc.csv").read_text().splitlines()
    cells = lines[10].split(",")
    cells[8] = "warm"  # nbm_tmax_f of data row 10
    lines[10] = ",".join(cells)
    (tmp_path / "gribstream_knyc.csv").write_text("\n".join(lines) + "\n")
    summary = import_directory(conn, tmp_path, CTX, derive=False)
    (failed,) = summary.failed
    assert "row 10, field 'nbm_tmax_f'" in failed.message
    assert _counts(conn) == before
    assert conn.execute(
        "SELECT field FROM meta.bad_input WHERE location LIKE %s", ("%gribstream_knyc.csv:10",)
    ).fetchall() == [("nbm_tmax_f",)]
