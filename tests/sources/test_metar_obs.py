"""METAR decoding: T-group tenths, 6-hour max groups, real bulletins, bad reports."""

from __future__ import annotations

import datetime as dt

import pytest

from kwx.sources.metar_obs import (
    MetarParseError,
    metar_obs_frame,
    parse_metar,
    parse_metar_collective,
    relative_humidity,
)
from kwx.store import writers
from tests.conftest import DATA, needs_data

PRODUCTS = DATA / "weather" / "products"
UTC = dt.UTC


def test_t_group_tenths_override_the_body() -> None:
    r = parse_metar(
        "KMDW 101853Z 22010KT 10SM FEW050 23/12 A2990 RMK AO2 SLP120 T02330117",
        year=2026,
        month=7,
    )
    assert r.station == "KMDW"
    assert r.ts == dt.datetime(2026, 7, 10, 18, 53, tzinfo=UTC)
    assert (r.temp_c, r.temp_f, r.temp_from_t_group) == (23.3, 73.94, True)
    assert (r.dewpoint_c, r.dewpoint_f) == (11.7, 53.06)
    assert r.wind_dir_deg == 220.0
    assert r.wind_speed_mph == pytest.approx(11.51, abs=0.01)
    assert r.max_temp_6h_f is None
    assert r.raw.startswith("KMDW 101853Z")


def test_body_only_is_whole_celsius() -> None:
    r = parse_metar("KNYC 101856Z 00000KT 10SM CLR 29/17 A3001", year=2026, month=7)
    assert (r.temp_c, r.temp_f, r.temp_from_t_group) == (29.0, 84.2, False)
    assert r.wind_speed_mph == 0.0 and r.wind_dir_deg is None  # calm has no direction


def test_negative_t_group_and_six_hour_groups() -> None:
    # 6-hour max 1sTTT = 10244 → 24.4 °C → 75.92 °F → the ASOS's whole 76 °F.
    r = parse_metar(
        "METAR KMDW 101751Z 24012KT 10SM SCT060 M01/M05 A3002 RMK AO2 SLP170 "
        "T10111050 10244 21017 401561017",
        year=2026,
        month=1,
    )
    assert (r.temp_c, r.dewpoint_c) == (-1.1, -5.0)
    assert r.max_temp_6h_f == 76.0
    assert r.min_temp_6h_f == 29.0  # 21017: -1.7 °C = 28.94 °F
    assert r.max_temp_24h_f == 60.0  # 4 0156 1017: 15.6 °C = 60.08 °F
    assert r.min_temp_24h_f == 29.0  # 1017: -1.7 °C


def test_speci_and_variable_wind() -> None:
    r = parse_metar("SPECI KMIA 081403Z VRB03KT 1/2SM +TSRA OVC010 23/19 A3003", year=2024, month=5)
    assert r.report_type == "SPECI"
    assert r.wind_dir_deg is None and r.wind_speed_mph == pytest.approx(3.45, abs=0.01)


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "garbage here", "QQQQ O81354Z AUTO 17027G37KT", "WXL SA 1400 AUTO8 M M M"],
)
def test_malformed_raises_with_raw(raw: str) -> None:
    with pytest.raises(MetarParseError) as info:
        parse_metar(raw, year=2026, month=7)
    assert info.value.raw == raw
    assert isinstance(info.value, ValueError)


@needs_data()
@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("METAR__collective.txt", 12, 2),  # two deliberately broken reports at the end
        ("METAR__collective2.txt", 35, 0),
        ("METAR__first.txt", 2, 0),
        ("METAR__kawn.txt", 3, 0),
        ("METAR__kmwn.txt", 1, 0),
        ("METAR__badchars.txt", 3, 0),
        ("METAR__nullbyte.txt", 1, 0),
        ("METAR__rtd_bbb.txt", 1, 0),
        ("METAR__sa.txt", 0, 4),  # Canadian SA format, not METAR
    ],
)
def test_real_bulletins(name: str, good: int, bad: int) -> None:
    text = (PRODUCTS / name).read_text(encoding="latin-1")
    readings, errors = parse_metar_collective(text, year=2026, month=7)
    assert (len(readings), len(errors)) == (good, bad)


@needs_data()
def test_collective_values() -> None:
    text = (PRODUCTS / "METAR__collective2.txt").read_text(encoding="latin-1")
    readings, _ = parse_metar_collective(text, year=2025, month=12)
    by_station = {r.station: r for r in readings}
    kdmh = by_station["KDMH"]  # "00/M06 ... T00001061 10028 20000"
    assert (kdmh.temp_c, kdmh.dewpoint_c, kdmh.temp_from_t_group) == (0.0, -6.1, True)
    assert kdmh.max_temp_6h_f == 37.0  # 2.8 °C = 37.04 °F
    assert kdmh.ts == dt.datetime(2025, 12, 31, 23, 54, tzinfo=UTC)
    kcar = by_station["KCAR"]  # "M14/M21 ... T11391206 11083"
    assert (kcar.temp_c, kcar.max_temp_6h_f) == (-13.9, 17.0)  # -8.3 °C = 17.06 °F
    kawn = parse_metar_collective(
        (PRODUCTS / "METAR__kawn.txt").read_text(encoding="latin-1"), year=2026, month=7
    )[0]
    assert [r.station for r in kawn] == ["LFBA", "LFBD", "LFLL"]  # header lines dropped


def test_obs_frame_has_the_writer_columns() -> None:
    readings = [
        parse_metar("KMDW 101853Z 22010KT 10SM 23/12 A2990 RMK AO2 T02330117", year=2026, month=7),
        parse_metar(
            "KMDW 101953Z 22010KT 10SM 24/12 A2990 RMK AO2 T02440122 10250", year=2026, month=7
        ),
    ]
    frame = metar_obs_frame(readings, "chicago")
    assert tuple(frame.columns) == writers.OBS.column_names
    assert frame["temp_f"].tolist() == [73.94, 75.92]
    assert frame["temp_c"].tolist() == [23.3, 24.4]
    assert frame["max_temp_6h_f"].isna().tolist() == [True, False]
    assert frame["max_temp_6h_f"].iloc[1] == 77.0  # 25.0 °C = 77 °F
    assert str(frame["ts"].dt.tz) == "UTC"
    assert set(frame["source"]) == {"metar"}
    assert frame["raw"].str.startswith("KMDW").all()


def test_relative_humidity() -> None:
    assert relative_humidity(20.0, 20.0) == 100.0
    assert relative_humidity(30.0, 10.0) == pytest.approx(28.7, abs=0.5)
    assert relative_humidity(None, 10.0) is None
