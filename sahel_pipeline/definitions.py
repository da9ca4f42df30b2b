"""The code location: every asset, check, job, schedule and sensor of sahel_pipeline."""

import os

import dagster as dg

from sahel_pipeline.defs import (
    alerts,
    automation,
    backtest,
    delivery,
    evaluation,
    fetch,
    ingest,
    models,
    panels,
    spatial,
)
from sahel_pipeline.defs.executor import pipeline_executor
from sahel_pipeline.defs.fetch import AcledApi, UcdpApi
from sahel_pipeline.defs.io_manager import parquet_warehouse
from sahel_pipeline.defs.resources import DeliverySettings, EvaluationSettings, ModelSettings, PipelineSettings

# A run's steps execute in one process, as `sahel run` executes them, and the fits on a pool of worker processes
# (ModelSettings.workers). A process per step, even forked from a server with the libraries preloaded, made a run
# launched from the UI take about twice the command line's time on the sample: the server's imports, then each
# process loading the job, the instance and its inputs again. The model shards stay separate assets, so that Celery
# workers spread them over machines when the deployment names a broker ($SAHEL_CELERY_BROKER, defs/executor.py).
EXECUTOR = pipeline_executor


def build_definitions(
    settings: PipelineSettings,
    model_settings: ModelSettings | None = None,
    delivery_settings: DeliverySettings | None = None,
    acled: AcledApi | None = None,
    ucdp: UcdpApi | None = None,
    evaluation_settings: EvaluationSettings | None = None,
) -> dg.Definitions:
    """Definitions bound to one set of paths: the code location uses environment variables, tests and the CLI
    their own. Without API resources the pulls have no credentials and pull nothing."""
    return dg.Definitions(
        assets=[
            fetch.acled_pull,
            fetch.ucdp_pull,
            ingest.ingested_events,
            spatial.places,
            panels.monthly_panels,
            *models.SERIES_SCORES,
            spatial.buffer_scores,
            models.series_forecasts,
            alerts.month_alerts,
            delivery.alert_feeds,
            delivery.alert_notifications,
            backtest.forecast_backtest,
            evaluation.detector_evaluation,
        ],
        jobs=[automation.weekly_escalation_job, automation.backtest_job, automation.evaluation_job],
        schedules=[automation.weekly_escalation_schedule],
        sensors=[automation.raw_files_sensor],
        resources={
            "settings": settings,
            "models": model_settings or ModelSettings(),
            # Channels unset here are read from SAHEL_SMTP_*, SAHEL_SLACK_WEBHOOK_URL... when the notifications run.
            "delivery": delivery_settings or DeliverySettings(),
            "acled": acled or AcledApi(),
            "ucdp": ucdp or UcdpApi(),
            "evaluation": evaluation_settings or EvaluationSettings(),
            "io_manager": parquet_warehouse,
        },
        executor=EXECUTOR,
    )


# Paths, credentials and what to pull come from the environment, read when a run starts (`dagster dev` loads them
# from .env). Dagster has no default for an unset variable (dagster-io/dagster#3947): each must be set, empty where
# it does not apply (empty credentials: nothing is pulled; an empty URL: the provider's own service).
defs = build_definitions(
    PipelineSettings(raw_paths=dg.EnvVar("SAHEL_RAW_PATHS"), output_dir=dg.EnvVar("SAHEL_OUTPUT_DIR")),
    ModelSettings(workers=os.cpu_count() or 1),  # every core fits, as from the command line
    acled=AcledApi(
        email=dg.EnvVar("ACLED_EMAIL"),
        password=dg.EnvVar("ACLED_PASSWORD"),
        base_url=dg.EnvVar("SAHEL_ACLED_API_URL"),
        countries=dg.EnvVar("SAHEL_FETCH_COUNTRIES"),
    ),
    ucdp=UcdpApi(
        token=dg.EnvVar("UCDP_API_TOKEN"),
        base_url=dg.EnvVar("SAHEL_UCDP_API_URL"),
        versions=dg.EnvVar("SAHEL_UCDP_VERSIONS"),
        countries=dg.EnvVar("SAHEL_FETCH_COUNTRIES"),
    ),
)
