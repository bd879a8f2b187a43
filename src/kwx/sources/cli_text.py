"""Parser for the NWS Daily Climate Report (CLI), the product Kalshi's daily highs settle on.

The CLI is free text written by ~120 forecast offices with small local variations (time as
``2:28 PM`` or ``247 PM``, record flags glued to the value, estimated values ``57(E)``,
multi-station products, Pacific-island zones). A handful of anchored regular expressions
handle every real product we have (weather-sources.md §5), and anything that looks like a
temperature line but cannot be read raises :class:`CliParseError` naming the line, because a
silently mis-read maximum would settle a market on the wrong number.

Only a *final* report (the ``YESTERDAY`` block issued the next morning, or a correction of
it) carries the settlement value; same-day reports (``TODAY``, ``VALID AS OF ...``) are
evidence about it and are kept as products, never as settlements.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import pandas as pd

from kwx.registry import City

__all__ = [
    "CliKind",
    "CliParseError",
    "CliReport",
    "parse_cli",
    "parse_cli_products",
    "product_rows",
    "settlement_rows",
    "settlement_waves",
]

CliKind = Literal["final", "intermediate"]

SETTLEMENT_COLUMNS: Final = ("city", "climate_date", "source", "tmax", "published_at", "note")
PRODUCT_COLUMNS: Final = (
    "product_id",
    "pil",
    "station",
    "city",
    "issued_at",
    "climate_date",
    "kind",
    "text",
)

_MONTHS: Final = {
    name: i
    for i, names in enumerate(
        [
            ("JANUARY", "JAN"),
            ("FEBRUARY", "FEB"),
            ("MARCH", "MAR"),
            ("APRIL", "APR"),
            ("MAY",),
            ("JUNE", "JUN"),
            ("JULY", "JUL"),
            ("AUGUST", "AUG"),
            ("SEPTEMBER", "SEPT", "SEP"),
            ("OCTOBER", "OCT"),
            ("NOVEMBER", "NOV"),
            ("DECEMBER", "DEC"),
        ],
        start=1,
    )
    for name in names
}

# Zone abbreviations seen in CLI issuance lines, as UTC offsets in hours. AST/ADT are
# ambiguous: Atlantic (Puerto Rico) in current products, Alaska in pre-1983 style headers
# still used by some Alaskan offices (CLIOME 2006); the WMO heading's time settles which.
_ZONES: Final[dict[str, tuple[int, ...]]] = {
    "UTC": (0,),
    "GMT": (0,),
    "Z": (0,),
    "EST": (-5,),
    "EDT": (-4,),
    "CST": (-6,),
    "CDT": (-5,),
    "MST": (-7,),
    "MDT": (-6,),
    "PST": (-8,),
    "PDT": (-7,),
    "AKST": (-9,),
    "AKDT": (-8,),
    "HST": (-10,),
    "HDT": (-9,),
    "SST": (-11,),
    "CHST": (10,),
    "AST": (-4, -9),
    "ADT": (-3, -8),
}

_WMO_RE: Final = re.compile(
    r"^(?P<ttaaii>[A-Z]{4}\d{2})\s+(?P<cccc>[A-Z]{4})\s+(?P<ddhhmm>\d{6})(?:\s+(?P<bbb>[A-Z]{3}))?\s*$"
)
_PIL_RE: Final = re.compile(r"^(?P<pil>CLI[A-Z0-9]{3})\s*$")
_ISSUED_RE: Final = re.compile(
    r"^\s*(?P<hhmm>\d{1,4})\s+(?P<ampm>AM|PM)\s+(?P<zone>[A-Z]{1,5})\s+"
    r"(?:MON|TUE|WED|THU|FRI|SAT|SUN)\s+(?P<month>[A-Z]{3})\s+(?P<day>\d{1,2})\s+(?P<year>\d{4})\s*$"
)
_SUMMARY_RE: Final = re.compile(
    r"^\s*\.{0,3}\s*THE\s+(?P<name>.*?)\s+CLIMATE\s+SUMMARY\s+(?:FOR|FROM)\s+"
    r"(?P<month>[A-Z]+)\.?\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4})"
)
_VALID_AS_OF_RE: Final = re.compile(
    r"^\s*VALID\s+(?:TODAY\s+)?AS\s+OF\s+(?P<hhmm>\d{1,4})\s*(?P<ampm>AM|PM)"
)
_BLOCK_RE: Final = re.compile(r"^\s*(?P<block>YESTERDAY|TODAY)\s*$")
_TEMPERATURE_HEAD_RE: Final = re.compile(r"^\s*TEMPERATURE\s*(?:\(F\))?\s*$")
_BLOCK_END_RE: Final = re.compile(
    r"^\s*(?:PRECIPITATION|SNOWFALL|DEGREE\s+DAYS|WIND|SKY\s+COVER|RELATIVE\s+HUMIDITY|&&|\.{5,})"
)
_ITEM_START_RE: Final = re.compile(r"^\s*(?P<item>MAXIMUM|MINIMUM)\b(?!\s*TEMPERATURE)")
_ITEM_RE: Final = re.compile(
    r"^\s*(?P<item>MAXIMUM|MINIMUM)\s+(?P<value>-?\d{1,3}|MM)(?P<record>R)?(?=[\s(]|$)"
    r"(?:\s*\((?P<est1>E)\)|\s+(?P<est2>E)(?=\s|$))?"
    r"(?:\s+(?P<time>\d{1,2}:\d{2}\s*[AP]M|\d{3,4}\s*[AP]M|MM)(?=\s|$))?"
)
_CORRECTION_RE: Final = re.compile(r"\bCORRECT(?:ION|ED)\b")
_SPLIT_RE: Final = re.compile(r"^[ \t]*\$\$[ \t]*\r*$", re.M)
_CONTROL_CHARS: Final = str.maketrans("", "", "\x00\x01\x03\r")


class CliParseError(ValueError):
    """A CLI product could not be read; ``line_no`` (1-based) and ``line`` say where."""

    def __init__(self, message: str, *, line_no: int | None = None, line: str | None = None):
        self.line_no = line_no
        self.line = line
        where = f"line {line_no}: " if line_no is not None else ""
        shown = f" ({line.strip()!r})" if line is not None else ""
        super().__init__(f"{where}{message}{shown}")


@dataclass(frozen=True, slots=True)
class CliReport:
    """One station's section of one CLI product.

    Times of the max/min are local *standard* time, as the ``(LST)`` column says, even in
    summer; ``issued_at`` is UTC. ``section`` is 0 for the product's own station and counts
    up through multi-station products (CLIHOU also reports Hobby, CLIANC five more sites).
    """

    pil: str
    station_name: str
    climate_date: dt.date
    issued_at: dt.datetime
    kind: CliKind
    max_temp_f: int | None
    max_time_lst: dt.time | None
    min_temp_f: int | None
    min_time_lst: dt.time | None
    max_record: bool = False
    min_record: bool = False
    max_estimated: bool = False
    min_estimated: bool = False
    valid_as_of: dt.time | None = None
    office: str | None = None
    wmo_heading: str | None = None
    bbb: str | None = None
    is_correction: bool = False
    section: int = 0
    product_id: str | None = None
    text: str = field(default="", repr=False)

    @property
    def is_final(self) -> bool:
        return self.kind == "final"

    @property
    def location(self) -> str:
        """The PIL suffix (``MDW``): the location id api.weather.gov lists CLI products by."""
        return self.pil[3:]


@dataclass(frozen=True, slots=True)
class _Header:
    pil: str
    office: str | None
    ttaaii: str | None
    ddhhmm: str | None
    bbb: str | None
    issued_at: dt.datetime
    issued_local_date: dt.date
    header_correction: bool


def parse_cli(text: str, *, product_id: str | None = None) -> CliReport:
    """Parse one CLI product and return its own station's report (the first section).

    Use :func:`parse_cli_products` for collectives or to get every station of a
    multi-station product.
    """
    reports = parse_cli_products(text, product_id=product_id)
    return reports[0]


def parse_cli_products(text: str, *, product_id: str | None = None) -> list[CliReport]:
    """Parse every CLI product in ``text`` (products separated by ``$$``), every station.

    A ``$$`` chunk with neither a CLI heading nor a climate summary is a trailer (sunrise
    tables, "AMOUNT OF DAYLIGHT" notes) and is skipped; a chunk with a heading but no
    readable summary raises, so a truncated product never passes as an empty one.
    ``product_id`` (the IEM or api.weather.gov id) is attached to every report; without it a
    report derives the IEM-style id from its WMO heading.
    """
    chunks = _split_products(text)
    reports: list[CliReport] = []
    header: _Header | None = None
    for first_line, raw in chunks:
        lines = raw.translate(_CONTROL_CHARS).expandtabs(8).split("\n")
        has_pil = any(_PIL_RE.match(line) for line in lines[:12])
        has_summary = any(_SUMMARY_RE.match(line) for line in lines)
        if not has_pil and not has_summary:
            continue
        if has_pil or header is None:
            header = _parse_header(lines, first_line)
        reports.extend(_parse_sections(lines, first_line, header, raw, product_id))
    if not reports:
        raise CliParseError("no CLI product found (no CLIxxx line and no climate summary)")
    return reports


def _split_products(text: str) -> list[tuple[int, str]]:
    """Cut at ``$$`` lines, remembering each chunk's first line number (1-based)."""
    out: list[tuple[int, str]] = []
    start = 0
    for match in _SPLIT_RE.finditer(text):
        out.append((text.count("\n", 0, start) + 1, text[start : match.start()]))
        start = match.end()
    out.append((text.count("\n", 0, start) + 1, text[start:]))
    return out


def _parse_header(lines: Sequence[str], first_line: int) -> _Header:
    pil: str | None = None
    wmo: re.Match[str] | None = None
    issued: re.Match[str] | None = None
    issued_idx = -1
    correction = False
    for idx, line in enumerate(lines):
        if _SUMMARY_RE.match(line):
            break
        if wmo is None and pil is None and (m := _WMO_RE.match(line)):
            wmo = m
        elif pil is None and (m := _PIL_RE.match(line)):
            pil = m.group("pil")
        elif issued is None and (m := _ISSUED_RE.match(line)):
            issued, issued_idx = m, idx
        if _CORRECTION_RE.search(line):
            correction = True
    if pil is None:
        raise CliParseError("no AWIPS PIL line (CLIxxx) before the climate summary")
    if issued is None:
        raise CliParseError(
            "no issuance time line (e.g. '400 AM CST MON JUL 10 2026') before the summary"
        )
    line_no = first_line + issued_idx
    issued_at, local_date = _issued_at(issued, wmo, line_no, lines[issued_idx])
    return _Header(
        pil=pil,
        office=wmo.group("cccc") if wmo else None,
        ttaaii=wmo.group("ttaaii") if wmo else None,
        ddhhmm=wmo.group("ddhhmm") if wmo else None,
        bbb=wmo.group("bbb") if wmo else None,
        issued_at=issued_at,
        issued_local_date=local_date,
        header_correction=correction,
    )


def _clock(hhmm: str, ampm: str) -> tuple[int, int] | None:
    """``'147', 'AM'`` → (1, 47); ``'1200', 'AM'`` → (0, 0). None when impossible."""
    digits = hhmm.replace(":", "")
    if len(digits) <= 2:
        hour, minute = int(digits), 0
    else:
        hour, minute = int(digits[:-2]), int(digits[-2:])
    if not 1 <= hour <= 12 or minute > 59:
        return None
    hour %= 12
    if ampm == "PM":
        hour += 12
    return hour, minute


def _issued_at(
    m: re.Match[str], wmo: re.Match[str] | None, line_no: int, line: str
) -> tuple[dt.datetime, dt.date]:
    clock = _clock(m.group("hhmm"), m.group("ampm"))
    month = _MONTHS.get(m.group("month"))
    zone = m.group("zone")
    offsets = _ZONES.get(zone)
    if clock is None or month is None:
        raise CliParseError("unreadable issuance time", line_no=line_no, line=line)
    if offsets is None:
        raise CliParseError(f"unknown time zone {zone!r}", line_no=line_no, line=line)
    try:
        local = dt.datetime(int(m.group("year")), month, int(m.group("day")), *clock)
    except ValueError as exc:
        raise CliParseError(f"impossible issuance date: {exc}", line_no=line_no, line=line) from exc
    candidates = [(local - dt.timedelta(hours=off)).replace(tzinfo=dt.UTC) for off in offsets]
    if len(candidates) > 1 and wmo is not None:
        # The WMO heading's DDHHMM is the UTC transmission time, minutes after the local time.
        ddhhmm = wmo.group("ddhhmm")
        sent = int(ddhhmm[2:4]) * 60 + int(ddhhmm[4:6])

        def distance(ts: dt.datetime) -> int:
            diff = abs(ts.hour * 60 + ts.minute - sent)
            return min(diff, 1440 - diff)

        candidates.sort(key=distance)
    return candidates[0], local.date()


def _section_bounds(lines: Sequence[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _SUMMARY_RE.match(line)]


def _parse_sections(
    lines: Sequence[str],
    first_line: int,
    header: _Header,
    raw: str,
    product_id: str | None,
) -> list[CliReport]:
    starts = _section_bounds(lines)
    if not starts:
        raise CliParseError(
            "no 'CLIMATE SUMMARY FOR <date>' line", line_no=first_line, line=lines[0]
        )
    text = raw.replace("\x00", "")
    pid = product_id or _derived_product_id(header)
    reports = []
    for section, start in enumerate(starts):
        end = starts[section + 1] if section + 1 < len(starts) else len(lines)
        reports.append(_parse_section(lines, start, end, first_line, header, section, text, pid))
    return reports


def _parse_section(
    lines: Sequence[str],
    start: int,
    end: int,
    first_line: int,
    header: _Header,
    section: int,
    text: str,
    product_id: str,
) -> CliReport:
    summary_line = lines[start]
    summary = _SUMMARY_RE.match(summary_line)
    assert summary is not None
    line_no = first_line + start
    month = _MONTHS.get(summary.group("month"))
    if month is None:
        raise CliParseError("unknown month in the summary line", line_no=line_no, line=summary_line)
    try:
        climate_date = dt.date(int(summary.group("year")), month, int(summary.group("day")))
    except ValueError as exc:
        raise CliParseError(
            f"impossible climate date: {exc}", line_no=line_no, line=summary_line
        ) from exc

    valid_as_of: dt.time | None = None
    block: str | None = None
    items: dict[str, tuple[re.Match[str], int]] = {}
    in_temperature = False
    temperature_seen = any(_TEMPERATURE_HEAD_RE.match(lines[i]) for i in range(start, end))
    for idx in range(start + 1, end):
        line = lines[idx]
        if valid_as_of is None and (m := _VALID_AS_OF_RE.match(line)):
            clock = _clock(m.group("hhmm"), m.group("ampm"))
            if clock is None:
                raise CliParseError(
                    "unreadable 'VALID AS OF' time", line_no=first_line + idx, line=line
                )
            valid_as_of = dt.time(*clock)
            continue
        if _TEMPERATURE_HEAD_RE.match(line):
            in_temperature = True
            continue
        if temperature_seen and not in_temperature:
            continue
        if in_temperature and _BLOCK_END_RE.match(line):
            break
        if block is None and (m := _BLOCK_RE.match(line)):
            block = m.group("block")
            continue
        if m := _ITEM_START_RE.match(line):
            item = m.group("item")
            if item in items:
                continue
            parsed = _ITEM_RE.match(line)
            if parsed is None:
                raise CliParseError(f"unreadable {item} line", line_no=first_line + idx, line=line)
            items[item] = (parsed, first_line + idx)

    kind: CliKind
    if valid_as_of is not None or block == "TODAY":
        kind = "intermediate"
    elif block == "YESTERDAY":
        kind = "final"
    else:
        kind = "final" if climate_date < header.issued_local_date else "intermediate"

    max_f, max_t, max_r, max_e = _item_values(items.get("MAXIMUM"))
    min_f, min_t, min_r, min_e = _item_values(items.get("MINIMUM"))
    wmo_heading = (
        " ".join(p for p in (header.ttaaii, header.office, header.ddhhmm, header.bbb) if p)
        if header.ttaaii
        else None
    )
    return CliReport(
        pil=header.pil,
        station_name=" ".join(summary.group("name").split()),
        climate_date=climate_date,
        issued_at=header.issued_at,
        kind=kind,
        max_temp_f=max_f,
        max_time_lst=max_t,
        min_temp_f=min_f,
        min_time_lst=min_t,
        max_record=max_r,
        min_record=min_r,
        max_estimated=max_e,
        min_estimated=min_e,
        valid_as_of=valid_as_of,
        office=header.office,
        wmo_heading=wmo_heading,
        bbb=header.bbb,
        is_correction=(
            header.header_correction
            or bool(header.bbb and header.bbb.startswith("CC"))
            or bool(_CORRECTION_RE.search(summary_line))
        ),
        section=section,
        product_id=product_id,
        text=text,
    )


def _item_values(
    found: tuple[re.Match[str], int] | None,
) -> tuple[int | None, dt.time | None, bool, bool]:
    if found is None:
        return None, None, False, False
    m, line_no = found
    raw_value = m.group("value")
    value = None if raw_value == "MM" else int(raw_value)
    when: dt.time | None = None
    raw_time = m.group("time")
    if raw_time and raw_time != "MM":
        digits, ampm = raw_time[:-2].strip(), raw_time[-2:]
        clock = _clock(digits, ampm)
        if clock is None:
            raise CliParseError(f"impossible time {raw_time!r}", line_no=line_no, line=m.string)
        when = dt.time(*clock)
    return value, when, m.group("record") is not None, bool(m.group("est1") or m.group("est2"))


def _derived_product_id(header: _Header) -> str:
    """The IEM product id (``202607100625-KOKX-CDUS41-CLINYC``), built from the WMO heading.

    The heading's DDHHMM gives day and time only; the month and year are those that put it
    closest to the issuance line's time.
    """
    issued = header.issued_at
    if header.ddhhmm is None or header.office is None or header.ttaaii is None:
        return f"{issued:%Y%m%d%H%M}-{header.pil}"
    day, hour, minute = (int(header.ddhhmm[i : i + 2]) for i in (0, 2, 4))
    best: dt.datetime | None = None
    for shift in (-1, 0, 1):
        year, month = issued.year, issued.month + shift
        if month == 0:
            year, month = year - 1, 12
        elif month == 13:
            year, month = year + 1, 1
        try:
            cand = dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)
        except ValueError:
            continue
        if best is None or abs(cand - issued) < abs(best - issued):
            best = cand
    stamp = best or issued
    pid = f"{stamp:%Y%m%d%H%M}-{header.office}-{header.ttaaii}-{header.pil}"
    return f"{pid}-{header.bbb}" if header.bbb else pid


def settlement_rows(reports: Iterable[CliReport], city: City) -> pd.DataFrame:
    """Rows for the SETTLEMENTS writer from the city's *final* reports, oldest issue first.

    Intermediate reports never settle anything, and sections other than the product's own
    station (Hobby inside CLIHOU) are skipped. A day may appear more than once (original and
    corrections); the writer needs unique keys per write, so hand the result to
    :func:`settlement_waves` and write the waves in order: the first write of a day stores
    the first-published value, later ones move ``tmax_final``.
    """
    rows = []
    for report in reports:
        if report.pil != city.cli_product:
            raise ValueError(
                f"report {report.pil} for {report.climate_date} is not {city.key}'s "
                f"settlement product {city.cli_product}"
            )
        if not report.is_final or report.section != 0 or report.max_temp_f is None:
            continue
        rows.append(
            {
                "city": city.key,
                "climate_date": report.climate_date,
                "source": "cli",
                "tmax": report.max_temp_f,
                "published_at": pd.Timestamp(report.issued_at),
                "note": "final",
            }
        )
    frame = pd.DataFrame(rows, columns=list(SETTLEMENT_COLUMNS))
    if frame.empty:
        return frame
    frame = frame.sort_values(["climate_date", "published_at"], kind="stable")
    frame = frame.drop_duplicates(["climate_date", "published_at", "tmax"])
    frame["tmax"] = frame["tmax"].astype("int64")
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame.reset_index(drop=True)


def settlement_waves(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Split settlement rows into frames with one row per key, in publication order.

    Wave k holds the k-th issuance of every day, so writing the waves one after another
    keeps the first-published value in ``tmax_first`` and the latest in ``tmax_final``.
    """
    if frame.empty:
        return []
    ordered = frame.sort_values("published_at", kind="stable")
    rank = ordered.groupby(["city", "climate_date", "source"]).cumcount()
    return [ordered[rank == k].reset_index(drop=True) for k in range(int(rank.max()) + 1)]


def product_rows(reports: Iterable[CliReport], city: City | None = None) -> pd.DataFrame:
    """Rows for the PRODUCTS writer: one per product (the primary section stands for it)."""
    rows: dict[str, dict[str, object]] = {}
    for report in reports:
        pid = report.product_id or f"{report.issued_at:%Y%m%d%H%M}-{report.pil}"
        if pid in rows and report.section != 0:
            continue
        rows[pid] = {
            "product_id": pid,
            "pil": report.pil,
            "station": city.station_icao if city is not None else None,
            "city": city.key if city is not None else None,
            "issued_at": pd.Timestamp(report.issued_at),
            "climate_date": report.climate_date,
            "kind": report.kind,
            "text": report.text,
        }
    frame = pd.DataFrame(list(rows.values()), columns=list(PRODUCT_COLUMNS))
    if not frame.empty:
        frame["issued_at"] = pd.to_datetime(frame["issued_at"], utc=True)
    return frame
