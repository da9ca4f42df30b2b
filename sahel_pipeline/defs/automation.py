"""Jobs, the weekly schedule and the raw-folder sensor."""

import hashlib
from dataclasses import dataclass

import dagster as dg
import polars as pl

from sahel_pipeline.core import vintages
from sahel_pipeline.core.ingest import raw_path_list
from sahel_pipeline.core.months import month_key, month_label, shift_month
from sahel_pipeline.defs.backtest import forecast_backtest
from sahel_pipeline.defs.evaluation import detector_evaluation
from sahel_pipeline.defs.fetch import GROUP as FETCH_GROUP
from sahel_pipeline.defs.fetch import acled_pull, ucdp_pull
from sahel_pipeline.defs.ingest import ingested_events
from sahel_pipeline.defs.panels import monthly_panels
from sahel_pipeline.defs.partitions import month_partitions
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline.defs.spatial import places

weekly_escalation_job = dg.define_asset_job(
    "weekly_escalation_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(forecast_backtest, detector_evaluation),
    description="Pull ACLED and UCDP (where credentials are set), ingest and validate the raw files, rebuild the "
    "panels, score every series and write the month's alerts and report.",
)
# What the sensor's runs materialize: the weekly job without the pulls (a file dropped by hand is no reason to call
# the providers' APIs).
WITHOUT_PULLS = (
    dg.AssetSelection.all()
    - dg.AssetSelection.assets(forecast_backtest, detector_evaluation)
    - dg.AssetSelection.groups(FETCH_GROUP)
)

backtest_job = dg.define_asset_job(
    "backtest_job",
    selection=dg.AssetSelection.assets(forecast_backtest),
    description="Rolling-origin backtest of the forecasts and alerts.",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(detector_evaluation),
    description="The detector evaluation: simulations with known truth, the standard detectors, the known episodes.",
)

# The unpartitioned part of the weekly job: what a first run on new data does before any month can be a partition.
UPSTREAM = [*ingested_events.keys, places.key, *monthly_panels.keys]
PULLS = [*acled_pull.keys, *ucdp_pull.keys]


@dataclass(frozen=True)
class MonthsToRefresh:
    """The months a tick asks for, and why, in words shown with the run (its tags) or the skipped tick."""

    keys: list[str]
    why: str


def months_to_refresh(settings: PipelineSettings) -> MonthsToRefresh:
    """The latest month the stored panels cover (possibly still open) and the month before, whose data are still
    being corrected; none before the first ingest has stored panels."""
    panel = settings.warehouse / "country_month_panel.parquet"
    if not panel.exists():
        return MonthsToRefresh([], f"no panels under {settings.warehouse} yet: ingest first")
    latest = pl.scan_parquet(panel).select(pl.col("month").max()).collect().item()
    if latest is None:
        return MonthsToRefresh([], "the stored panels hold no event: ingest first")
    previous = shift_month(latest, -1)
    return MonthsToRefresh(
        [month_key(previous), month_key(latest)],
        f"the data reach {month_label(latest)}: it and {month_label(previous)}, whose events are still being "
        "corrected, are scored again",
    )


def refresh_requests(
    context, settings: PipelineSettings, run_key: str, without_pulls: list[dg.AssetKey] | None = None
) -> list[dg.RunRequest]:
    """Runs for the latest months the data cover that are partitions; before any month is, a run of the pulls, ingest
    and panels alone, which adds them (the next tick scores them). `without_pulls`: the selection of a run that must
    not call the providers (the sensor's)."""
    months = months_to_refresh(settings)
    known = set(month_partitions(context.instance))
    keys = [key for key in months.keys if key in known]
    if not keys:
        return [
            dg.RunRequest(
                run_key=f"{run_key}-ingest",
                asset_selection=UPSTREAM if without_pulls else [*PULLS, *UPSTREAM],
                tags={"sahel/why": f"{months.why}; ingest and panels add the month partitions the data can score"},
            )
        ]
    return [
        dg.RunRequest(
            run_key=f"{run_key}-{key}", partition_key=key, asset_selection=without_pulls, tags={"sahel/why": months.why}
        )
        for key in keys
    ]


@dg.schedule(
    cron_schedule="0 6 * * 1",
    job=weekly_escalation_job,
    execution_timezone="UTC",
    description="Mondays 06:00 UTC: ingest through alerts for the latest month the data cover and the month before.",
)
def weekly_escalation_schedule(context: dg.ScheduleEvaluationContext, settings: PipelineSettings):
    return refresh_requests(context, settings, f"{context.scheduled_execution_time:%Y-%m-%d}")


@dg.sensor(
    job=weekly_escalation_job,
    minimum_interval_seconds=60,
    description="Starts the weekly run (without the pulls) when a CSV is added to or changed in the raw folders by "
    "hand or by `sahel fetch`, or the stored panels reach a new month; files pulled by a Dagster run are scored by "
    "that run.",
)
def raw_files_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings):
    pulled_here = vintages.files_pulled_by(raw_path_list(settings.raw_paths), "dagster")
    files = [(path, name) for path, name in settings.raw_files(context.log.info).files if name not in pulled_here]
    months = months_to_refresh(settings)
    # The panels' latest month is part of the cursor: a run that ingests a file reaching a new month changes it, and
    # the next evaluation scores that month.
    fingerprint = hashlib.sha256(
        "\n".join(
            [*(f"{name}\t{path.stat().st_size}\t{path.stat().st_mtime_ns}" for path, name in files), *months.keys]
        ).encode()
    ).hexdigest()
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no new or changed file among {len(files)}, and the panels did not move ({months.why})")
    context.update_cursor(fingerprint)
    graph = context.repository_def.asset_graph if context.repository_def else None
    without_pulls = sorted(WITHOUT_PULLS.resolve(graph)) if graph else None
    return refresh_requests(context, settings, fingerprint[:16], without_pulls)
