"""The places table: GeoNames' capitals and cities offline, analysts' places from data/places.csv, checked by line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sahel_pipeline import PROJECT_DIR
from sahel_pipeline.core.places import (
    CAPITAL,
    PLACES_SCHEMA,
    CityRule,
    PlacesFileError,
    haversine_km,
    places_table,
)

PLACES_FILE = PROJECT_DIR / "data" / "places.csv"


def test_every_country_in_the_sahel_has_its_capital_and_cities():
    places = places_table(["Burkina Faso", "Mali", "Niger"])
    capital = dict(places.filter(pl.col("kind") == CAPITAL).select("country", "name").iter_rows())
    assert capital == {"Burkina Faso": "Ouagadougou", "Mali": "Bamako", "Niger": "Niamey"}
    cities = places.filter(pl.col("kind") == "city")
    assert cities["population"].min() >= CityRule().min_population
    assert cities.group_by("country").len()["len"].max() <= CityRule().per_country
    assert places.schema == pl.Schema(PLACES_SCHEMA)
    # Suburbs of a larger place are left out: no two GeoNames places of a country closer than merge_km.
    for _, group in places.filter(pl.col("origin").str.starts_with("GeoNames")).group_by("country"):
        lat, lon = group["latitude"].to_numpy(), group["longitude"].to_numpy()
        d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        assert (d[~np.eye(len(lat), dtype=bool)] >= CityRule().merge_km).all()


def test_capitals_found_for_nearly_every_acled_country():
    places = places_table()
    assert places.filter(pl.col("kind") == CAPITAL).height >= 190
    assert places["place_id"].n_unique() == places.height


def test_haversine_against_math_and_polars():
    # Ouagadougou to Bamako, by the textbook formula with math
    a, b = (12.36566, -1.53388), (12.65, -8.0)
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    expected = 2 * 6371.0088 * math.asin(math.sqrt(h))
    assert 690 < expected < 720
    assert haversine_km(a[0], a[1], b[0], b[1]) == pytest.approx(expected)
    frame = pl.DataFrame({"la": [a[0]], "lo": [a[1]], "lb": [b[0]], "lob": [b[1]]})
    got = frame.select(haversine_km(pl.col("la"), pl.col("lo"), pl.col("lb"), pl.col("lob")))[0, 0]
    assert got == pytest.approx(expected)


def test_the_bundled_places_file_is_read():
    places = places_table(["Burkina Faso"], PLACES_FILE)
    listed = places.filter(pl.col("origin").str.starts_with("places.csv"))
    assert listed.height >= 1
    assert listed["population"].is_null().all()
    assert set(listed["kind"]) - {CAPITAL, "city"}


def test_an_analysts_place_replaces_a_geonames_one_of_the_same_name(tmp_path: Path):
    path = tmp_path / "places.csv"
    path.write_text("name,country,latitude,longitude,kind\nOuagadougou,Burkina Faso,12.0,-1.5,capital\n")
    places = places_table(["Burkina Faso"], path)
    ouaga = places.filter(pl.col("place_id") == "BF:Ouagadougou")
    assert ouaga.height == 1 and ouaga["latitude"][0] == 12.0 and ouaga["origin"][0] == "places.csv line 2"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Mine,Burkina Faso,abc,-1.0,mine", "line 3: latitude/longitude 'abc'"),
        ("Mine,Burkina Faso,95,-1.0,mine", "line 3: latitude 95.0 or longitude -1.0 out of range"),
        ("Mine,Burkina,14,-1.0,mine", "line 3: country 'Burkina' is not a country name"),
        (",Burkina Faso,14,-1.0,mine", "line 3: name is empty"),
        ("Mine,Burkina Faso,14,-1.0,", "line 3: kind is empty"),
        ("Post,Mali,14,-1.0,border post", "line 4: 'Post' in Mali is listed twice"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str):
    path = tmp_path / "places.csv"
    path.write_text(f"# a comment\nname,country,latitude,longitude,kind\nPost,Mali,14,-2,border post\n{line}\n")
    if "listed twice" not in message:
        path.write_text(f"# a comment\nname,country,latitude,longitude,kind\n{line}\nPost,Mali,14,-2,border post\n")
    with pytest.raises(PlacesFileError, match=message.replace("(", r"\(")) as error:
        places_table(None, path)
    assert str(path) in str(error.value)


def test_a_missing_column_is_named(tmp_path: Path):
    path = tmp_path / "places.csv"
    path.write_text("name,country,lat,lon,kind\n")
    with pytest.raises(PlacesFileError, match="header lacks latitude, longitude"):
        places_table(None, path)


def test_the_geonames_part_is_cached(tmp_path: Path):
    first = places_table(["Mali"], cache_dir=tmp_path)
    assert list(tmp_path.glob("geonames-places-*.parquet"))
    assert places_table(["Mali"], cache_dir=tmp_path).equals(first)


def test_a_places_file_that_does_not_exist_is_named(tmp_path: Path):
    with pytest.raises(PlacesFileError, match="no such places file") as error:
        places_table(None, tmp_path / "plcaes.csv")
    assert "plcaes.csv" in str(error.value)


def test_an_unreadable_cache_is_discarded_with_a_warning_and_made_again(tmp_path: Path):
    first = places_table(["Mali"], cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.parquet")
    cached.write_bytes(b"not parquet")
    warnings: list[str] = []
    assert places_table(["Mali"], cache_dir=tmp_path, warn=warnings.append).equals(first)
    assert len(warnings) == 1 and str(cached) in warnings[0] and "discarded" in warnings[0]
    assert pl.read_parquet(cached).height  # written again, whole
