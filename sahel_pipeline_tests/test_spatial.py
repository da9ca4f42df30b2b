"""Spatial indicators and alerts: buffer counts against a direct count, imprecise events apart, admin2 areas entered,
the known-truth simulations (groups moving toward a capital, staying put, spreading) and a hand count on the real
Burkina Faso files."""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import replace

import dagster as dg
import numpy as np
import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE, PLACES_FILE, PROJECT_DIR, SAMPLE_DIR
from sahel_pipeline.cli import format_alerts
from sahel_pipeline.core.alerts import ALERT_COLUMNS, alert_table
from sahel_pipeline.core.cards import alert_cards
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_index, parse_month, shift_month
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline.core.places import haversine_km, places_table
from sahel_pipeline.core.report.document import Table, card_body, card_plots
from sahel_pipeline.core.report.plots import drawn_figures
from sahel_pipeline.core.report.selection import ReportInputs, card_events, card_map
from sahel_pipeline.core.series import SERIES_KEY
from sahel_pipeline.core.sources import read_source_file
from sahel_pipeline.core.spatial import (
    BUFFER_SCHEMA,
    RADII_KM,
    SPATIAL_SCHEMA,
    admin2_areas,
    admin2_entered,
    alert_maps,
    at_least,
    attributed_parts,
    buffer_candidates,
    buffer_counts,
    entered_since,
    month_parts,
    precise_location,
    score_buffers,
    spatial_alerts,
    unit_events,
    unit_rows,
    where_events_are,
)
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.alerts import month_alerts
from sahel_pipeline.defs.automation import PULLS
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline.defs.spatial import rings_are_nested, spatial_panel_counts_the_panels_events
from sahel_pipeline_tests.fixtures import instance_with_months, real_file, requires_real_data
from sahel_pipeline_tests.spatial_simulation import COUNTRY, FIRST, MONTHS, simulate
from sahel_pipeline_tests.test_panels import weekly_changes

PLACES = places_table([COUNTRY])
OUAGA = PLACES.filter(pl.col("name") == "Ouagadougou").row(0, named=True)


def _rows(points: list[tuple], source: str = "ACLED") -> pl.DataFrame:
    """Unit rows of one group from (month, latitude, longitude, admin2, geo_precision)."""
    frame = pl.DataFrame(points, schema=["month", "latitude", "longitude", "admin2", "geo_precision"], orient="row")
    return frame.with_columns(
        source=pl.lit(source), level=pl.lit("group"), group_id=pl.lit("G"), country=pl.lit(COUNTRY),
        month=pl.col("month").map_elements(parse_month, return_dtype=pl.Date), fatalities=pl.lit(2),
        geo_precision=pl.col("geo_precision").cast(pl.Int8),
    ).with_columns(precise=precise_location())  # fmt: skip


def test_buffer_counts_equal_a_direct_count_and_leave_imprecise_events_out():
    # Points at known distances due north of Ouagadougou (1 degree of latitude = 111.2 km), some imprecise.
    km = [5, 24, 26, 49, 51, 99, 101, 150, 20, 30]
    precision = [1, 2, 1, 1, 2, 1, 1, 1, 3, 3]
    points = [
        ("2023-01", OUAGA["latitude"] + d / 111.195, OUAGA["longitude"], "A", p)
        for d, p in zip(km, precision, strict=True)
    ]
    buffers = buffer_counts(_rows(points), PLACES).filter(pl.col("place_id") == OUAGA["place_id"])
    got = dict(buffers.select("radius_km", "events").iter_rows())
    assert (
        got
        == {r: sum(d <= r and p < 3 for d, p in zip(km, precision, strict=True)) for r in RADII_KM}
        == {25: 2, 50: 4, 100: 6}
    )
    assert buffers.filter(pl.col("radius_km") == 100)["fatalities"].item() == 12
    assert buffers["nearest_km"].min() == pytest.approx(5, abs=0.05)
    where = where_events_are(_rows(points), PLACES).row(0, named=True)
    assert (where["events_located"], where["events_imprecise"]) == (8, 2)
    assert where["nearest_capital_km"] == pytest.approx(5, abs=0.05)
    located = sorted(d for d, p in zip(km, precision, strict=True) if p < 3)
    assert where["median_capital_km"] == pytest.approx((located[3] + located[4]) / 2, abs=0.2)


def test_ucdp_precision_four_and_missing_coordinates_are_imprecise():
    frame = pl.DataFrame(
        {"source": ["UCDP", "UCDP", "ACLED", "ACLED", "ACLED"], "geo_precision": [3, 4, 2, 3, None],
         "latitude": [12.0, 12.0, 12.0, 12.0, None], "longitude": [-1.0] * 5},
        schema_overrides={"geo_precision": pl.Int8},
    )  # fmt: skip
    assert frame.select(precise_location()).to_series().to_list() == [True, False, True, False, False]


def test_buffer_counts_find_events_east_and_west_of_a_place_and_across_the_antimeridian():
    """The rings join an event only to the places listed under its latitude x longitude cell: events due east and
    west of a place (in the next cells), and across the antimeridian from a place at 179.8 E, are counted as a
    direct count of the distances says."""
    place = {"place_id": "X:Edge", "name": "Edge", "country": COUNTRY, "iso2": "XX", "kind": "city",
             "latitude": 60.0, "population": 1, "origin": "test"}  # fmt: skip
    places = pl.DataFrame([
        {**place, "longitude": 179.8}, {**place, "place_id": "X:West", "longitude": -179.8},
        {**place, "place_id": "X:Here", "longitude": 10.3},
    ])  # fmt: skip
    places = places.select(PLACES.columns).cast(PLACES.schema)  # type: ignore[arg-type]
    # 1 degree of longitude at 60 N is 55.6 km: events 0.3, 0.8 and 1.7 degrees away (17, 44, 95 km)
    offsets = [0.3, -0.8, 1.7, -1.7]
    points = [("2023-01", 60.0, 10.3 + d, "A", 1) for d in offsets]
    points += [("2023-01", 60.0, (edge + d + 180) % 360 - 180, "A", 1) for d in offsets for edge in (179.8, -179.8)]
    rows = _rows(points)
    buffers = buffer_counts(rows, places)
    for place in places.iter_rows(named=True):
        got = dict(buffers.filter(pl.col("place_id") == place["place_id"]).select("radius_km", "events").iter_rows())
        at = (pl.lit(place["latitude"]), pl.lit(place["longitude"]))
        km = rows.select(haversine_km(pl.col("latitude"), pl.col("longitude"), *at))
        direct = {r: int((km.to_series() <= r).sum()) for r in RADII_KM}
        assert got == {r: n for r, n in direct.items() if n}, place["place_id"]
        assert direct[100] >= 3  # events on both sides of the place (and of the antimeridian) are within reach


def test_admin2_areas_entered_after_a_quiet_year_only():
    months = [shift_month(dt.date(2020, 1, 1), m) for m in range(30)]
    points = [(f"{m:%Y-%m}", 12.0, -1.0, "Home", 1) for m in months]  # always at home
    points += [("2021-03", 12.1, -1.0, "East", 1), ("2021-06", 12.1, -1.0, "East", 1)]  # new, then back 3 months on
    points += [("2020-02", 12.1, -1.1, "Early", 1)]  # in the group's first year: not counted as entered
    points += [("2022-05", 12.1, -1.1, "Early", 1)]  # back after 27 quiet months: entered
    entered = admin2_entered(admin2_areas(_rows(points))).filter(pl.col("admin2_entered") > 0)
    got = {(row["month"], row["admin2_entered_names"]) for row in entered.iter_rows(named=True)}
    assert got == {(dt.date(2021, 3, 1), "East"), (dt.date(2022, 5, 1), "Early")}


def test_a_weekly_run_works_out_the_entries_again_only_from_the_first_changed_month():
    """entered_since keeps an earlier run's entries before the first changed month and works out the rest from the
    areas of the quiet year before it: equal to working out every month, for an area seen 9 months before the
    change (not entered), one quiet for 14 months (entered) and a unit whose first month only the kept rows hold."""
    home = [(f"{shift_month(dt.date(2019, 1, 1), m):%Y-%m}", 12.0, -1.0, "Home", 1) for m in range(0, 40, 3)]
    last_week = home + [("2021-06", 12.1, -1.0, "East", 1), ("2020-12", 12.1, -1.1, "West", 1)]
    this_week = last_week + [("2022-03", 12.1, -1.0, "East", 1), ("2022-02", 12.1, -1.1, "West", 1)]
    kept = admin2_entered(admin2_areas(_rows(last_week)))
    areas = admin2_areas(_rows(this_week))
    everything = admin2_entered(areas)
    since = dt.date(2022, 2, 1)
    weekly = entered_since(areas, kept, since)
    key = [*SERIES_KEY[:4], "month"]  # the unit and the month
    assert weekly.sort(key, nulls_last=True).equals(everything.sort(key, nulls_last=True))
    entries = weekly.filter(pl.col("admin2_entered") > 0)
    got = {(row["month"], row["admin2_entered_names"]) for row in entries.iter_rows(named=True)}
    assert (dt.date(2022, 2, 1), "West") in got and all(month != dt.date(2022, 3, 1) for month, _ in got)
    assert entered_since(areas, kept, None).equals(kept)  # no month changed: the kept entries stand


def _simulated_alerts(seed: int, first_month: int, **kinds: int):
    sim = simulate(seed, **kinds)
    config = ModelConfig()
    buffers = buffer_counts(sim.unit_rows, PLACES)
    where = where_events_are(sim.unit_rows, PLACES)
    alerts = []
    for m in range(first_month, MONTHS):
        month = shift_month(FIRST, m)
        scores = score_buffers(buffers, where, sim.group_panel, sim.country_panel, month, config, log=lambda _: None)
        alerts.append(
            spatial_alerts(month, scores.scores, buffers, where, sim.unit_rows, PLACES, sim.group_panel, config)
        )
    return sim, pl.concat(alerts).with_columns(month=pl.col("month").map_elements(parse_month, return_dtype=pl.Date))



@pytest.mark.parametrize("key_limit", [2**64, 1], ids=["sorted-key", "window"])
def test_the_parts_worked_out_per_event_equal_those_of_the_unit_rows(key_limit, monkeypatch):
    # panels.count_months works the spatial parts out per event (attributed_parts): the same frames as month_parts
    # of the unit rows (and admin2_entered of their areas), for events attributed to several groups, one group in
    # two countries and two sources, imprecise and unlocated events, events without admin2, a country with no places
    # and an event of no group.
    # (key_limit 1: the entries by the window over a hash of unit x area, as when the sorted key could not hold them)
    monkeypatch.setattr("sahel_pipeline.core.spatial.ENTRY_KEY_LIMIT", key_limit)
    places = places_table([COUNTRY, "Mali"])
    bamako = places.filter(pl.col("name") == "Bamako").row(0, named=True)
    north = OUAGA["latitude"] + 30 / 111.195  # 30 km north of Ouagadougou: in the 50 and 100 km rings
    events = pl.DataFrame(
        [
            ("ACLED", COUNTRY, "2023-01", north, OUAGA["longitude"], "Kadiogo", 1, 3),
            ("ACLED", COUNTRY, "2023-01", OUAGA["latitude"], OUAGA["longitude"] + 0.1, "Kadiogo", 2, 0),
            ("ACLED", COUNTRY, "2023-01", north + 2, OUAGA["longitude"], None, 1, 1),
            ("ACLED", COUNTRY, "2023-01", north, OUAGA["longitude"], "Kadiogo", 3, 5),  # imprecise
            ("ACLED", COUNTRY, "2023-02", None, None, "Bazega", None, 2),  # no coordinates
            ("ACLED", COUNTRY, "2024-03", north - 1, OUAGA["longitude"] - 1, "Bazega", 1, 0),
            ("UCDP", COUNTRY, "2023-01", north, OUAGA["longitude"], "Kadiogo", 4, 7),  # imprecise in UCDP
            ("UCDP", COUNTRY, "2023-01", north + 0.3, OUAGA["longitude"], "Kadiogo", 1, 1),
            ("ACLED", "Mali", "2023-01", bamako["latitude"] + 0.2, bamako["longitude"], "Bamako", 1, 4),
            ("ACLED", "Mali", "2023-01", bamako["latitude"] - 3, bamako["longitude"], "Mopti", 2, 0),
            ("ACLED", "Atlantis", "2023-01", 10.0, 10.0, "Nowhere", 1, 9),  # no capital, no places
            ("ACLED", COUNTRY, "2023-03", north, OUAGA["longitude"], "Kadiogo", 1, 0),  # of no group
        ],
        schema=["source", "country", "month", "latitude", "longitude", "admin2", "geo_precision", "fatalities"],
        orient="row",
    ).with_columns(
        month=pl.col("month").map_elements(parse_month, return_dtype=pl.Date),
        geo_precision=pl.col("geo_precision").cast(pl.Int8),
    ).with_columns(precise=precise_location())  # fmt: skip
    groups = {"A": 1, "B": 2, "C": 3}
    pairs = [(0, "A"), (0, "B"), (1, "A"), (2, "B"), (2, "C"), (3, "A"), (3, "B"), (4, "A"), (5, "A"), (6, "A"),
             (7, "C"), (8, "A"), (8, "C"), (9, "A"), (10, "B")]  # fmt: skip
    located = events.with_row_index("_event")
    attributed = (
        pl.DataFrame(pairs, schema=["_event", "group_id"], orient="row")
        .with_columns(
            pl.col("_event").cast(pl.UInt32), _group=pl.col("group_id").replace_strict(groups, return_dtype=pl.UInt64)
        )
        .join(located.select("_event", "source", "country"), on="_event", maintain_order="left")
    )
    codes = pl.DataFrame({"_group": list(groups.values()), "group_id": list(groups)}).cast({"_group": pl.UInt64})
    carried = attributed.join(located.drop("source", "country"), on="_event", maintain_order="left")

    expected = month_parts(unit_rows(carried, events), places)
    expected["entered"] = admin2_entered(expected["areas"])
    worked_out = attributed_parts(attributed, codes, events, places, entries=True)
    # 10 group units and 7 country units with events in a month (A's ACLED rows in Burkina Faso in three months)
    assert expected["measures"].height == 17 and expected["buffers"].height and expected["areas"].height
    # Bazega entered in March 2024 by group A and by the country (its event there in 2023 had no coordinates)
    assert expected["entered"].filter(pl.col("admin2_entered") > 0)["admin2_entered_names"].to_list() == ["Bazega"] * 2
    assert attributed_parts(attributed, codes, events, places).keys() == {"measures", "buffers", "areas"}
    for part, frame in expected.items():
        key = [c for c, t in frame.schema.items() if t != pl.Float64]
        assert worked_out[part].schema == frame.schema, part
        assert worked_out[part].sort(key, nulls_last=True).equals(frame.sort(key, nulls_last=True)), part

@pytest.mark.slow
def test_known_truth_movers_flagged_stayers_quiet_spreaders_flagged():
    first_month = 18  # the models need a year of baseline; a year and a half of it leaves 30 months scored
    sim, alerts = _simulated_alerts(7, first_month, stayers=30, movers=10, spreaders=5)
    approach = alerts.filter(pl.col("kind") == "approach")
    flagged = 0
    for group, reached in sim.reach_month.items():
        months = approach.filter(pl.col("group") == group, pl.col("month") <= shift_month(reached, 2))["month"]
        flagged += months.len() > 0 and month_index(months.min()) >= month_index(FIRST) + 30  # after the move began
    assert flagged >= 0.8 * len(sim.reach_month)
    stayer_alerts = alerts.filter(pl.col("group").str.starts_with("stay"))
    series_years = 30 * (MONTHS - first_month) / 12
    assert stayer_alerts.height / series_years <= 0.1, stayer_alerts["explanation"].to_list()
    spreading = alerts.filter(pl.col("kind") == "new_ground", pl.col("group").str.starts_with("spread"))
    assert spreading["group"].n_unique() == 5
    assert spreading["month"].min() >= shift_month(FIRST, 30)


def _trend_alerts(sim, months: range) -> pl.DataFrame:
    """The spatial alerts of the given months without buffer scores: the distance trends and new ground only."""
    buffers, where = buffer_counts(sim.unit_rows, PLACES), where_events_are(sim.unit_rows, PLACES)
    alerts = [
        spatial_alerts(
            shift_month(FIRST, m), pl.DataFrame(), buffers, where, sim.unit_rows, PLACES, sim.group_panel,
            ModelConfig(),
        )
        for m in months
    ]  # fmt: skip
    return pl.concat(alerts).with_columns(month=pl.col("month").map_elements(parse_month, return_dtype=pl.Date))


@pytest.mark.slow  # simulates 26 groups' months and attributes them (1.7 s)
def test_the_distance_trend_flags_a_group_closing_in_on_a_city_not_one_staying_near_it():
    # Movers head for Bobo-Dioulasso (a city, not the capital) from 300-450 km over six months from month 30;
    # stayers sit 20-100 km from it all along. Every place of the country is tested, with the guard across places.
    bobo = PLACES.filter(pl.col("name") == "Bobo-Dioulasso").row(0, named=True)
    target = (bobo["latitude"], bobo["longitude"])
    sim = simulate(11, stayers=20, movers=6, target=target, stay_km=(20, 100))
    alerts = _trend_alerts(sim, range(24, MONTHS)).filter(pl.col("kind") == "approach")
    assert alerts["indicator"].unique().to_list() == ["distance_to_place"]
    # A mover coming from the south closes in on Banfora (75 km from Bobo-Dioulasso) as well: either is right.
    near = PLACES.filter(haversine_km(pl.col("latitude"), pl.col("longitude"), *map(pl.lit, target)) <= 100)["name"]
    assert "Bobo-Dioulasso" in near and "Ouagadougou" not in near.to_list()
    for group, reached in sim.reach_month.items():
        own = alerts.filter(pl.col("group") == group, pl.col("month") <= shift_month(reached, 2))
        assert own.height and own["place"][0] in near.to_list(), (group, alerts.filter(pl.col("group") == group))
        assert own["month"].min() > shift_month(FIRST, 30)  # after the move began
    assert "Bobo-Dioulasso" in alerts["place"].to_list()
    assert len(sim.reach_month) == 6
    stayers = alerts.filter(pl.col("group").str.starts_with("stay"))
    assert stayers.height == 0, stayers["explanation"].to_list()
    first = alerts.filter(pl.col("place") == "Bobo-Dioulasso").row(0, named=True)
    assert "closer to Bobo-Dioulasso" in first["explanation"] and first["rules"] == "distance_trend"
    assert first["q_value"] is not None and first["p_value"] < 0.01


@pytest.mark.slow  # draws a report map: imports matplotlib (1.3 s)
def test_spatial_alerts_join_the_alert_table_with_their_place():
    # Movers reach the capital's surroundings six months after month 30; spreaders scatter from month 30. The trend
    # and new_ground rules need no fitted model, so no buffer scores are given.
    sim = simulate(1, stayers=0, movers=3, spreaders=2)
    buffers, where = buffer_counts(sim.unit_rows, PLACES), where_events_are(sim.unit_rows, PLACES)
    month = shift_month(FIRST, 36)
    spatial = spatial_alerts(
        month, pl.DataFrame(), buffers, where, sim.unit_rows, PLACES, sim.group_panel, ModelConfig()
    )
    alerts = alert_table(pl.DataFrame(), pl.DataFrame(), ModelConfig(), spatial=spatial, synthetic=True)
    assert alerts.columns == ALERT_COLUMNS and alerts["synthetic"].all()
    kinds = dict(alerts.group_by("kind").agg(pl.col("group").sort()).iter_rows())
    assert kinds == {"approach": ["move-0", "move-1", "move-2"], "new_ground": ["spread-0", "spread-1"]}
    by_kind = dict(alerts.group_by("kind").agg(pl.col("place").unique().sort()).iter_rows())
    # Every place is tested (a mover from the west closes in on Koudougou, 90 km west of the capital, as well): the
    # alert names the one its events are nearest now.
    assert by_kind == {"approach": ["Ouagadougou"], "new_ground": [""]}
    assert alerts["severity"].to_list() == ["medium"] * 3 + ["low"] * 2  # most severe first, as every alert
    titles = {c.title for c in alert_cards(alerts)}
    assert "move-0 - Burkina Faso - closing in on Ouagadougou" in titles
    assert "spread-0 - Burkina Faso - new ground" in titles
    # Closing in on two places are two series for delivery's cool-down, not one.
    cards = alert_cards(alerts.head(1).vstack(alerts.head(1).with_columns(place=pl.lit("Koudougou"))))
    assert cards[0].series != cards[1].series
    printed = format_alerts(alerts, month.isoformat()[:7])
    assert "closing in on Ouagadougou (distance_to_place)" in printed and "new ground (" in printed

    # The map record of each alert (the report's maps): the ringed place, the baseline and recent events.
    config = ModelConfig()
    maps = alert_maps(alerts, sim.unit_rows, PLACES, config)
    assert [(m.kind, m.group) for m in maps] == alerts.select("kind", "group").rows()
    mover = maps[0]
    assert mover.place is not None and mover.place.name == "Ouagadougou" and mover.rings_km == RADII_KM
    assert mover.places[0].kind == "capital" and "Bobo-Dioulasso" in {p.name for p in mover.places}
    unit = sim.unit_rows.filter(pl.col("group_id") == mover.group)
    recent_start = shift_month(month, -config.recent_months + 1)
    baseline_start = shift_month(month, -config.window_months + 1)
    assert len(mover.recent) == unit.filter(pl.col("month").is_between(recent_start, month)).height
    in_baseline = pl.col("month").is_between(baseline_start, recent_start, closed="left")
    assert len(mover.baseline) == unit.filter(in_baseline).height
    assert mover.imprecise == 0 and all(baseline_start <= e.month < recent_start for e in mover.baseline)

    def median_km(events):
        return sorted(haversine_km(e.latitude, e.longitude, OUAGA["latitude"], OUAGA["longitude"]) for e in events)[
            len(events) // 2
        ]

    assert median_km(mover.recent) < 100 < median_km(mover.baseline)  # it moved in from 300-450 km

    # The report draws an approach card's map from its record, rings around the place, and no series plot (a ring's
    # count is no panel series); a card with no record (a count rise) is not given one.
    inputs = ReportInputs(month, alerts, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), {},
                          pl.DataFrame(), config, maps=tuple(maps))  # fmt: skip
    card = next(c for c in alert_cards(alerts) if c.group == mover.group)
    assert card_map(inputs.maps, card) is mover
    assert card_map(inputs.maps, replace(card, kind="count", place="")) is None
    figures = drawn_figures(card_plots(inputs, card, 1, pl.DataFrame()), {})
    assert [f.name for f in figures] == ["alert1-map"] and figures[0].png.startswith(b"\x89PNG")
    assert "rings of 25, 50, 100 km around Ouagadougou" in figures[0].alt
    assert f"recent window, {len(mover.baseline)} in the baseline" in figures[0].alt
    # Its events (the month's near the place: feeds.spatial_alert_events) are listed as that, not as three months'.
    behind = unit.filter(pl.col("month") == month).with_row_index("n").select(
        "source", "level", "group_id", "country", event_id=pl.format("E{}", "n"), event_date="month",
        fatalities="fatalities", location=pl.lit("Somewhere"), admin1=pl.lit("Centre"), event_type=pl.lit("Battles"),
        indicators=pl.lit(list(card.indicators)),
    )  # fmt: skip
    no_admin1 = pl.DataFrame(schema={**dict.fromkeys(SERIES_KEY, pl.String), "admin1": pl.String, "month": pl.Date,
                                     "count": pl.Int64})  # fmt: skip
    body = card_body(replace(inputs, events=behind, admin1=no_admin1), card, card_events(behind, card), ())
    captions = [b.caption for b in body if isinstance(b, Table)]
    assert captions == ["Largest events near Ouagadougou in January 2021:"]


ISSP_JNIM = ("ISSP", "JNIM")


def _hand_count(path, years: range, aliases: dict[str, str], has_precision: bool) -> dict[tuple[str, int], int]:
    """Events per (group, year) within 100 km of Ouagadougou, from the file's own text with csv and math."""
    counts: dict[tuple[str, int], int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            row = {k.lower(): v for k, v in record.items()}
            year = int(row["year"]) if "year" in row else int(row["event_date"][:4])
            if year not in years or (has_precision and row["geo_precision"] == "3"):
                continue
            lat, lon = math.radians(float(row["latitude"])), math.radians(float(row["longitude"]))
            clat, clon = math.radians(OUAGA["latitude"]), math.radians(OUAGA["longitude"])
            a = math.sin((lat - clat) / 2) ** 2 + math.cos(lat) * math.cos(clat) * math.sin((lon - clon) / 2) ** 2
            if 2 * 6371.0088 * math.asin(math.sqrt(a)) > 100:
                continue
            names = [row["actor1"], *row["assoc_actor_1"].split("; ")]
            for group in {aliases[n.strip()] for n in names if n.strip() in aliases}:
                counts[(group, year)] = counts.get((group, year), 0) + 1
    return counts


@requires_real_data
def test_jnim_and_issp_near_ouagadougou_equal_a_hand_count_on_the_real_files():
    """2019-2020 from the full ACLED export (it has ids and geo_precision, and ends in December 2020); 2021-2023 from
    the upper-case extract (1997-2023, no ids, no precision: every event taken as located)."""
    table = load_alias_table(PROJECT_DIR / "data" / "actor_aliases.csv")
    with open(PROJECT_DIR / "data" / "actor_aliases.csv", newline="", encoding="utf-8") as handle:
        aliases = {r["alias"]: r["group_id"] for r in csv.DictReader(handle)
                   if r["group_id"] in ISSP_JNIM and r["source"] in ("", "ACLED")}  # fmt: skip
    counted = 0
    for name, years, has_precision in (
        ("acled_burkina_1997-2020.csv", range(2019, 2021), True),
        ("acled_burkina_1997-2023_subset-columns.csv", range(2021, 2024), False),
    ):
        path = real_file(name)
        events = read_source_file(path).events.filter(pl.col("event_date").dt.year().is_in(list(years)))
        buffers = buffer_counts(unit_events(events, table), PLACES)
        got = (
            buffers.filter(pl.col("place_id") == OUAGA["place_id"], pl.col("radius_km") == 100,
                           pl.col("group_id").is_in(ISSP_JNIM))
            .group_by("group_id", year=pl.col("month").dt.year()).agg(pl.col("events").sum())
        )  # fmt: skip
        by_hand = _hand_count(path, years, aliases, has_precision)
        assert {(g, y): n for g, y, n in got.iter_rows()} == by_hand, name
        counted += sum(by_hand.values())
    assert counted > 0  # none in 2019-2020 (the nearest about 102 km away), dozens in 2022-2023


# --- the Dagster wiring ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # ingest, panels, scores and alerts of a month on the sample
def test_the_wired_graph_materializes_the_spatial_assets_on_the_sample(tmp_path):
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path), sample_fallback=False)
    definitions = build_definitions(settings)
    selection = (
        dg.AssetSelection.assets(*month_alerts.keys).upstream() - dg.AssetSelection.assets(*PULLS)
    ).required_multi_asset_neighbors()
    with instance_with_months("2024-12") as instance:
        result = dg.materialize(
            definitions.assets, selection=selection, partition_key="2024-12", resources=definitions.resources,
            instance=instance, raise_on_error=False,
        )  # fmt: skip
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["spatial_panel_counts_the_panels_events"] and checks["rings_are_nested"]
    assert checks["alert_table_has_the_documented_columns"]
    metadata = {
        m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()
    }
    for name, schema in (("spatial_month_panel", SPATIAL_SCHEMA), ("buffer_month_panel", BUFFER_SCHEMA)):
        assert [c.name for c in metadata[name]["dagster/column_schema"].schema.columns] == list(schema), name
    warehouse = tmp_path / "warehouse"
    places = pl.read_parquet(warehouse / "places.parquet")
    assert places.filter(pl.col("kind") == "capital").select("country", "name").sort("country").rows() == [
        ("Burkina Faso", "Ouagadougou"), ("Mali", "Bamako"), ("Niger", "Niamey"),
    ]  # the sample's countries
    assert "Djibo" in places.filter(pl.col("origin").str.starts_with("places.csv"))["name"].to_list()
    assert (warehouse / "_places").is_dir()  # the GeoNames part cached for the next run
    buffers = pl.read_parquet(warehouse / "buffer_month_panel.parquet")
    where = pl.read_parquet(warehouse / "spatial_month_panel.parquet")
    assert buffers.height and where.height  # the sample has events near its capitals
    # What buffer_scores fitted: the rings whose share of their unit's events rose (none on the sample in 2024-12).
    scores = pl.read_parquet(warehouse / "buffer_scores" / "2024-12.parquet")
    candidates = buffer_candidates(dt.date(2024, 12, 1), buffers, where, ModelConfig())
    assert scores.height == candidates.height == 0 and "p_value" in scores.columns
    written = pl.read_csv(tmp_path / "alerts" / "2024-12.csv", infer_schema=False)
    assert set(written.filter(pl.col("kind").is_in(["count", "new_actor"]))["place"].fill_null("")) <= {""}


def test_the_spatial_checks_fail_on_counts_that_disagree():
    sim = simulate(3, stayers=0, movers=2)  # the movers end within 60 km of the capital: rings with events
    where = where_events_are(sim.unit_rows, PLACES)
    group_panel = sim.group_panel.lazy()
    country_panel = sim.group_panel.clear().lazy().select("source", "country", "month", "events")
    assert spatial_panel_counts_the_panels_events(where, group_panel, country_panel).passed
    one_more = group_panel.with_columns(events=pl.col("events") + (pl.col("month") == FIRST).cast(pl.UInt32))
    assert not spatial_panel_counts_the_panels_events(where, one_more, country_panel).passed
    buffers = buffer_counts(sim.unit_rows, PLACES)
    assert buffers.height and rings_are_nested(buffers).passed
    swapped = buffers.with_columns(radius_km=pl.col("radius_km").replace_strict({25: 100, 100: 25}, default=50))
    assert not rings_are_nested(swapped).passed


@pytest.mark.slow  # counts the sample's panels three times (1.2 s)
def test_spatial_panels_counted_with_the_panels_equal_their_own_count_and_are_kept_between_runs(sample_events):
    # One attribution for both (panels.build_panels with places): the same panels as attributing again for the
    # spatial ones; a weekly run recounts only the changed months of both; moving a place recounts every month.
    events = sample_events
    aliases = load_alias_table(ALIAS_TABLE)
    places = places_table(["Burkina Faso", "Mali", "Niger"], PLACES_FILE)
    rows = unit_events(events, aliases)

    def same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
        key = [c for c, t in a.schema.items() if t != pl.Float64]
        a, b = a.sort(key, nulls_last=True), b.sort(key, nulls_last=True)
        differences = [(a[c] - b[c]).abs().max() or 0.0 for c in a.columns if c not in key]
        return a.select(key).equals(b.select(key)) and all(d < 1e-9 for d in differences)  # type: ignore[operator]

    full = build_panels(events, aliases, places=places)
    assert full.spatial_month is not None and full.buffer_month is not None
    assert same(full.spatial_month, where_events_are(rows, places))
    assert same(full.buffer_month, buffer_counts(rows, places))
    assert full.buffer_month.height and full.spatial_month["admin2_entered"].sum() > 0

    last_week, this_week, touched = weekly_changes(events)
    kept = build_panels(last_week, aliases, places=places).counts
    weekly = build_panels(this_week, aliases, previous=kept, places=places)
    assert weekly.counts.recounted_months == touched
    counted = build_panels(this_week, aliases, places=places)
    assert same(weekly.spatial_month, counted.spatial_month) and same(weekly.buffer_month, counted.buffer_month)
    moved = places.with_columns(pl.col("latitude") + (pl.col("kind") == "capital").cast(pl.Float64) * 0.5)
    assert build_panels(this_week, aliases, previous=counted.counts, places=moved).counts.recounted_months == (
        counted.counts.digests.height
    )


def test_binomial_tail_equals_scipy_stats_on_every_edge():
    """The ring share's tail P(X >= k) (spatial.at_least, from scipy.special: scipy.stats' import is a second of
    start-up) equals scipy.stats' binomial survival function, k outside 1..n and p at 0 and 1 included."""
    from scipy import stats

    rng = np.random.default_rng(7)
    n = rng.integers(0, 60, 4000)
    k = rng.integers(-2, 65, 4000)
    p = rng.random(4000)
    p[:100], p[100:200] = 0.0, 1.0
    np.testing.assert_allclose(at_least(k, n, p), stats.binom.sf(k - 1, n, p), rtol=1e-12, atol=0)


def test_the_nearest_event_sentence_names_the_last_month_as_close():
    """'the nearest 65 km from the city, the closest since February': from the largest ring's nearest event and,
    for the capital, the spatial panel's nearest at any distance, whichever is nearer; a unit with no event in the
    month gets no such clause; an analyst's place is named by its kind, not called a city."""
    from sahel_pipeline.core.spatial import _closest, nearest_by_month

    months = [dt.date(2026, m, 1) for m in range(1, 7)]
    unit = {"source": "ACLED", "level": "group", "group_id": "G1", "country": COUNTRY}
    quiet = unit | {"group_id": "G2"}
    ring = [(unit, OUAGA["place_id"], m, km) for m, km in zip(months, [80.0, 60, 90, 95, 70, 65], strict=True)]
    ring += [(quiet, OUAGA["place_id"], months[2], 10.0)]
    buffers = pl.DataFrame(
        [{**u, "place_id": p, "radius_km": r, "month": m, "nearest_km": km if r == 100 else None}
         for u, p, m, km in ring for r in RADII_KM],
        schema_overrides={"nearest_km": pl.Float64},
    )  # fmt: skip
    # the panel's nearest to the capital at any distance: nearer than the ring's in March (55 km), none in June
    capital_km = [85.0, 62, 55, 99, 72, None]
    where = pl.DataFrame(
        [{**unit, "month": m, "nearest_capital_km": km} for m, km in zip(months, capital_km, strict=True)],
        schema_overrides={"nearest_capital_km": pl.Float64},
    )  # fmt: skip
    nearest = nearest_by_month(buffers, where, PLACES, months[-1])
    assert _closest(nearest, unit, OUAGA["place_id"], months[-1], "capital") == (
        "; the nearest 65 km from the city, the closest since March 2026"
    )
    assert _closest(nearest, unit, OUAGA["place_id"], months[-1], "mine") == (
        "; the nearest 65 km from the mine, the closest since March 2026"
    )
    assert _closest(nearest, quiet, OUAGA["place_id"], months[-1], "capital") == ""
    first = nearest_by_month(buffers, where, PLACES, months[1])
    assert _closest(first, unit, OUAGA["place_id"], months[1], "city") == (
        "; the nearest 60 km from the city, the closest in the data"
    )
