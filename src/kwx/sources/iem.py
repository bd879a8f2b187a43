"""Iowa Environmental Mesonet: ASOS 1-minute and METAR archives, and NWS text products.

IEM is where station-exact history comes from (weather-sources.md §8): one-minute ASOS
temperatures (about a day late, the best proxy for the 2-minute values behind the CLI
maximum), every routine and special METAR with its raw text, and every CLI product as
issued. IEM asks scripts for at most one request per second, so every request here goes
through a token bucket first; 503 "server over capacity" and 429 are retried with backoff.

Parsers are strict: a CSV or JSON that does not have the documented shape raises
PayloadError with the raw body attached, so a changed endpoint is noticed instead of
silently producing empty frames.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import numpy as np
import pandas as pd

from kwx.config import Settings
from kwx.registry import City
from kwx.sources.cli_text import CliParseError, CliReport, parse_cli_products
from kwx.sources.http import PayloadError, RetryPolicy, RetryStats, SourceError, send_with_retries
from kwx.sources.metar_obs import (
    OBS_FRAME_COLUMNS,
    MetarParseError,
    MetarReading,
    finish_obs_frame,
    metar_obs_frame,
    parse_metar,
)
from kwx.sources.ratelimit import TokenBucket

__all__ = [
    "AFOS_LIST_PATH",
    "ASOS1MIN_PATH",
    "ASOS_PATH",
    "NWSTEXT_PATH",
    "IemClient",
    "IemProduct",
    "asos1min_obs_frame",
    "metar_obs_frame",
    "obs_frame",
    "parse_afos_list",
    "parse_asos1min_csv",
    "parse_asos_csv",
]

log = logging.getLogger(__name__)

SOURCE: Final = "iem"
ASOS1MIN_PATH: Final = "/cgi-bin/request/asos1min.py"
ASOS_PATH: Final = "/cgi-bin/request/asos.py"
AFOS_LIST_PATH: Final = "/api/1/nws/afos/list.json"
NWSTEXT_PATH: Final = "/api/1/nwstext/"
KNOTS_TO_MPH: Final = 1.150779448
DEFAULT_1MIN_VARS: Final = ("tmpf", "dwpf", "sknt", "drct")
_MAX_BODY_IN_ERROR: Final = 300


@dataclass(frozen=True, slots=True)
class IemProduct:
    """One row of IEM's AFOS product listing."""

    product_id: str
    pil: str
    entered: dt.datetime
    cccc: str | None
    text_link: str | None


def _station3(station: str) -> str:
    """IEM's ASOS ids drop the ICAO 'K' (KMDW → MDW); other prefixes (PANC) are kept."""
    station = station.strip().upper()
    return station[1:] if len(station) == 4 and station.startswith("K") else station


def _iso(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError(f"IEM time bounds must be timezone-aware, got {ts!r}")
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def _payload_error(message: str, url: str | None, body: str) -> PayloadError:
    return PayloadError(SOURCE, message, url=url, body=body)


def _numeric(
    values: pd.Series[str], column: str, url: str | None, body: str, lines: Sequence[str]
) -> pd.Series[float]:
    cleaned = values.str.strip().mask(values.str.strip().isin(["M", "", "None"]))
    out = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    bad = out.isna() & cleaned.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise _payload_error(
            f"column {column!r}, data row {pos + 1}: not a number "
            f"({values.iloc[pos]!r}) in {lines[pos]!r}",
            url,
            body,
        )
    return out


def _timestamps(
    values: pd.Series[str], tz: str, column: str, url: str | None, body: str
) -> pd.Series[pd.Timestamp]:
    parsed = pd.to_datetime(values.str.strip(), format="%Y-%m-%d %H:%M", errors="coerce")
    if parsed.isna().any():
        pos = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise _payload_error(
            f"column {column!r}, data row {pos + 1}: not a timestamp ({values.iloc[pos]!r})",
            url,
            body,
        )
    if tz.upper() in ("UTC", "Z", "ETC/UTC"):
        return parsed.dt.tz_localize("UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _payload_error(f"unknown time zone {tz!r} in the header", url, body) from exc
    localized = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return localized.dt.tz_convert("UTC")


def _read_csv(body: str, url: str | None) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and the raw data lines of a comma-separated IEM answer."""
    lines = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise _payload_error("empty CSV body (no header line)", url, body)
    rows = list(csv.reader(lines))
    header = [h.strip() for h in rows[0]]
    data = rows[1:]
    for i, row in enumerate(data, start=1):
        if len(row) != len(header):
            raise _payload_error(
                f"data row {i} has {len(row)} fields, the header {len(header)}: {lines[i]!r}",
                url,
                body,
            )
    return header, data, lines[1:]


def parse_asos1min_csv(body: str, *, url: str | None = None) -> pd.DataFrame:
    """Parse an ``asos1min.py`` answer into ``station, ts (UTC), <vars>…, raw``.

    The header is ``station,station_name,valid(<tz>),<vars>``; ``M`` is missing.
    """
    header, data, lines = _read_csv(body, url)
    valid_cols = [h for h in header if h.startswith("valid(") and h.endswith(")")]
    if "station" not in header or not valid_cols:
        raise _payload_error(
            f"not an asos1min CSV: header {header!r} lacks station / valid(<tz>)", url, body
        )
    valid_col = valid_cols[0]
    tz = valid_col[len("valid(") : -1]
    table = pd.DataFrame(data, columns=header, dtype="string")
    out = pd.DataFrame(
        {
            "station": table["station"].str.strip().astype(object),
            "ts": _timestamps(table[valid_col], tz, valid_col, url, body),
        }
    )
    skip = {"station", "station_name", valid_col, "lat", "lon"}
    for col in header:
        if col not in skip:
            out[col] = _numeric(table[col], col, url, body, lines)
    out["raw"] = pd.Series(lines, dtype=object)
    return out.reset_index(drop=True)


def parse_asos_csv(body: str, *, url: str | None = None) -> pd.DataFrame:
    """Parse an ``asos.py`` (``format=onlycomma``) answer: ``station, ts, <data>…, metar``."""
    header, data, lines = _read_csv(body, url)
    if "station" not in header or "valid" not in header:
        raise _payload_error(
            f"not an asos.py CSV: header {header!r} lacks station / valid", url, body
        )
    table = pd.DataFrame(data, columns=header, dtype="string")
    out = pd.DataFrame(
        {
            "station": table["station"].str.strip().astype(object),
            "ts": _timestamps(table["valid"], "UTC", "valid", url, body),
        }
    )
    for col in header:
        if col in ("station", "valid"):
            continue
        if col == "metar":
            out["metar"] = (
                table["metar"].str.strip().mask(table["metar"].str.strip() == "M").astype(object)
            )
        elif col in ("tmpf", "dwpf", "relh", "drct", "sknt", "tmpc", "dwpc", "sped"):
            out[col] = _numeric(table[col], col, url, body, lines)
        else:
            out[col] = table[col].astype(object)
    return out.reset_index(drop=True)


def parse_afos_list(body: str, *, url: str | None = None) -> list[IemProduct]:
    """Parse IEM's ``list.json`` (``{"data": [{"product_id", "entered", "pil", …}]}``)."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _payload_error(f"invalid JSON: {exc}", url, body) from exc
    rows = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise _payload_error("no 'data' list in the product listing", url, body)
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("product_id"), str):
            raise _payload_error(f"listing row {i} has no product_id: {row!r}", url, body)
        try:
            entered = dt.datetime.fromisoformat(str(row["entered"]).replace("Z", "+00:00"))
        except (KeyError, ValueError) as exc:
            raise _payload_error(f"listing row {i}: bad 'entered' ({exc})", url, body) from exc
        if entered.tzinfo is None:
            entered = entered.replace(tzinfo=dt.UTC)
        out.append(
            IemProduct(
                product_id=row["product_id"],
                pil=str(row.get("pil") or row["product_id"].rsplit("-", 1)[-1]),
                entered=entered.astimezone(dt.UTC),
                cccc=row.get("cccc"),
                text_link=row.get("text_link"),
            )
        )
    return out


class IemClient:
    """Blocking client for the IEM endpoints kwx uses; see the module docstring."""

    def __init__(
        self,
        base_url: str = "https://mesonet.agron.iastate.edu",
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        timeout_s: float = 20.0,
        user_agent: str = "kwx",
        sleep: Callable[[float], None] = time.sleep,
        stats: RetryStats | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout_s, follow_redirects=True, headers={"User-Agent": user_agent}
        )
        self._retry = retry or RetryPolicy()
        # IEM throttles scripts to one request per second per address (since 2026-04-21).
        self._bucket = bucket if bucket is not None else TokenBucket(rate=1.0, capacity=1.0)
        self._sleep = sleep
        self.stats = stats if stats is not None else RetryStats()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
    ) -> IemClient:
        """A client on the configured base URL; the NWS contact string doubles as our UA."""
        return cls(
            settings.iem_base_url,
            client=client,
            retry=retry,
            bucket=bucket
            if bucket is not None
            else TokenBucket(
                rate=settings.iem_requests_per_s, capacity=max(1.0, settings.iem_requests_per_s)
            ),
            timeout_s=settings.http_timeout_s,
            user_agent=settings.nws_user_agent,
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> IemClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> httpx.Response:
        """A 200 answer from ``path``, through the rate limit and retries (for sibling clients
        of other IEM services, e.g. ``kwx.sources.mos``); anything else raises SourceError."""
        return self._get(path, params)

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> httpx.Response:
        url = self.base_url + path

        def build() -> httpx.Request:
            self._bucket.acquire()
            return self._client.build_request("GET", url, params=list(params))

        response = send_with_retries(
            self._client,
            build,
            source=SOURCE,
            policy=self._retry,
            sleep=self._sleep,
            stats=self.stats,
        )
        if response.status_code != 200:
            body = response.text
            raise SourceError(
                SOURCE,
                body.strip()[:_MAX_BODY_IN_ERROR] or response.reason_phrase,
                status=response.status_code,
                url=str(response.request.url),
                body=body,
            )
        return response

    # ------------------------------------------------------------------ endpoints
    def asos_1min(
        self,
        station: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        variables: Sequence[str] = DEFAULT_1MIN_VARS,
        sample: str = "1min",
    ) -> pd.DataFrame:
        """One-minute ASOS rows in ``[start, end)``: ``station, ts (UTC), <variables>, raw``.

        Ask for at most a station-month per call (about 44,640 rows).
        """
        params = [("station", _station3(station))]
        params += [("vars", v) for v in variables]
        params += [
            ("sts", _iso(start)),
            ("ets", _iso(end)),
            ("sample", sample),
            ("what", "download"),
            ("delim", "comma"),
            ("tz", "UTC"),
        ]
        response = self._get(ASOS1MIN_PATH, params)
        return parse_asos1min_csv(response.text, url=str(response.request.url))

    def asos_csv(
        self,
        station: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        data: Sequence[str] = ("tmpf", "metar"),
        report_types: Sequence[int] = (3, 4),
    ) -> pd.DataFrame:
        """The METAR archive as parsed CSV (``station, ts, <data>…``); routine + specials."""
        params = [("station", _station3(station))]
        params += [("data", d) for d in data]
        params += [
            ("sts", _iso(start)),
            ("ets", _iso(end)),
            ("tz", "UTC"),
            ("format", "onlycomma"),
            ("missing", "M"),
        ]
        params += [("report_type", str(r)) for r in report_types]
        response = self._get(ASOS_PATH, params)
        return parse_asos_csv(response.text, url=str(response.request.url))

    def metar_archive(
        self,
        station: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        report_types: Sequence[int] = (3, 4),
        errors: list[MetarParseError] | None = None,
    ) -> list[MetarReading]:
        """Decoded METARs in ``[start, end)``, re-parsed from IEM's raw ``metar`` column.

        The raw text is re-parsed because IEM's ``tmpf`` hides whether it came from the
        tenths-°C T group or the whole-°C body, and the 6-hour max group is only in the text.
        Undecodable reports are logged and appended to ``errors`` when given; the rest are
        returned.
        """
        frame = self.asos_csv(
            station, start, end, data=("tmpf", "metar"), report_types=report_types
        )
        if "metar" not in frame.columns:
            raise PayloadError(SOURCE, "asos.py answer has no 'metar' column", body=str(frame))
        readings: list[MetarReading] = []
        for ts, raw in zip(frame["ts"], frame["metar"], strict=True):
            if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                continue
            try:
                readings.append(parse_metar(str(raw), year=ts.year, month=ts.month))
            except MetarParseError as exc:
                log.warning("iem %s %s: skipping undecodable METAR: %s", station, ts, exc)
                if errors is not None:
                    errors.append(exc)
        return readings

    def cli_product_list(self, pil: str, start: dt.date, end: dt.date) -> list[IemProduct]:
        """Products of one AWIPS PIL entered on UTC dates ``start``..``end`` (inclusive)."""
        out: dict[str, IemProduct] = {}
        day = start
        while day <= end:
            response = self._get(AFOS_LIST_PATH, [("pil", pil.upper()), ("date", day.isoformat())])
            for product in parse_afos_list(response.text, url=str(response.request.url)):
                out[product.product_id] = product
            day += dt.timedelta(days=1)
        return sorted(out.values(), key=lambda p: (p.entered, p.product_id))

    def product_text(self, product_id: str) -> str:
        """The raw text of one product, exactly as IEM stores it."""
        response = self._get(NWSTEXT_PATH + product_id)
        text = response.text
        if not text.strip():
            raise PayloadError(SOURCE, f"empty text for product {product_id}", body=text)
        return text

    def cli_reports(self, pil: str, start: dt.date, end: dt.date) -> list[CliReport]:
        """Every CLI product of ``pil`` entered in the date range, fetched and parsed.

        A product that does not parse is logged and skipped (its text can be fetched again
        with :meth:`product_text`); one bad product must not hide a month of good ones.
        """
        reports: list[CliReport] = []
        for product in self.cli_product_list(pil, start, end):
            text = self.product_text(product.product_id)
            try:
                reports.extend(parse_cli_products(text, product_id=product.product_id))
            except CliParseError as exc:
                log.warning("iem %s: unparseable CLI product: %s", product.product_id, exc)
        return reports


# ---------------------------------------------------------------------- frame builders
def _city_key(city: City | str) -> str:
    return city if isinstance(city, str) else city.key


def asos1min_obs_frame(
    frame: pd.DataFrame, city: City | str, source: str = "asos1min"
) -> pd.DataFrame:
    """OBS rows from :meth:`IemClient.asos_1min` output.

    The one-minute feed is whole °F natively, so ``temp_c`` stays empty (it holds only
    native Celsius readings); ``raw`` keeps the CSV line.
    """

    def col(name: str) -> pd.Series[float]:
        if name in frame.columns:
            return frame[name].astype("float64")
        return pd.Series(np.nan, index=frame.index, dtype="float64")

    out = pd.DataFrame(
        {
            "city": _city_key(city),
            "source": source,
            "ts": frame["ts"] if "ts" in frame.columns else pd.Series(dtype="datetime64[ns, UTC]"),
            "temp_f": col("tmpf"),
            "dewpoint_f": col("dwpf"),
            "rel_humidity": col("relh"),
            "wind_speed_mph": (col("sknt") * KNOTS_TO_MPH).round(2),
            "wind_dir_deg": col("drct"),
            "temp_c": np.nan,
            "max_temp_6h_f": np.nan,
            "raw": frame["raw"] if "raw" in frame.columns else None,
        },
        columns=list(OBS_FRAME_COLUMNS),
    )
    return finish_obs_frame(out)


def obs_frame(
    data: pd.DataFrame | Iterable[MetarReading], city: City | str, source: str
) -> pd.DataFrame:
    """OBS rows from either IEM feed: a 1-minute frame or decoded METARs."""
    if isinstance(data, pd.DataFrame):
        return asos1min_obs_frame(data, city, source)
    return metar_obs_frame(data, city, source)
