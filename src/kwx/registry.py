"""The bundled registry of Kalshi daily-high cities (`cities.toml`).

Every part of kwx that turns a Kalshi ticker into a weather station, or a station into a
market, goes through this module, so that one table decides which station settles which series.

Design points:

* Lookups are exact. Kalshi has series that share the ``KXHIGH`` prefix but are not daily highs
  (``KXHIGHINFLATION``) or are hourly (``KXHIGHNYD``), so nothing here ever prefix-matches.
* The file is validated strictly on load (unknown or missing fields, duplicates, zones, ranges):
  a typo in a station or zone silently mislabels every observation and forecast for that city.
* The registry is configuration, not truth: the settlement station must still be re-checked
  against each market's ``rules_primary`` at run time (see the comment at the top of the TOML).
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

__all__ = [
    "City",
    "CityRegistry",
    "RegistryError",
    "UnknownCityError",
    "Verification",
    "default_registry",
    "load_cities",
]

Verification = Literal["confirmed", "high_confidence", "verify", "unknown"]
"""How sure we are of the station mapping, as in the status column of kalshi-api.md §10.1."""

VERIFICATION_LEVELS: Final[frozenset[str]] = frozenset(get_args(Verification))

_BUNDLED_PACKAGE: Final = "kwx"
_BUNDLED_NAME: Final = "cities.toml"

_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_SERIES_RE: Final = re.compile(r"^KXHIGHT?[A-Z]+$")
_LEGACY_RE: Final = re.compile(r"^HIGHT?[A-Z]+$")
_ICAO_RE: Final = re.compile(r"^[A-Z]{4}$")
# Same shape as the rules_primary pattern `\((CLI[A-Z]{3})\)` (kalshi-api.md §10.1).
_CLI_RE: Final = re.compile(r"^CLI[A-Z]{3}$")
_IEM_RE: Final = re.compile(r"^[A-Z0-9]{3,4}$")

# A January instant, to read a zone's standard (non-DST) offset; every registry city is in the
# northern hemisphere, and utcoffset - dst is the standard offset whatever the season anyway.
_WINTER_PROBE: Final = datetime(2025, 1, 15, 12, 0)


class RegistryError(ValueError):
    """The city file is malformed. The message names the city entry and the offending field.

    ``city`` is the entry's key (or ``#<index>`` when the key itself is unusable) and ``field``
    the TOML field, so callers and tests need not parse the message.
    """

    def __init__(self, message: str, *, city: str | None = None, field: str | None = None):
        prefix = ""
        if city is not None:
            prefix += f"city {city!r}: "
        if field is not None:
            prefix += f"field {field!r}: "
        super().__init__(prefix + message)
        self.city = city
        self.field = field


class UnknownCityError(KeyError):
    """A name matched no city. Subclasses KeyError so ``except KeyError`` keeps working.

    The message lists the valid keys so that a typo on the command line is self-correcting.
    """

    def __init__(self, name: str, valid: Iterable[str], *, what: str = "city") -> None:
        self.name = name
        self.valid: tuple[str, ...] = tuple(valid)
        self.message = f"unknown {what} {name!r}; valid: {', '.join(self.valid)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return self.message


@dataclass(frozen=True, slots=True)
class City:
    """One Kalshi daily-high series and the NWS station that settles it.

    Coordinates are the settlement station's (the ASOS site), not the city centre: forecasts
    and NWS gridpoints must be fetched for the point whose temperature is actually measured.
    """

    key: str
    name: str
    series: str
    legacy_prefix: str
    station_icao: str
    cli_product: str
    iem_station: str
    timezone: str
    lat: float
    lon: float
    verification: Verification
    cli_verified: bool = True
    note: str = ""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The station's civil time zone (ZoneInfo caches instances, so this is cheap)."""
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def standard_offset(self) -> timedelta:
        """UTC offset of local *standard* time, which bounds the NWS climate day all year.

        The CLI climate day is midnight to midnight local standard time even under DST
        (weather-sources.md §3), so use this, not ``zone``, to cut climate-day windows.
        """
        probe = _WINTER_PROBE.replace(tzinfo=self.zone)
        offset = probe.utcoffset()
        dst = probe.dst()
        assert offset is not None and dst is not None  # always set for a ZoneInfo-aware datetime
        return offset - dst


_FIELD_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(City))
_OPTIONAL_FIELDS: Final[frozenset[str]] = frozenset({"cli_verified", "note"})
_STR_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "key",
        "name",
        "series",
        "legacy_prefix",
        "station_icao",
        "cli_product",
        "iem_station",
        "timezone",
        "verification",
        "note",
    }
)
_PATTERNS: Final[Mapping[str, re.Pattern[str]]] = {
    "key": _KEY_RE,
    "series": _SERIES_RE,
    "legacy_prefix": _LEGACY_RE,
    "station_icao": _ICAO_RE,
    "cli_product": _CLI_RE,
    "iem_station": _IEM_RE,
}
_UNIQUE_FIELDS: Final[tuple[str, ...]] = (
    "key",
    "series",
    "legacy_prefix",
    "station_icao",
    "cli_product",
    "iem_station",
)


def _read_bundled() -> str:
    return resources.files(_BUNDLED_PACKAGE).joinpath(_BUNDLED_NAME).read_text(encoding="utf-8")


def load_cities(path: Path | None = None) -> tuple[City, ...]:
    """Read and validate a city file; the bundled ``kwx/cities.toml`` when ``path`` is None.

    The bundled file is read through ``importlib.resources`` so it works from a wheel or a zip
    as well as from a source checkout. Raises RegistryError on any problem, naming the city and
    field, because a half-loaded registry would mis-settle markets silently.
    """
    source = str(path) if path is not None else f"{_BUNDLED_PACKAGE}/{_BUNDLED_NAME}"
    try:
        text = path.read_text(encoding="utf-8") if path is not None else _read_bundled()
    except OSError as exc:
        raise RegistryError(f"cannot read city file {source}: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"invalid TOML in {source}: {exc}") from exc

    extra = sorted(set(doc) - {"city"})
    if extra:
        raise RegistryError(f"unexpected top-level keys {extra} in {source}")
    entries = doc.get("city")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{source} has no [[city]] tables")

    cities = tuple(_parse_city(i, entry) for i, entry in enumerate(entries))
    _check_unique(cities)
    return cities


def _parse_city(index: int, entry: object) -> City:
    """Turn one ``[[city]]`` table into a City, checking types, formats and ranges."""
    if not isinstance(entry, dict):
        raise RegistryError("[[city]] entry is not a table", city=f"#{index}")
    raw_key = entry.get("key")
    label = raw_key if isinstance(raw_key, str) and raw_key else f"#{index}"

    unknown = sorted(set(entry) - set(_FIELD_NAMES))
    if unknown:
        raise RegistryError("unknown field (typo?)", city=label, field=unknown[0])
    for name in _FIELD_NAMES:
        if name not in entry and name not in _OPTIONAL_FIELDS:
            raise RegistryError("missing", city=label, field=name)

    for name in _STR_FIELDS & set(entry):
        value = entry[name]
        if not isinstance(value, str):
            raise RegistryError(f"expected a string, got {value!r}", city=label, field=name)
        if name != "note" and not value.strip():
            raise RegistryError("empty", city=label, field=name)
    for name, pattern in _PATTERNS.items():
        if not pattern.fullmatch(entry[name]):
            raise RegistryError(
                f"{entry[name]!r} does not match {pattern.pattern}", city=label, field=name
            )

    if entry["verification"] not in VERIFICATION_LEVELS:
        raise RegistryError(
            f"{entry['verification']!r} is not one of {sorted(VERIFICATION_LEVELS)}",
            city=label,
            field="verification",
        )
    if "cli_verified" in entry and not isinstance(entry["cli_verified"], bool):
        raise RegistryError(
            f"expected true or false, got {entry['cli_verified']!r}",
            city=label,
            field="cli_verified",
        )

    tz = entry["timezone"]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise RegistryError(
            f"{tz!r} is not a valid IANA zone", city=label, field="timezone"
        ) from exc

    lat = _coordinate(entry["lat"], -90.0, 90.0, label, "lat")
    lon = _coordinate(entry["lon"], -180.0, 180.0, label, "lon")

    return City(
        key=entry["key"],
        name=entry["name"],
        series=entry["series"],
        legacy_prefix=entry["legacy_prefix"],
        station_icao=entry["station_icao"],
        cli_product=entry["cli_product"],
        iem_station=entry["iem_station"],
        timezone=tz,
        lat=lat,
        lon=lon,
        verification=entry["verification"],
        cli_verified=entry.get("cli_verified", True),
        note=entry.get("note", ""),
    )


def _coordinate(value: object, low: float, high: float, city: str, field: str) -> float:
    # bool is an int subclass: `lat = true` must not load as 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistryError(f"expected a number, got {value!r}", city=city, field=field)
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise RegistryError(f"{number} is outside [{low}, {high}]", city=city, field=field)
    return number


def _check_unique(cities: tuple[City, ...]) -> None:
    """Reject duplicates in any identifying field: one ticker or station must mean one city."""
    for name in _UNIQUE_FIELDS:
        seen: dict[str, int] = {}
        for index, city in enumerate(cities):
            value: str = getattr(city, name)
            if value in seen:
                first = seen[value]
                raise RegistryError(
                    f"duplicate value {value!r} (entries #{first} {cities[first].key!r} "
                    f"and #{index})",
                    city=city.key,
                    field=name,
                )
            seen[value] = index


class CityRegistry:
    """Immutable O(1) lookups over a set of cities.

    ``by_*`` methods answer one kind of identifier each and are meant for machine input
    (tickers from the API); ``resolve`` accepts any alias case-insensitively and is meant for
    humans (CLI arguments, config files).
    """

    __slots__ = ("_aliases", "_by_key", "_by_prefix", "_by_series", "_cities")

    def __init__(self, cities: Iterable[City]) -> None:
        self._cities: tuple[City, ...] = tuple(cities)
        self._by_key: dict[str, City] = {}
        self._by_series: dict[str, City] = {}
        self._by_prefix: dict[str, City] = {}
        self._aliases: dict[str, City] = {}
        for city in self._cities:
            _insert(self._by_key, city.key, city, "key")
            _insert(self._by_series, city.series, city, "series")
            _insert(self._by_prefix, city.series, city, "series")
            _insert(self._by_prefix, city.legacy_prefix, city, "legacy_prefix")
            for field_name, alias in _aliases(city):
                # The same alias twice for one city (e.g. key == IEM id) is harmless.
                if self._aliases.get(alias.casefold(), city) is not city:
                    raise RegistryError(
                        f"alias {alias!r} is ambiguous "
                        f"(also names {self._aliases[alias.casefold()].key!r})",
                        city=city.key,
                        field=field_name,
                    )
                self._aliases[alias.casefold()] = city

    def by_key(self, key: str) -> City:
        """The city with this snake_case key (``"chicago"``)."""
        try:
            return self._by_key[key.lower()]
        except KeyError:
            raise UnknownCityError(key, self.keys()) from None

    def by_series(self, series: str) -> City:
        """The city of this exact series ticker (``"KXHIGHCHI"``); never a prefix match."""
        try:
            return self._by_series[series.upper()]
        except KeyError:
            raise UnknownCityError(series, self._by_series, what="series") from None

    def by_prefix(self, prefix: str) -> City:
        """The city of a series ticker or a legacy event prefix (``"KXHIGHCHI"``, ``"HIGHCHI"``).

        Exact match only: ``"KXHIGHNYD"`` (hourly) and ``"KXHIGHINFLATION"`` are rejected.
        """
        try:
            return self._by_prefix[prefix.upper()]
        except KeyError:
            raise UnknownCityError(prefix, self._by_prefix, what="series prefix") from None

    def by_ticker(self, ticker: str) -> City:
        """The city of an event or market ticker (``"KXHIGHNY-26AUG12-B77.5"``).

        The part before the first ``-`` must equal a series or legacy prefix exactly, which also
        covers legacy double-dash tickers such as ``"HIGHAUS--23MAY11-T84"``.
        """
        return self.by_prefix(ticker.partition("-")[0])

    def resolve(self, name: str) -> City:
        """Any alias, case-insensitively: key, series, legacy prefix, station ICAO or IEM id."""
        try:
            return self._aliases[name.strip().casefold()]
        except KeyError:
            raise UnknownCityError(name, self.keys()) from None

    def keys(self) -> tuple[str, ...]:
        """City keys in file order."""
        return tuple(self._by_key)

    def __iter__(self) -> Iterator[City]:
        return iter(self._cities)

    def __len__(self) -> int:
        return len(self._cities)

    def __repr__(self) -> str:
        return f"CityRegistry({len(self)} cities: {', '.join(self.keys())})"


def _aliases(city: City) -> tuple[tuple[str, str], ...]:
    return (
        ("key", city.key),
        ("series", city.series),
        ("legacy_prefix", city.legacy_prefix),
        ("station_icao", city.station_icao),
        ("iem_station", city.iem_station),
    )


def _insert(index: dict[str, City], name: str, city: City, field: str) -> None:
    """Add one lookup entry, refusing a name that already points at another city."""
    other = index.get(name)
    if other is not None and other is not city:
        raise RegistryError(f"{name!r} already names {other.key!r}", city=city.key, field=field)
    index[name] = city


@functools.cache
def default_registry() -> CityRegistry:
    """The registry built from the bundled file, loaded and validated once per process."""
    return CityRegistry(load_cities())
