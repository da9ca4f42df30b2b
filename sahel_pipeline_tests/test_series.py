"""The panels stacked into one long table of series, checked on panels small enough to count by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl

from sahel_pipeline.core.series import SERIES_COLUMNS, SERIES_KEY, long_series

JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)
GROUPS = pl.DataFrame({
    "source": ["ACLED"] * 3, "group_id": ["JNIM"] * 3, "group_name": ["JNIM (al-Qaeda)"] * 3,
    "group_type": ["rebel group"] * 3, "country": ["Mali"] * 3, "month": [JAN, FEB, MAR], "days_covered": [31, 29, 15],
    "events": [1, 2, 3], "fatalities": [0, 5, 7],
})
COUNTRIES = GROUPS.drop("group_id", "group_name", "group_type").with_columns(
    pl.col("events") * 10, pl.col("fatalities") * 10
)


def test_one_row_per_series_and_month_with_countries_as_null_groups():
    carry = ("group_name", "group_type", "days_covered")
    long = long_series(GROUPS, COUNTRIES, ["events", "fatalities"], carry=carry).collect()
    assert long.height == 2 * 3 * 2  # two levels x three months x two indicators
    assert set(SERIES_COLUMNS) | {"month", "days_covered", "count"} == set(long.columns)
    country = long.filter(pl.col("level") == "country", pl.col("indicator") == "fatalities").sort("month")
    assert country["group_id"].null_count() == 3 and country["group_name"].null_count() == 3
    assert country["group_type"].null_count() == 3
    assert country["count"].to_list() == [0, 50, 70]
    group = long.filter(pl.col("level") == "group", pl.col("indicator") == "events").sort("month")
    assert group.select("group_id", "group_name").unique().rows() == [("JNIM", "JNIM (al-Qaeda)")]
    assert group["count"].to_list() == [1, 2, 3] and group["days_covered"].to_list() == [31, 29, 15]
    assert long.select(SERIES_KEY).unique().height == 4


def test_months_are_cut_to_the_window_and_the_value_can_be_renamed():
    long = long_series(GROUPS, COUNTRIES, ["events"], first=FEB, last=FEB, value_name="actual").collect()
    assert long.columns == ["source", "level", "group_id", "country", "month", "indicator", "actual"]
    assert sorted(long["actual"].to_list()) == [2, 20] and set(long["month"]) == {FEB}
    assert long_series(GROUPS, COUNTRIES, ["events"], first=MAR).collect()["month"].unique().to_list() == [MAR]
