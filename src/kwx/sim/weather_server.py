"""A real HTTP server that replays IEM, api.weather.gov and Visual Crossing on loopback.

Tests and backtests point the weather clients' base URLs at it and get the real wire shapes
(CSV with IEM's headers and ``M`` for missing, GeoJSON and JSON-LD with NWS's
QuantitativeValues and problem+json errors, VC's nested ``days/hours/minutes``) from data
held in memory (`kwx.sim.weather_replay` fills it from the store). Everything is filtered
*as of* a settable simulated clock, or the exchange simulator's shared clock: an observation,
product or forecast stamped after the clock does not exist yet, which is how a replay proves
that no code path can see the future (DESIGN.md principle 3). The HTTP ``Date`` header is
the simulated clock too, so "when was this answered" reads the simulated time.

Faults are injected per request: the next N answers can be 503/429 (with the real bodies),
slow, or a malformed 200, optionally only on paths containing a given string.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import io
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

__all__ = [
    "VC_PREFIX",
    "Fault",
    "RecordedRequest",
    "WeatherReplayServer",
    "hourly_periods",
]

VC_PREFIX: Final = "/VisualCrossingWebServices/rest/services"
IEM_BUSY: Final = "ERROR: server over capacity, please try later"
VC_CONCURRENCY: Final = "Maximum concurrent requests exceeded. Please retry later."
_HOUR: Final = dt.timedelta(hours=1)

FaultKind = Literal["status", "slow", "malformed"]
Json = dict[str, Any]


@dataclass
class Fault:
    kind: FaultKind
    status: int = 503
    body: str | None = None
    delay_s: float = 0.0
    path_contains: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _Product:
    product_id: str
    nws_id: str
    pil: str
    issued_at: dt.datetime
    text: str
    cccc: str | None
    wmo: str | None


@dataclass
class _Forecast:
    generated_at: dt.datetime
    update_time: dt.datetime
    periods: list[Json]


@dataclass
class _VcRow:
    ts: dt.datetime
    level: Literal["hour", "minute"]
    values: dict[str, Any]
    source: str
    stations: tuple[str, ...]
    issued_at: dt.datetime | None = None
    basis_date: dt.date | None = None


@dataclass
class _Store:
    asos1min: dict[str, list[tuple[dt.datetime, str, dict[str, float | None]]]] = field(
        default_factory=dict
    )
    metars: dict[str, list[tuple[dt.datetime, str, float | None, int]]] = field(
        default_factory=dict
    )
    products: list[_Product] = field(default_factory=list)
    points: dict[tuple[float, float], Json] = field(default_factory=dict)
    forecasts: dict[tuple[str, int, int], list[_Forecast]] = field(default_factory=dict)
    grids: dict[tuple[str, int, int], list[tuple[dt.datetime, Json]]] = field(default_factory=dict)
    observations: dict[str, list[tuple[dt.datetime, Json]]] = field(default_factory=dict)
    vc: dict[str, list[_VcRow]] = field(default_factory=dict)
    # IEM MOS archive rows by (station, model): (runtime, {column: raw text}).
    mos: dict[tuple[str, str], list[tuple[dt.datetime, dict[str, str]]]] = field(
        default_factory=dict
    )


# The columns of IEM's MOS CSV (cgi-bin/request/mos.py), in its order, as in
# api-shapes/eucalyptus5_nbs_knyc_20250128_01z.csv, plus the MOS max/min `n_x`.
MOS_COLUMNS: Final = [
    "runtime",
    "ftime",
    "model",
    "tmp",
    "dpt",
    "wdr",
    "wsp",
    "p06",
    "p12",
    "q06",
    "q12",
    "t06_1",
    "t06_2",
    "t12_2",
    "cig",
    "vis",
    "sky",
    "gst",
    "t03",
    "pzr",
    "psn",
    "ppl",
    "pra",
    "s06",
    "slv",
    "i06",
    "lcb",
    "station",
    "dur",
    "mht",
    "twd",
    "tws",
    "hid",
    "sol",
    "txn",
    "xnd",
    "tsd",
    "dsd",
    "ssd",
    "gsd",
    "ifc",
    "ifv",
    "wsd",
    "n_x",
]


def _utc(ts: dt.datetime) -> dt.datetime:
    if ts.tzinfo is None:
        raise ValueError(f"simulated data needs timezone-aware times, got {ts!r}")
    return ts.astimezone(dt.UTC)


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _parse_instant(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def hourly_periods(
    start: dt.datetime, temps_f: Sequence[float], *, short_forecast: str = "Sunny"
) -> list[Json]:
    """Wire-shaped ``/forecast/hourly`` periods, one per hour from ``start``."""
    out = []
    for i, temp in enumerate(temps_f):
        begin = _utc(start) + i * _HOUR
        out.append(
            {
                "number": i + 1,
                "name": "",
                "startTime": begin.isoformat(),
                "endTime": (begin + _HOUR).isoformat(),
                "isDaytime": 11 <= begin.hour <= 23,
                "temperature": temp,
                "temperatureUnit": "F",
                "temperatureTrend": "",
                "probabilityOfPrecipitation": {"unitCode": "wmoUnit:percent", "value": 10},
                "dewpoint": {"unitCode": "wmoUnit:degC", "value": 15.0},
                "relativeHumidity": {"unitCode": "wmoUnit:percent", "value": 60},
                "windSpeed": "10 mph",
                "windDirection": "SW",
                "icon": "",
                "shortForecast": short_forecast,
                "detailedForecast": "",
            }
        )
    return out


class WeatherReplayServer:
    """``with WeatherReplayServer(clock=...) as srv:`` then point clients at ``srv.url``.

    ``clock=None`` serves everything; otherwise nothing stamped after the clock is served.
    """

    def __init__(
        self,
        *,
        clock: dt.datetime | None = None,
        clock_source: Callable[[], dt.datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        vc_api_key: str | None = None,
        require_user_agent: bool = True,
        observation_page_size: int = 500,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = _utc(clock) if clock is not None else None
        self._clock_source = clock_source
        self._store = _Store()
        self._faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.vc_api_key = vc_api_key
        self.require_user_agent = require_user_agent
        self.observation_page_size = observation_page_size
        self._host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> WeatherReplayServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a client's idle keep-alive must not stall stop()
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.02),
            name="weather-replay",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WeatherReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def vc_url(self) -> str:
        """Base URL for VisualCrossingClient (the real one carries the same prefix)."""
        return self.url + VC_PREFIX

    # ------------------------------------------------------------------ clock
    @property
    def clock(self) -> dt.datetime | None:
        """The simulated now: the followed clock (``clock_source``) when one is given."""
        source = self._clock_source
        if source is not None:
            return _utc(source())
        with self._lock:
            return self._clock

    def follow(self, clock_source: Callable[[], dt.datetime] | None) -> None:
        """Read the time from a shared clock (the exchange simulator's) from now on."""
        with self._lock:
            self._clock_source = clock_source

    def set_clock(self, now: dt.datetime | None) -> None:
        with self._lock:
            self._clock_source = None
            self._clock = _utc(now) if now is not None else None

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            if self._clock_source is not None:
                raise RuntimeError("the clock follows a shared clock; advance that one")
            if self._clock is None:
                raise RuntimeError("no simulated clock set")
            self._clock += delta

    def _visible(self, ts: dt.datetime) -> bool:
        clock = self.clock
        return clock is None or ts <= clock

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        body: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next ``n`` matching requests get ``status`` (503/429 bodies as the real ones)."""
        with self._lock:
            self._faults += [Fault("status", status, body, 0.0, path_contains) for _ in range(n)]

    def slow_next(self, delay_s: float, n: int = 1, *, path_contains: str | None = None) -> None:
        """The next ``n`` matching requests wait ``delay_s`` before answering normally."""
        with self._lock:
            self._faults += [Fault("slow", 200, None, delay_s, path_contains) for _ in range(n)]

    def malform_next(
        self, n: int = 1, *, body: str | None = None, path_contains: str | None = None
    ) -> None:
        """The next ``n`` matching requests get a 200 with a broken body."""
        with self._lock:
            self._faults += [Fault("malformed", 200, body, 0.0, path_contains) for _ in range(n)]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path_contains is None or fault.path_contains in path:
                    return self._faults.pop(i)
        return None

    # ------------------------------------------------------------------ data: IEM
    def add_asos1min(
        self,
        station: str,
        ts: dt.datetime,
        values: Mapping[str, float | None],
        *,
        station_name: str = "",
    ) -> None:
        with self._lock:
            rows = self._store.asos1min.setdefault(station.upper(), [])
            rows.append((_utc(ts), station_name or station.upper(), dict(values)))

    def add_metar(
        self,
        station: str,
        ts: dt.datetime,
        raw: str,
        *,
        tmpf: float | None = None,
        report_type: int = 3,
    ) -> None:
        """A METAR for the IEM archive (``station`` as IEM names it: ``MDW``)."""
        with self._lock:
            rows = self._store.metars.setdefault(station.upper(), [])
            rows.append((_utc(ts), raw, tmpf, report_type))

    def add_product(
        self,
        product_id: str,
        *,
        pil: str,
        issued_at: dt.datetime,
        text: str,
        cccc: str | None = None,
        wmo: str | None = None,
        nws_id: str | None = None,
    ) -> None:
        """A text product, served by IEM (listing, nwstext) and NWS (``/products``)."""
        with self._lock:
            self._store.products.append(
                _Product(
                    product_id=product_id,
                    nws_id=nws_id or str(uuid.uuid5(uuid.NAMESPACE_URL, product_id)),
                    pil=pil.upper(),
                    issued_at=_utc(issued_at),
                    text=text,
                    cccc=cccc,
                    wmo=wmo,
                )
            )

    def add_mos_csv(self, body: str) -> None:
        """Rows of IEM MOS CSV (any subset of its columns), served by ``mos.py`` by run time."""
        with self._lock:
            for row in csv.DictReader(io.StringIO(body)):
                runtime = _parse_instant(row["runtime"].replace(" ", "T") + "Z")
                key = (row["station"].upper(), row["model"].upper())
                self._store.mos.setdefault(key, []).append((runtime, dict(row)))

    # ------------------------------------------------------------------ data: NWS
    def add_point(
        self,
        lat: float,
        lon: float,
        *,
        wfo: str,
        x: int,
        y: int,
        time_zone: str,
        city: str = "",
        state: str = "",
    ) -> None:
        with self._lock:
            self._store.points[(round(lat, 4), round(lon, 4))] = {
                "wfo": wfo,
                "x": x,
                "y": y,
                "time_zone": time_zone,
                "city": city,
                "state": state,
            }

    def add_hourly_forecast(
        self,
        wfo: str,
        x: int,
        y: int,
        *,
        generated_at: dt.datetime,
        periods: Sequence[Json],
        update_time: dt.datetime | None = None,
    ) -> None:
        """A forecast run, served from ``generated_at`` on until a newer one exists."""
        with self._lock:
            runs = self._store.forecasts.setdefault((wfo.upper(), x, y), [])
            runs.append(
                _Forecast(
                    generated_at=_utc(generated_at),
                    update_time=_utc(update_time or generated_at),
                    periods=[dict(p) for p in periods],
                )
            )
            runs.sort(key=lambda r: r.generated_at)

    def add_grid(self, wfo: str, x: int, y: int, properties: Mapping[str, Any]) -> None:
        """A raw grid (the ``properties`` object), visible from its ``updateTime`` on."""
        with self._lock:
            update = _parse_instant(str(properties["updateTime"]))
            runs = self._store.grids.setdefault((wfo.upper(), x, y), [])
            runs.append((update, dict(properties)))
            runs.sort(key=lambda r: r[0])

    def add_observation(
        self,
        station: str,
        ts: dt.datetime,
        *,
        raw_message: str | None = None,
        temp_c: float | None = None,
        dewpoint_c: float | None = None,
        wind_speed_kmh: float | None = None,
        wind_dir_deg: float | None = None,
        rel_humidity: float | None = None,
        text_description: str = "",
    ) -> None:
        """An api.weather.gov observation (``station`` is the ICAO id: ``KMDW``)."""
        station = station.upper()

        def qv(unit: str, value: float | None) -> Json:
            return {"unitCode": unit, "value": value, "qualityControl": "V" if value else "Z"}

        ts = _utc(ts)
        props = {
            "@id": f"/stations/{station}/observations/{ts.isoformat()}",
            "@type": "wx:ObservationStation",
            "elevation": {"unitCode": "wmoUnit:m", "value": 190},
            "station": f"/stations/{station}",
            "timestamp": ts.isoformat(),
            "rawMessage": raw_message or "",
            "textDescription": text_description,
            "temperature": qv("wmoUnit:degC", temp_c),
            "dewpoint": qv("wmoUnit:degC", dewpoint_c),
            "windDirection": qv("wmoUnit:degree_(angle)", wind_dir_deg),
            "windSpeed": qv("wmoUnit:km_h-1", wind_speed_kmh),
            "relativeHumidity": qv("wmoUnit:percent", rel_humidity),
        }
        with self._lock:
            self._store.observations.setdefault(station, []).append((ts, props))

    # ------------------------------------------------------------------ data: VC
    def add_vc_obs(
        self,
        location: str,
        ts: dt.datetime,
        *,
        level: Literal["hour", "minute"] = "minute",
        stations: Sequence[str] = (),
        **values: Any,
    ) -> None:
        """An observed VC row (``location`` as in the path: ``stn:KMDW``)."""
        with self._lock:
            self._store.vc.setdefault(location.upper(), []).append(
                _VcRow(_utc(ts), level, dict(values), "obs", tuple(stations))
            )

    def add_vc_forecast(
        self,
        location: str,
        ts: dt.datetime,
        *,
        issued_at: dt.datetime,
        basis_date: dt.date | None = None,
        level: Literal["hour", "minute"] = "hour",
        **values: Any,
    ) -> None:
        """A forecast VC row of the run issued at ``issued_at`` (basis date: its UTC date)."""
        issued = _utc(issued_at)
        with self._lock:
            self._store.vc.setdefault(location.upper(), []).append(
                _VcRow(
                    _utc(ts), level, dict(values), "fcst", (), issued, basis_date or issued.date()
                )
            )

    # ------------------------------------------------------------------ answers
    def _record(self, raw_path: str, headers: Mapping[str, str]) -> RecordedRequest:
        parts = urlsplit(raw_path)
        request = RecordedRequest(
            "GET", unquote(parts.path), parse_qs(parts.query, keep_blank_values=True), dict(headers)
        )
        with self._lock:
            self.requests.append(request)
        return request

    def _answer(self, request: RecordedRequest) -> _Answer:
        path, query, headers = request.path, request.query, request.headers
        for pattern, name in _ROUTES:
            m = pattern.match(path)
            if m is not None:
                handler: Callable[[re.Match[str], dict[str, list[str]], Mapping[str, str]], _Answer]
                handler = getattr(self, name)
                return handler(m, query, headers)
        return _Answer(404, f"no route for {path}", "text/plain")

    # IEM ---------------------------------------------------------------
    def _iem_asos1min(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        stations = [s.upper() for s in q.get("station", [])]
        variables = q.get("vars", [])
        if not stations or not variables or "sts" not in q or "ets" not in q:
            return _Answer(422, "Insufficient start timestamp variables.", "text/plain")
        sts, ets = _parse_instant(q["sts"][0]), _parse_instant(q["ets"][0])
        step = {"1min": 1, "5min": 5, "10min": 10, "20min": 20, "1hour": 60}[
            q.get("sample", ["1min"])[0]
        ]
        lines = [",".join(["station", "station_name", "valid(UTC)", *variables])]
        with self._lock:
            for station in stations:
                for ts, name, values in sorted(self._store.asos1min.get(station, [])):
                    if not (sts <= ts < ets) or not self._visible(ts) or ts.minute % step:
                        continue
                    cells = [_cell(values.get(v), "{:.0f}") for v in variables]
                    lines.append(
                        ",".join([station, name.replace(",", "_"), f"{ts:%Y-%m-%d %H:%M}", *cells])
                    )
        return _Answer(200, "\n".join(lines) + "\n", "application/octet-stream")

    def _iem_asos(self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]) -> _Answer:
        stations = [s[1:] if len(s) == 4 and s[0] == "K" else s for s in q.get("station", [])]
        data = q.get("data", ["tmpf"])
        types = {int(t) for t in q.get("report_type", [])}
        if "sts" not in q or "ets" not in q:
            return _Answer(422, "Invalid times provided.", "text/plain")
        sts, ets = _parse_instant(q["sts"][0]), _parse_instant(q["ets"][0])
        lines = [",".join(["station", "valid", *data])]
        rows = []
        with self._lock:
            for station in stations:
                for ts, raw, tmpf, rtype in self._store.metars.get(station.upper(), []):
                    if not (sts <= ts < ets) or not self._visible(ts):
                        continue
                    if types and rtype not in types:
                        continue
                    rows.append((ts, station.upper(), raw, tmpf))
        for ts, station, raw, tmpf in sorted(rows):
            cells = {
                "metar": raw.replace(",", " ").replace("\n", " "),
                "tmpf": _cell(tmpf, "{:.2f}"),
            }
            lines.append(
                ",".join([station, f"{ts:%Y-%m-%d %H:%M}", *(cells.get(d, "M") for d in data)])
            )
        return _Answer(200, "\n".join(lines) + "\n", "text/plain")

    def _iem_mos(self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]) -> _Answer:
        station = q.get("station", [""])[0].upper()
        model = q.get("model", [""])[0].upper()
        if not station or not model or "sts" not in q or "ets" not in q:
            return _Answer(422, "station, model, sts and ets are required", "text/plain")
        sts, ets = _parse_instant(q["sts"][0]), _parse_instant(q["ets"][0])
        lines = [",".join(MOS_COLUMNS)]
        with self._lock:
            rows = sorted(
                (r for r in self._store.mos.get((station, model), []) if sts <= r[0] <= ets),
                key=lambda r: (r[0], r[1].get("ftime", "")),
            )
            for runtime, row in rows:
                if self._visible(runtime):
                    lines.append(",".join(row.get(c) or "" for c in MOS_COLUMNS))
        return _Answer(200, "\n".join(lines) + "\n", "text/csv")

    def _iem_afos_list(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        pil = q.get("pil", [""])[0].upper()
        day = dt.date.fromisoformat(q.get("date", [""])[0]) if q.get("date") else None
        with self._lock:
            found = [
                p
                for p in self._store.products
                if p.pil == pil
                and self._visible(p.issued_at)
                and (day is None or p.issued_at.date() == day)
            ]
        found.sort(key=lambda p: p.issued_at)
        data = [
            {
                "index": i,
                "entered": p.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "pil": p.pil,
                "product_id": p.product_id,
                "cccc": p.cccc,
                "count": 1,
                "link": f"{self.url}/p.php?pid={p.product_id}",
                "text_link": f"{self.url}/api/1/nwstext/{p.product_id}",
            }
            for i, p in enumerate(found)
        ]
        return _Answer.json(200, {"data": data})

    def _iem_nwstext(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        product = self._product(lambda p: p.product_id == m.group("pid"))
        if product is None:
            return _Answer.json(404, {"detail": "Product not found"})
        return _Answer(200, product.text, "text/plain")

    def _product(self, match: Callable[[_Product], bool]) -> _Product | None:
        with self._lock:
            for product in self._store.products:
                if match(product) and self._visible(product.issued_at):
                    return product
        return None

    # NWS ---------------------------------------------------------------
    def _nws_gate(self, h: Mapping[str, str]) -> _Answer | None:
        if self.require_user_agent and not h.get("user-agent"):
            return _problem(
                403,
                "Forbidden",
                "A User-Agent header is required to identify your application.",
            )
        return None

    def _nws_point(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        lat, lon = float(m.group("lat")), float(m.group("lon"))
        with self._lock:
            point = self._store.points.get((round(lat, 4), round(lon, 4)))
        if point is None:
            return _problem(404, "Data Unavailable For Requested Point", f"{lat},{lon}")
        grid = f"{self.url}/gridpoints/{point['wfo']}/{point['x']},{point['y']}"
        here = f"{self.url}/points/{m.group('lat')},{m.group('lon')}"
        doc = {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld"],
            "id": here,
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {
                "@id": here,
                "@type": "wx:Point",
                "cwa": point["wfo"],
                "forecastOffice": f"{self.url}/offices/{point['wfo']}",
                "gridId": point["wfo"],
                "gridX": point["x"],
                "gridY": point["y"],
                "forecast": grid + "/forecast",
                "forecastHourly": grid + "/forecast/hourly",
                "forecastGridData": grid,
                "observationStations": grid + "/stations",
                "relativeLocation": {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": {"city": point["city"], "state": point["state"]},
                },
                "timeZone": point["time_zone"],
                "radarStation": "K" + point["wfo"],
            },
        }
        return _Answer.json(200, doc, "application/geo+json")

    def _nws_hourly(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        key = (m.group("wfo").upper(), int(m.group("x")), int(m.group("y")))
        with self._lock:
            runs = [r for r in self._store.forecasts.get(key, []) if self._visible(r.generated_at)]
        if not runs:
            return _problem(503, "Forecast Grid Expired", "The requested forecast is unavailable.")
        run = runs[-1]
        doc = {
            "type": "Feature",
            "properties": {
                "units": "us",
                "forecastGenerator": "HourlyForecastGenerator",
                "generatedAt": _iso(run.generated_at),
                "updateTime": _iso(run.update_time),
                "validTimes": f"{_iso(run.update_time)}/P7D",
                "periods": run.periods,
            },
        }
        return _Answer.json(200, doc, "application/geo+json")

    def _nws_grid(self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        key = (m.group("wfo").upper(), int(m.group("x")), int(m.group("y")))
        with self._lock:
            runs = [p for ts, p in self._store.grids.get(key, []) if self._visible(ts)]
        if not runs:
            return _problem(404, "Not Found", "No grid data for this gridpoint yet.")
        return _Answer.json(
            200, {"type": "Feature", "properties": runs[-1]}, "application/geo+json"
        )

    def _nws_observations(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        station = m.group("station").upper()
        start = _parse_instant(q["start"][0]) if "start" in q else None
        end = _parse_instant(q["end"][0]) if "end" in q else None
        limit = int(q["limit"][0]) if "limit" in q else None
        offset = int(q["cursor"][0]) if "cursor" in q else 0
        with self._lock:
            rows = [
                (ts, props)
                for ts, props in self._store.observations.get(station, [])
                if self._visible(ts)
                and (start is None or ts >= start)
                and (end is None or ts <= end)
            ]
        rows.sort(key=lambda r: r[0], reverse=True)  # NWS answers newest first
        if limit is not None:
            rows = rows[:limit]
        page = rows[offset : offset + self.observation_page_size]
        doc: Json = {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld"],
            "type": "FeatureCollection",
            "features": [
                {
                    "id": f"{self.url}{props['@id']}",
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
                    "properties": props,
                }
                for _, props in page
            ],
        }
        if offset + self.observation_page_size < len(rows):
            keep = [(k, v[0]) for k, v in q.items() if k != "cursor" and v]
            keep.append(("cursor", str(offset + self.observation_page_size)))
            doc["pagination"] = {
                "next": f"{self.url}/stations/{station}/observations?{urlencode(keep)}"
            }
        return _Answer.json(200, doc, "application/geo+json")

    def _nws_product_list(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        ptype, loc = m.group("type").upper(), m.group("loc").upper()
        with self._lock:
            found = [
                p
                for p in self._store.products
                if p.pil == ptype + loc and self._visible(p.issued_at)
            ]
        found.sort(key=lambda p: p.issued_at, reverse=True)
        doc = {
            "@context": {"@version": "1.1", "@vocab": "https://api.weather.gov/ontology#"},
            "@graph": [_nws_product_doc(self.url, p, with_text=False) for p in found],
        }
        return _Answer.json(200, doc, "application/ld+json")

    def _nws_product(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        if (gate := self._nws_gate(h)) is not None:
            return gate
        product = self._product(lambda p: p.nws_id == m.group("id"))
        if product is None:
            return _problem(404, "Not Found", f"Product {m.group('id')} not found")
        return _Answer.json(
            200, _nws_product_doc(self.url, product, with_text=True), "application/ld+json"
        )

    # VC ----------------------------------------------------------------
    def _vc_timeline(
        self, m: re.Match[str], q: dict[str, list[str]], h: Mapping[str, str]
    ) -> _Answer:
        key = q.get("key", [""])[0]
        if not key:
            return _Answer(401, "No session or key found", "text/plain")
        if self.vc_api_key is not None and key != self.vc_api_key:
            return _Answer(401, f"No account found with API key '{key}'", "text/plain")
        location = m.group("location").upper()
        try:
            first = _vc_date(m.group("d1")) if m.group("d1") else None
            last = _vc_date(m.group("d2")) if m.group("d2") else first
        except ValueError:
            return _Answer(400, "Bad API Request:Invalid date format for start date.", "text/plain")
        include = set(",".join(q.get("include", [""])).split(",")) - {""}
        basis = q.get("forecastBasisDate", [""])[0]
        basis_date = dt.date.fromisoformat(basis) if basis else None
        with self._lock:
            rows = list(self._store.vc.get(location, []))
        want_obs = "obs" in include or not ({"obs", "fcst"} & include)
        want_fcst = "fcst" in include or not ({"obs", "fcst"} & include)
        chosen = [r for r in rows if r.source == "obs" and want_obs and self._visible(r.ts)]
        forecasts = [
            r
            for r in rows
            if r.source == "fcst"
            and want_fcst
            and r.issued_at is not None
            and self._visible(r.issued_at)
            and (basis_date is None or r.basis_date == basis_date)
        ]
        if forecasts:
            latest = max(r.issued_at for r in forecasts if r.issued_at is not None)
            run = [r for r in forecasts if r.issued_at == latest]
            seen = {(r.level, r.ts) for r in chosen}
            chosen += [r for r in run if (r.level, r.ts) not in seen]
        if first is not None and last is not None:
            chosen = [r for r in chosen if first <= r.ts.date() <= last]
        return _Answer.json(200, _vc_document(location, chosen, include), "application/json")


_ROUTES: Final[list[tuple[re.Pattern[str], str]]] = [
    (re.compile(r"^/cgi-bin/request/asos1min\.py$"), "_iem_asos1min"),
    (re.compile(r"^/cgi-bin/request/asos\.py$"), "_iem_asos"),
    (re.compile(r"^/cgi-bin/request/mos\.py$"), "_iem_mos"),
    (re.compile(r"^/api/1/nws/afos/list\.json$"), "_iem_afos_list"),
    (re.compile(r"^/api/1/nwstext/(?P<pid>[^/]+)$"), "_iem_nwstext"),
    (re.compile(r"^/points/(?P<lat>-?[\d.]+),(?P<lon>-?[\d.]+)$"), "_nws_point"),
    (
        re.compile(r"^/gridpoints/(?P<wfo>[A-Za-z]{3})/(?P<x>\d+),(?P<y>\d+)/forecast/hourly$"),
        "_nws_hourly",
    ),
    (re.compile(r"^/gridpoints/(?P<wfo>[A-Za-z]{3})/(?P<x>\d+),(?P<y>\d+)$"), "_nws_grid"),
    (re.compile(r"^/stations/(?P<station>[A-Za-z0-9]+)/observations$"), "_nws_observations"),
    (
        re.compile(r"^/products/types/(?P<type>[A-Za-z0-9]+)/locations/(?P<loc>[A-Za-z0-9]+)$"),
        "_nws_product_list",
    ),
    (re.compile(r"^/products/(?P<id>[^/]+)$"), "_nws_product"),
    (
        re.compile(
            r"^(?:" + re.escape(VC_PREFIX) + r")?/timeline/(?P<location>[^/]+)"
            r"(?:/(?P<d1>[^/]+))?(?:/(?P<d2>[^/]+))?$"
        ),
        "_vc_timeline",
    ),
]


@dataclass
class _Answer:
    status: int
    body: str
    content_type: str

    @classmethod
    def json(cls, status: int, doc: object, content_type: str = "application/json") -> _Answer:
        return cls(status, json.dumps(doc), content_type)


def _problem(status: int, title: str, detail: str) -> _Answer:
    doc = {
        "correlationId": uuid.uuid4().hex[:8],
        "title": title,
        "type": "https://api.weather.gov/problems/" + title.replace(" ", ""),
        "status": status,
        "detail": detail,
        "instance": "https://api.weather.gov/requests/" + uuid.uuid4().hex[:8],
    }
    return _Answer.json(status, doc, "application/problem+json")


def _cell(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "M"
    return fmt.format(value)


def _nws_product_doc(base: str, p: _Product, *, with_text: bool) -> Json:
    doc: Json = {
        "@id": f"{base}/products/{p.nws_id}",
        "id": p.nws_id,
        "wmoCollectiveId": p.wmo or "CDUS00",
        "issuingOffice": p.cccc or "KNWS",
        "issuanceTime": p.issued_at.isoformat(),
        "productCode": p.pil[:3],
        "productName": "Climatological Report (Daily)" if p.pil.startswith("CLI") else p.pil,
    }
    if with_text:
        doc["productText"] = p.text
    return doc


def _vc_date(part: str) -> dt.date:
    if part.isdigit() and len(part) > 8:
        return dt.datetime.fromtimestamp(int(part), dt.UTC).date()
    return dt.date.fromisoformat(part[:10])


def _vc_document(location: str, rows: Iterable[_VcRow], include: set[str]) -> Json:
    """Nest rows as ``days[].hours[].minutes[]`` in UTC (the client asks ``timezone=Z``)."""
    days: dict[dt.date, Json] = {}
    hours: dict[dt.datetime, Json] = {}
    stations: set[str] = set()
    minutes_on = "minutes" in include

    def entry(ts: dt.datetime, fmt: str) -> Json:
        return {"datetime": ts.strftime(fmt), "datetimeEpoch": int(ts.timestamp())}

    def hour_of(ts: dt.datetime) -> Json:
        start = ts.replace(minute=0, second=0, microsecond=0)
        if start not in hours:
            day = days.setdefault(
                start.date(),
                {
                    **entry(dt.datetime.combine(start.date(), dt.time(), dt.UTC), "%Y-%m-%d"),
                    "hours": [],
                },
            )
            hours[start] = {**entry(start, "%H:%M:%S")}
            day["hours"].append(hours[start])
        return hours[start]

    for row in sorted(rows, key=lambda r: (r.ts, r.level)):
        values = {**row.values, "source": row.source}
        if row.stations:
            values["stations"] = list(row.stations)
            stations.update(row.stations)
        if row.level == "hour":
            hour_of(row.ts).update(values)
        elif minutes_on:
            hour_of(row.ts).setdefault("minutes", []).append(
                {**entry(row.ts, "%H:%M:%S"), **values}
            )
    for day in days.values():
        day["hours"].sort(key=lambda h: h["datetimeEpoch"])
        if "hours" not in include and not minutes_on:
            del day["hours"]
    return {
        "queryCost": sum(1 + len(h.get("minutes", [])) for h in hours.values()),
        "latitude": 0.0,
        "longitude": 0.0,
        "resolvedAddress": location,
        "address": location,
        "timezone": "Z",
        "tzoffset": 0.0,
        "days": [days[d] for d in sorted(days)],
        "stations": {
            s: {
                "id": s,
                "name": s,
                "distance": 0.0,
                "useCount": 0,
                "quality": 100,
                "contribution": 0.0,
            }
            for s in sorted(stations)
        },
    }


def _malformed(answer: _Answer) -> str:
    """A broken version of a real answer: truncated JSON, or CSV with a mangled header."""
    if answer.content_type.endswith("json"):
        return answer.body[: max(1, len(answer.body) // 2)]
    return "<html><body>502 Bad Gateway</body></html>\n" + answer.body[:40]


def _make_handler(server: WeatherReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes
        server_version = "kwx-weather-replay/1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read server.requests instead

        def date_time_string(self, timestamp: float | None = None) -> str:
            clock = server.clock
            if clock is not None and timestamp is None:
                return email.utils.format_datetime(clock, usegmt=True)
            return super().date_time_string(timestamp)

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = server._record(self.path, headers)
            fault = server._take_fault(request.path)
            if fault is not None and fault.kind == "status":
                default = VC_CONCURRENCY if fault.status == 429 else IEM_BUSY
                answer = _Answer(fault.status, fault.body or default, "text/plain")
            else:
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay_s)
                answer = server._answer(request)
                if fault is not None and fault.kind == "malformed":
                    answer = _Answer(200, fault.body or _malformed(answer), answer.content_type)
            self._send(answer)

        def do_POST(self) -> None:
            self._send(_Answer(405, "method not allowed", "text/plain"))

        def _send(self, answer: _Answer) -> None:
            payload = answer.body.encode("utf-8")
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

    return Handler
