"""The CLI parser on every real CLI text we have, exact values read off the texts by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from kwx.registry import default_registry
from kwx.sources.cli_text import (
    CliParseError,
    CliReport,
    parse_cli,
    parse_cli_products,
    product_rows,
    settlement_rows,
    settlement_waves,
)
from kwx.store import writers
from tests.conftest import DATA, needs_data

PRODUCTS = DATA / "weather" / "products"
UTC = dt.UTC


def cli_files() -> list[Path]:
    if not PRODUCTS.is_dir():
        return []
    files = [*PRODUCTS.glob("CLI__*.txt"), *PRODUCTS.glob("cli_*_*.txt")]
    files += PRODUCTS.glob("iem_text_cli*.txt")
    return sorted(files)


# CLI texts that are bad on purpose: none. The fixture set's deliberately broken products
# ('bad', 'empty', 'error' in the name) are all CF6/DSM/METAR/MOS; they are fed to the CLI
# parser below as input it must refuse.
KNOWN_BAD_CLI: frozenset[str] = frozenset()
NOT_CLI = [
    "CF6__CF6DSM_bad.txt",
    "CF6__CF6DSM_empty.txt",
    "CF6__CF6WYS_error.txt",
    "CF6__CF6DSM.txt",
    "DSM__DSM.txt",
    "METAR__collective.txt",
    "MOS__NBS_badheader.txt",
]


def read(name: str) -> str:
    return (PRODUCTS / name).read_text(encoding="latin-1")


def one(name: str) -> CliReport:
    return parse_cli(read(name))


@needs_data()
def test_the_fixture_set_is_what_we_think() -> None:
    files = cli_files()
    assert len(files) == 65
    named_bad = {f.name for f in files if any(w in f.name for w in ("bad", "empty", "error"))}
    assert named_bad == KNOWN_BAD_CLI


@needs_data()
@pytest.mark.parametrize("path", cli_files(), ids=lambda p: p.name)
def test_every_cli_text_parses(path: Path) -> None:
    text = path.read_text(encoding="latin-1")
    if path.name in KNOWN_BAD_CLI:
        with pytest.raises(CliParseError):
            parse_cli_products(text)
        return
    reports = parse_cli_products(text)
    assert reports
    for report in reports:
        assert report.pil.startswith("CLI")
        assert report.issued_at.tzinfo is not None
        assert report.kind in ("final", "intermediate")
        # A final report is issued after its day; an intermediate one on it (local date).
        assert report.climate_date <= report.issued_at.date() + dt.timedelta(days=1)
        if report.max_temp_f is not None:
            assert -80 <= report.max_temp_f <= 140
        if report.max_temp_f is not None and report.min_temp_f is not None:
            assert report.min_temp_f <= report.max_temp_f


@needs_data()
@pytest.mark.parametrize("name", NOT_CLI)
def test_non_cli_products_are_refused(name: str) -> None:
    with pytest.raises(CliParseError):
        parse_cli_products(read(name))


@needs_data()
def test_final_and_intermediate_counts() -> None:
    reports = [r for f in cli_files() for r in parse_cli_products(f.read_text("latin-1"))]
    primary = [r for r in reports if r.section == 0]
    assert len(primary) == 65
    assert len(reports) == 65 + 5 + 1  # CLIANC reports 6 sites, CLIHOU 2
    assert sum(r.is_final for r in primary) == 39
    assert sum(not r.is_final for r in primary) == 26


@needs_data()
def test_chicago_final_exact() -> None:
    r = one("cli_chi_final.txt")
    assert (r.pil, r.station_name, r.office) == ("CLIMDW", "CHICAGO-MIDWAY", "KLOT")
    assert r.climate_date == dt.date(2026, 7, 8)
    assert r.issued_at == dt.datetime(2026, 7, 9, 6, 34, tzinfo=UTC)  # 134 AM CDT
    assert r.is_final and r.valid_as_of is None
    assert (r.max_temp_f, r.max_time_lst) == (89, dt.time(14, 56))
    assert (r.min_temp_f, r.min_time_lst) == (67, dt.time(4, 31))
    assert not r.max_record and not r.is_correction
    assert r.product_id == "202607090634-KLOT-CDUS43-CLIMDW"
    assert r.location == "MDW"


@needs_data()
def test_new_york_intermediate_and_its_final() -> None:
    inter = one("cli_nyc_intermediate.txt")
    assert inter.kind == "intermediate"
    assert inter.valid_as_of == dt.time(16, 0)
    assert inter.climate_date == dt.date(2026, 7, 9)
    assert (inter.max_temp_f, inter.max_time_lst) == (82, dt.time(10, 50))  # "1050 AM"
    assert inter.issued_at == dt.datetime(2026, 7, 9, 20, 35, tzinfo=UTC)
    final = one("iem_text_clinyc_202607100625.txt")  # IEM's text of the next morning's final
    assert final.is_final and final.climate_date == dt.date(2026, 7, 9)
    assert (final.max_temp_f, final.max_time_lst) == (82, dt.time(10, 50))
    assert final.product_id == "202607100625-KOKX-CDUS41-CLINYC"


@needs_data()
def test_issuance_times_match_the_api_listing() -> None:
    meta = json.loads((DATA / "api-shapes" / "cli_meta.json").read_text())
    for city, entries in meta.items():
        for entry in entries:
            r = one(f"cli_{city}_{entry['kind']}.txt")
            assert r.kind == entry["kind"], city
            assert r.issued_at == dt.datetime.fromisoformat(entry["issuanceTime"]), city


@needs_data()
def test_odd_formats() -> None:
    record = one("cli_nyc_record.txt")
    assert (record.max_temp_f, record.max_record, record.max_time_lst) == (
        100,
        True,
        dt.time(14, 47),
    )
    alo = one("CLI__CLIALO.txt")  # "MINIMUM -21R 355 AM", same-day report
    assert (alo.min_temp_f, alo.min_record, alo.kind) == (-21, True, "intermediate")
    den = one("cli_den_intermediate.txt")  # issued 12:31Z with the day's "max" at 1:03 AM
    assert (den.max_temp_f, den.max_time_lst, den.valid_as_of) == (65, dt.time(1, 3), dt.time(6))
    rdu = one("CLI__CLIRDU.txt")  # "57(E)  221 AM"
    assert (rdu.max_temp_f, rdu.max_estimated, rdu.max_time_lst) == (57, True, dt.time(2, 21))
    rdu2 = one("CLI__CLIRDU_v2.txt")  # "57 E  300 PM" in a CCA correction
    assert (rdu2.max_temp_f, rdu2.max_estimated, rdu2.bbb, rdu2.is_correction) == (
        57,
        True,
        "CCA",
        True,
    )
    assert rdu2.product_id == "202103210922-KRAH-CDUS42-CLIRDU-CCA"
    colon = one("CLI__CLICVG_colon.txt")  # "39  11:29 PM"
    assert (colon.max_temp_f, colon.max_time_lst) == (39, dt.time(23, 29))
    eka = one("CLI__CLIEKA.txt")  # no time column value: "55     63    1937"
    assert (eka.max_temp_f, eka.max_time_lst) == (55, None)
    sew = one("CLI__CLISEW.txt")  # time "MM"
    assert (sew.max_temp_f, sew.max_time_lst) == (44, None)
    fmy = one("CLI__CLIFMY.txt")  # 7 AM report: no MAXIMUM line yet
    assert (fmy.max_temp_f, fmy.min_temp_f, fmy.kind) == (None, 63, "intermediate")
    ewn = one("CLI__CLIEWN.txt")  # correction issued three weeks later
    assert (ewn.climate_date, ewn.is_final, ewn.is_correction) == (
        dt.date(2014, 9, 28),
        True,
        True,
    )
    assert ewn.issued_at == dt.datetime(2014, 10, 18, 13, 28, tzinfo=UTC)
    est = one("CLI__CLIEST.txt")  # RRA: a retransmission, not a correction
    assert (est.bbb, est.is_correction) == ("RRA", False)


@needs_data()
def test_pacific_and_alaska_zones() -> None:
    nome = one("CLI__CLIOME_2.txt")  # "1251 AM AST THU NOV 9 2006": Alaska, not Atlantic
    assert nome.issued_at == dt.datetime(2006, 11, 9, 9, 51, tzinfo=UTC)
    assert nome.climate_date == dt.date(2006, 11, 8)  # "FOR NOV 8 2006"
    anc = one("CLI__CLIANC.txt")  # 435 AM AKDT
    assert anc.issued_at == dt.datetime(2017, 3, 15, 12, 35, tzinfo=UTC)
    ppg = one("CLI__CLIPPG.txt")  # 500 PM SST, a same-day "TODAY" report with no $$
    assert ppg.issued_at == dt.datetime(2020, 12, 29, 4, 0, tzinfo=UTC)
    assert (ppg.kind, ppg.max_temp_f, ppg.max_time_lst) == ("intermediate", 89, dt.time(13, 50))
    ppg4 = one("CLI__CLIPPG4.txt")  # "CLIMATE SUMMARY FROM MARCH 30 2023"
    assert (ppg4.climate_date, ppg4.kind, ppg4.max_temp_f) == (dt.date(2023, 3, 30), "final", 86)


@needs_data()
def test_multi_station_products() -> None:
    anc = parse_cli_products(read("CLI__CLIANC.txt"))
    assert [r.station_name for r in anc] == [
        "ANCHORAGE AK",
        "KING SALMON",
        "KODIAK",
        "BETHEL",
        "SAINT PAUL ISLAND",
        "COLD BAY",
    ]
    assert [r.section for r in anc] == list(range(6))
    assert anc[1].max_temp_f == 22 and anc[1].max_time_lst == dt.time(15, 57)
    hou = parse_cli_products(read("CLI__CLIHOU.txt"))
    assert [(r.station_name, r.max_temp_f) for r in hou] == [
        ("HOUSTON INTERCONTINENTAL", 80),
        ("HOUSTON/HOBBY AIRPORT", 79),
    ]


@needs_data()
def test_collective_split_on_double_dollar() -> None:
    text = read("cli_chi_final.txt") + "\n$$\n" + read("cli_chi_intermediate.txt")
    text += "\n$$\n\nAMOUNT OF DAYLIGHT TODAY........15:10\n"  # trailer: skipped
    reports = parse_cli_products(text)
    assert [(r.climate_date, r.kind) for r in reports] == [
        (dt.date(2026, 7, 8), "final"),
        (dt.date(2026, 7, 9), "intermediate"),
    ]
    assert parse_cli(text).climate_date == dt.date(2026, 7, 8)


CHI_HEAD = """000
CDUS43 KLOT 090634
CLIMDW

CLIMATE REPORT
NATIONAL WEATHER SERVICE CHICAGO IL
134 AM CDT THU JUL 09 2026

...THE CHICAGO-MIDWAY CLIMATE SUMMARY FOR JULY 8 2026...

TEMPERATURE (F)
 YESTERDAY
"""


def test_unreadable_temperature_line_names_the_line() -> None:
    with pytest.raises(CliParseError) as info:
        parse_cli(CHI_HEAD + "  MAXIMUM         8X9   2:56 PM\n")
    assert info.value.line_no == 13
    assert "MAXIMUM" in str(info.value) and "line 13" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no CLI product"),
        ("hello world\n", "no CLI product"),
        ("CDUS43 KLOT 090634\nCLIMDW\nCLIMATE REPORT\n", "no issuance"),
        (CHI_HEAD.replace("JULY 8", "JULY 32"), "impossible climate date"),
        (CHI_HEAD.replace("CDT", "XYZ"), "unknown time zone"),
        (CHI_HEAD + "  MAXIMUM   89   1375 PM\n", "impossible time"),
        (CHI_HEAD.replace("134 AM", "1399 AM"), "unreadable issuance time"),
        (CHI_HEAD.replace("CLIMDW\n", ""), "no AWIPS PIL"),
    ],
)
def test_bad_input_raises(text: str, message: str) -> None:
    with pytest.raises(CliParseError, match=message):
        parse_cli_products(text)


def test_missing_values_are_none() -> None:
    r = parse_cli(CHI_HEAD + "  MAXIMUM         MM      MM\n  MINIMUM   67   4:31 AM\n")
    assert (r.max_temp_f, r.max_time_lst, r.min_temp_f) == (None, None, 67)
    assert r.kind == "final"


# ---------------------------------------------------------------------- store rows
def _chicago_reports() -> list[CliReport]:
    final = one("cli_chi_final.txt")
    corrected_text = read("cli_chi_final.txt").replace("090634", "091034 CCA")
    corrected_text = corrected_text.replace("134 AM CDT", "534 AM CDT").replace(
        "MAXIMUM         89", "MAXIMUM         90"
    )
    corrected = parse_cli(corrected_text)
    return [corrected, one("cli_chi_intermediate.txt"), final]


@needs_data()
def test_settlement_rows_only_finals_in_publication_waves() -> None:
    chicago = default_registry().by_key("chicago")
    rows = settlement_rows(_chicago_reports(), chicago)
    assert tuple(rows.columns) == writers.SETTLEMENTS.column_names
    assert rows["tmax"].tolist() == [89, 90]  # the intermediate 87 never settles
    assert set(rows["note"]) == {"final"} and set(rows["source"]) == {"cli"}
    waves = settlement_waves(rows)
    assert [w["tmax"].tolist() for w in waves] == [[89], [90]]
    with pytest.raises(ValueError, match="CLINYC"):
        settlement_rows([one("cli_nyc_final.txt")], chicago)
    empty = settlement_rows([one("cli_chi_intermediate.txt")], chicago)
    assert empty.empty and tuple(empty.columns) == writers.SETTLEMENTS.column_names


@needs_data()
def test_product_rows_one_per_product() -> None:
    chicago = default_registry().by_key("chicago")
    rows = product_rows(_chicago_reports(), chicago)
    assert tuple(rows.columns) == writers.PRODUCTS.column_names
    assert rows["product_id"].tolist() == [
        "202607091034-KLOT-CDUS43-CLIMDW-CCA",
        "202607092134-KLOT-CDUS43-CLIMDW",
        "202607090634-KLOT-CDUS43-CLIMDW",
    ]
    assert rows["kind"].tolist() == ["final", "intermediate", "final"]
    assert set(rows["station"]) == {"KMDW"} and set(rows["city"]) == {"chicago"}
    hou = product_rows(parse_cli_products(read("CLI__CLIHOU.txt")))
    assert len(hou) == 1 and hou["city"].isna().all()


@needs_data()
def test_rows_land_in_the_store(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    chicago = default_registry().by_key("chicago")
    reports = _chicago_reports()
    with conn.transaction(), conn.cursor() as cur:
        writers.PRODUCTS.write(cur, product_rows(reports, chicago))
        for wave in settlement_waves(settlement_rows(reports, chicago)):
            writers.SETTLEMENTS.write(cur, wave)
    row = conn.execute(
        "SELECT tmax_first, tmax_final, first_published_at, final_at FROM wx.settlement"
    ).fetchall()
    assert row == [
        (
            89,
            90,
            dt.datetime(2026, 7, 9, 6, 34, tzinfo=UTC),
            dt.datetime(2026, 7, 9, 10, 34, tzinfo=UTC),
        )
    ]
    assert conn.execute("SELECT count(*) FROM wx.product").fetchone() == (3,)
