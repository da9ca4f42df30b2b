"""Alert assets: the month's escalation alerts as tables (CSV, JSON, Parquet) and as a report (HTML, Markdown)."""

import base64

import dagster as dg
import polars as pl

from sahel_pipeline.core.alerts import ALERT_COLUMNS, alert_table, apply_alert_rule, new_actors, write_alert_files
from sahel_pipeline.core.ingest import any_synthetic
from sahel_pipeline.core.months import parse_month, window_start
from sahel_pipeline.core.report import (
    ReportInputs,
    admin1_history,
    alert_series,
    data_quality,
    modelled_series,
    quarantine_reasons,
    reported_series,
    series_history,
    write_report,
)
from sahel_pipeline.core.vintages import provenance
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.models import SHARD_KEYS, gathered_scores
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings

GROUP = "alerts"
SHARD_INS = {f"shard_{k + 1}": dg.AssetIn(key=key) for k, key in enumerate(SHARD_KEYS)}


@dg.asset(
    partitions_def=MONTHS,
    group_name=GROUP,
    kinds={"polars", "csv", "json", "parquet"},
    ins={
        **SHARD_INS,
        "admin1_month_panel": dg.AssetIn(),
        "group_month_panel": dg.AssetIn(),
        "ingest_summary": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec("alert_table_has_the_documented_columns", asset="escalation_alerts",
                          description="The alerts files have exactly the documented columns, in order."),
    ],
)
def escalation_alerts(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    admin1_month_panel: pl.LazyFrame,
    group_month_panel: pl.LazyFrame,
    ingest_summary: pl.DataFrame,
    **shards: pl.DataFrame,
):
    """The month's escalation alerts, one explained row per rising series or group new in a country, in
    alerts/YYYY-MM.csv/.json/.parquet."""
    month = parse_month(context.partition_key)
    config = models.config()
    scores = gathered_scores(shards)
    admin1 = admin1_month_panel.filter(
        pl.col("month").is_between(window_start(month, config.window_months), month)
    ).collect()
    synthetic = any_synthetic(ingest_summary)
    newcomers = new_actors(group_month_panel, admin1, month, config)
    alerts = alert_table(scores, admin1, config, newcomers, synthetic=synthetic)
    paths = write_alert_files(
        alerts, settings.output_path / "alerts", context.partition_key, provenance(ingest_summary), synthetic
    )
    context.log.info(f"{alerts.height} alerts for {context.partition_key}: {', '.join(str(p) for p in paths.values())}")
    scored = modelled_series(scores)
    if scored == 0:
        context.log.warning(
            f"no series could be scored for {context.partition_key} (no data for the month, or too "
            "short a history): its empty alert table is not a quiet month"
        )
    severity = dict(alerts.group_by("severity").len().iter_rows())
    written = pl.read_csv(paths["csv"], n_rows=0).columns
    yield dg.MaterializeResult(
        value=alerts,
        metadata={
            "dagster/row_count": alerts.height,
            "series_scored": scored,
            **{f"{level}_severity": severity.get(level, 0) for level in ("high", "medium", "low")},
            "new": alerts.filter(pl.col("status") == "new").height,
            "synthetic": synthetic,
            "new_actor_alerts": alerts.filter(pl.col("kind") == "new_actor").height,
            "groups_new_in_a_country": newcomers.height,
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "alerts": dg.MetadataValue.md(
                markdown_table(alerts.select("severity", "status", "explanation"), max_rows=30)
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="alert_table_has_the_documented_columns",
        passed=written == ALERT_COLUMNS,
        metadata={"columns": ", ".join(written)},
    )


@dg.asset(
    partitions_def=MONTHS,
    group_name=GROUP,
    kinds={"html", "markdown", "matplotlib"},
    ins={
        **SHARD_INS,
        "escalation_alerts": dg.AssetIn(),
        "series_forecasts": dg.AssetIn(),
        "group_month_panel": dg.AssetIn(),
        "country_month_panel": dg.AssetIn(),
        "admin1_month_panel": dg.AssetIn(),
        "ingest_summary": dg.AssetIn(),
        "quarantined_events": dg.AssetIn(),
    },
)
def alert_report(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    escalation_alerts: pl.DataFrame,
    series_forecasts: pl.DataFrame,
    group_month_panel: pl.LazyFrame,
    country_month_panel: pl.LazyFrame,
    admin1_month_panel: pl.LazyFrame,
    ingest_summary: pl.DataFrame,
    quarantined_events: pl.LazyFrame,
    **shards: pl.DataFrame,
) -> dg.MaterializeResult:
    """The month's report for analysts: alerts with plots and where the rise is, forecasts, data quality (HTML, MD)."""
    month = parse_month(context.partition_key)
    config = models.config()
    scores = apply_alert_rule(gathered_scores(shards), config)
    inputs = ReportInputs(
        month=month,
        alerts=escalation_alerts,
        scores=scores,
        forecasts=series_forecasts,
        history=series_history(
            group_month_panel, country_month_panel, reported_series(escalation_alerts, scores), month
        ),
        admin1=admin1_history(admin1_month_panel, alert_series(escalation_alerts), month, config),
        data_quality=data_quality(ingest_summary, country_month_panel),
        quarantine_reasons=quarantine_reasons(quarantined_events),
        config=config,
        synthetic=any_synthetic(ingest_summary),
    )
    context.log.info(f"writing the report of {context.partition_key}: {escalation_alerts.height} alerts")
    paths = write_report(inputs, settings.output_path / "reports", context.log.warning)
    preview = (
        f"![first alert](data:image/png;base64,{base64.b64encode(paths['first_plot'].read_bytes()).decode()})"
        if "first_plot" in paths
        else "_no alert this month_"
    )
    return dg.MaterializeResult(
        metadata={
            "html": dg.MetadataValue.path(str(paths["html"])),
            "markdown": dg.MetadataValue.path(str(paths["markdown"])),
            "alerts": escalation_alerts.height,
            "synthetic": inputs.synthetic,
            "first_alert_plot": dg.MetadataValue.md(preview),
        }
    )
