"""api.weather.gov: gridpoint forecasts, station observations and CLI products.

The NWS API is free and official, and the offices that write the CLI also write these
forecasts, so it is the first forecast source (weather-sources.md §10.5). Three habits of
the API shape this client:

* A ``User-Agent`` is mandatory; it is sent on every request from configuration, even when
  the caller injects its own ``httpx.Client``.
* Errors are ``application/problem+json`` (``type, title, status, detail``); their title
  and detail become the SourceError message.
* Values are QuantitativeValues in WMO units (``wmoUnit:degC``, ``wmoUnit:km_h-1``), and
  raw grids are ISO-8601 intervals (``…/PT3H``) that must be expanded to hours.

NWS keeps no forecast history, so the ingest job snapshots forecasts; ``issued_at`` of a
snapshot is the response's ``generatedAt`` (when the API produced what we stored), never a
time before anyone could have seen it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import httpx
import pandas as pd

from kwx.config import Settings
from kwx.registry import City
from kwx.sources.cli_text import CliParseError, CliReport, parse_cli_products
from kwx.sources.http import PayloadError, RetryPolicy, RetryStats, SourceError, send_with_retries
from kwx.sources.metar_obs import (
    OBS_FRAME_COLUMNS,
    MetarParseError,
    MetarReading,
    c_to_f,
    finish_obs_frame,
    parse_metar,
    relative_humidity,
)
from kwx.sources.ratelimit import TokenBucket

__all__ = [
    "FORECAST_COLUMNS",
    "ForecastPeriod",
    "GridData",
    "GridPoint",
    "GridValue",
    "HourlyForecast",
    "NwsClient",
    "NwsProduct",
    "NwsProductRef",
    "StationObservation",
    "expand_valid_time",
    "finish_forecast_frame",
    "forecast_frame",
    "grid_forecast_frame",
    "observations_frame",
    "parse_grid",
    "parse_hourly_forecast",
    "parse_observations",
    "parse_point",
    "parse_product",
    "parse_product_list",
    "parse_valid_time",
    "problem_message",
]

log = logging.getLogger(__name__)

SOURCE: Final = "nws"
FORECAST_COLUMNS: Final = (
    "city",
    "source",
    "issued_at",
    "valid_at",
    "temp_f",
    "dewpoint_f",
    "rel_humidity",
    "wind_speed_mph",
    "cloud_cover",
    "precip_in",
    "precip_prob",
    "conditions",
)
_HOUR: Final = dt.timedelta(hours=1)
_DURATION_RE: Final = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_NUMBER_RE: Final = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_PAGES: Final = 50


# ---------------------------------------------------------------------- data classes
@dataclass(frozen=True, slots=True)
class GridPoint:
    """Where a lat/lon falls on the NWS forecast grid (``/points/{lat},{lon}``)."""

    wfo: str
    x: int
    y: int
    forecast_hourly_url: str
    grid_data_url: str
    time_zone: str
    observation_stations_url: str

    @property
    def path(self) -> str:
        return f"/gridpoints/{self.wfo}/{self.x},{self.y}"


@dataclass(frozen=True, slots=True)
class ForecastPeriod:
    """One hour of ``/forecast/hourly``, in °F, mph and percent."""

    number: int
    start: dt.datetime
    end: dt.datetime
    temp_f: float | None
    dewpoint_f: float | None = None
    rel_humidity: float | None = None
    wind_speed_mph: float | None = None
    wind_direction: str | None = None
    precip_prob: float | None = None
    short_forecast: str | None = None
    is_daytime: bool | None = None


@dataclass(frozen=True, slots=True)
class HourlyForecast:
    """An hourly forecast as served: the periods plus the two times that date it."""

    periods: list[ForecastPeriod]
    updated_at: dt.datetime | None
    generated_at: dt.datetime | None

    @property
    def issued_at(self) -> dt.datetime:
        """When this forecast was certainly available: ``generatedAt``, else ``updateTime``.

        ``updateTime`` can precede the moment the API served the new grid; using it would let
        a backtest read a forecast a little before anyone could have.
        """
        when = self.generated_at or self.updated_at
        if when is None:
            raise ValueError("forecast has neither generatedAt nor updateTime")
        return when


@dataclass(frozen=True, slots=True)
class GridValue:
    start: dt.datetime
    duration: dt.timedelta
    value: float | None


@dataclass(frozen=True, slots=True)
class GridData:
    """The raw NDFD grid (``/gridpoints/{wfo}/{x},{y}``): layers of interval values."""

    updated_at: dt.datetime | None
    generated_at: dt.datetime | None
    layers: dict[str, tuple[str | None, list[GridValue]]] = field(default_factory=dict)

    @property
    def issued_at(self) -> dt.datetime:
        when = self.generated_at or self.updated_at
        if when is None:
            raise ValueError("grid has neither generatedAt nor updateTime")
        return when

    def hourly(self, layer: str, unit: str | None = None) -> list[tuple[dt.datetime, float | None]]:
        """The layer expanded to one value per hour (a ``PT3H`` value covers 3 hours).

        With ``unit`` (``"F"``, ``"mph"``, ``"in"``, ``"%"``) values are converted; amounts
        over an interval (precipitation) are spread evenly over its hours.
        """
        uom, values = self.layers.get(layer, (None, []))
        out: dict[dt.datetime, float | None] = {}
        for item in values:
            hours = _interval_hours(item.start, item.duration)
            value = item.value
            if value is not None and unit is not None:
                value = _convert(value, uom, unit)
            if value is not None and _is_amount(layer) and len(hours) > 1:
                value = value / len(hours)
            for hour in hours:
                out[hour] = value
        return sorted(out.items())


@dataclass(frozen=True, slots=True)
class StationObservation:
    """One ``/stations/{id}/observations`` feature; ``reading`` is its re-parsed METAR."""

    station: str
    ts: dt.datetime
    temp_c: float | None
    dewpoint_c: float | None
    rel_humidity: float | None
    wind_speed_mph: float | None
    wind_dir_deg: float | None
    raw_message: str | None
    text_description: str | None = None
    reading: MetarReading | None = None


@dataclass(frozen=True, slots=True)
class NwsProductRef:
    id: str
    issuance_time: dt.datetime
    issuing_office: str | None
    product_code: str | None
    wmo_collective_id: str | None
    product_name: str | None


@dataclass(frozen=True, slots=True)
class NwsProduct:
    id: str
    issuance_time: dt.datetime
    issuing_office: str | None
    product_code: str | None
    text: str


# ---------------------------------------------------------------------- value helpers
def _parse_time(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a timestamp: {value!r}")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{what} has no UTC offset: {value!r}")
    return parsed.astimezone(dt.UTC)


def _optional_time(value: object, what: str) -> dt.datetime | None:
    return None if value is None else _parse_time(value, what)


def parse_valid_time(valid_time: str) -> tuple[dt.datetime, dt.timedelta]:
    """``"2026-07-09T13:00:00+00:00/PT3H"`` → (start in UTC, 3 hours)."""
    start_text, sep, duration_text = valid_time.partition("/")
    if not sep:
        raise ValueError(f"validTime without a duration: {valid_time!r}")
    m = _DURATION_RE.match(duration_text)
    if m is None or duration_text == "P" or duration_text.endswith("T"):
        raise ValueError(f"unsupported ISO-8601 duration {duration_text!r} in {valid_time!r}")
    parts = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
    duration = dt.timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )
    if duration <= dt.timedelta(0):
        raise ValueError(f"empty duration in {valid_time!r}")
    return _parse_time(start_text, "validTime"), duration


def _interval_hours(start: dt.datetime, duration: dt.timedelta) -> list[dt.datetime]:
    n = max(1, math.ceil(duration / _HOUR))
    return [start + k * _HOUR for k in range(n)]


def expand_valid_time(valid_time: str) -> list[dt.datetime]:
    """The hourly instants an ISO-8601 interval covers (``…/PT3H`` → 3 starts)."""
    start, duration = parse_valid_time(valid_time)
    return _interval_hours(start, duration)


def _is_amount(layer: str) -> bool:
    """Accumulations (mm of rain or snow) are totals over the interval, not rates."""
    return layer in ("quantitativePrecipitation", "snowfallAmount", "iceAccumulation")


_UNIT_ALIASES: Final[Mapping[str, str]] = {
    "degc": "C",
    "degf": "F",
    "k": "K",
    "km_h-1": "kmh",
    "m_s-1": "ms",
    "mi_h-1": "mph",
    "kt": "kt",
    "[kn_i]": "kt",
    "percent": "%",
    "mm": "mm",
    "m": "m",
    "cm": "cm",
    "in": "in",
    "degree_(angle)": "deg",
}


def _unit(uom: str | None) -> str | None:
    if uom is None:
        return None
    name = uom.split(":", 1)[-1]
    return _UNIT_ALIASES.get(name.lower(), name)


def _convert(value: float, uom: str | None, target: str) -> float:
    """Convert a WMO-unit value to ``target`` (F, mph, in, %, deg); unknown units raise."""
    unit = _unit(uom)
    if unit is None or unit == target:
        return value
    if target == "F":
        if unit == "C":
            return value * 9.0 / 5.0 + 32.0
        if unit == "K":
            return (value - 273.15) * 9.0 / 5.0 + 32.0
    if target == "C":
        if unit == "F":
            return (value - 32.0) * 5.0 / 9.0
        if unit == "K":
            return value - 273.15
    if target == "mph":
        factor = {"kmh": 1 / 1.609344, "ms": 3600 / 1609.344, "kt": 1.150779448}.get(unit)
        if factor is not None:
            return value * factor
    if target == "in":
        factor = {"mm": 1 / 25.4, "cm": 1 / 2.54, "m": 1000 / 25.4}.get(unit)
        if factor is not None:
            return value * factor
    raise ValueError(f"cannot convert {uom!r} to {target}")


def _qv(obj: object, target: str, what: str) -> float | None:
    """A QuantitativeValue (``{"unitCode", "value"}``) or bare number in ``target`` units."""
    if obj is None:
        return None
    if isinstance(obj, bool):
        raise ValueError(f"{what}: not a number: {obj!r}")
    if isinstance(obj, int | float):
        return float(obj)
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: not a quantitative value: {obj!r}")
    value = obj.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what}: value is not a number: {value!r}")
    return _convert(float(value), obj.get("unitCode"), target)


def _wind_mph(obj: object, what: str) -> float | None:
    """``"10 mph"``, ``"5 to 10 mph"`` (mean of the range) or a QuantitativeValue."""
    if isinstance(obj, str):
        numbers = [float(n) for n in _NUMBER_RE.findall(obj)]
        if not numbers:
            return None
        speed = sum(numbers) / len(numbers)
        return speed * 1.150779448 if "kt" in obj.lower() else speed
    return _qv(obj, "mph", what)


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------- payload parsers
def _json(body: str, url: str | None) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise PayloadError(SOURCE, f"invalid JSON: {exc}", url=url, body=body) from exc


def _properties(doc: object, url: str | None, body: str) -> dict[str, Any]:
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        raise PayloadError(SOURCE, "no 'properties' object", url=url, body=body)
    return props


def parse_point(body: str, *, url: str | None = None) -> GridPoint:
    """Parse a ``/points/{lat},{lon}`` answer."""
    props = _properties(_json(body, url), url, body)
    try:
        return GridPoint(
            wfo=str(props["gridId"]),
            x=int(props["gridX"]),
            y=int(props["gridY"]),
            forecast_hourly_url=str(props["forecastHourly"]),
            grid_data_url=str(props["forecastGridData"]),
            time_zone=str(props["timeZone"]),
            observation_stations_url=str(props["observationStations"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(SOURCE, f"point lacks {exc}", url=url, body=body) from exc


def parse_hourly_forecast(body: str, *, url: str | None = None) -> HourlyForecast:
    """Parse ``/gridpoints/{wfo}/{x},{y}/forecast/hourly``."""
    props = _properties(_json(body, url), url, body)
    periods_raw = props.get("periods")
    if not isinstance(periods_raw, list):
        raise PayloadError(SOURCE, "forecast has no 'periods' list", url=url, body=body)
    periods = []
    try:
        for i, p in enumerate(periods_raw):
            if not isinstance(p, dict):
                raise ValueError(f"period {i} is not an object")
            unit = "C" if p.get("temperatureUnit") == "C" else "F"
            temp = p.get("temperature")
            if isinstance(temp, dict):
                temp_f = _qv(temp, "F", f"period {i} temperature")
            elif temp is None:
                temp_f = None
            else:
                temp_f = _convert(float(temp), "wmoUnit:deg" + unit, "F")
            periods.append(
                ForecastPeriod(
                    number=int(p.get("number", i + 1)),
                    start=_parse_time(p.get("startTime"), f"period {i} startTime"),
                    end=_parse_time(p.get("endTime"), f"period {i} endTime"),
                    temp_f=_rounded(temp_f),
                    dewpoint_f=_rounded(_qv(p.get("dewpoint"), "F", f"period {i} dewpoint")),
                    rel_humidity=_qv(p.get("relativeHumidity"), "%", f"period {i} humidity"),
                    wind_speed_mph=_rounded(_wind_mph(p.get("windSpeed"), f"period {i} wind")),
                    wind_direction=p.get("windDirection") or None,
                    precip_prob=_qv(p.get("probabilityOfPrecipitation"), "%", f"period {i} precip"),
                    short_forecast=p.get("shortForecast") or None,
                    is_daytime=p.get("isDaytime"),
                )
            )
        return HourlyForecast(
            periods=periods,
            updated_at=_optional_time(props.get("updateTime"), "updateTime"),
            generated_at=_optional_time(props.get("generatedAt"), "generatedAt"),
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(SOURCE, f"unreadable forecast: {exc}", url=url, body=body) from exc


def parse_grid(body: str, *, url: str | None = None) -> GridData:
    """Parse ``/gridpoints/{wfo}/{x},{y}``: every layer that has a ``values`` list."""
    props = _properties(_json(body, url), url, body)
    layers: dict[str, tuple[str | None, list[GridValue]]] = {}
    try:
        for name, layer in props.items():
            if not isinstance(layer, dict) or not isinstance(layer.get("values"), list):
                continue
            values = []
            for item in layer["values"]:
                start, duration = parse_valid_time(str(item["validTime"]))
                raw = item.get("value")
                if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                    continue  # the "weather" and "hazards" layers hold objects, not numbers
                values.append(GridValue(start, duration, None if raw is None else float(raw)))
            layers[name] = (layer.get("uom"), values)
        return GridData(
            updated_at=_optional_time(props.get("updateTime"), "updateTime"),
            generated_at=_optional_time(props.get("generatedAt"), "generatedAt"),
            layers=layers,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(SOURCE, f"unreadable grid: {exc}", url=url, body=body) from exc


def parse_observations(
    body: str, *, station: str, url: str | None = None
) -> tuple[list[StationObservation], str | None]:
    """Parse an observations FeatureCollection; returns the features and the next page."""
    doc = _json(body, url)
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise PayloadError(SOURCE, "no 'features' list", url=url, body=body)
    out = []
    try:
        for i, feature in enumerate(features):
            props = feature.get("properties") if isinstance(feature, dict) else None
            if not isinstance(props, dict):
                raise ValueError(f"feature {i} has no properties")
            ts = _parse_time(props.get("timestamp"), f"feature {i} timestamp")
            raw = props.get("rawMessage") or None
            reading = None
            if raw:
                try:
                    reading = parse_metar(raw, year=ts.year, month=ts.month)
                except MetarParseError as exc:
                    log.info("nws %s %s: rawMessage not decodable: %s", station, ts, exc)
            out.append(
                StationObservation(
                    station=station,
                    ts=ts,
                    temp_c=_rounded(_qv(props.get("temperature"), "C", "temperature"), 2),
                    dewpoint_c=_rounded(_qv(props.get("dewpoint"), "C", "dewpoint"), 2),
                    rel_humidity=_rounded(
                        _qv(props.get("relativeHumidity"), "%", "relativeHumidity"), 2
                    ),
                    wind_speed_mph=_rounded(_qv(props.get("windSpeed"), "mph", "windSpeed")),
                    wind_dir_deg=_qv(props.get("windDirection"), "deg", "windDirection"),
                    raw_message=raw,
                    text_description=props.get("textDescription") or None,
                    reading=reading,
                )
            )
    except (AttributeError, TypeError, ValueError) as exc:
        raise PayloadError(SOURCE, f"unreadable observations: {exc}", url=url, body=body) from exc
    pagination = doc.get("pagination")
    next_url = pagination.get("next") if isinstance(pagination, dict) else None
    return out, next_url if isinstance(next_url, str) else None


def parse_product_list(body: str, *, url: str | None = None) -> list[NwsProductRef]:
    """Parse ``/products/types/{type}/locations/{loc}`` (JSON-LD ``@graph``)."""
    doc = _json(body, url)
    graph = doc.get("@graph") if isinstance(doc, dict) else None
    if not isinstance(graph, list):
        raise PayloadError(SOURCE, "no '@graph' list in the product listing", url=url, body=body)
    out = []
    try:
        for item in graph:
            out.append(
                NwsProductRef(
                    id=str(item["id"]),
                    issuance_time=_parse_time(item.get("issuanceTime"), "issuanceTime"),
                    issuing_office=item.get("issuingOffice"),
                    product_code=item.get("productCode"),
                    wmo_collective_id=item.get("wmoCollectiveId"),
                    product_name=item.get("productName"),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(SOURCE, f"unreadable listing: {exc}", url=url, body=body) from exc
    return sorted(out, key=lambda p: (p.issuance_time, p.id))


def parse_product(body: str, *, url: str | None = None) -> NwsProduct:
    """Parse ``/products/{id}``."""
    doc = _json(body, url)
    if not isinstance(doc, dict) or not isinstance(doc.get("productText"), str):
        raise PayloadError(SOURCE, "product has no 'productText'", url=url, body=body)
    try:
        return NwsProduct(
            id=str(doc["id"]),
            issuance_time=_parse_time(doc.get("issuanceTime"), "issuanceTime"),
            issuing_office=doc.get("issuingOffice"),
            product_code=doc.get("productCode"),
            text=doc["productText"],
        )
    except (KeyError, ValueError) as exc:
        raise PayloadError(SOURCE, f"unreadable product: {exc}", url=url, body=body) from exc


def problem_message(response: httpx.Response) -> str:
    """``title: detail`` of a problem+json error, else the start of the body."""
    body = response.text
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and ("title" in doc or "detail" in doc):
        parts = [str(doc[k]) for k in ("title", "detail") if doc.get(k)]
        return ": ".join(parts)
    return body.strip()[:300] or response.reason_phrase


# ---------------------------------------------------------------------- client
def _coord(value: float) -> str:
    """NWS accepts at most 4 decimals (more gets a 301 to the rounded point)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


class NwsClient:
    """Blocking api.weather.gov client; see the module docstring."""

    def __init__(
        self,
        base_url: str = "https://api.weather.gov",
        user_agent: str = "kwx (contact: set NWS_USER_AGENT)",
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        timeout_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        stats: RetryStats | None = None,
    ) -> None:
        if not user_agent.strip():
            raise ValueError("api.weather.gov requires a User-Agent (set NWS_USER_AGENT)")
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=True)
        self._retry = retry or RetryPolicy()
        self._bucket = bucket
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
    ) -> NwsClient:
        return cls(
            settings.nws_base_url,
            settings.nws_user_agent,
            client=client,
            retry=retry,
            bucket=bucket,
            timeout_s=settings.http_timeout_s,
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> NwsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(
        self, path: str, params: Sequence[tuple[str, str]] = (), *, accept: str | None = None
    ) -> httpx.Response:
        url = self.base_url + path
        headers = {"User-Agent": self.user_agent, "Accept": accept or "application/geo+json"}

        def build() -> httpx.Request:
            if self._bucket is not None:
                self._bucket.acquire()
            return self._client.build_request("GET", url, params=list(params), headers=headers)

        response = send_with_retries(
            self._client,
            build,
            source=SOURCE,
            policy=self._retry,
            sleep=self._sleep,
            stats=self.stats,
        )
        if response.status_code != 200:
            raise SourceError(
                SOURCE,
                problem_message(response),
                status=response.status_code,
                url=str(response.request.url),
                body=response.text,
            )
        return response

    def _follow(self, next_url: str) -> tuple[str, list[tuple[str, str]]]:
        """A pagination link, re-rooted on our base URL (tests and replays are not NWS)."""
        url = httpx.URL(next_url)
        path = url.path
        base_path = httpx.URL(self.base_url).path.rstrip("/")
        if base_path and path.startswith(base_path):
            path = path[len(base_path) :]
        return path, list(url.params.multi_items())

    # ------------------------------------------------------------------ endpoints
    def point(self, lat: float, lon: float) -> GridPoint:
        response = self._get(f"/points/{_coord(lat)},{_coord(lon)}")
        return parse_point(response.text, url=str(response.request.url))

    def hourly_forecast(self, gridpoint: GridPoint) -> HourlyForecast:
        """The hourly forecast at a gridpoint (°F), with its ``updateTime``/``generatedAt``."""
        response = self._get(gridpoint.path + "/forecast/hourly")
        return parse_hourly_forecast(response.text, url=str(response.request.url))

    def grid_data(self, gridpoint: GridPoint) -> GridData:
        response = self._get(gridpoint.path)
        return parse_grid(response.text, url=str(response.request.url))

    def grid_temperatures(self, gridpoint: GridPoint) -> list[tuple[dt.datetime, float | None]]:
        """Hourly NDFD temperatures in °F, every ``validTime`` interval expanded to hours."""
        return [
            (ts, _rounded(value))
            for ts, value in self.grid_data(gridpoint).hourly("temperature", "F")
        ]

    def station_observations(
        self,
        station: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        limit: int | None = None,
    ) -> list[StationObservation]:
        """Observations in ``[start, end]``, oldest first, following pagination links."""
        params: list[tuple[str, str]] = []
        if start is not None:
            params.append(("start", start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")))
        if end is not None:
            params.append(("end", end.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")))
        if limit is not None:
            params.append(("limit", str(limit)))
        path = f"/stations/{quote(station.upper())}/observations"
        seen: dict[dt.datetime, StationObservation] = {}
        for _ in range(_MAX_PAGES):
            response = self._get(path, params)
            page, next_url = parse_observations(
                response.text, station=station.upper(), url=str(response.request.url)
            )
            for obs in page:
                seen.setdefault(obs.ts, obs)
            if not page or not next_url:
                break
            path, params = self._follow(next_url)
        return sorted(seen.values(), key=lambda o: o.ts)

    def cli_product_list(self, location: str) -> list[NwsProductRef]:
        """CLI products listed for a location (the PIL suffix, e.g. ``MDW``), oldest first."""
        response = self._get(
            f"/products/types/CLI/locations/{quote(location.upper())}", accept="application/ld+json"
        )
        return parse_product_list(response.text, url=str(response.request.url))

    def product(self, product_id: str) -> NwsProduct:
        response = self._get(f"/products/{quote(product_id)}", accept="application/ld+json")
        return parse_product(response.text, url=str(response.request.url))

    def cli_reports(self, location: str, *, since: dt.datetime | None = None) -> list[CliReport]:
        """Fetch and parse the listed CLI products (issued at or after ``since``).

        Unparseable products are logged and skipped, so one odd text cannot hide the rest.
        """
        reports: list[CliReport] = []
        for ref in self.cli_product_list(location):
            if since is not None and ref.issuance_time < since:
                continue
            product = self.product(ref.id)
            try:
                reports.extend(parse_cli_products(product.text, product_id=product.id))
            except CliParseError as exc:
                log.warning("nws %s: unparseable CLI product: %s", product.id, exc)
        return reports


# ---------------------------------------------------------------------- frame builders
def _city_key(city: City | str) -> str:
    return city if isinstance(city, str) else city.key


def finish_forecast_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes every FORECAST frame shares; unique table keys."""
    frame = frame.loc[:, list(FORECAST_COLUMNS)].copy()
    frame["issued_at"] = pd.to_datetime(frame["issued_at"], utc=True)
    frame["valid_at"] = pd.to_datetime(frame["valid_at"], utc=True)
    for col in FORECAST_COLUMNS[4:11]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["conditions"] = frame["conditions"].astype(object)
    frame = frame.drop_duplicates(["city", "source", "issued_at", "valid_at"], keep="last")
    return frame.sort_values("valid_at", kind="stable").reset_index(drop=True)


def forecast_frame(
    periods: Iterable[ForecastPeriod],
    city: City | str,
    issued_at: dt.datetime,
    source: str = "nws",
) -> pd.DataFrame:
    """FORECAST rows for hourly periods; pass ``HourlyForecast.issued_at`` as ``issued_at``."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    key = _city_key(city)
    rows: list[dict[str, object]] = [
        {
            "city": key,
            "source": source,
            "issued_at": issued_at,
            "valid_at": p.start,
            "temp_f": p.temp_f,
            "dewpoint_f": p.dewpoint_f,
            "rel_humidity": p.rel_humidity,
            "wind_speed_mph": p.wind_speed_mph,
            "cloud_cover": None,
            "precip_in": None,
            "precip_prob": p.precip_prob,
            "conditions": p.short_forecast,
        }
        for p in periods
    ]
    return finish_forecast_frame(pd.DataFrame(rows, columns=list(FORECAST_COLUMNS)))


def grid_forecast_frame(
    grid: GridData,
    city: City | str,
    issued_at: dt.datetime | None = None,
    source: str = "nws_grid",
) -> pd.DataFrame:
    """FORECAST rows from the raw grid, one per hour that has a temperature.

    A separate source from the hourly product (``nws``) so the two never collide on the
    table's key when they share an issue time.
    """
    issued = issued_at or grid.issued_at
    layers = {
        "temp_f": dict(grid.hourly("temperature", "F")),
        "dewpoint_f": dict(grid.hourly("dewpoint", "F")),
        "rel_humidity": dict(grid.hourly("relativeHumidity", "%")),
        "wind_speed_mph": dict(grid.hourly("windSpeed", "mph")),
        "cloud_cover": dict(grid.hourly("skyCover", "%")),
        "precip_in": dict(grid.hourly("quantitativePrecipitation", "in")),
        "precip_prob": dict(grid.hourly("probabilityOfPrecipitation", "%")),
    }
    key = _city_key(city)
    rows: list[dict[str, object]] = []
    for ts in sorted(layers["temp_f"]):
        row: dict[str, object] = {
            "city": key,
            "source": source,
            "issued_at": issued,
            "valid_at": ts,
            "conditions": None,
        }
        for name, values in layers.items():
            value = values.get(ts)
            row[name] = None if value is None else round(value, 2)
        rows.append(row)
    return finish_forecast_frame(pd.DataFrame(rows, columns=list(FORECAST_COLUMNS)))


def observations_frame(
    observations: Iterable[StationObservation], city: City | str, source: str = "nws"
) -> pd.DataFrame:
    """OBS rows; the temperature comes from the re-parsed METAR when it has a T group.

    ``temperature.value`` is a unit conversion of whatever the report carried, so its
    apparent precision is not to be trusted (weather-sources.md §8.3); the raw message's
    tenths-°C T group is.
    """
    key = _city_key(city)
    rows = []
    for obs in observations:
        reading = obs.reading
        if reading is not None and reading.temp_from_t_group:
            temp_c = reading.temp_c
        elif obs.temp_c is not None:
            temp_c = obs.temp_c
        else:
            temp_c = reading.temp_c if reading is not None else None
        dew_c = obs.dewpoint_c
        if reading is not None and reading.dewpoint_c is not None and reading.temp_from_t_group:
            dew_c = reading.dewpoint_c
        rh = obs.rel_humidity if obs.rel_humidity is not None else relative_humidity(temp_c, dew_c)
        rows.append(
            {
                "city": key,
                "source": source,
                "ts": pd.Timestamp(obs.ts),
                "temp_f": c_to_f(temp_c),
                "dewpoint_f": c_to_f(dew_c),
                "rel_humidity": rh,
                "wind_speed_mph": obs.wind_speed_mph,
                "wind_dir_deg": obs.wind_dir_deg,
                "temp_c": temp_c,
                "max_temp_6h_f": reading.max_temp_6h_f if reading is not None else None,
                "raw": obs.raw_message,
            }
        )
    return finish_obs_frame(pd.DataFrame(rows, columns=list(OBS_FRAME_COLUMNS)))
