"""The Atom feed parses as Atom (feedparser) and keeps its ids and times; the GeoJSON checks find what RFC 7946
forbids, on hand-made bad documents."""

from __future__ import annotations

import dataclasses
import datetime as dt

import feedparser
import polars as pl
import pytest

from sahel_pipeline.core.feeds import atom_feed, geojson_problems
from sahel_pipeline_tests.fixtures import TODAY, real_file, requires_real_data
from sahel_pipeline_tests.test_messages import make_cards

T0 = dt.datetime(2025, 1, 6, 7, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=7)


def feed(cards, generated=T0, previous=None, synthetic=True, link="https://reports.example.org/reports/2024-12.html"):
    return atom_feed(
        cards,
        month="2024-12",
        month_name="December 2024",
        synthetic=synthetic,
        generated=generated,
        link=link,
        previous=previous,
    )


def test_the_feed_is_atom_with_an_entry_per_alert():
    cards = make_cards(3)
    parsed = feedparser.parse(feed(cards))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "SYNTHETIC - Escalation alerts, December 2024"
    assert parsed.feed.link == "https://reports.example.org/reports/2024-12.html"
    assert len(parsed.entries) == 3
    for entry, card in zip(parsed.entries, cards, strict=True):
        assert entry.title.startswith(f"[SYNTHETIC] [{card.severity}, {card.status}] ")
        assert entry.summary.endswith(card.sentence)
        assert entry.id.startswith("urn:uuid:")
        assert {t.term for t in entry.tags} >= {card.severity, card.country, card.indicator}
    assert len({e.id for e in parsed.entries}) == 3


def test_ids_are_stable_and_an_unchanged_entry_keeps_its_time():
    cards = make_cards(2)
    first = feed(cards, T0)
    again = feedparser.parse(feed(cards, T1, previous=first))
    before = feedparser.parse(first)
    assert [e.id for e in again.entries] == [e.id for e in before.entries]
    assert [e.updated for e in again.entries] == [e.updated for e in before.entries] == ["2025-01-06T07:00:00Z"] * 2
    assert again.feed.updated == "2025-01-06T07:00:00Z"  # nothing changed: the feed did not either
    changed = [dataclasses.replace(cards[0], sentence="A revised sentence."), cards[1]]
    revised = feedparser.parse(feed(changed, T1, previous=first))
    assert [e.updated for e in revised.entries] == ["2025-01-13T07:00:00Z", "2025-01-06T07:00:00Z"]
    assert revised.feed.updated == "2025-01-13T07:00:00Z"
    fewer = feedparser.parse(feed(cards[:1], T1, previous=first))
    assert fewer.feed.updated == "2025-01-13T07:00:00Z"  # an alert gone is a change too


def test_a_month_without_alerts_is_a_valid_empty_feed_and_real_data_say_nothing_of_synthetic():
    parsed = feedparser.parse(feed([], synthetic=False, link=""))
    assert not parsed.bozo and parsed.entries == []
    assert parsed.feed.title == "Escalation alerts, December 2024" and parsed.feed.author == "sahel_pipeline"


def point(lon, lat, **extra):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {}, **extra}


def collection(*features, **extra):
    return {"type": "FeatureCollection", "features": list(features), **extra}


def test_a_valid_document_has_no_problem():
    square = [[2.0, 13.0], [2.5, 13.0], [2.5, 13.5], [2.0, 13.5], [2.0, 13.0]]
    document = collection(
        point(2.1, 13.5),
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]}, "properties": None, "id": 7},
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[2, 13], [3, 14, 250.0]]},
            "properties": {},
        },
        {"type": "Feature", "geometry": None, "properties": {"note": "no place"}},
        bbox=[2.0, 13.0, 3.0, 14.0],
        month="2024-12",  # foreign members are allowed
    )
    assert geojson_problems(document) == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (collection(point(2.1, 13.5), crs={"type": "name"}), "has a 'crs' member"),
        (collection(point(13.5, 95.0)), "latitude 95.0 outside -90..90"),
        (collection(point(190.0, 13.5)), "longitude 190.0 outside -180..180"),
        (collection(point(2.1, float("nan"))), "finite numbers"),
        (collection(point("2.1", 13.5)), "finite numbers"),
        (
            collection({"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.1]}, "properties": {}}),
            "two or three numbers",
        ),
        (
            collection(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
                    "properties": {},
                }
            ),
            "a linear ring must end where it starts",
        ),
        (
            collection(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]},
                    "properties": {},
                }
            ),
            "3 positions, at least 4 needed",
        ),
        (
            collection(
                {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0]]}, "properties": {}}
            ),
            "1 positions, at least 2 needed",
        ),
        (
            collection({"type": "Feature", "geometry": {"type": "Circle", "coordinates": [0, 0]}, "properties": {}}),
            "'Circle' is not a GeoJSON type",
        ),
        (
            collection({"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}),
            "needs geometry and properties",
        ),
        (collection(point(0, 0), bbox=[0, 10, 1, 5]), "southern latitude is north"),
        ({"type": "FeatureCollection"}, "needs a features array"),
        (
            collection(
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {
                        "type": "GeometryCollection",
                        "geometries": [{"type": "Point", "coordinates": [0, 100]}],
                    },
                }
            ),
            "features[0].geometry.geometries[0].coordinates: latitude 100",
        ),
        (
            collection({"type": "Feature", "properties": {}, "geometry": {"type": "GeometryCollection"}}),
            "needs a geometries array",
        ),
        ([point(0, 0)], "not a JSON object"),
    ],
)
def test_what_rfc_7946_forbids_is_found(document, problem):
    problems = geojson_problems(document)
    assert any(problem in p for p in problems), problems


@pytest.mark.slow
@requires_real_data
def test_real_burkina_faso_alerts_map_inside_burkina_faso(tmp_path):
    """On the real export: every mapped event and hot spot lies in Burkina Faso's bounding box, which tells longitude
    from latitude (about -5.5..2.4 and 9.4..15.1), and the file is valid and not flagged synthetic."""

    from sahel_pipeline import ALIAS_TABLE
    from sahel_pipeline.core.alerts import alert_table
    from sahel_pipeline.core.feeds import alert_geojson, hot_spots, recent_alert_events
    from sahel_pipeline.core.groups import load_alias_table
    from sahel_pipeline.core.ingest import find_csv_files, ingest
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.panels import build_panels
    from sahel_pipeline.core.report.selection import admin1_history, alert_series
    from sahel_pipeline.core.scoring import score_month

    result = ingest(
        find_csv_files([real_file("acled_burkina_1997-2020.csv")]), tmp_path / "cache", TODAY, log=lambda _: None
    )
    assert not result.manifest["synthetic"].any()
    aliases = load_alias_table(ALIAS_TABLE)
    panels = build_panels(result.events, aliases)
    config, month = ModelConfig(), dt.date(2019, 2, 1)
    scores = score_month(panels.group_month, panels.country_month, month, config, log=lambda _: None)
    alerts = alert_table(scores.scores, panels.admin1_month, config)
    assert alerts.height > 0
    from sahel_pipeline.core.spatial import SPATIAL_SCHEMA

    no_places = pl.DataFrame(schema={"name": pl.String, "country": pl.String, "latitude": pl.Float64,
                                     "longitude": pl.Float64})  # fmt: skip
    events = recent_alert_events(
        result.events.lazy(), aliases, alerts, month, config, places=no_places,
        spatial_month=pl.DataFrame(schema=SPATIAL_SCHEMA),
    )  # fmt: skip  (count alerts only)
    spots = hot_spots(
        alerts, admin1_history(panels.admin1_month.lazy(), alert_series(alerts), month, config), events, month, config
    )
    document = alert_geojson(events, spots, month="2019-02", synthetic=False)
    assert geojson_problems(document) == []
    kinds = {f["properties"]["kind"] for f in document["features"]}
    assert kinds == {"event", "hot_spot"}
    for feature in document["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert -5.6 <= lon <= 2.5 and 9.3 <= lat <= 15.2, feature["properties"]


def test_spatial_alerts_carry_the_events_behind_them_in_the_feeds():
    """A country closing in on its capital (ACLED's events) and one on new ground (UCDP's): the GeoJSON features of
    the approach alert are the month's events within its radius of the place, those of new_ground the month's events
    in the admin2 areas it entered; both feeds are valid (feedparser, RFC 7946)."""
    import json

    import numpy as np

    from sahel_pipeline import ALIAS_TABLE
    from sahel_pipeline.core.alerts import alert_table
    from sahel_pipeline.core.cards import alert_cards
    from sahel_pipeline.core.feeds import alert_geojson, recent_alert_events
    from sahel_pipeline.core.groups import load_alias_table
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.months import shift_month
    from sahel_pipeline.core.places import haversine_km, places_table
    from sahel_pipeline.core.spatial import RADII_KM, buffer_counts, spatial_alerts, where_events_are
    from sahel_pipeline_tests.spatial_simulation import COUNTRY, FIRST, simulate

    places = places_table([COUNTRY])
    movers = simulate(1, stayers=0, movers=1).unit_rows.with_columns(source=pl.lit("ACLED"))
    spreaders = simulate(1, stayers=0, movers=0, spreaders=1, move_start=36).unit_rows  # scatters in `month`
    spreaders = spreaders.with_columns(source=pl.lit("UCDP"))
    rows = pl.concat([movers, spreaders]).with_columns(
        level=pl.lit("country"), group_id=pl.lit(None, pl.String), geo_precision=pl.lit(1, pl.Int8)
    )  # each a whole country's events: the feed reads them without attributing them to groups
    month = shift_month(FIRST, 36)
    config = ModelConfig()
    where = where_events_are(rows, places)
    group_panel = pl.DataFrame(schema={"source": pl.String, "group_id": pl.String, "country": pl.String,
                                       "group_name": pl.String, "group_type": pl.String})  # fmt: skip
    buffers = buffer_counts(rows, places)
    spatial = spatial_alerts(month, pl.DataFrame(), buffers, where, rows, places, group_panel, config)
    alerts = alert_table(pl.DataFrame(), pl.DataFrame(), config, spatial=spatial, synthetic=True)
    assert alerts.select("kind", "source").sort("kind").rows() == [("approach", "ACLED"), ("new_ground", "UCDP")]

    events = rows.with_row_index("n").select(
        "source", "country", "admin2", "latitude", "longitude", "geo_precision", "fatalities",
        event_id=pl.format("E{}", "n"), event_date="month", admin1=pl.lit("Centre"), location=pl.lit("Somewhere"),
        disorder_type=pl.lit("Political violence"), event_type=pl.lit("Battles"), civilian_targeting=pl.lit(False),
    )  # fmt: skip
    located = recent_alert_events(
        events.lazy(), load_alias_table(ALIAS_TABLE), alerts, month, config, places=places, spatial_month=where
    )
    spots = pl.DataFrame(schema={c: pl.Float64 if c in ("longitude", "latitude", "at_baseline_rate", "rise")
                                 else pl.String for c in ("longitude", "latitude", "group_id", "group_name", "source",
                                 "country", "admin1", "indicator", "severity", "recent", "events_located",
                                 "at_baseline_rate", "rise")})  # fmt: skip
    document = json.loads(json.dumps(alert_geojson(located, spots, month=f"{month:%Y-%m}", synthetic=True)))
    assert geojson_problems(document) == []
    features = {source: [f for f in document["features"] if f["properties"]["source"] == source]
                for source in ("ACLED", "UCDP")}  # fmt: skip

    approach = alerts.filter(pl.col("kind") == "approach").row(0, named=True)
    place = places.filter(pl.col("name") == approach["place"]).row(0, named=True)
    radius = RADII_KM[-1]  # a distance trend's events: those within the largest ring
    month_rows = movers.filter(pl.col("month") == month)
    km = haversine_km(month_rows["latitude"].to_numpy(), month_rows["longitude"].to_numpy(),
                      place["latitude"], place["longitude"])  # fmt: skip
    assert len(features["ACLED"]) == int((km <= radius).sum()) > 0
    for feature in features["ACLED"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert haversine_km(lat, lon, place["latitude"], place["longitude"]) <= radius + 0.01
        assert feature["properties"]["indicators"] == [approach["indicator"]]

    assert alerts.filter(pl.col("kind") == "new_ground")["indicator"].to_list() == ["admin2_entered"]
    # A ring's count alert: the events within its own radius (6 of the 13 within 100 km are within 50 km).
    ring = alerts.with_columns(
        indicator=pl.when(pl.col("kind") == "approach").then(pl.lit("events_50km")).otherwise("indicator")
    )
    ringed = recent_alert_events(
        events.lazy(), load_alias_table(ALIAS_TABLE), ring, month, config, places=places, spatial_month=where
    ).filter(pl.col("source") == "ACLED")
    assert ringed.height == int((km <= 50).sum()) > 0
    assert (haversine_km(ringed["latitude"].to_numpy(), ringed["longitude"].to_numpy(), place["latitude"],
                         place["longitude"]) <= 50).all()  # fmt: skip

    entered = where.filter(pl.col("source") == "UCDP", pl.col("month") == month)["admin2_entered_names"].item()
    names = set(entered.split("; "))
    in_entered = spreaders.filter(pl.col("month") == month, pl.col("admin2").is_in(list(names)))
    assert len(features["UCDP"]) == in_entered.height > 0
    for feature in features["UCDP"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert f"cell {np.floor(lat * 2):.1f} {np.floor(lon * 2):.1f}" in names  # the simulation's admin2 areas

    parsed = feedparser.parse(feed(alert_cards(alerts)))
    assert not parsed.bozo, parsed.get("bozo_exception")
    titles = [e.title for e in parsed.entries]
    assert len(titles) == 2 and any(f"closing in on {approach['place']}" in t for t in titles), titles
    assert any("new ground" in t for t in titles), titles


def test_hot_spots_whose_rises_tie_are_listed_by_name_whatever_order_the_rows_come_in():
    """Two of Burkina Faso's regions with the same rise for one alert: the GeoJSON lists them by name every time (on
    the real files, two runs of the same data once listed a month's tied hot spots in different orders)."""
    from sahel_pipeline.core.feeds import hot_spots
    from sahel_pipeline.core.models import ModelConfig

    config, month = ModelConfig(), dt.date(2023, 5, 1)
    unit = {"source": "ACLED", "level": "group", "group_id": "JNIM", "country": "Burkina Faso", "indicator": "events"}
    regions = ["Sahel", "Centre Ouest", "Cascades", "Est"]
    months = [dt.date(2020 + (m // 12), m % 12 + 1, 1) for m in range(5, 41)]  # the 36 months to 2023-05
    admin1 = pl.DataFrame(
        [{**unit, "admin1": r, "month": m, "count": 4 if m >= dt.date(2023, 3, 1) and r != "Est" else 0}
         for r in regions for m in months]
    )  # fmt: skip
    located = pl.DataFrame(
        [{**{k: v for k, v in unit.items() if k != "indicator"}, "admin1": r, "latitude": 12.0 + i,
          "longitude": -1.0 - i, "indicators": ["events"]} for i, r in enumerate(regions)]
    )  # fmt: skip
    alerts = pl.DataFrame(
        [{"source": "ACLED", "group": "JNIM", "country": "Burkina Faso", "indicator": "events",
          "group_name": "JNIM", "severity": "high"}]
    )  # fmt: skip
    orders = []
    for seed in range(6):
        spots = hot_spots(
            alerts, admin1.sample(fraction=1.0, shuffle=True, seed=seed), located.reverse() if seed % 2 else located,
            month, config,
        )  # fmt: skip
        orders.append(spots["admin1"].to_list())
    assert orders == [["Cascades", "Centre Ouest", "Sahel"]] * 6
