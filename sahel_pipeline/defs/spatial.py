"""Spatial assets: the places table, where each group's events are (distances to the capital, spread, admin2 areas
entered) and its events within 25, 50 and 100 km of every place, per month (counted with the count panels, in
defs/panels.py: one attribution of the events); the buffer series scored monthly."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from sahel_pipeline.core.months import parse_month
from sahel_pipeline.core.places import places_table
from sahel_pipeline.core.series import UNIT_KEY
from sahel_pipeline.core.spatial import score_buffers
from sahel_pipeline.defs.io_manager import parquet_tables
from sahel_pipeline.defs.metadata import markdown_table, table_preview
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings

PANELS_GROUP, MODELS_GROUP = "panels", "models"  # beside the count panels, and beside the series scores


CHECKS = [
    dg.AssetCheckSpec(
        "spatial_panel_counts_the_panels_events", asset="spatial_month_panel",
        description="Every unit's located and imprecise events in a month add up to its events in the count panels: "
        "the spatial series count the same events, attributed the same way.",
    ),
    dg.AssetCheckSpec(
        "rings_are_nested", asset="buffer_month_panel",
        description="A place's 25 km ring never holds more of a unit's events than its 50 km ring, nor that more "
        "than its 100 km ring.",
    ),
]  # fmt: skip


SPATIAL_OUTS = parquet_tables(
    PANELS_GROUP,
    spatial_month_panel="Per group x country x month and per country x month: events located and imprecise, the "
    "nearest event to the capital, the 10th percentile and median distance, the standard distance, admin2 areas "
    "with events and entered.",
    buffer_month_panel="Events and fatalities of each group (and country) within 25, 50 and 100 km of each place "
    "of its country, per month with events there, and the nearest event's distance.",
)  # counted with the count panels (defs/panels.py), from the same attribution of the events


@dg.asset(group_name=PANELS_GROUP, kinds={"polars", "parquet"}, ins={"canonical_events": dg.AssetIn()})
def places(
    context: dg.AssetExecutionContext, canonical_events: pl.LazyFrame, settings: PipelineSettings
) -> dg.MaterializeResult:
    """The capitals and major cities (GeoNames) and the analysts' places (data/places.csv) of the countries in the
    data: what the rings are drawn around and the maps label."""
    countries = canonical_events.select(pl.col("country").unique()).collect()["country"].to_list()
    table = places_table(countries, settings.places_path, settings.places_cache, warn=context.log.warning)
    return dg.MaterializeResult(
        value=table,
        metadata={
            "dagster/row_count": table.height,
            "countries": len(countries),
            "by_kind": dg.MetadataValue.md(
                markdown_table(table.group_by("kind").len("places").sort("places", "kind", descending=[True, False]))
            ),
            "analysts_places": table.filter(pl.col("population").is_null()).height,
            "preview": table_preview(table.drop("origin"), rows=20),
        },
    )


def spatial_results(
    context: dg.AssetExecutionContext,
    where: pl.DataFrame,
    buffers: pl.DataFrame,
    group_month_panel: pl.DataFrame,
    country_month_panel: pl.DataFrame,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The spatial panels' materializations and checks, for the panels' asset that counts them."""
    imprecise = int(where.filter(pl.col("level") == "country")["events_imprecise"].sum())
    context.log.info(
        f"spatial panels: {where.height:,} unit-months, {buffers.height:,} unit x place x ring months with events; "
        f"{imprecise:,} events imprecisely located"
    )
    yield dg.MaterializeResult(
        asset_key="spatial_month_panel",
        value=where,
        metadata={
            "dagster/row_count": where.height,
            "events_imprecise": imprecise,
            "latest_month_nearest_the_capital": table_preview(_nearest_latest(where), rows=15),
        },
    )
    yield dg.MaterializeResult(
        asset_key="buffer_month_panel",
        value=buffers,
        metadata={"dagster/row_count": buffers.height, "places_with_events": buffers["place_id"].n_unique()},
    )
    yield spatial_panel_counts_the_panels_events(where, group_month_panel.lazy(), country_month_panel.lazy())
    yield rings_are_nested(buffers)


def _nearest_latest(where: pl.DataFrame) -> pl.DataFrame:
    latest = where.filter(pl.col("level") == "group", pl.col("month") == pl.col("month").max().over("source"))
    return latest.sort("nearest_capital_km", nulls_last=True).select(
        "source", "country", "group_id", "month", "events_located", "capital", "nearest_capital_km", "admin2_entered"
    )


def spatial_panel_counts_the_panels_events(
    where: pl.DataFrame, group_month_panel: pl.LazyFrame, country_month_panel: pl.LazyFrame
) -> dg.AssetCheckResult:
    counted = where.select(*UNIT_KEY, "month", spatial=pl.col("events_located") + pl.col("events_imprecise"))
    panels = pl.concat(
        [
            group_month_panel.select(
                "source", pl.lit("group").alias("level"), "group_id", "country", "month", "events"
            ),
            country_month_panel.select(
                "source", pl.lit("country").alias("level"), pl.lit(None, pl.String).alias("group_id"), "country",
                "month", "events",
            ),
        ]
    ).filter(pl.col("events") > 0).collect()  # fmt: skip
    compared = panels.join(counted, on=[*UNIT_KEY, "month"], how="full", coalesce=True, nulls_equal=True).fill_null(0)
    differing = compared.filter(pl.col("events") != pl.col("spatial"))
    return dg.AssetCheckResult(
        asset_key="spatial_month_panel",
        check_name="spatial_panel_counts_the_panels_events",
        passed=differing.height == 0,
        metadata={
            "unit_months": compared.height,
            "differing": differing.height,
            "first_differing": dg.MetadataValue.md(markdown_table(differing.head(10))),
        },
    )


def rings_are_nested(buffers: pl.DataFrame) -> dg.AssetCheckResult:
    wide = buffers.pivot("radius_km", index=[*UNIT_KEY, "place_id", "month"], values="events").fill_null(0)
    radii = sorted(int(c) for c in wide.columns if c.isdigit())
    broken = wide.filter(
        pl.any_horizontal(pl.col(str(a)) > pl.col(str(b)) for a, b in zip(radii, radii[1:], strict=False))
    ) if len(radii) > 1 else wide.clear()  # fmt: skip
    return dg.AssetCheckResult(
        asset_key="buffer_month_panel",
        check_name="rings_are_nested",
        passed=broken.height == 0,
        metadata={"rows": wide.height, "not_nested": broken.height},
    )


@dg.asset(
    partitions_def=MONTHS,
    group_name=MODELS_GROUP,
    kinds={"statsmodels", "polars"},
    ins={
        "buffer_month_panel": dg.AssetIn(),
        "spatial_month_panel": dg.AssetIn(),
        "group_month_panel": dg.AssetIn(),
        "country_month_panel": dg.AssetIn(),
        "regime_periods": dg.AssetIn(),
    },
)
def buffer_scores(
    context: dg.AssetExecutionContext,
    buffer_month_panel: pl.LazyFrame,
    spatial_month_panel: pl.LazyFrame,
    group_month_panel: pl.LazyFrame,
    country_month_panel: pl.LazyFrame,
    regime_periods: pl.DataFrame,
    models: ModelSettings,
) -> dg.MaterializeResult:
    """Score each group's events within each ring of each place whose share of the group's events rose, as of the
    month, by the same models and rule as every count series: the `approach` alerts' counts."""
    month = parse_month(context.partition_key)
    result = score_buffers(
        buffer_month_panel,
        spatial_month_panel,
        group_month_panel,
        country_month_panel,
        month,
        models.config(regime_periods.to_dicts()),
        models.pool,
        context.log.info,
    )
    scores = result.scores
    return dg.MaterializeResult(
        value=scores,
        metadata={
            "dagster/row_count": scores.height,
            "modelled": scores.filter(pl.col("p_value").is_not_null()).height if "p_value" in scores.columns else 0,
        },
    )
