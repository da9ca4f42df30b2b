"""The series: what names one monthly count series, and the panels as one long table of series.

A series is one indicator (events, fatalities, ...) of one unit, counted by one source: an armed group in a country
(level 'group') or a whole country (level 'country', with a null group_id). The panels hold a unit's indicators as
columns; the models, the report and the backtest read them long, one row per series and month.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

import polars as pl

from sahel_pipeline.core.actors import GROUP_TYPE_DTYPE

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

UNIT_KEY = ["source", "level", "group_id", "country"]  # whose counts: a group in a country, or a whole country
SERIES_KEY = [*UNIT_KEY, "indicator"]  # one series
# The key with the group's display name and actor type, in the order scores, forecasts and stored shards carry them.
SERIES_COLUMNS = ["source", "level", "group_id", "group_name", "group_type", "country", "indicator"]


def long_series(
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    indicators: list[str],
    *,
    first: dt.date | None = None,
    last: dt.date | None = None,
    carry: tuple[str, ...] = (),
    value_name: str = "count",
) -> pl.LazyFrame:
    """Both panels stacked, one row per series and month: UNIT_KEY, month, the `carry` columns (e.g. group_name,
    group_type, days_covered; null group_name and group_type for countries), indicator and its value. Months from
    `first` to `last` when given (cut before unpivoting: the panels can be long)."""
    group = group_panel.lazy().with_columns(level=pl.lit("group"))
    country = country_panel.lazy().with_columns(
        level=pl.lit("country"),
        group_id=pl.lit(None, pl.String),
        group_name=pl.lit(None, pl.String),
        # of the group panel's type (an Enum of the types, or text) so that the two stack
        group_type=pl.lit(None, group.collect_schema().get("group_type", GROUP_TYPE_DTYPE)),
    )
    index = [*UNIT_KEY, "month", *carry]
    both = pl.concat([group.select(*index, *indicators), country.select(*index, *indicators)])
    if first is not None:
        both = both.filter(pl.col("month") >= first)
    if last is not None:
        both = both.filter(pl.col("month") <= last)
    return both.unpivot(index=index, on=indicators, variable_name="indicator", value_name=value_name)


def long_admin1(admin1_panel: Frame) -> Frame:
    """The admin1 panel (UNIT_KEY, admin1, month, indicators) one row per series, admin1 unit and month."""
    return admin1_panel.unpivot(index=[*UNIT_KEY, "admin1", "month"], variable_name="indicator", value_name="count")
