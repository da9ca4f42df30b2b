"""Monthly panels: counts per armed group x country x month and per country x month, zero-filled, per source.

Sources are never added together (ACLED and UCDP count events differently), so `source` is a dimension of every
panel. A series runs over the months its data cover, and a month with no events is a row with zeros. What a country's
data cover is read from the files that hold it (their first and last event dates): a global export covers every
country over its whole span, a file for one country covers that country only, so that months before a file begins are
not read as zeros. The last month
is usually still open: `days_covered` says how many of its days the data cover and `partial` marks it, so that models
scale their expectation instead of reading half a month as a drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sahel_pipeline.core.groups import Ambiguity, Role, event_groups, unmapped_actors
from sahel_pipeline.core.reference import VIOLENT_EVENT_TYPES

INDICATORS = ["events", "violent_events", "fatalities", "civilian_targeting_events"]
INDICATOR_LABELS = {
    "events": "events",
    "violent_events": "violent events",
    "fatalities": "fatalities",
    "civilian_targeting_events": "events targeting civilians",
}
EVENT_COLUMNS = [
    "event_id", "source", "event_date", "country", "admin1", "event_type", "fatalities", "civilian_targeting",
    "actor1", "assoc_actor_1", "actor2", "assoc_actor_2", "source_file",
]
GROUP_KEYS = ["source", "group_id", "country"]
COUNTRY_KEYS = ["source", "country"]


@dataclass
class Panels:
    group_month: pl.DataFrame  # source, group_id, group_name, country, month, indicators, days_covered, partial
    country_month: pl.DataFrame  # source, country, month, indicators, days_covered, partial
    admin1_month: pl.DataFrame  # source, level, group_id, country, admin1, month, indicators (months with events only)
    coverage: pl.DataFrame  # source, country, first_month, last_day
    unmapped: pl.DataFrame  # actors the alias table does not know


def indicator_sums() -> list[pl.Expr]:
    return [
        pl.len().alias("events"),
        pl.col("event_type").is_in(sorted(VIOLENT_EVENT_TYPES)).sum().alias("violent_events"),
        pl.col("fatalities").sum().alias("fatalities"),
        pl.col("civilian_targeting").sum().alias("civilian_targeting_events"),
    ]


def data_coverage(events: pl.LazyFrame) -> pl.DataFrame:
    """Per source and country, the span of the files that hold the country: first month and last day."""
    file_spans = events.group_by("source", "source_file").agg(
        file_first_day=pl.col("event_date").min(), file_last_day=pl.col("event_date").max()
    )
    return (
        events.select("source", "country", "source_file")
        .unique()
        .join(file_spans, on=["source", "source_file"])
        .group_by("source", "country")
        .agg(first_month=pl.col("file_first_day").min().dt.month_start(), last_day=pl.col("file_last_day").max())
        .sort("source", "country")
        .collect()
    )


def build_panels(
    events: pl.LazyFrame | pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
) -> Panels:
    """All panels from canonical events."""
    # Read once: every panel below starts from these columns.
    events = events.lazy().select(EVENT_COLUMNS).with_columns(month=pl.col("event_date").dt.month_start()).collect().lazy()
    coverage = data_coverage(events)
    carried = ["month", "event_date", "admin1", "event_type", "fatalities", "civilian_targeting"]
    attributed = event_groups(events, aliases, role, ambiguous, carry=carried).collect().lazy()

    # The admin1 panels are counted from the events; the country-wide ones are their sums over admin1, a third of
    # the rows of the events attributed to groups.
    group_admin1 = attributed.group_by(*GROUP_KEYS, "admin1", "month").agg(indicator_sums()).collect()
    country_admin1 = events.group_by(*COUNTRY_KEYS, "admin1", "month").agg(indicator_sums()).collect()
    group_counts = group_admin1.lazy().group_by(*GROUP_KEYS, "month").agg(pl.col(INDICATORS).sum())
    names = attributed.group_by("group_id").agg(pl.col("group_name").first()).collect()
    group_month = zero_filled(group_counts, GROUP_KEYS, coverage).join(names, on="group_id", how="left")
    group_month = group_month.select(*GROUP_KEYS[:2], "group_name", *GROUP_KEYS[2:], "month", *INDICATORS, "days_covered", "partial")

    country_counts = country_admin1.lazy().group_by(*COUNTRY_KEYS, "month").agg(pl.col(INDICATORS).sum())
    country_month = zero_filled(country_counts, COUNTRY_KEYS, coverage)
    admin1 = pl.concat(
        [
            group_admin1.with_columns(level=pl.lit("group")),
            country_admin1.with_columns(level=pl.lit("country"), group_id=pl.lit(None, pl.String)),
        ],
        how="diagonal",
    )
    admin1 = admin1.with_columns(pl.col("admin1").fill_null("(unknown)")).select(
        "source", "level", "group_id", "country", "admin1", "month", *INDICATORS
    )
    return Panels(
        group_month=group_month,  # unsorted: sorting a million rows costs a second nobody needs
        country_month=country_month,
        admin1_month=admin1,
        coverage=coverage,
        unmapped=unmapped_actors(attributed),
    )


def zero_filled(counts: pl.LazyFrame, keys: list[str], coverage: pl.DataFrame) -> pl.DataFrame:
    """Every series gets every month its data cover; months without events are zeros."""
    months = coverage.lazy().select(
        "source", "country", "last_day", month=pl.date_ranges("first_month", pl.col("last_day").dt.month_start(), interval="1mo")
    ).explode("month")
    grid = counts.select(keys).unique().join(months, on=["source", "country"])
    days_in_month = pl.col("month").dt.month_end().dt.day()
    is_last = pl.col("month") == pl.col("last_day").dt.month_start()
    return (
        grid.join(counts, on=[*keys, "month"], how="left")
        .with_columns(pl.col(INDICATORS).fill_null(0))
        .with_columns(days_covered=pl.when(is_last).then(pl.col("last_day").dt.day()).otherwise(days_in_month).cast(pl.Int32))
        .with_columns(partial=pl.col("days_covered") < days_in_month)
        .drop("last_day")
        .collect()
    )

