"""MOS and NBM text bulletins: every real sample parses or fails with a clear, local error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kwx.sources.nbm_text import daily_maxima, max_target_date, parse_bulletins
from tests.conftest import DATA, needs_data

PRODUCTS = DATA / "weather" / "products"
UTC = dt.UTC


def _read(name: str) -> str:
    # Bytes, not universal newlines: the products end lines with CR CR LF.
    return (PRODUCTS / name).read_bytes().decode("latin-1")


def _maxima(name: str, station: str, tz: str) -> list[tuple[str, float, float | None]]:
    parsed = parse_bulletins(_read(name), source=name)
    (bulletin,) = [b for b in parsed.bulletins if b.station == station]
    return [(m.target_date.isoformat(), m.tmax_f, m.spread_f) for m in daily_maxima(bulletin, tz)]


SAMPLES = [*sorted(p.name for p in PRODUCTS.glob("MOS__*.txt")), "MAVWC0.txt"]


@needs_data()
@pytest.mark.parametrize("name", SAMPLES)
def test_every_real_sample_parses_without_crashing(name: str) -> None:
    parsed = parse_bulletins(_read(name), source=name)
    bad = {"MOS__NBS_badheader.txt", "MOS__NBS_badtime.txt"}
    assert bool(parsed.errors) == (name in bad), [str(e) for e in parsed.errors]
    for bulletin in parsed.bulletins:
        assert len(bulletin.valid_at) == len(bulletin.extremes) == len(bulletin.spreads)
        assert all(t > bulletin.runtime for t in bulletin.valid_at)
        assert list(bulletin.valid_at) == sorted(bulletin.valid_at)


@needs_data()
def test_gfs_mav_x_n_row() -> None:
    # KEED 1/01/2014 00Z: X/N 68 48 68 42 67 under HR 00 12 00 12 00 (Jan 2 .. Jan 4).
    assert _maxima("MAVWC0.txt", "KEED", "America/Los_Angeles") == [
        ("2014-01-01", 68.0, None),
        ("2014-01-02", 68.0, None),
        ("2014-01-03", 67.0, None),
    ]
    parsed = parse_bulletins(_read("MAVWC0.txt"))
    assert parsed.bulletins[0].model == "gfs_mos"
    assert parsed.bulletins[0].runtime == dt.datetime(2014, 1, 1, 0, tzinfo=UTC)


@needs_data()
def test_nam_met_and_gfs_mex() -> None:
    # KFOZ 8/12/2017 12Z MET: N/X 47 68 47 71 47 → maxima 68 (Aug 13), 71 (Aug 14).
    assert _maxima("MOS__METNC1.txt", "KFOZ", "America/New_York") == [
        ("2017-08-13", 68.0, None),
        ("2017-08-14", 71.0, None),
    ]
    # KY63 7/10/2020 12Z MEX: FHR 24 36 | 48 60 …, N/X 62 73| 61 78| 64 81 …
    got = _maxima("MOS__MEXNC1.txt", "KY63", "America/New_York")
    assert got[:3] == [
        ("2020-07-11", 73.0, None),
        ("2020-07-12", 78.0, None),
        ("2020-07-13", 81.0, None),
    ]
    assert len(got) == 7  # the CLIMO columns are not forecasts
    # MET with control characters before the station id still parses.
    assert _maxima("MOS__MET_empty.txt", "PHSF", "Pacific/Honolulu")[0] == (
        "2018-01-26",
        66.0,
        None,
    )


@needs_data()
def test_nbs_txn_with_spread_and_old_n_x() -> None:
    # KDSM 4/07/2021 12Z NBS v4: TXN 72 49 59 47 61 44, XND 2 3 4 2 3 2.
    assert _maxima("MOS__NBS_12Z.txt", "KDSM", "America/Chicago") == [
        ("2021-04-07", 72.0, 2.0),
        ("2021-04-08", 59.0, 4.0),
        ("2021-04-09", 61.0, 3.0),
    ]
    # v5 at 15Z: the first TXN value (50) is a 12Z minimum.
    assert _maxima("MOS__NBS_v5.txt", "KDSM", "America/Chicago")[0] == ("2026-04-08", 59.0, 3.0)
    # NBM v3 (N/X, no spread).
    assert _maxima("MOS__NBSUSA.txt", "KALM", "America/Denver") == [
        ("2018-11-08", 72.0, None),
        ("2018-11-09", 58.0, None),
    ]
    # NBE with | separators: N/X 64| 87 62| 86 …; the CLIMO tail (65999999) is ignored.
    got = _maxima("MOS__NBEUSA.txt", "CLFU1", "America/Los_Angeles")
    assert got[:2] == [("2020-07-23", 87.0, None), ("2020-07-24", 86.0, None)]
    assert got[-1] == ("2020-07-29", 90.0, None)


@needs_data()
def test_bad_and_short_samples_fail_clearly_or_lose_only_the_bad_row() -> None:
    (err,) = parse_bulletins(_read("MOS__NBS_badtime.txt"), source="badtime").errors
    assert (err.source, err.line, err.field) == ("badtime", 7, "FHR")
    assert "'-06'" in str(err)
    (err,) = parse_bulletins(_read("MOS__NBS_badheader.txt"), source="badheader").errors
    assert err.field == "header" and "no station block" in str(err)
    # A short P12 row or an unknown variable changes nothing about the maxima.
    v5 = _maxima("MOS__NBS_v5.txt", "KDSM", "America/Chicago")
    assert _maxima("MOS__NBS_shortline.txt", "KDSM", "America/Chicago") == v5
    assert _maxima("MOS__NBS_unknown_var.txt", "KDSM", "America/Chicago") == v5
    # Blocks without a max row have no maxima (NBS for buoys, LAMP, NBX is not used).
    for name in ("MOS__NBSUSA_empty.txt", "MOS__LAVUSA.txt", "MOS__NBXUSA_int.txt"):
        parsed = parse_bulletins(_read(name))
        assert parsed.bulletins and not parsed.errors
        assert all(daily_maxima(b, "America/Chicago") == [] for b in parsed.bulletins)


def test_empty_or_garbage_text_is_an_error_not_a_crash(tmp_path: Path) -> None:
    for text in (
        "",
        "\x01\r\r\n000 \r\r\n",
        "KDSM    NBM V4.0 NBS GUIDANCE    4/07/2021  1200 UTC\n",
    ):
        parsed = parse_bulletins(text, source="t")
        assert parsed.bulletins == []
        assert len(parsed.errors) == 1


def test_daytime_rule_uses_local_standard_time() -> None:
    # 00Z is 18:00 CST (a maximum of the same date), 12Z is 06:00 CST (a minimum).
    assert max_target_date(dt.datetime(2024, 7, 5, 0, tzinfo=UTC), "America/Chicago") == dt.date(
        2024, 7, 4
    )
    assert max_target_date(dt.datetime(2024, 7, 5, 12, tzinfo=UTC), "America/Chicago") is None
    # 05:30Z in July is 00:30 CDT but 23:30 CST: still the previous climate day.
    assert max_target_date(
        dt.datetime(2024, 7, 5, 5, 30, tzinfo=UTC), "America/Chicago"
    ) == dt.date(2024, 7, 4)
