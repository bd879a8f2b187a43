"""Station MOS and NBM text bulletins (MAV, MET, MEX, NBS, NBE, …): the daily max temperature.

A bulletin is a WMO product holding one block per station::

    KDSM    NBM V4.0 NBS GUIDANCE    4/07/2021  1200 UTC
    DT /APR   7/APR   8                /APR   9
    UTC  18 21 00 03 06 09 12 15 18 21 00 03 …
    FHR  06 09 12 15 18 21 24 27 30 33 36 39 …
    TXN        72          49          59 …
    XND         2           3           4 …

The columns are fixed width and right-aligned: a value belongs to the time column whose last
character it ends on. Times come from the ``FHR`` row (run time + hours) when there is one,
else from the ``HR``/``UTC`` row of hours, rolled over at midnight from the run time (MAV,
MET). The max/min row is ``X/N``, ``N/X`` or ``TXN`` (NBM v4+), its spread ``XND``.

Which values are maxima: the daytime maximum is valid at the end of the daytime period, 00Z
in North America (local afternoon or evening), the nighttime minimum at 12Z (local morning). A
value whose valid time falls between 12:00 and 23:59 local *standard* time is the maximum of
that climate day, the others minima (and not used). This needs no table per model or zone.

Errors are clear and local: a block whose time row is unreadable raises ``BulletinError``
naming the source, line and field; callers parsing a whole product get the good blocks and a
list of the bad ones (``parse_bulletins``), so one corrupt station costs nothing else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Final

from kwx.domain.climate_day import standard_offset

__all__ = [
    "BULLETIN_MODELS",
    "BulletinError",
    "DailyMax",
    "ParsedProduct",
    "StationBulletin",
    "daily_maxima",
    "max_target_date",
    "parse_bulletins",
]

# Header text → kwx guidance model (kwx.ingest.guidance.MODELS). Order matters: GFSX before GFS.
BULLETIN_MODELS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\bNBS\b"), "nbs"),
    (re.compile(r"\bNBE\b"), "nbe"),
    (re.compile(r"\bGFSX MOS\b"), "gfs_mex"),
    (re.compile(r"\bGFS MOS\b"), "gfs_mos"),
    (re.compile(r"\bNAM MOS\b"), "nam_mos"),
)
_HEADER = re.compile(
    r"^\W*(?P<station>[A-Z0-9_]{3,8})\s+(?P<desc>[A-Z0-9 .]+?)\s+GUIDANCE\s+"
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})\s+(?P<hh>\d{2})(?P<mm>\d{2})\s+UTC"
)
_MAX_ROWS: Final = ("X/N", "N/X", "TXN")
_SPREAD_ROW: Final = "XND"
_MISSING: Final = 999


class BulletinError(ValueError):
    """A bulletin block that cannot be read: says the source, line (1-based) and field."""

    def __init__(self, source: str, message: str, *, line: int | None, field: str) -> None:
        self.source, self.line, self.field, self.reason = source, line, field, message
        where = source + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}, field {field!r}: {message}")


@dataclass(frozen=True)
class StationBulletin:
    """One station's block: its valid times and the max/min row (None where blank)."""

    station: str
    description: str
    model: str | None  # kwx model name, None for products kwx does not use (LAMP, NBX, ECM)
    runtime: dt.datetime
    valid_at: tuple[dt.datetime, ...]
    extremes: tuple[int | None, ...]
    spreads: tuple[int | None, ...]
    line: int


@dataclass
class ParsedProduct:
    bulletins: list[StationBulletin] = field(default_factory=list)
    errors: list[BulletinError] = field(default_factory=list)


@dataclass(frozen=True)
class DailyMax:
    """A bulletin's maximum temperature for one local climate day."""

    station: str
    model: str
    runtime: dt.datetime
    valid_at: dt.datetime
    target_date: dt.date
    tmax_f: float
    spread_f: float | None
    received_at: dt.datetime | None = None  # when the product was received, where known


def _column_ends(line: str) -> list[tuple[int, str]]:
    """(index of the last character, token) of each whitespace-separated token after the label."""
    body = line.replace("|", " ")
    return [(m.end() - 1, m.group()) for m in re.finditer(r"\S+", body)][1:]


def _cell(line: str, end: int) -> str:
    body = line.replace("|", " ")
    return body[max(0, end - 2) : end + 1].strip() if end < len(body) else ""


def _label(line: str) -> str:
    parts = line.split()
    return parts[0] if parts else ""


def _times_from_fhr(
    source: str, lineno: int, line: str, runtime: dt.datetime
) -> tuple[list[int], list[dt.datetime]]:
    ends: list[int] = []
    times: list[dt.datetime] = []
    previous = 0
    for end, token in _column_ends(line):
        if not re.fullmatch(r"\d{1,3}", token) or int(token) <= previous:
            raise BulletinError(
                source,
                f"forecast hour {token!r} is not a positive, increasing number of hours",
                line=lineno,
                field="FHR",
            )
        previous = int(token)
        ends.append(end)
        times.append(runtime + dt.timedelta(hours=previous))
    return ends, times


def _times_from_hours(
    source: str, lineno: int, line: str, runtime: dt.datetime, label: str
) -> tuple[list[int], list[dt.datetime]]:
    ends: list[int] = []
    times: list[dt.datetime] = []
    current = runtime
    for end, token in _column_ends(line):
        if not re.fullmatch(r"\d{1,2}", token) or int(token) > 23:
            raise BulletinError(
                source, f"not an hour of the day: {token!r}", line=lineno, field=label
            )
        candidate = current.replace(hour=int(token), minute=0)
        while candidate <= current:
            candidate += dt.timedelta(days=1)
        if candidate - runtime > dt.timedelta(days=12):
            raise BulletinError(
                source, "hours run past the forecast range", line=lineno, field=label
            )
        current = candidate
        ends.append(end)
        times.append(candidate)
    return ends, times


def _values(line: str, ends: list[int]) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for end in ends:
        cell = _cell(line, end)
        if re.fullmatch(r"-?\d+", cell) and int(cell) != _MISSING:
            out.append(int(cell))
        else:
            out.append(None)
    return tuple(out)


def _model_of(desc: str) -> str | None:
    for pattern, model in BULLETIN_MODELS:
        if pattern.search(desc):
            return model
    return None


def _parse_block(source: str, lines: list[str], start: int) -> StationBulletin:
    header = _HEADER.match(lines[start])
    assert header is not None
    try:
        runtime = dt.datetime(
            int(header["year"]),
            int(header["month"]),
            int(header["day"]),
            int(header["hh"]),
            int(header["mm"]),
            tzinfo=dt.UTC,
        )
    except ValueError as exc:
        raise BulletinError(source, f"bad run time: {exc}", line=start + 1, field="header") from exc
    # LAMP stamps its runs at :30; the run is the hour (as IEM's archive stores it).
    runtime = runtime.replace(minute=0)
    rows: dict[str, tuple[int, str]] = {}
    for offset, line in enumerate(lines[start + 1 :], start=start + 2):
        if _HEADER.match(line):
            break
        if line.strip():  # blank lines separate blocks, or lines of a CR-CR-LF text
            rows.setdefault(_label(line), (offset, line))
    if "FHR" in rows:
        ends, times = _times_from_fhr(source, rows["FHR"][0], rows["FHR"][1], runtime)
    else:
        # MAV/MET have only HR (hours of the day); LAMP's HR counts forecast hours, its UTC
        # row has the hours of the day.
        label = "UTC" if "UTC" in rows else "HR"
        if label not in rows:
            raise BulletinError(source, "no time row (FHR, HR or UTC)", line=start + 1, field="FHR")
        ends, times = _times_from_hours(source, rows[label][0], rows[label][1], runtime, label)
    max_label = next((r for r in _MAX_ROWS if r in rows), None)
    blank = tuple(None for _ in ends)
    extremes = _values(rows[max_label][1], ends) if max_label else blank
    spreads = _values(rows[_SPREAD_ROW][1], ends) if _SPREAD_ROW in rows else blank
    return StationBulletin(
        station=header["station"],
        description=header["desc"].strip(),
        model=_model_of(header["desc"]),
        runtime=runtime,
        valid_at=tuple(times),
        extremes=extremes,
        spreads=spreads,
        line=start + 1,
    )


def parse_bulletins(text: str, *, source: str = "bulletin") -> ParsedProduct:
    """Every station block of a product; blocks that cannot be read go to ``errors``.

    A text with no station header at all is an error of its own (a wrong or truncated file).
    """
    lines = re.sub(r"\r+\n?", "\n", text).split("\n")
    out = ParsedProduct()
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if not starts:
        out.errors.append(
            BulletinError(
                source,
                "no station block ('<STATION> <MODEL> GUIDANCE <M/D/YYYY> <HHMM> UTC')",
                line=None,
                field="header",
            )
        )
    for start in starts:
        try:
            out.bulletins.append(_parse_block(source, lines, start))
        except BulletinError as exc:
            out.errors.append(exc)
    return out


def max_target_date(valid_at: dt.datetime, timezone: str) -> dt.date | None:
    """The climate day a max/min value valid at ``valid_at`` is the maximum of, or None when
    the value is a nighttime minimum (valid in the local standard-time morning)."""
    local = valid_at.astimezone(dt.timezone(standard_offset(timezone)))
    return local.date() if 12 <= local.hour <= 23 else None


def daily_maxima(bulletin: StationBulletin, timezone: str) -> list[DailyMax]:
    """The block's maxima by local climate day (see the module docstring for the rule)."""
    if bulletin.model is None:
        return []
    out: list[DailyMax] = []
    for valid, value, spread in zip(
        bulletin.valid_at, bulletin.extremes, bulletin.spreads, strict=True
    ):
        target = max_target_date(valid, timezone)
        if value is None or target is None:
            continue
        out.append(
            DailyMax(
                station=bulletin.station,
                model=bulletin.model,
                runtime=bulletin.runtime,
                valid_at=valid,
                target_date=target,
                tmax_f=float(value),
                spread_f=float(spread) if spread is not None else None,
            )
        )
    return out
