"""Materializing the asset graph in this process, for the command line and the benchmark.

Runs are recorded in the Dagster instance the UI reads, so `sahel run` shows in `make ui` as a run of
`weekly_escalation_job` (or `backtest_job`) with its materializations, check results and metadata.
"""

import gc
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl
from dagster._core.instance.config import dagster_instance_config

from sahel_pipeline import BACKTEST_MONTHS, PROJECT_DIR
from sahel_pipeline.core.ingest import DEFAULT_RAW_PATHS
from sahel_pipeline.core.lock import hold_for_this_process
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.automation import UPSTREAM
from sahel_pipeline.defs.delivery import alert_notifications
from sahel_pipeline.defs.ingest import ingested_events
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import DeliverySettings, EvaluationSettings, ModelSettings, PipelineSettings
from sahel_pipeline.instance_storage import names_this_in_the_default_folder, sqlite_instance
from sahel_pipeline.runlog import log_file_path, run_loggers
from sahel_pipeline.startup import compile_check_records, freeze_start_up_objects, warm_up_fitting_pool

# The project-local instance `make ui` starts the webserver on; made from deploy/dagster-local.yaml when missing.
LOCAL_DAGSTER_HOME = PROJECT_DIR / ".dagster_home"
LOCAL_INSTANCE_CONFIG = PROJECT_DIR / "deploy" / "dagster-local.yaml"


class RunFailed(Exception):
    """A run did not complete; the message says which step or check stopped it and why, the log file the rest."""

    def __init__(self, message: str, log_path: Path):
        super().__init__(message)
        self.log_path = log_path


def recording_instance() -> dg.DagsterInstance:
    """The instance the UI reads: $DAGSTER_HOME's when it is set (production's, PostgreSQL), else the project's
    `.dagster_home/` (SQLite), the one `make ui` serves. Where it keeps its runs in SQLite files (Dagster's default
    storage, or the local yaml's), this process writes their event log with its connections kept open
    (instance_storage: the same files, about 9 ms less an event)."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        if not (home.is_absolute() and home.is_dir()):
            return dg.DagsterInstance.get()  # Dagster's own error says what is wrong with it
    else:
        home = LOCAL_DAGSTER_HOME
        if not (home / "dagster.yaml").exists():
            home.mkdir(exist_ok=True)
            shutil.copyfile(LOCAL_INSTANCE_CONFIG, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    named = [key for key in ("storage", "event_log_storage", "run_storage", "schedule_storage") if config.get(key)]
    if named == ["event_log_storage"] and names_this_in_the_default_folder(config["event_log_storage"]):
        named = []  # the local yaml's: this storage in the home's folder, which it finds from $DAGSTER_HOME only
    if named:  # a storage the yaml chooses is used as it is
        return dg.DagsterInstance.from_config(str(home))
    return sqlite_instance(home)


class CommandLineSettings(PipelineSettings):
    """The command line's settings: whoever runs `sahel` chooses its folders, so they are not confined to the roots
    that guard a deployed UI (a run launched from the UI uses PipelineSettings, which is)."""

    def allowed_roots(self) -> list[Path] | None:
        return None


class Runner:
    """Runs the upstream assets once, then month partitions, through the code location's jobs, in this process. It
    does not pull: `sahel fetch` does, before.

    Dagster's log goes to `log_path` (by default a new file under `<out>/logs/`); `progress`, a logging handler,
    gets the steps' records for the terminal, and `verbose` adds Dagster's console log instead.
    """

    def __init__(
        self,
        raw: list[str],
        out: Path,
        workers: int = 1,
        backtest_months: int = BACKTEST_MONTHS,
        as_of: str = "",
        delivery: DeliverySettings | None = None,
        evaluation: EvaluationSettings | None = None,
        progress: logging.Handler | None = None,
        verbose: bool = False,
        instance: dg.DagsterInstance | None = None,
    ):
        self.settings = CommandLineSettings(
            raw_paths=os.pathsep.join(str(p) for p in raw) if raw else DEFAULT_RAW_PATHS,
            output_dir=str(out),
            sample_fallback=not raw,
            as_of=as_of,
        )
        # One run at a time per output folder: refused here, before any work, when another process holds it.
        hold_for_this_process(out, "sahel run", log=lambda message: print(f"sahel: {message}", file=sys.stderr))
        models = ModelSettings(workers=workers, backtest_months=backtest_months)
        self.log_path = log_file_path(out)
        self.definitions = dg.Definitions.merge(
            build_definitions(self.settings, models, delivery, evaluation_settings=evaluation),
            dg.Definitions(loggers=run_loggers(self.log_path, verbose, progress)),
        )
        compile_check_records()
        warm_up_fitting_pool(models.pool)  # every run ends in fitting: the workers import statsmodels while ingest runs
        self.instance = instance or recording_instance()
        self.weekly = self.definitions.resolve_job_def("weekly_escalation_job")
        self.backtest = self.definitions.resolve_job_def("backtest_job")
        self.evaluation = self.definitions.resolve_job_def("evaluation_job")
        assets = cast(list[dg.AssetsDefinition], self.definitions.assets)  # build_definitions gives a list
        self.monthly = [key for asset in assets for key in asset.keys if asset.partitions_def == MONTHS]
        # Ingest and panels (the command line does not pull: `sahel fetch` does), in two runs rather than one: a run in
        # this process keeps every output it made in memory to its end (execute_in_process captures them for its
        # result), so the ingest's events (0.85 GiB at 2.5 M events) were held while the panels counted.
        ingest = set(ingested_events.keys)
        self.upstream = ([k for k in UPSTREAM if k in ingest], [k for k in UPSTREAM if k not in ingest])
        freeze_start_up_objects()

    def materialize_upstream(self) -> dict:
        """Ingest, validation and panels. Returns the ingest figures."""
        ingest, panels = self.upstream
        self._run(self.weekly, ingest)
        gc.collect()  # the ingest run's outputs are held in reference cycles (Dagster's step context)
        self._run(self.weekly, panels)
        return pl.read_parquet(self.settings.warehouse / "ingest_summary.parquet").row(0, named=True)

    def materialize_month(self, month: str) -> "Notified | None":
        """Scores, forecasts, alerts, report, feeds and notifications of one month, from the stored panels."""
        return notified(self._run(self.weekly, self.monthly, partition_key=month), month)

    def materialize_notifications(self, month: str) -> "Notified | None":
        """A month's notifications, from the alerts and report stored by an earlier run."""
        return notified(self._run(self.weekly, list(alert_notifications.keys), partition_key=month), month)

    def materialize_backtest(self) -> None:
        self._run(self.backtest)

    def materialize_evaluation(self) -> None:
        self._run(self.evaluation)

    def _run(
        self, job: dg.JobDefinition, keys: list[dg.AssetKey] | None = None, partition_key: str | None = None
    ) -> dg.ExecuteInProcessResult:
        result = job.execute_in_process(
            instance=self.instance,
            run_config={"loggers": {"sahel": {}}},
            partition_key=partition_key,
            asset_selection=keys,
            tags={"sahel/launched_by": "sahel command line"},
            raise_on_error=False,
        )
        if not result.success:
            raise RunFailed(failure_message(result), self.log_path)
        return result


@dataclass(frozen=True)
class Notified:
    """What a run's notifications did, as its materialization and check say."""

    summary: str
    problems: str  # '' when every message due went out (or to the outbox)
    outbox: str  # the dry run's folder, or ''


def notified(result: dg.ExecuteInProcessResult, month: str) -> Notified | None:
    """None when the run did not materialize the month's notifications."""
    found = [
        m for m in result.get_asset_materialization_events()
        if m.asset_key == alert_notifications.key and m.partition == month
    ]
    if not found:
        return None
    materialization = found[-1].materialization
    assert materialization is not None
    metadata = materialization.metadata
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == "notifications_were_delivered"]
    outbox = metadata.get("outbox")
    return Notified(
        summary=str(metadata["summary"].value),
        problems="" if not check or check[-1].passed else (check[-1].description or "see the asset's metadata"),
        outbox=str(outbox.value) if outbox is not None else "",
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed check or step, in one line."""
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            detail = evaluation.description or "see its metadata"
            return f"check {evaluation.check_name} failed: {detail}"
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error is None:
                return f"step {event.step_key} failed"
            while error.cause is not None and "Error occurred while executing" in error.message:
                error = error.cause
            return f"step {event.step_key} failed: {error.message.strip().splitlines()[0]}"
    return "the run failed"
