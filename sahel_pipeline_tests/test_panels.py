"""Monthly panels: zero-filled, per source, partial months marked, and real figures counted by hand."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter

import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE
from sahel_pipeline.core.actors import INTER_DTYPE
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.panels import (
    COUNTRY_KEYS,
    GROUP_KEYS,
    Panels,
    build_panels,
    in_months,
    load_counts,
    save_counts,
)
from sahel_pipeline.core.reference import VIOLENT_EVENT_TYPES
from sahel_pipeline_tests.fixtures import canonical, real_file, requires_real_data

ISSP_ACLED_NAMES = {
    "Islamic State (Greater Sahara)",
    "Islamic State (West Africa) - Greater Sahara Faction",
    "Islamic State (Sahel)",
    "Islamic State Sahel Province (ISSP)",
}


@pytest.fixture(scope="module")
def aliases():
    return load_alias_table(ALIAS_TABLE)


def events_frame(rows: list[dict]) -> pl.DataFrame:
    base = {
        "event_id": None, "source": "ACLED", "event_date": None, "country": "Niger", "admin1": "Tillaberi",
        "disorder_type": "Political violence", "event_type": "Battles", "fatalities": 0, "civilian_targeting": False,
        "actor1": "Islamic State (Sahel)", "assoc_actor_1": None, "actor2": None, "assoc_actor_2": None,
        "inter1": None, "inter2": None, "source_file": "acled.csv",
    }
    return pl.DataFrame(
        [{**base, **r} for r in rows],
        schema_overrides={"event_date": pl.Date, "inter1": INTER_DTYPE, "inter2": INTER_DTYPE},
    )


def test_zero_filled_partial_last_month_and_sources_kept_apart(aliases):
    events = events_frame(
        [
            {"event_id": "A1", "event_date": dt.date(2024, 1, 5), "fatalities": 3},
            {
                "event_id": "A2",
                "event_date": dt.date(2024, 1, 9),
                "event_type": "Violence against civilians",
                "civilian_targeting": True,
            },
            {
                "event_id": "A3",
                "event_date": dt.date(2024, 4, 10),
                "event_type": "Protests",
                "actor1": "Protesters (Niger)",
            },
            {"event_id": "U1", "source": "UCDP", "event_date": dt.date(2024, 2, 29), "actor1": "IS", "fatalities": 7},
        ]
    )
    panels = build_panels(events, aliases)
    issp = panels.group_month.filter(pl.col("group_id") == "ISSP", pl.col("source") == "ACLED").sort("month")
    assert issp["month"].to_list() == [dt.date(2024, m, 1) for m in (1, 2, 3, 4)]
    assert issp["events"].to_list() == [2, 0, 0, 0]
    assert issp["violent_events"].to_list() == [2, 0, 0, 0]
    assert issp["fatalities"].to_list() == [3, 0, 0, 0]
    assert issp["civilian_targeting_events"].to_list() == [1, 0, 0, 0]
    assert issp["days_covered"].to_list() == [31, 29, 31, 10]
    assert issp["partial"].to_list() == [False, False, False, True]
    ucdp = panels.group_month.filter(pl.col("source") == "UCDP")
    assert ucdp.select("group_id", "month", "events", "fatalities", "partial").rows() == [
        ("ISSP", dt.date(2024, 2, 1), 1, 7, False)  # UCDP's coverage is its own: February only, complete
    ]
    country = panels.country_month.filter(pl.col("source") == "ACLED").sort("month")
    assert country["events"].to_list() == [2, 0, 0, 1]
    admin1 = panels.admin1_month.filter(pl.col("source") == "ACLED")
    assert admin1.filter(pl.col("group_id") == "ISSP")["admin1"].to_list() == ["Tillaberi"]
    country_admin1 = (
        admin1.filter(pl.col("level") == "country").sort("month").select("admin1", "month", "events").rows()
    )
    assert country_admin1 == [("Tillaberi", dt.date(2024, 1, 1), 2), ("Tillaberi", dt.date(2024, 4, 1), 1)]
    assert panels.unmapped["actor"].to_list() == ["Protesters (Niger)"]


@requires_real_data
def test_issp_in_burkina_is_one_series_across_its_renamings(aliases, tmp_path):
    events = canonical([real_file("acled_burkina_1997-2023_subset-columns.csv")], tmp_path)
    panels = build_panels(events, aliases)
    names_by_year = (
        events.filter(pl.col("actor1").is_in(sorted(ISSP_ACLED_NAMES)))
        .group_by(pl.col("event_date").dt.year().alias("year"))
        .agg(pl.col("actor1").unique())
    )
    used = set().union(*names_by_year["actor1"].to_list())
    assert used >= {
        "Islamic State (Greater Sahara)",
        "Islamic State (West Africa) - Greater Sahara Faction",
        "Islamic State (Sahel)",
    }
    issp = panels.group_month.filter(pl.col("group_id") == "ISSP", pl.col("country") == "Burkina Faso")
    assert issp.select("group_id", "country", "source").unique().height == 1
    yearly = dict(issp.group_by(pl.col("month").dt.year()).agg(pl.col("events").sum()).iter_rows())
    assert all(yearly[y] > 0 for y in range(2018, 2024))  # no break where the name changed


@requires_real_data
def test_issp_violent_events_2018_2019_match_a_count_by_hand(aliases, tmp_path):
    path = real_file("acled_burkina_1997-2020.csv")
    by_hand: Counter[int] = Counter()
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            perpetrators = {row["actor1"], *row["assoc_actor_1"].split("; ")}
            if perpetrators & ISSP_ACLED_NAMES and row["event_type"] in VIOLENT_EVENT_TYPES:
                by_hand[int(row["year"])] += 1
    panels = build_panels(canonical([path], tmp_path), aliases)
    issp = panels.group_month.filter(pl.col("group_id") == "ISSP", pl.col("country") == "Burkina Faso")
    yearly = dict(issp.group_by(pl.col("month").dt.year()).agg(pl.col("violent_events").sum()).iter_rows())
    assert (yearly[2018], yearly[2019]) == (by_hand[2018], by_hand[2019])
    assert by_hand[2019] > 2 * by_hand[2018] > 0  # the 2018-2019 surge is in the data


@requires_real_data
def test_real_panels_count_every_event_once_per_source(aliases, tmp_path):
    events = canonical(
        [
            real_file("acled_burkina_1997-2020.csv"),
            real_file("ucdp_ged_burkina_2016-2023.csv"),
            real_file("acled_mali_2017-2020_actor-rows.csv"),
        ],
        tmp_path,
    )
    panels = build_panels(events, aliases)
    totals = dict(panels.country_month.group_by("source").agg(pl.col("events").sum()).iter_rows())
    assert totals == dict(events.group_by("source").len().iter_rows())
    # each file's countries are covered to that file's last event, not to the latest date of any file
    acled = dict(panels.coverage.filter(pl.col("source") == "ACLED").select("country", "last_day").iter_rows())
    assert acled == {"Burkina Faso": dt.date(2020, 12, 3), "Mali": dt.date(2020, 12, 31)}
    burkina_december = (
        panels.country_month.filter(pl.col("country") == "Burkina Faso", pl.col("source") == "ACLED")
        .sort("month")
        .tail(1)
    )
    assert burkina_december.select("month", "days_covered", "partial").row(0) == (dt.date(2020, 12, 1), 3, True)
    ucdp = panels.group_month.filter(pl.col("source") == "UCDP")
    assert set(ucdp["group_id"]) >= {"ISSP", "JNIM"}  # UCDP's "IS" in Burkina Faso is ISSP
    mali = panels.group_month.filter(pl.col("group_id") == "JNIM", pl.col("country") == "Mali")
    assert mali["events"].sum() > 0


# --- counting only the months that changed ----------------------------------------------------------------------------


def assert_same_panels(recounted: Panels, full: Panels) -> None:
    for name in (
        "group_month",
        "country_month",
        "admin1_month",
        "unmapped",
        "group_types",
        "variants",
        "regime_periods",
    ):
        a, b = getattr(recounted, name), getattr(full, name)
        assert a.height == b.height > 0, name
        assert a.sort(a.columns, nulls_last=True).equals(b.select(a.columns).sort(a.columns, nulls_last=True)), name


def weekly_changes(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Last week's events, this week's, and the number of (source, month) pairs that changed between them: an event
    revised into another month and group, a fatality figure corrected, a month emptied by deletions, and a new group
    in the newest month."""
    acled = events.filter(pl.col("source") == "ACLED")
    mover = acled.row(0, named=True)
    newest = acled["event_date"].max()
    emptied = acled["event_date"].dt.month_start().sort()[len(acled) // 2]
    moved_from = mover["event_date"].replace(year=mover["event_date"].year + 2)
    other_changes = [mover["event_date"].replace(day=1), moved_from.replace(day=1), emptied, newest.replace(day=1)]
    # a correction alone in its month, so that only its fatality figure can mark the month as changed
    corrected = acled.filter(~pl.col("event_date").dt.month_start().is_in(other_changes)).row(-1, named=True)
    last_week = pl.concat(
        [
            events.filter(~pl.col("event_id").is_in([mover["event_id"], corrected["event_id"]])),
            pl.DataFrame(
                [
                    {**mover, "event_date": moved_from, "actor1": "Militia X"},
                    {**corrected, "fatalities": corrected["fatalities"] + 4},
                ],
                schema=events.schema,
            ),
        ]
    )
    new_group = pl.DataFrame(
        [{**mover, "event_id": "NEW1", "event_date": newest, "actor1": "Katiba Nouvelle"}], schema=events.schema
    )
    this_week = pl.concat(
        [
            events.filter(~((pl.col("source") == "ACLED") & (pl.col("event_date").dt.month_start() == emptied))),
            new_group,
        ]
    )
    return last_week, this_week, len({*other_changes, corrected["event_date"].replace(day=1)})


def check_recount_equals_full_count(events: pl.DataFrame, aliases: pl.DataFrame, folder) -> None:
    last_week, this_week, touched = weekly_changes(events)
    save_counts(build_panels(last_week, aliases).counts, folder)
    recounted = build_panels(this_week, aliases, previous=load_counts(folder))
    assert recounted.counts.recounted_months == touched
    assert_same_panels(recounted, build_panels(this_week, aliases))
    assert "Katiba Nouvelle" in recounted.unmapped["actor"].to_list()
    assert build_panels(this_week, aliases, previous=recounted.counts).counts.recounted_months == 0


def test_recounting_only_the_changed_months_gives_the_panels_of_counting_everything(aliases, tmp_path, sample_events):
    check_recount_equals_full_count(sample_events, aliases, tmp_path / "counts")


@requires_real_data
def test_recounting_only_the_changed_months_on_real_files(aliases, tmp_path):
    events = canonical(
        [real_file("acled_burkina_1997-2020.csv"), real_file("ucdp_ged_burkina_2016-2023.csv")], tmp_path
    )
    check_recount_equals_full_count(events, aliases, tmp_path / "counts")


def test_a_recounted_month_is_one_source_s_month_never_the_same_month_of_another_source():
    jan, feb = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    rows = pl.DataFrame(
        {"source": ["ACLED", "ACLED", "UCDP", "UCDP"], "month": [jan, feb, jan, feb], "n": [1, 2, 3, 4]}
    )
    changed = pl.DataFrame({"source": ["ACLED", "UCDP"], "month": [jan, feb]})
    assert rows.filter(in_months(changed))["n"].to_list() == [1, 4]
    assert rows.filter(~in_months(changed))["n"].to_list() == [2, 3]
    assert rows.filter(in_months(changed.clear())).height == 0


def test_a_changed_alias_table_or_setting_recounts_every_month(aliases, sample_events):
    events = sample_events
    kept = build_panels(events, aliases).counts
    months = kept.digests.height
    assert build_panels(events, aliases, previous=kept).counts.recounted_months == 0
    renamed = aliases.with_columns(
        pl.when(pl.col("group_id") == "ISSP").then(pl.lit("IS-Sahel")).otherwise("group_id").alias("group_id")
    )
    again = build_panels(events, renamed, previous=kept)
    assert again.counts.recounted_months == months
    assert (
        "IS-Sahel" in again.group_month["group_id"].to_list() and "ISSP" not in again.group_month["group_id"].to_list()
    )
    assert build_panels(events, aliases, "any", previous=kept).counts.recounted_months == months


def test_kept_counts_are_replaced_whole_and_absent_ones_mean_count_everything(aliases, tmp_path, sample_events):
    folder = tmp_path / "counts"
    assert load_counts(folder) is None
    events = sample_events
    save_counts(build_panels(events, aliases).counts, folder)
    save_counts(build_panels(events.head(100), aliases).counts, folder)
    assert len(list(folder.glob("counts-*"))) == 1  # the older state is gone once the pointer moved
    loaded = load_counts(folder)
    assert loaded is not None and loaded.digests["rows"].sum() == 100


def parquet_bytes(frame: pl.DataFrame, path) -> bytes:
    frame.write_parquet(path, compression="lz4")  # as the IO manager writes the warehouse
    return path.read_bytes()


def test_the_same_events_in_any_order_give_byte_identical_group_and_country_panels(aliases, tmp_path, sample_events):
    first = build_panels(sample_events, aliases)
    # The same events shuffled; and counted again from kept counts, with the last month changed and changed back.
    shuffled = build_panels(sample_events.sample(fraction=1.0, shuffle=True, seed=7), aliases)
    month = sample_events["event_date"].max().replace(day=1)
    altered = sample_events.with_columns(
        fatalities=pl.when(pl.col("event_date") >= month).then(pl.col("fatalities") + 1).otherwise("fatalities")
    )
    recounted = build_panels(sample_events, aliases, previous=build_panels(altered, aliases).counts)
    assert recounted.counts.recounted_months > 0
    for other in (shuffled, recounted):
        for name in ("group_month", "country_month"):
            a, b = getattr(first, name), getattr(other, name)
            assert parquet_bytes(a, tmp_path / "a.parquet") == parquet_bytes(b, tmp_path / "b.parquet"), name


def test_the_panels_come_in_the_order_of_their_keys(aliases, sample_events):
    panels = build_panels(sample_events.sample(fraction=1.0, shuffle=True, seed=3), aliases)
    for frame, keys in ((panels.group_month, GROUP_KEYS), (panels.country_month, COUNTRY_KEYS)):
        assert frame.equals(frame.sort(*keys, "month")), keys
