"""Visual Crossing Timeline API: station-pinned sub-hourly observations and forecasts.

Visual Crossing is a *secondary* feature (weather-sources.md §9.6): it blends stations and
interpolates minutes, so it is never a settlement proxy. To make it as station-exact as it
can be, observation requests pin the settlement station (``stn:KMDW`` with
``maxStations=1&maxDistance=0``) and ask for the ``stations`` element, which is logged and
kept in each row's ``raw`` for audit.

The API key travels in the query string (``key=``), so it would leak into every log line and
error that shows a URL. Three defences: a logging filter on the HTTP loggers rewrites any
``key=…``; every error this module raises is built from redacted text (bodies too: a 401
body quotes the key back); and transport errors are re-raised without their original
exception attached.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
from pydantic import SecretStr

from kwx.config import Settings
from kwx.registry import City
from kwx.sources.http import PayloadError, RetryPolicy, RetryStats, SourceError, send_with_retries
from kwx.sources.metar_obs import OBS_FRAME_COLUMNS, finish_obs_frame
from kwx.sources.nws import FORECAST_COLUMNS, finish_forecast_frame
from kwx.sources.ratelimit import TokenBucket

__all__ = [
    "DEFAULT_ELEMENTS",
    "VC_ISSUE_HOUR_UTC",
    "QuotaExceededError",
    "VcRow",
    "VcTimeline",
    "VisualCrossingClient",
    "parse_timeline",
    "redact",
    "vc_forecast_frame",
    "vc_issued_at",
    "vc_obs_frame",
]

log = logging.getLogger(__name__)

SOURCE: Final = "vc"
# Same rule as kwx.ingest.normalize.VC_ISSUE_HOUR_UTC (sources may not import ingest): a
# historical forecast of basis date D is taken as issued at D 12:00 UTC, the latest of the
# two run times VC's exports are measured from, so it is never used before it existed.
VC_ISSUE_HOUR_UTC: Final = 12
DEFAULT_ELEMENTS: Final = (
    "datetime",
    "datetimeEpoch",
    "temp",
    "dew",
    "humidity",
    "windspeed",
    "winddir",
    "cloudcover",
    "precip",
    "precipprob",
    "conditions",
    "stations",
    "source",
)
MINUTE_INTERVALS: Final = frozenset({5, 10, 15, 30})
_KEY_RE: Final = re.compile(r"(?i)(\bkey=)[^&\s\"'#<>]+")
_REDACTED: Final = "***"
_HTTP_LOGGERS: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "kwx.sources.http",
    __name__,
)

Level = Literal["day", "hour", "minute"]


def redact(text: str, secret: str | None = None) -> str:
    """Hide ``key=…`` query values and, when given, every occurrence of the secret itself."""
    out = _KEY_RE.sub(r"\1" + _REDACTED, text)
    if secret:
        out = out.replace(secret, _REDACTED)
    return out


class _RedactKeyFilter(logging.Filter):
    """Rewrites log records whose message carries a ``key=`` query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if "key=" in message.lower():
            record.msg = redact(message)
            record.args = None
        return True


_FILTER: Final = _RedactKeyFilter()


def _install_log_redaction() -> None:
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


_install_log_redaction()


class QuotaExceededError(SourceError):
    """The account's daily (or monthly) record budget is spent: retrying cannot help today."""


@dataclass(frozen=True, slots=True)
class VcRow:
    """One day, hour or minute of a timeline, keyed on ``datetimeEpoch`` (UTC)."""

    ts: dt.datetime
    level: Level
    temp_f: float | None
    dewpoint_f: float | None = None
    rel_humidity: float | None = None
    wind_speed_mph: float | None = None
    wind_dir_deg: float | None = None
    cloud_cover: float | None = None
    precip_in: float | None = None
    precip_prob: float | None = None
    conditions: str | None = None
    stations: tuple[str, ...] | None = None
    source: str | None = None

    def audit(self) -> str:
        """What ``raw`` keeps: where the value came from."""
        return json.dumps(
            {
                "level": self.level,
                "source": self.source,
                "stations": list(self.stations) if self.stations is not None else None,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class VcTimeline:
    """A parsed timeline answer plus when we got it and what we asked for."""

    location: str
    queried_at: dt.datetime
    rows: list[VcRow]
    resolved_address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    tzoffset: float | None = None
    query_cost: float | None = None
    forecast_basis_date: dt.date | None = None
    stations: dict[str, Any] = field(default_factory=dict)

    def at(self, level: Level) -> list[VcRow]:
        return [r for r in self.rows if r.level == level]


# ---------------------------------------------------------------------- parsing
def _number(obj: dict[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key} is not a number: {value!r}")
    return float(value)


def _row(obj: object, level: Level, where: str) -> VcRow:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is not an object")
    epoch = obj.get("datetimeEpoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        raise ValueError(f"{where} has no datetimeEpoch")
    stations = obj.get("stations")
    if stations is not None and not (
        isinstance(stations, list) and all(isinstance(s, str) for s in stations)
    ):
        raise ValueError(f"{where}: stations is not a list of ids: {stations!r}")
    conditions = obj.get("conditions")
    return VcRow(
        ts=dt.datetime.fromtimestamp(epoch, dt.UTC),
        level=level,
        temp_f=_number(obj, "temp", where),
        dewpoint_f=_number(obj, "dew", where),
        rel_humidity=_number(obj, "humidity", where),
        wind_speed_mph=_number(obj, "windspeed", where),
        wind_dir_deg=_number(obj, "winddir", where),
        cloud_cover=_number(obj, "cloudcover", where),
        precip_in=_number(obj, "precip", where),
        precip_prob=_number(obj, "precipprob", where),
        conditions=conditions if isinstance(conditions, str) else None,
        stations=tuple(stations) if stations is not None else None,
        source=obj.get("source") if isinstance(obj.get("source"), str) else None,
    )


def parse_timeline(
    body: str,
    *,
    location: str,
    queried_at: dt.datetime,
    forecast_basis_date: dt.date | None = None,
) -> VcTimeline:
    """Parse a Timeline JSON answer (``days[].hours[].minutes[]``); raises ValueError."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("days"), list):
        raise ValueError("no 'days' list")
    rows: list[VcRow] = []
    for i, day in enumerate(doc["days"]):
        rows.append(_row(day, "day", f"days[{i}]"))
        for j, hour in enumerate(day.get("hours") or []):
            rows.append(_row(hour, "hour", f"days[{i}].hours[{j}]"))
            for k, minute in enumerate(hour.get("minutes") or []):
                rows.append(_row(minute, "minute", f"days[{i}].hours[{j}].minutes[{k}]"))
    stations = doc.get("stations")
    return VcTimeline(
        location=location,
        queried_at=queried_at,
        rows=rows,
        resolved_address=doc.get("resolvedAddress"),
        latitude=_number(doc, "latitude", "response"),
        longitude=_number(doc, "longitude", "response"),
        timezone=doc.get("timezone"),
        tzoffset=_number(doc, "tzoffset", "response"),
        query_cost=_number(doc, "queryCost", "response"),
        forecast_basis_date=forecast_basis_date,
        stations=stations if isinstance(stations, dict) else {},
    )


def _date_part(value: dt.date | dt.datetime | str) -> str:
    """Path segment for a date: ``YYYY-MM-DD``, epoch seconds for an instant, or as given."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("timeline instants must be timezone-aware")
        return str(int(value.timestamp()))
    if isinstance(value, dt.date):
        return value.isoformat()
    return quote(value, safe=":-")


# ---------------------------------------------------------------------- client
class VisualCrossingClient:
    """Blocking Timeline API client; see the module docstring for the key's handling."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        timeout_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        stats: RetryStats | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        user_agent: str = "kwx",
    ) -> None:
        if not api_key.get_secret_value():
            raise ValueError("Visual Crossing needs an API key (VC_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._own_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout_s, follow_redirects=True, headers={"User-Agent": user_agent}
        )
        policy = retry or RetryPolicy()
        # 429 is judged here, not blindly retried: VC forbids retry loops against its limits.
        self._retry = replace(policy, retry_statuses=policy.retry_statuses - {429})
        self._bucket = bucket
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()
        self.stats = stats if stats is not None else RetryStats()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
    ) -> VisualCrossingClient:
        if settings.vc_api_key is None:
            raise ValueError("VC_API_KEY is not set")
        return cls(
            settings.vc_base_url,
            settings.vc_api_key,
            client=client,
            retry=retry,
            bucket=bucket,
            timeout_s=settings.http_timeout_s,
        )

    def __repr__(self) -> str:
        return f"VisualCrossingClient({self.base_url!r}, api_key=SecretStr('**********'))"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> VisualCrossingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return redact(text, self._key.get_secret_value())

    def _error(self, cls: type[SourceError], message: str, response: httpx.Response) -> SourceError:
        return cls(
            SOURCE,
            self._redact(message),
            status=response.status_code,
            url=self._redact(str(response.request.url)),
            body=self._redact(response.text),
        )

    def _send(self, url: str, params: list[tuple[str, str]]) -> httpx.Response:
        def build() -> httpx.Request:
            if self._bucket is not None:
                self._bucket.acquire()
            query = (*params, ("key", self._key.get_secret_value()))
            return self._client.build_request("GET", url, params=query)

        try:
            return send_with_retries(
                self._client,
                build,
                source=SOURCE,
                policy=self._retry,
                sleep=self._sleep,
                stats=self.stats,
            )
        except SourceError as exc:
            message = str(exc).split(": ", 1)[-1]
            raise SourceError(
                SOURCE,
                self._redact(message),
                status=exc.status,
                url=self._redact(exc.url) if exc.url else None,
                body=self._redact(exc.body) if exc.body else None,
            ) from None

    def _get(self, path: str, params: list[tuple[str, str]]) -> httpx.Response:
        url = self.base_url + path
        response = self._send(url, params)
        if response.status_code == 429:
            body = response.text.lower()
            if "daily" in body or "monthly" in body or "result records" in body:
                raise self._error(QuotaExceededError, response.text.strip(), response)
            # A concurrency 429: one delayed retry, no more (VC's terms).
            log.info("vc %s: concurrency limit (HTTP 429), one delayed retry", path)
            self._sleep(self._retry.delay(self._retry.max_attempts - 1, self._rng))
            response = self._send(url, params)
        if response.status_code != 200:
            raise self._error(
                SourceError, response.text.strip()[:300] or response.reason_phrase, response
            )
        return response

    def timeline(
        self,
        location: str,
        start: dt.date | dt.datetime | str,
        end: dt.date | dt.datetime | str | None = None,
        *,
        include: Sequence[str] = ("obs", "fcst", "hours"),
        minute_interval: int | None = None,
        forecast_basis_date: dt.date | None = None,
        station: str | None = None,
        elements: Sequence[str] = DEFAULT_ELEMENTS,
        unit_group: str = "us",
    ) -> VcTimeline:
        """One Timeline request; all times in UTC (``timezone=Z``), rows keyed on epoch.

        ``station`` pins the request to that station (``stn:KMDW``, one station, no search
        radius) and replaces ``location`` in the path. ``minute_interval`` (5, 10, 15, 30)
        adds ``minutes`` to ``include``. ``forecast_basis_date`` asks for the forecast as
        issued on that date (a historical forecast).
        """
        if minute_interval is not None and minute_interval not in MINUTE_INTERVALS:
            raise ValueError(f"minute_interval must be one of {sorted(MINUTE_INTERVALS)}")
        includes = list(dict.fromkeys(include))
        options: list[str] = []
        if minute_interval is not None:
            if "minutes" not in includes:
                includes.append("minutes")
            options.append(f"minuteinterval_{minute_interval}")
        if "obs" in includes and "fcst" not in includes:
            options.insert(0, "useobs")
        elif "fcst" in includes and "obs" not in includes:
            options.insert(0, "usefcst")
        where = f"stn:{station.upper()}" if station else location
        path = f"/timeline/{quote(where, safe=':,')}/{_date_part(start)}"
        if end is not None:
            path += f"/{_date_part(end)}"
        params = [
            ("unitGroup", unit_group),
            ("include", ",".join(includes)),
            ("elements", ",".join(elements)),
            ("timezone", "Z"),
            ("contentType", "json"),
        ]
        if options:
            params.append(("options", ",".join(options)))
        if station:
            params += [("maxStations", "1"), ("maxDistance", "0")]
        if forecast_basis_date is not None:
            params.append(("forecastBasisDate", forecast_basis_date.isoformat()))
        response = self._get(path, params)
        queried_at = _response_time(response) or self._clock()
        try:
            result = parse_timeline(
                response.text,
                location=where,
                queried_at=queried_at,
                forecast_basis_date=forecast_basis_date,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._error(PayloadError, f"unreadable timeline: {exc}", response) from None
        used = sorted({s for r in result.rows if r.stations for s in r.stations})
        log.info(
            "vc %s %s: %d rows, stations %s (listed: %s), cost %s",
            where,
            path.rsplit("/", 2)[-2:],
            len(result.rows),
            used,
            sorted(result.stations),
            result.query_cost,
        )
        if station and used and any(s.upper() != station.upper() for s in used):
            log.warning("vc %s: rows drew on other stations too: %s", where, used)
        return result


def _response_time(response: httpx.Response) -> dt.datetime | None:
    """The answer's HTTP ``Date``: when the server produced it (a replay's simulated now)."""
    header = response.headers.get("date")
    if not header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------- frame builders
def _city_key(city: City | str) -> str:
    return city if isinstance(city, str) else city.key


def _finest(timeline: VcTimeline) -> list[VcRow]:
    minutes = timeline.at("minute")
    return minutes if minutes else timeline.at("hour")


def vc_obs_frame(timeline: VcTimeline, city: City | str, source: str = "vc") -> pd.DataFrame:
    """OBS rows from the finest level present, observed rows only, none after the query.

    Rows marked ``fcst``/``comb``/``stats`` are not observations; VC's values are °F already
    blended, so ``temp_c`` (native Celsius only) stays empty and ``raw`` keeps the audit.
    """
    key = _city_key(city)
    rows = [
        {
            "city": key,
            "source": source,
            "ts": pd.Timestamp(r.ts),
            "temp_f": r.temp_f,
            "dewpoint_f": r.dewpoint_f,
            "rel_humidity": r.rel_humidity,
            "wind_speed_mph": r.wind_speed_mph,
            "wind_dir_deg": r.wind_dir_deg,
            "temp_c": np.nan,
            "max_temp_6h_f": np.nan,
            "raw": r.audit(),
        }
        for r in _finest(timeline)
        if r.source in (None, "obs") and r.ts <= timeline.queried_at
    ]
    return finish_obs_frame(pd.DataFrame(rows, columns=list(OBS_FRAME_COLUMNS)))


def vc_issued_at(timeline: VcTimeline) -> dt.datetime:
    """Basis date 12:00 UTC for a historical forecast, else when the answer was produced."""
    if timeline.forecast_basis_date is not None:
        basis = timeline.forecast_basis_date
        return dt.datetime(basis.year, basis.month, basis.day, VC_ISSUE_HOUR_UTC, tzinfo=dt.UTC)
    return timeline.queried_at


def vc_forecast_frame(
    timeline: VcTimeline,
    city: City | str,
    *,
    issued_at: dt.datetime | None = None,
    source: str = "vc",
    level: Level = "hour",
) -> pd.DataFrame:
    """FORECAST rows (hourly by default); observed and climatology rows are left out."""
    issued = issued_at or vc_issued_at(timeline)
    key = _city_key(city)
    rows = [
        {
            "city": key,
            "source": source,
            "issued_at": issued,
            "valid_at": r.ts,
            "temp_f": r.temp_f,
            "dewpoint_f": r.dewpoint_f,
            "rel_humidity": r.rel_humidity,
            "wind_speed_mph": r.wind_speed_mph,
            "cloud_cover": r.cloud_cover,
            "precip_in": r.precip_in,
            "precip_prob": r.precip_prob,
            "conditions": r.conditions,
        }
        for r in timeline.at(level)
        if r.source in (None, "fcst", "comb")
    ]
    return finish_forecast_frame(pd.DataFrame(rows, columns=list(FORECAST_COLUMNS)))
