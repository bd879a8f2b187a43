"""Station MOS and NBM guidance from IEM: the MOS archive (CSV) and the raw text bulletins.

* ``/cgi-bin/request/mos.py?station=KMDW&model=GFS&sts=…&ets=…&format=csv`` returns every
  run (``runtime``) in [sts, ets] with one line per forecast time (``ftime``, UTC). The daily
  max temperature is ``n_x`` for the GFS, NAM and GFS-extended (MEX) MOS and ``txn`` (with its
  spread ``xnd``) for NBM's NBS and NBE; IEM stores the raw encodings, 999 meaning missing.
* Text bulletins (``NBSUSA``, ``NBEUSA``, ``MAV…``) come from IEM's AFOS store through the
  product listing and ``/api/1/nwstext/`` (``IemClient.cli_product_list``/``product_text``);
  ``entered`` is when the product was received, the honest issue time.

Which values are maxima, and of which climate day, is ``nbm_text.max_target_date``: one rule
for the archive and the bulletins. Both go through IEM's one-request-per-second bucket.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from kwx.registry import City
from kwx.sources.http import PayloadError
from kwx.sources.iem import IemClient
from kwx.sources.nbm_text import (
    BulletinError,
    DailyMax,
    daily_maxima,
    max_target_date,
    parse_bulletins,
)

__all__ = [
    "BULLETIN_PILS",
    "IEM_MODELS",
    "MOS_PATH",
    "bulletin_daily_max",
    "mos_daily_max",
    "parse_mos_csv",
]

SOURCE: Final = "iem_mos"
MOS_PATH: Final = "/cgi-bin/request/mos.py"
# kwx model → IEM's model= value, and the column holding the max/min temperature.
IEM_MODELS: Final[dict[str, tuple[str, str]]] = {
    "gfs_mos": ("GFS", "n_x"),
    "nam_mos": ("NAM", "n_x"),
    "gfs_mex": ("MEX", "n_x"),
    "nbs": ("NBS", "txn"),
    "nbe": ("NBE", "txn"),
}
SPREAD_COLUMN: Final = "xnd"
BULLETIN_PILS: Final[dict[str, str]] = {"nbs": "NBSUSA", "nbe": "NBEUSA"}
_MISSING: Final = 999.0


def _time(text: str) -> dt.datetime | None:
    text = text.strip().replace("T", " ").removesuffix("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _number(text: str | None) -> float | None:
    if text is None or not text.strip() or text.strip() in ("M", "None"):
        return None
    return float(text)


def parse_mos_csv(
    body: str, *, model: str, timezone: str, url: str | None = None
) -> list[DailyMax]:
    """The daily maxima of an IEM MOS CSV answer for one station and model.

    Strict about shape (the columns must be there, times and numbers must parse: a
    PayloadError names the data row and column and keeps the body); blank and 999 values are
    simply absent forecasts.
    """
    if model not in IEM_MODELS:
        raise ValueError(f"no IEM MOS model for {model!r}; known: {', '.join(IEM_MODELS)}")
    column = IEM_MODELS[model][1]
    reader = csv.DictReader(io.StringIO(body))
    header = reader.fieldnames or []
    for needed in ("runtime", "ftime", "station", column):
        if needed not in header:
            raise PayloadError(
                SOURCE,
                f"column {needed!r} is missing (got {', '.join(header)[:200]})",
                url=url,
                body=body,
            )
    out: list[DailyMax] = []
    for row_no, row in enumerate(reader, start=1):
        runtime, ftime = _time(row["runtime"] or ""), _time(row["ftime"] or "")
        if runtime is None or ftime is None:
            bad = "runtime" if runtime is None else "ftime"
            raise PayloadError(
                SOURCE,
                f"data row {row_no}, column {bad!r}: not a time ({row[bad]!r})",
                url=url,
                body=body,
            )
        try:
            value = _number(row.get(column))
            spread = _number(row.get(SPREAD_COLUMN))
        except ValueError as exc:
            raise PayloadError(
                SOURCE, f"data row {row_no}: not a number ({exc})", url=url, body=body
            ) from exc
        target = max_target_date(ftime, timezone)
        if value is None or value >= _MISSING or target is None:
            continue
        out.append(
            DailyMax(
                station=(row["station"] or "").strip(),
                model=model,
                runtime=runtime,
                valid_at=ftime,
                target_date=target,
                tmax_f=value,
                spread_f=spread if spread is not None and spread < _MISSING else None,
            )
        )
    return out


def mos_daily_max(
    iem: IemClient, city: City, model: str, runs_from: dt.datetime, runs_to: dt.datetime
) -> list[DailyMax]:
    """Maxima of every ``model`` run made in [runs_from, runs_to] at the city's station."""
    if runs_from.tzinfo is None or runs_to.tzinfo is None:
        raise ValueError("MOS run bounds must be timezone-aware")
    iem_model = IEM_MODELS[model][0]
    response = iem.get(
        MOS_PATH,
        [
            ("station", city.station_icao),
            ("model", iem_model),
            ("sts", runs_from.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")),
            ("ets", runs_to.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")),
            ("format", "csv"),
        ],
    )
    rows = parse_mos_csv(
        response.text, model=model, timezone=city.timezone, url=str(response.request.url)
    )
    return [r for r in rows if r.station.upper() == city.station_icao.upper()]


def bulletin_daily_max(
    iem: IemClient,
    model: str,
    cities: Iterable[City],
    start: dt.date,
    end: dt.date,
    *,
    errors: list[BulletinError] | None = None,
) -> list[DailyMax]:
    """Maxima for the cities' stations from every text bulletin of ``model`` entered on UTC
    dates start..end; ``received_at`` is the product's entry time at IEM."""
    wanted = {c.station_icao.upper(): c for c in cities}
    out: list[DailyMax] = []
    for product in iem.cli_product_list(BULLETIN_PILS[model], start, end):
        parsed = parse_bulletins(iem.product_text(product.product_id), source=product.product_id)
        if errors is not None:
            errors.extend(parsed.errors)
        for bulletin in parsed.bulletins:
            city = wanted.get(bulletin.station.upper())
            if city is None or bulletin.model != model:
                continue
            out.extend(
                replace(m, received_at=product.entered)
                for m in daily_maxima(bulletin, city.timezone)
            )
    return out
