"""Jobs, the weekly schedule and the raw-folder sensor."""

import datetime as dt
import hashlib

import dagster as dg

from sahel_pipeline.core import vintages
from sahel_pipeline.core.ingest import raw_path_list
from sahel_pipeline.core.months import month_key, shift_month
from sahel_pipeline.defs.backtest import forecast_backtest
from sahel_pipeline.defs.evaluation import detector_evaluation
from sahel_pipeline.defs.fetch import GROUP as FETCH_GROUP
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import PipelineSettings

weekly_escalation_job = dg.define_asset_job(
    "weekly_escalation_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(forecast_backtest, detector_evaluation),
    partitions_def=MONTHS,
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


def months_to_refresh(now: dt.datetime) -> list[str]:
    """The previous month (its data are still being corrected) and the current, still-open one."""
    this_month = now.date().replace(day=1)
    return [month_key(shift_month(this_month, -1)), month_key(this_month)]


@dg.schedule(
    cron_schedule="0 6 * * 1",
    job=weekly_escalation_job,
    execution_timezone="UTC",
    description="Mondays 06:00 UTC: ingest through alerts for the previous and the current month.",
)
def weekly_escalation_schedule(context: dg.ScheduleEvaluationContext):
    when = context.scheduled_execution_time
    for key in months_to_refresh(when):
        yield dg.RunRequest(run_key=f"{key}@{when:%Y-%m-%d}", partition_key=key)


@dg.sensor(
    job=weekly_escalation_job,
    minimum_interval_seconds=60,
    description="Starts the weekly run (without the pulls) when a CSV is added to or changed in the raw folders by "
    "hand or by `sahel fetch`; files pulled by a Dagster run are scored by that run.",
)
def raw_files_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings):
    pulled_here = vintages.files_pulled_by(raw_path_list(settings.raw_paths), "dagster")
    files = [(path, name) for path, name in settings.raw_files(context.log.info).files if name not in pulled_here]
    fingerprint = hashlib.sha256(
        "\n".join(f"{name}\t{path.stat().st_size}\t{path.stat().st_mtime_ns}" for path, name in files).encode()
    ).hexdigest()
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no new or changed file among {len(files)}")
    context.update_cursor(fingerprint)
    now = dt.datetime.now(dt.UTC)
    keys = sorted(WITHOUT_PULLS.resolve(context.repository_def.asset_graph)) if context.repository_def else None
    return [dg.RunRequest(run_key=f"{fingerprint[:16]}-{key}", partition_key=key, asset_selection=keys)
            for key in months_to_refresh(now)]
