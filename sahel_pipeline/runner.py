"""Materializing the asset graph in this process, for the command line and the benchmark."""

import atexit
import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl

from sahel_pipeline.core.backtest import BACKTEST_MONTHS
from sahel_pipeline.core.ingest import DEFAULT_RAW_PATHS
from sahel_pipeline.core.lock import hold_for_this_process
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.backtest import forecast_backtest
from sahel_pipeline.defs.delivery import alert_notifications
from sahel_pipeline.defs.evaluation import detector_evaluation
from sahel_pipeline.defs.fetch import GROUP as FETCH_GROUP
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import DeliverySettings, EvaluationSettings, ModelSettings, PipelineSettings


def skip_final_garbage_collection() -> None:
    """Let the process end without its last garbage collection.

    At exit Python collects every object the libraries created (Dagster, Great Expectations, statsmodels): over a
    second at the end of each `sahel run`, measured, to free memory the operating system takes back anyway. Every
    output is written and closed before then. Registered first, the freeze runs after every other exit handler.
    """
    atexit.register(gc.freeze)


class RunFailed(Exception):
    """A run did not complete; the message says which step or check stopped it and why."""


class Runner:
    """Runs the upstream assets once, then month partitions, on one ephemeral Dagster instance. It does not pull:
    `sahel fetch` does, before."""

    def __init__(
        self,
        raw: list[str],
        out: Path,
        workers: int = 1,
        log_level: str = "INFO",
        backtest_months: int = BACKTEST_MONTHS,
        as_of: str = "",
        delivery: DeliverySettings | None = None,
        evaluation: EvaluationSettings | None = None,
    ):
        self.settings = PipelineSettings(
            raw_paths=os.pathsep.join(str(p) for p in raw) if raw else DEFAULT_RAW_PATHS,
            output_dir=str(out),
            sample_fallback=not raw,
            as_of=as_of,
        )
        # One run at a time per output folder: refused here, before any work, when another process holds it.
        hold_for_this_process(out, "sahel run", log=lambda message: print(f"sahel: {message}", file=sys.stderr))
        models = ModelSettings(workers=workers, backtest_months=backtest_months)
        self.definitions = build_definitions(self.settings, models, delivery, evaluation_settings=evaluation)
        if models.pool is not None:
            models.pool.warm_up()  # every run ends in fitting: the workers import statsmodels while ingest runs
        self.instance = dg.DagsterInstance.ephemeral()
        # INFO shows progress (files read, series fitted) without Dagster's step-by-step debug events.
        self.run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
        self.assets = cast(list[dg.AssetsDefinition], self.definitions.assets)  # build_definitions gives a list
        self.nodes = [*self.assets, *cast(list[dg.AssetChecksDefinition], self.definitions.asset_checks)]
        partitioned = dg.AssetSelection.all() - dg.AssetSelection.assets(forecast_backtest, detector_evaluation)
        self.monthly = partitioned & dg.AssetSelection.keys(*self._partitioned_keys())
        self.upstream = partitioned - self.monthly - dg.AssetSelection.groups(FETCH_GROUP)

    def _partitioned_keys(self) -> list[dg.AssetKey]:
        return [key for asset in self.assets for key in asset.keys if asset.partitions_def == MONTHS]

    def materialize_upstream(self) -> dict:
        """Ingest, validation and panels. Returns the ingest figures."""
        self._run(self.upstream)
        return pl.read_parquet(self.settings.warehouse / "ingest_summary.parquet").row(0, named=True)

    def materialize_month(self, month: str) -> "Notified | None":
        """Scores, forecasts, alerts, report, feeds and notifications of one month, from the stored panels."""
        return notified(self._run(self.monthly, partition_key=month), month)

    def materialize_notifications(self, month: str) -> "Notified | None":
        """A month's notifications, from the alerts and report stored by an earlier run."""
        return notified(self._run(dg.AssetSelection.assets(alert_notifications), partition_key=month), month)

    def materialize_backtest(self) -> None:
        self._run(dg.AssetSelection.assets(forecast_backtest))

    def materialize_evaluation(self) -> None:
        self._run(dg.AssetSelection.assets(detector_evaluation))

    def _run(self, selection: dg.AssetSelection, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.nodes,
            selection=selection,
            partition_key=partition_key,
            instance=self.instance,
            run_config=self.run_config,
            resources=self.definitions.resources,
            raise_on_error=False,
        )
        if not result.success:
            raise RunFailed(failure_message(result))
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
