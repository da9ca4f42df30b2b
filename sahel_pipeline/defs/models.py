"""Model assets: every series scored against its count model and forecast, fanned out over country shards."""

import dagster as dg
import polars as pl

from sahel_pipeline.core.months import parse_month
from sahel_pipeline.core.scoring import nest_forecasts, score_month, split_forecasts, unnest_forecasts
from sahel_pipeline.core.series import SERIES_COLUMNS
from sahel_pipeline.core.storage import written_aside
from sahel_pipeline.core.text import spreadsheet_safe
from sahel_pipeline.defs.io_manager import previous_output
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.partitions import MODEL_SHARDS, MONTHS
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings

GROUP = "models"


def shard_key(shard: int) -> dg.AssetKey:
    return dg.AssetKey(["series_scores", f"shard_{shard + 1}_of_{MODEL_SHARDS}"])


SHARD_KEYS = [shard_key(k) for k in range(MODEL_SHARDS)]


def series_scores_shard(shard: int) -> dg.AssetsDefinition:
    """The scores asset of one country shard: one partition per month."""

    @dg.asset(
        key=shard_key(shard),
        partitions_def=MONTHS,
        group_name=GROUP,
        kinds={"statsmodels", "polars"},
        description=f"Escalation scores and 6-month forecasts of every series in shard {shard + 1} of {MODEL_SHARDS} "
        "of the countries, as of the month.",
        ins={"group_month_panel": dg.AssetIn(), "country_month_panel": dg.AssetIn(), "regime_periods": dg.AssetIn()},
    )
    def scores(
        context: dg.AssetExecutionContext,
        group_month_panel: pl.LazyFrame,
        country_month_panel: pl.LazyFrame,
        regime_periods: pl.DataFrame,
        models: ModelSettings,
        settings: PipelineSettings,
    ) -> dg.MaterializeResult:
        month = parse_month(context.partition_key)
        # The last materialization of this partition: series whose inputs have not changed keep their scores.
        earlier = previous_output(settings.warehouse, shard_key(shard), context.partition_key, context.log.warning)
        result = score_month(
            group_month_panel,
            country_month_panel,
            month,
            models.config(regime_periods.to_dicts()),
            models.pool,
            context.log.info,
            shard=(shard, MODEL_SHARDS),
            previous=split_forecasts(earlier) if earlier is not None else None,
        )
        scores = nest_forecasts(result)
        models_used = scores.group_by("model").len("series").sort("series", descending=True)
        return dg.MaterializeResult(
            value=scores,
            metadata={
                "dagster/row_count": scores.height,
                **result.reuse,
                "models": dg.MetadataValue.md(markdown_table(models_used)),
            },
        )

    return scores


SERIES_SCORES = [series_scores_shard(k) for k in range(MODEL_SHARDS)]


def gathered_scores(shards: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(list(shards.values()), how="diagonal_relaxed")


@dg.asset(
    partitions_def=MONTHS,
    group_name=GROUP,
    kinds={"polars", "csv"},
    ins={f"shard_{k + 1}": dg.AssetIn(key=key) for k, key in enumerate(SHARD_KEYS)},
)
def series_forecasts(
    context: dg.AssetExecutionContext, settings: PipelineSettings, **shards: pl.DataFrame
) -> dg.MaterializeResult:
    """Forecasts of the next six months for every modelled series (mean and quantiles), and the probabilities of
    reaching given counts next month and over the next three months."""
    gathered = gathered_scores(shards)
    forecasts = unnest_forecasts(gathered)
    folder = settings.output_path / "forecasts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{context.partition_key}.csv"
    with written_aside() as aside:
        spreadsheet_safe(forecasts).write_csv(aside(path))
        spreadsheet_safe(unnest_forecasts(gathered, "exceedance")).write_csv(
            aside(folder / f"{context.partition_key}-exceedance.csv")
        )
    context.log.info(f"forecasts of {forecasts.select(SERIES_COLUMNS).unique().height:,} series: {path}")
    countries = forecasts.filter(pl.col("level") == "country", pl.col("horizon") == 1)
    return dg.MaterializeResult(
        value=forecasts,
        metadata={
            "dagster/row_count": forecasts.height,
            "csv": dg.MetadataValue.path(str(path)),
            "next_month_by_country": dg.MetadataValue.md(
                markdown_table(
                    countries.select("source", "country", "indicator", "q50", "q10", "q90", "q025", "q975")
                )
            ),
        },
    )
