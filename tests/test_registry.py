"""Tests for the bundled city registry (kwx/cities.toml) and its lookups."""

from __future__ import annotations

import json
import math
import tomllib
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING

import pytest

from kwx.registry import (
    City,
    CityRegistry,
    RegistryError,
    UnknownCityError,
    default_registry,
    load_cities,
)

if TYPE_CHECKING:
    from pathlib import Path

EXPECTED_SERIES = {
    "new_york": "KXHIGHNY",
    "chicago": "KXHIGHCHI",
    "miami": "KXHIGHMIA",
    "los_angeles": "KXHIGHLAX",
    "austin": "KXHIGHAUS",
    "denver": "KXHIGHDEN",
    "philadelphia": "KXHIGHPHIL",
    "san_francisco": "KXHIGHTSFO",
    "boston": "KXHIGHTBOS",
    "seattle": "KXHIGHTSEA",
    "atlanta": "KXHIGHTATL",
    "las_vegas": "KXHIGHTLV",
    "minneapolis": "KXHIGHTMIN",
    "new_orleans": "KXHIGHTNOLA",
    "washington_dc": "KXHIGHTDC",
    "san_antonio": "KXHIGHTSATX",
    "dallas": "KXHIGHTDAL",
    "oklahoma_city": "KXHIGHTOKC",
    "phoenix": "KXHIGHTPHX",
    "houston": "KXHIGHTHOU",
    "trenton": "KXHIGHTTTN",
    "louisville": "KXHIGHTSDF",
    "newark": "KXHIGHTEWR",
    "san_diego": "KXHIGHTSAN",
}

# Rough downtown coordinates, typed independently of cities.toml: every settlement station must
# lie within RADIUS_KM of its city, which catches swapped signs, swapped lat/lon and digit typos.
CITY_CENTRES: dict[str, tuple[float, float]] = {
    "new_york": (40.71, -74.01),
    "chicago": (41.88, -87.63),
    "miami": (25.76, -80.19),
    "los_angeles": (34.05, -118.24),
    "austin": (30.27, -97.74),
    "denver": (39.74, -104.99),
    "philadelphia": (39.95, -75.17),
    "san_francisco": (37.77, -122.42),
    "boston": (42.36, -71.06),
    "seattle": (47.61, -122.33),
    "atlanta": (33.75, -84.39),
    "las_vegas": (36.17, -115.14),
    "minneapolis": (44.98, -93.27),
    "new_orleans": (29.95, -90.07),
    "washington_dc": (38.91, -77.04),
    "san_antonio": (29.42, -98.49),
    "dallas": (32.78, -96.80),
    "oklahoma_city": (35.47, -97.52),
    "phoenix": (33.45, -112.07),
    "houston": (29.76, -95.37),
    "trenton": (40.22, -74.76),
    "louisville": (38.25, -85.76),
    "newark": (40.74, -74.17),
    "san_diego": (32.72, -117.16),
}
RADIUS_KM = 60.0

OLDER_SERIES = {
    "KXHIGHNY",
    "KXHIGHCHI",
    "KXHIGHMIA",
    "KXHIGHAUS",
    "KXHIGHDEN",
    "KXHIGHLAX",
    "KXHIGHPHIL",
}

ALIAS_FIELDS = ("key", "series", "legacy_prefix", "station_icao", "iem_station")


def _haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _bundled_entries() -> list[dict[str, object]]:
    text = resources.files("kwx").joinpath("cities.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(text)["city"]
    assert isinstance(entries, list)
    return [dict(e) for e in entries]


def _to_toml(entries: list[dict[str, object]]) -> str:
    """Minimal TOML writer for flat tables of str/bool/int/float (JSON strings are TOML-valid)."""
    lines: list[str] = []
    for entry in entries:
        lines.append("[[city]]")
        for name, value in entry.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, int | float):
                rendered = repr(value)
            else:
                rendered = json.dumps(value)
            lines.append(f"{name} = {rendered}")
        lines.append("")
    return "\n".join(lines)


def _write(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    path = tmp_path / "cities.toml"
    path.write_text(_to_toml(entries), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registry() -> CityRegistry:
    return default_registry()


# --- the bundled file --------------------------------------------------------------------------


def test_bundled_file_loads_24_cities() -> None:
    cities = load_cities()
    assert len(cities) == 24
    assert all(isinstance(c, City) for c in cities)
    assert {c.key: c.series for c in cities} == EXPECTED_SERIES


def test_round_trip_writer_reproduces_bundled_file(tmp_path: Path) -> None:
    # Guards the helper the malformed-file tests rely on.
    assert load_cities(_write(tmp_path, _bundled_entries())) == load_cities()


def test_default_registry_is_cached(registry: CityRegistry) -> None:
    assert default_registry() is registry
    assert len(registry) == 24
    assert [c.key for c in registry] == list(EXPECTED_SERIES)


def test_chicago_is_midway(registry: CityRegistry) -> None:
    chi = registry.by_key("chicago")
    assert chi.station_icao == "KMDW"
    assert chi.cli_product == "CLIMDW"
    assert chi.iem_station == "MDW"
    assert chi.timezone == "America/Chicago"
    assert chi.zone.key == "America/Chicago"
    assert chi.legacy_prefix == "HIGHCHI"
    assert chi.verification == "confirmed"
    assert chi.standard_offset == timedelta(hours=-6)


def test_new_york_is_central_park(registry: CityRegistry) -> None:
    ny = registry.by_key("new_york")
    assert ny.station_icao == "KNYC"
    assert ny.cli_product == "CLINYC"
    assert ny.series == "KXHIGHNY"
    assert ny.standard_offset == timedelta(hours=-5)
    assert _haversine_km((ny.lat, ny.lon), (40.7789, -73.9692)) < 0.5


def test_philadelphia_series_has_the_i(registry: CityRegistry) -> None:
    phl = registry.by_key("philadelphia")
    assert phl.series == "KXHIGHPHIL"
    assert phl.station_icao == "KPHL"
    assert phl.cli_product == "CLIPHL"


def test_phoenix_has_no_dst(registry: CityRegistry) -> None:
    phx = registry.by_key("phoenix")
    assert phx.timezone == "America/Phoenix"
    winter = datetime(2026, 1, 15, 12, tzinfo=phx.zone)
    summer = datetime(2026, 7, 15, 12, tzinfo=phx.zone)
    assert summer.dst() == timedelta(0)
    assert winter.utcoffset() == summer.utcoffset() == timedelta(hours=-7)
    assert phx.standard_offset == timedelta(hours=-7)


def test_chicago_does_observe_dst(registry: CityRegistry) -> None:
    # Contrast with Phoenix: the zone is DST-aware even though the climate day is not.
    chi = registry.by_key("chicago")
    assert datetime(2026, 7, 15, 12, tzinfo=chi.zone).dst() == timedelta(hours=1)


def test_louisville_zone(registry: CityRegistry) -> None:
    assert registry.by_key("louisville").timezone == "America/Kentucky/Louisville"


def test_houston_is_flagged_unknown(registry: CityRegistry) -> None:
    hou = registry.by_key("houston")
    assert (hou.station_icao, hou.cli_product, hou.iem_station) == ("KHOU", "CLIHOU", "HOU")
    assert hou.verification == "unknown"
    assert "KIAH" in hou.note


def test_inferred_cli_ids_are_marked_unverified(registry: CityRegistry) -> None:
    unverified = {c.key for c in registry if not c.cli_verified}
    assert unverified == {"trenton", "louisville", "newark", "san_diego"}
    assert registry.by_key("trenton").cli_product == "CLITTN"


def test_verification_levels_match_reference(registry: CityRegistry) -> None:
    by_level: dict[str, set[str]] = {}
    for city in registry:
        by_level.setdefault(city.verification, set()).add(city.key)
    assert by_level["confirmed"] == {"new_york", "chicago", "boston"}
    assert by_level["high_confidence"] == {"miami", "austin", "denver", "philadelphia"}
    assert by_level["unknown"] == {"houston"}


@pytest.mark.parametrize("key", list(EXPECTED_SERIES))
def test_identifiers_are_consistent(registry: CityRegistry, key: str) -> None:
    city = registry.by_key(key)
    assert city.legacy_prefix == city.series.removeprefix("KX")
    assert city.station_icao == "K" + city.iem_station
    assert city.cli_product == "CLI" + city.iem_station
    assert (city.series in OLDER_SERIES) == (not city.series.startswith("KXHIGHT"))
    assert city.standard_offset in {timedelta(hours=h) for h in (-5, -6, -7, -8)}


@pytest.mark.parametrize("key", list(CITY_CENTRES))
def test_station_is_near_its_city(registry: CityRegistry, key: str) -> None:
    city = registry.by_key(key)
    distance = _haversine_km((city.lat, city.lon), CITY_CENTRES[key])
    assert distance < RADIUS_KM, f"{key}: station {city.station_icao} is {distance:.0f} km away"


def test_city_centres_cover_every_city() -> None:
    assert set(CITY_CENTRES) == set(EXPECTED_SERIES)


# --- lookups ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(EXPECTED_SERIES))
@pytest.mark.parametrize("field", ALIAS_FIELDS)
def test_resolve_every_alias(registry: CityRegistry, key: str, field: str) -> None:
    city = registry.by_key(key)
    alias: str = getattr(city, field)
    assert registry.resolve(alias) is city
    assert registry.resolve(alias.lower()) is city
    assert registry.resolve(alias.upper()) is city
    assert registry.resolve(f"  {alias} ") is city


def test_by_series_and_by_prefix(registry: CityRegistry) -> None:
    chi = registry.by_key("chicago")
    assert registry.by_series("KXHIGHCHI") is chi
    assert registry.by_prefix("KXHIGHCHI") is chi
    assert registry.by_prefix("HIGHCHI") is chi
    assert registry.by_prefix("HIGHTSFO") is registry.by_key("san_francisco")
    with pytest.raises(UnknownCityError):
        registry.by_series("HIGHCHI")  # a legacy prefix is not a series


def test_by_ticker(registry: CityRegistry) -> None:
    assert registry.by_ticker("KXHIGHNY-26AUG12-B77.5").key == "new_york"
    assert registry.by_ticker("KXHIGHTDC-26SEP01").key == "washington_dc"
    assert registry.by_ticker("HIGHAUS--23MAY11-T84").key == "austin"
    assert registry.by_ticker("KXHIGHPHIL").key == "philadelphia"


@pytest.mark.parametrize(
    "name",
    [
        "KXHIGH",
        "KXHIGHINFLATION",
        "KXHIGHNYD",
        "KXHIGHNY0",
        "KXHIGHHOU",
        "KXHIGHPHL",
        "KXTEMPNYCH",
        "KXHIGHC",
        "HIGH",
        "",
    ],
)
def test_no_prefix_matching(registry: CityRegistry, name: str) -> None:
    for lookup in (registry.by_series, registry.by_prefix, registry.by_ticker, registry.resolve):
        with pytest.raises(UnknownCityError):
            lookup(name)


def test_hourly_ticker_is_rejected(registry: CityRegistry) -> None:
    with pytest.raises(UnknownCityError):
        registry.by_ticker("KXHIGHNYD-26AUG12H14-T80")


def test_unknown_name_lists_valid_keys(registry: CityRegistry) -> None:
    with pytest.raises(UnknownCityError) as info:
        registry.resolve("gotham")
    err = info.value
    assert isinstance(err, KeyError)
    message = str(err)
    assert "gotham" in message
    assert not message.startswith("'")  # not KeyError's repr-quoted message
    for key in EXPECTED_SERIES:
        assert key in message
    assert err.name == "gotham"
    assert set(err.valid) == set(EXPECTED_SERIES)


def test_by_key_unknown_lists_keys(registry: CityRegistry) -> None:
    with pytest.raises(KeyError, match="valid: new_york, chicago"):
        registry.by_key("KMDW")  # an ICAO is not a key; resolve() handles that


def test_by_series_unknown_lists_series(registry: CityRegistry) -> None:
    with pytest.raises(UnknownCityError, match="KXHIGHCHI"):
        registry.by_series("KXHIGHCHICAGO")


def test_registry_rejects_ambiguous_aliases() -> None:
    chi = default_registry().by_key("chicago")
    impostor = City(
        key="impostor",
        name="Impostor",
        series="KXHIGHIMP",
        legacy_prefix="HIGHIMP",
        station_icao="KMDW",
        cli_product="CLIIMP",
        iem_station="IMP",
        timezone="America/Chicago",
        lat=41.0,
        lon=-87.0,
        verification="unknown",
    )
    with pytest.raises(RegistryError) as info:
        CityRegistry((chi, impostor))
    assert info.value.field == "station_icao"
    assert info.value.city == "impostor"


def test_registry_from_subset() -> None:
    chi = default_registry().by_key("chicago")
    sub = CityRegistry((chi,))
    assert len(sub) == 1
    assert list(sub) == [chi]
    assert sub.resolve("mdw") is chi
    with pytest.raises(UnknownCityError, match="valid: chicago"):
        sub.resolve("new_york")


# --- malformed files ----------------------------------------------------------------------------


def _expect_error(path: Path, city: str, field: str) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        load_cities(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.city == city
    assert err.field == field
    assert repr(city) in str(err)
    assert repr(field) in str(err)
    return err


def test_bad_zone(tmp_path: Path) -> None:
    entries = _bundled_entries()
    entries[3]["timezone"] = "America/Gotham"
    err = _expect_error(_write(tmp_path, entries), "los_angeles", "timezone")
    assert "America/Gotham" in str(err)


def test_duplicate_key(tmp_path: Path) -> None:
    entries = _bundled_entries()
    entries[5]["key"] = "chicago"
    err = _expect_error(_write(tmp_path, entries), "chicago", "key")
    assert "duplicate" in str(err)


def test_duplicate_series(tmp_path: Path) -> None:
    entries = _bundled_entries()
    entries[2]["series"] = "KXHIGHNY"
    _expect_error(_write(tmp_path, entries), "miami", "series")


def test_duplicate_legacy_prefix(tmp_path: Path) -> None:
    entries = _bundled_entries()
    entries[2]["legacy_prefix"] = "HIGHCHI"
    _expect_error(_write(tmp_path, entries), "miami", "legacy_prefix")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("series", "KXLOWTCHI"),
        ("series", "KXHIGHchi"),
        ("series", "HIGHCHI"),
        ("legacy_prefix", "KXHIGHCHI"),
        ("cli_product", "CLIMDWX"),
        ("station_icao", "MDW"),
        ("key", "Chicago"),
        ("verification", "probably"),
        ("lat", 91.0),
        ("lat", -90.5),
        ("lon", 180.5),
        ("lon", -200.0),
        ("lat", "41.78"),
        ("lat", True),
        ("cli_verified", "no"),
        ("name", 7),
        ("name", "  "),
    ],
)
def test_bad_field_values(tmp_path: Path, field: str, value: object) -> None:
    entries = _bundled_entries()
    entries[1][field] = value
    city = "chicago" if field != "key" else "Chicago"
    _expect_error(_write(tmp_path, entries), city, field)


def test_missing_field(tmp_path: Path) -> None:
    entries = _bundled_entries()
    del entries[1]["station_icao"]
    _expect_error(_write(tmp_path, entries), "chicago", "station_icao")


def test_unknown_field(tmp_path: Path) -> None:
    entries = _bundled_entries()
    entries[1]["stattion_icao"] = "KORD"
    _expect_error(_write(tmp_path, entries), "chicago", "stattion_icao")


def test_optional_fields_default(tmp_path: Path) -> None:
    entries = [_bundled_entries()[1]]
    entries[0].pop("note", None)
    entries[0].pop("cli_verified", None)
    (chi,) = load_cities(_write(tmp_path, entries))
    assert chi.note == ""
    assert chi.cli_verified is True


def test_entry_without_usable_key_is_named_by_index(tmp_path: Path) -> None:
    entries = _bundled_entries()
    del entries[4]["key"]
    _expect_error(_write(tmp_path, entries), "#4", "key")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "cities.toml"
    path.write_text('[[city]]\nkey = "chicago\n', encoding="utf-8")
    with pytest.raises(RegistryError, match="invalid TOML"):
        load_cities(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "cities.toml"
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"no \[\[city\]\] tables"):
        load_cities(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_cities(tmp_path / "absent.toml")
