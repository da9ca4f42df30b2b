"""Panel assets: monthly event counts and fatalities per armed group x country and per country, zero-filled."""

import datetime as dt
from typing import cast

import dagster as dg
import polars as pl

from sahel_pipeline.core.actor_types import UNKNOWN
from sahel_pipeline.core.actors import typing_summary
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.imports import import_in_background
from sahel_pipeline.core.models import FITTING_MODULES
from sahel_pipeline.core.months import month_index_expr, month_key, shift_month
from sahel_pipeline.core.panels import (
    EVENT_COLUMNS,
    GROUP_KEYS,
    INDICATORS,
    LOCATION_COLUMNS,
    build_panels,
    load_counts,
    save_counts,
)
from sahel_pipeline.core.report.plots import PLOTTING_MODULES
from sahel_pipeline.defs import spatial
from sahel_pipeline.defs.io_manager import parquet_tables
from sahel_pipeline.defs.metadata import markdown_table, table_preview
from sahel_pipeline.defs.partitions import EARLIEST_MONTH, add_month_partitions
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings

GROUP = "panels"
NEW_ACTOR_MONTHS = 6  # an unmapped actor first seen this recently is listed as new


CHECKS = [
    dg.AssetCheckSpec(
        "country_panel_counts_every_event_once", asset="country_month_panel", blocking=True,
        description="Every canonical event is counted exactly once in the country panel of its source.",
    ),
    dg.AssetCheckSpec(
        "group_panel_is_zero_filled", asset="group_month_panel",
        description="Zero-filled: every series has one row for every month of its source's coverage.",
    ),
]


# The checks run in the asset's step, not in steps (processes, from the UI) of their own: see ingest.py.
@dg.multi_asset(
    outs=parquet_tables(
        GROUP,
        group_month_panel="Events, violent events, fatalities, civilian targeting and demonstrations per group x "
        "country x month, with the group's actor type.",
        country_month_panel="Events, violent events, fatalities, civilian targeting and demonstrations per country x "
        "month.",
        admin1_month_panel="The same indicators per admin1 x month, for each group and for the whole country: "
        "where a rise happens.",
        regime_periods="The regime periods in the names of each country's state forces, when each was first seen, "
        "and the break it implies for the models.",
    )
    | spatial.SPATIAL_OUTS,
    ins={"canonical_events": dg.AssetIn(), "places": dg.AssetIn()},
    check_specs=[*CHECKS, *spatial.CHECKS],
)
def monthly_panels(
    context: dg.AssetExecutionContext,
    canonical_events: pl.LazyFrame,
    places: pl.DataFrame,
    settings: PipelineSettings,
    models: ModelSettings,
):
    """Resolve actors to groups (alias table, state-actor rule), type them, and count events per month, per source, and
    where they are against the places; add the month partitions the data can score."""
    # The models and the report downstream import statsmodels and matplotlib (about two seconds): while Polars
    # counts, the interpreter is free for that. Running fitting workers draw the report's plots: not this process.
    import_in_background(*FITTING_MODULES, *(PLOTTING_MODULES if models.plot_executor is None else ()))
    aliases = load_alias_table(settings.alias_table)
    panels = build_panels(
        canonical_events.select(*EVENT_COLUMNS, *LOCATION_COLUMNS),
        aliases,
        settings.group_role,
        settings.ambiguous_attribution,
        previous=load_counts(settings.panel_cache, context.log.warning),
        units=settings.state_units,
        breaks=models.configured_breaks(),
        places=places,
    )
    save_counts(panels.counts, settings.panel_cache)
    coverage, counts = panels.coverage, panels.counts
    kept = counts.digests.height - counts.recounted_months
    partitions = _add_scorable_months(context, coverage, models, settings)
    context.log.info(
        f"panels: {panels.group_month.height:,} group-month rows, {panels.country_month.height:,} country-month rows; "
        f"{counts.recounted_months:,} source-months counted, {kept:,} unchanged since the last run and kept; "
        f"{panels.unmapped.height:,} actor names not in the alias table"
    )
    types = panels.group_types
    untyped = types.filter(pl.col("group_type") == UNKNOWN)
    if untyped.height:
        context.log.warning(
            f"{untyped.height:,} groups have no type (no actor-type code in the data, no type in the alias table, no "
            f"name that says one): they are not alerted unless 'unknown' is an alerted type. Give them a type in "
            f"{settings.alias_table}; the first: {', '.join(untyped['group_id'].head(5))}"
        )
    inferred = types.filter(pl.col("typed_by") != "source code").height
    latest = panels.group_month.filter(pl.col("month") == pl.col("month").max().over("source"))
    top_groups = latest.sort("violent_events", descending=True).head(15)
    source_end = coverage.group_by("source").agg(pl.col("last_day").max())
    new_actors = panels.unmapped.join(source_end, on="source").filter(
        pl.col("first_seen") > pl.col("last_day").dt.offset_by(f"-{NEW_ACTOR_MONTHS}mo")
    )
    yield dg.MaterializeResult(
        asset_key="group_month_panel",
        value=panels.group_month,
        metadata={
            "dagster/row_count": panels.group_month.height,
            "series": panels.group_month.select(GROUP_KEYS).unique().height,
            "group_role": settings.group_role,
            "months_recounted": counts.recounted_months,
            "ambiguous_attribution": settings.ambiguous_attribution,
            "coverage": dg.MetadataValue.md(markdown_table(coverage)),
            "partial_months": dg.MetadataValue.md(markdown_table(_partial_months(panels.country_month))),
            "latest_month_top_groups": table_preview(top_groups.drop("group_name"), rows=15),
            "unmapped_actor_names": panels.unmapped.height,
            "unmapped_actors_top": dg.MetadataValue.md(markdown_table(panels.unmapped.head(25))),
            "new_unmapped_actors": dg.MetadataValue.md(markdown_table(new_actors.drop("last_day"))),
            "state_units": settings.state_units,
            "groups_by_type": dg.MetadataValue.md(
                markdown_table(
                    types.group_by("group_type")
                    .agg(groups=pl.len())
                    .sort("groups", "group_type", descending=[True, False])
                )
            ),
            "groups_typed_by": dg.MetadataValue.md(markdown_table(typing_summary(types))),
            "groups_typed_by_inference": inferred,
            "groups_without_type": untyped.height,
            "groups_and_their_names": dg.MetadataValue.md(markdown_table(panels.variants, max_rows=40)),
        },
    )
    yield dg.MaterializeResult(
        asset_key="country_month_panel",
        value=panels.country_month,
        metadata={
            "dagster/row_count": panels.country_month.height,
            **partitions,
            "preview": table_preview(panels.country_month.sort("month", descending=True), rows=12),
        },
    )
    yield dg.MaterializeResult(
        asset_key="admin1_month_panel",
        value=panels.admin1_month,
        metadata={"dagster/row_count": panels.admin1_month.height},
    )
    periods = panels.regime_periods
    yield dg.MaterializeResult(
        asset_key="regime_periods",
        value=periods,
        metadata={
            "dagster/row_count": periods.height,
            "breaks_from_regime_periods": periods.filter(pl.col("break_origin") == "regime period").height,
            "periods": dg.MetadataValue.md(markdown_table(periods.drop("names"), max_rows=40)),
        },
    )
    yield country_panel_counts_every_event_once(panels.country_month, canonical_events)
    yield group_panel_is_zero_filled(panels.group_month)
    assert panels.spatial_month is not None and panels.buffer_month is not None  # counted with the places
    yield from spatial.spatial_results(
        context, panels.spatial_month, panels.buffer_month, panels.group_month, panels.country_month
    )


def _add_scorable_months(
    context: dg.AssetExecutionContext, coverage: pl.DataFrame, models: ModelSettings, settings: PipelineSettings
) -> dict[str, str | int]:
    """Month partitions from the first month any series can be scored to the current month, as the data arrive."""
    first = coverage["first_month"].min()
    if first is None:
        return {}
    start = max(shift_month(cast(dt.date, first), models.config().first_scorable_offset), EARLIEST_MONTH)
    this_month = settings.today().replace(day=1)
    added = add_month_partitions(context.instance, start, this_month)
    if added:
        context.log.info(f"month partitions added: {added[0]} to {added[-1]} ({len(added)})")
    return {"month_partitions": f"{month_key(start)} to {month_key(this_month)}", "month_partitions_added": len(added)}


def _partial_months(country_month: pl.DataFrame) -> pl.DataFrame:
    return country_month.filter(pl.col("partial")).select("source", "month", "days_covered").unique().sort("source")


def country_panel_counts_every_event_once(
    country_month_panel: pl.DataFrame, canonical_events: pl.LazyFrame
) -> dg.AssetCheckResult:
    events = canonical_events.group_by("source").agg(pl.len().alias("events")).collect()
    panel = country_month_panel.group_by("source").agg(pl.col("events").sum().alias("panel_events"))
    compared = events.join(panel, on="source", how="full", coalesce=True).fill_null(0)
    return dg.AssetCheckResult(
        asset_key="country_month_panel",
        check_name="country_panel_counts_every_event_once",
        passed=bool((compared["events"] == compared["panel_events"]).all()),
        metadata={"by_source": dg.MetadataValue.md(markdown_table(compared))},
    )


def group_panel_is_zero_filled(group_month_panel: pl.DataFrame) -> dg.AssetCheckResult:
    per_series = group_month_panel.group_by(GROUP_KEYS).agg(
        rows=pl.len(), first=pl.col("month").min(), last=pl.col("month").max()
    )
    expected_rows = month_index_expr("last") - month_index_expr("first") + 1
    gaps = per_series.filter(pl.col("rows") != expected_rows)
    return dg.AssetCheckResult(
        asset_key="group_month_panel",
        check_name="group_panel_is_zero_filled",
        passed=gaps.height == 0,
        metadata={"series": per_series.height, "series_with_gaps": gaps.height, "indicators": ", ".join(INDICATORS)},
    )
