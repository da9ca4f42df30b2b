"""Alert assets: the month's escalation alerts as tables (CSV, JSON, Parquet) and as a report (HTML, Markdown)."""

import base64

import dagster as dg
import polars as pl

from sahel_pipeline.core.alerts import (
    ALERT_COLUMNS,
    ALERT_KINDS,
    apply_alert_rule,
    new_actors,
    ruled_alert_table,
    write_alert_files,
)
from sahel_pipeline.core.feeds import recent_alert_events
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import any_synthetic
from sahel_pipeline.core.months import parse_month, window_start
from sahel_pipeline.core.report import ReportInputs, write_report
from sahel_pipeline.core.report.selection import (
    admin1_history,
    alert_series,
    data_quality,
    data_reach,
    evaluation_summary,
    modelled_series,
    previous_alerts,
    quarantine_reasons,
    reported_series,
    series_history,
)
from sahel_pipeline.core.scoring import unnest_forecasts
from sahel_pipeline.core.spatial import SpatialRule, spatial_alert_maps, spatial_alerts, window_unit_rows
from sahel_pipeline.core.vintages import provenance
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.models import SHARD_KEYS, gathered_scores
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings

GROUP = "alerts"
SHARD_INS = {f"shard_{k + 1}": dg.AssetIn(key=key) for k, key in enumerate(SHARD_KEYS)}


# Alerts and report are one step: as two, a run launched from the UI waited for a second process (loading the job,
# the instance and the inputs again) to write a report from what the first had just computed.
@dg.multi_asset(
    outs={
        "escalation_alerts": dg.AssetOut(
            group_name=GROUP,
            kinds={"polars", "csv", "json", "parquet"},
            description="The month's escalation alerts, one explained row per rising series, group new in a "
            "country, group closing in on a place or entering new ground, in alerts/YYYY-MM.csv/.json/.parquet.",
        ),
        "alert_report": dg.AssetOut(
            group_name=GROUP,
            kinds={"html", "markdown", "matplotlib"},
            description="The month's report for analysts: alerts with plots and where the rise is, forecasts, data "
            "quality (HTML, MD).",
        ),
    },
    partitions_def=MONTHS,
    ins={
        **SHARD_INS,
        "group_month_panel": dg.AssetIn(),
        "country_month_panel": dg.AssetIn(),
        "admin1_month_panel": dg.AssetIn(),
        "ingest_summary": dg.AssetIn(),
        "quarantined_events": dg.AssetIn(),
        "canonical_events": dg.AssetIn(),
        "buffer_scores": dg.AssetIn(),
        "spatial_month_panel": dg.AssetIn(),
        "buffer_month_panel": dg.AssetIn(),
        "places": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec("alert_table_has_the_documented_columns", asset="escalation_alerts",
                          description="The alerts files have exactly the documented columns, in order."),
        dg.AssetCheckSpec("month_has_scored_series", asset="escalation_alerts",
                          description="Warns when no series could be scored for the month (no data for it yet, or "
                          "too short a history): its empty alert table is not a quiet month."),
    ],
)
def month_alerts(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    group_month_panel: pl.LazyFrame,
    country_month_panel: pl.LazyFrame,
    admin1_month_panel: pl.LazyFrame,
    ingest_summary: pl.DataFrame,
    quarantined_events: pl.LazyFrame,
    canonical_events: pl.LazyFrame,
    buffer_scores: pl.DataFrame,
    spatial_month_panel: pl.LazyFrame,
    buffer_month_panel: pl.LazyFrame,
    places: pl.DataFrame,
    **shards: pl.DataFrame,
):
    """Rank the month's rising series, the groups new in a country, closing in on a place or on new ground into
    explained alerts and write them, then the report that shows them."""
    month = parse_month(context.partition_key)
    config = models.config()
    gathered = gathered_scores(shards)
    admin1 = admin1_month_panel.filter(
        pl.col("month").is_between(window_start(month, config.window_months), month)
    ).collect()
    synthetic = any_synthetic(ingest_summary)
    newcomers = new_actors(group_month_panel, admin1, month, config)
    scores = apply_alert_rule(gathered, config)  # once, for the alerts and the report
    up_to_month = pl.col("month") <= month  # a past month's alerts see only the data up to it
    aliases = load_alias_table(settings.alias_table)
    attribution = (settings.group_role, settings.ambiguous_attribution, settings.state_units)
    rule = SpatialRule()
    trend_first, trend_last = rule.trend_window(month)
    where = spatial_month_panel.filter(up_to_month).collect()
    spatial = spatial_alerts(
        month,
        buffer_scores,
        buffer_month_panel.filter(up_to_month).collect(),
        where,
        window_unit_rows(canonical_events, aliases, trend_first, trend_last, None, *attribution),
        places,
        group_month_panel,
        config,
        rule,
    )
    alerts = ruled_alert_table(scores, admin1, config, newcomers, spatial, synthetic=synthetic)
    paths = write_alert_files(
        alerts, settings.output_path / "alerts", context.partition_key, provenance(ingest_summary), synthetic
    )
    context.log.info(f"{alerts.height} alerts for {context.partition_key}: {', '.join(str(p) for p in paths.values())}")
    scored = modelled_series(gathered)
    if scored == 0:
        context.log.warning(
            f"no series could be scored for {context.partition_key} (no data for the month, or too "
            "short a history): its empty alert table is not a quiet month"
        )
    severity = dict(alerts.group_by("severity").len("alerts").iter_rows())
    written = pl.read_csv(paths["csv"], n_rows=0).columns
    yield dg.MaterializeResult(
        asset_key="escalation_alerts",
        value=alerts,
        metadata={
            "dagster/row_count": alerts.height,
            "series_scored": scored,
            **{f"{level}_severity": severity.get(level, 0) for level in ("high", "medium", "low")},
            "new": alerts.filter(pl.col("status") == "new").height,
            "synthetic": synthetic,
            **{f"{kind}_alerts": alerts.filter(pl.col("kind") == kind).height for kind in ALERT_KINDS},
            "groups_new_in_a_country": newcomers.height,
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "alerts": dg.MetadataValue.md(
                markdown_table(alerts.select("severity", "status", "explanation"), max_rows=30)
            ),
        },
    )
    yield dg.AssetCheckResult(
        asset_key="escalation_alerts",
        check_name="alert_table_has_the_documented_columns",
        passed=written == ALERT_COLUMNS,
        metadata={"columns": ", ".join(written)},
    )
    yield dg.AssetCheckResult(
        asset_key="escalation_alerts",
        check_name="month_has_scored_series",
        passed=scored > 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if scored else f"no series could be scored for {context.partition_key}: no data for the "
        "month, or too short a history",
        metadata={"series_scored": scored},
    )

    countries = alerts["country"].unique().to_list()
    inputs = ReportInputs(
        month=month,
        alerts=alerts,
        scores=scores,
        forecasts=unnest_forecasts(gathered),  # what series_forecasts stores, from the same shards
        history=series_history(group_month_panel, country_month_panel, reported_series(alerts, scores), month),
        admin1=admin1_history(admin1_month_panel, alert_series(alerts), month, config),
        data_quality=data_quality(ingest_summary, country_month_panel),
        quarantine_reasons=quarantine_reasons(quarantined_events),
        config=config,
        synthetic=any_synthetic(ingest_summary),
        previous_alerts=previous_alerts(settings.output_path / "alerts", month, context.log.warning),
        events=recent_alert_events(
            canonical_events, aliases, alerts, month, config, *attribution, months=config.window_months,
            extra=("notes",), places=places, spatial_month=where,
        ),
        places=places.filter(pl.col("country").is_in(countries)),  # the spatial alerts' places table
        maps=spatial_alert_maps(alerts, canonical_events, aliases, places, config, *attribution),
        reach=data_reach(country_month_panel),
        evaluation=evaluation_summary(settings.output_path / "evaluation", context.log.warning),
    )
    context.log.info(f"writing the report of {context.partition_key}: {alerts.height} alerts")
    report = write_report(inputs, settings.output_path / "reports", context.log.warning, models.plot_executor)
    preview = (
        f"![first alert](data:image/png;base64,{base64.b64encode(report['first_plot'].read_bytes()).decode()})"
        if "first_plot" in report
        else "_no alert this month_"
    )
    yield dg.MaterializeResult(
        asset_key="alert_report",
        metadata={
            "report": dg.MetadataValue.url(report["html"].resolve().as_uri()),
            "html": dg.MetadataValue.path(str(report["html"])),
            "markdown": dg.MetadataValue.path(str(report["markdown"])),
            "alerts": alerts.height,
            "synthetic": inputs.synthetic,
            "first_alert_plot": dg.MetadataValue.md(preview),
        },
    )
