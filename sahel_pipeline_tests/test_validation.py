"""The Great Expectations suite passes on clean canonical events and names what is wrong with bad ones."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from sahel_pipeline.core.validation import gx_columns, validate_with_great_expectations
from sahel_pipeline_tests.fixtures import TODAY


def failed(summary) -> set[tuple[str, str]]:
    return {(o.expectation, o.column) for o in summary.failures()}


@pytest.mark.slow  # Great Expectations on the sample
def test_clean_sample_passes_every_expectation(sample_events):
    summary = validate_with_great_expectations(sample_events.lazy(), TODAY)
    assert summary.success, summary.to_markdown()
    assert summary.rows == sample_events.height
    # The suite the README documents, written out: columns, non-null unique ids, dates, fatalities, countries,
    # coordinates, event types and sources.
    assert {(o.expectation, o.column) for o in summary.outcomes} == {
        ("expect_table_columns_to_match_set", "(table)"),
        ("expect_column_values_to_not_be_null", "event_id"),
        ("expect_column_values_to_be_unique", "event_id"),
        ("expect_column_values_to_not_be_null", "event_date_yyyymmdd"),
        ("expect_column_values_to_be_between", "event_date_yyyymmdd"),
        ("expect_column_values_to_not_be_null", "fatalities"),
        ("expect_column_values_to_be_in_type_list", "fatalities"),
        ("expect_column_values_to_be_between", "fatalities"),
        ("expect_column_values_to_not_be_null", "country"),
        ("expect_column_values_to_be_in_set", "country"),
        ("expect_column_values_to_be_between", "latitude"),
        ("expect_column_values_to_be_between", "longitude"),
        ("expect_column_values_to_not_be_null", "event_type"),
        ("expect_column_values_to_be_in_set", "event_type"),
        ("expect_column_values_to_be_in_set", "source"),
    }
    assert len(summary.outcomes) == 15  # none twice


@pytest.mark.slow  # a Great Expectations run: its first import and suite take about 3 s of CPU
def test_values_that_slipped_past_quarantine_fail_the_suite(sample_events):
    broken = sample_events.head(100).with_columns(
        fatalities=pl.when(pl.int_range(pl.len()) == 0).then(-4).otherwise(pl.col("fatalities")),
        country=pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("Atlantis")).otherwise(pl.col("country")),
        event_date=pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.lit(dt.date(2031, 1, 1)))
        .otherwise(pl.col("event_date")),
        event_id=pl.when(pl.int_range(pl.len()) == 3).then(pl.col("event_id").first()).otherwise(pl.col("event_id")),
    )
    summary = validate_with_great_expectations(broken, TODAY)
    assert not summary.success
    assert failed(summary) == {
        ("expect_column_values_to_be_between", "fatalities"),
        ("expect_column_values_to_be_in_set", "country"),
        ("expect_column_values_to_be_between", "event_date_yyyymmdd"),
        ("expect_column_values_to_be_unique", "event_id"),
    }
    assert "| expect_column_values_to_be_in_set | country | FAIL | 1 | Atlantis |" in summary.to_markdown()
    unique = next(o for o in summary.outcomes if o.expectation == "expect_column_values_to_be_unique")
    assert unique.examples == [sample_events["event_id"][0]]  # the repeated id itself, not its hash


@pytest.mark.slow  # a Great Expectations run (its import alone is 2 to 3 s of CPU)
def test_missing_column_and_wrong_type_are_structural_failures(sample_events):
    summary = validate_with_great_expectations(
        sample_events.head(10).drop("admin2").with_columns(pl.col("fatalities").cast(pl.Float64)), TODAY
    )
    assert not summary.success
    assert ("expect_table_columns_to_match_set", "(table)") in failed(summary)
    assert ("polars dtype", "fatalities") in failed(summary)


def test_gx_is_given_only_the_columns_it_checks():
    assert "notes" not in gx_columns(TODAY)
    assert set(gx_columns(TODAY)) == {
        "event_id",
        "event_date_yyyymmdd",
        "fatalities",
        "country",
        "latitude",
        "longitude",
        "event_type",
        "source",
    }
