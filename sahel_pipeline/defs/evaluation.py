"""Evaluation asset: the escalation detectors measured against known truth and the standard detectors."""

import dagster as dg
import polars as pl

from sahel_pipeline.core.backtest import load_episodes
from sahel_pipeline.core.evaluation.real import describe_panels
from sahel_pipeline.core.evaluation.run import run_evaluation, write_evaluation
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.resources import EvaluationSettings, ModelSettings, PipelineSettings


@dg.asset(
    group_name="evaluation",
    kinds={"statsmodels", "polars", "csv"},
    ins={"group_month_panel": dg.AssetIn(), "country_month_panel": dg.AssetIn()},
)
def detector_evaluation(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    evaluation: EvaluationSettings,
    group_month_panel: pl.DataFrame,
    country_month_panel: pl.DataFrame,
) -> dg.MaterializeResult:
    """How well the current alert rule, an oracle and the standard detectors (ACLED, HDX Signals, R surveillance)
    catch planted rises at equal false-alarm rates, and the known real episodes: tables and a methods page."""
    result = run_evaluation(
        evaluation.config(models.config()),
        group_month_panel,
        country_month_panel,
        load_episodes(models.known_escalations),
        pool=models.pool,
        real_data=describe_panels(country_month_panel),
        log=context.log.info,
    )
    folder = settings.output_path / "evaluation"
    paths = write_evaluation(result, folder)
    skipped = [f"{i.name}: {i.status}" for i in result.detectors if i.status != "ran"]
    return dg.MaterializeResult(
        value=result.tables["summary"],
        metadata={
            "summary": dg.MetadataValue.md(markdown_table(result.tables["summary"], max_rows=40)),
            "detectors_skipped": dg.MetadataValue.md("\n".join(f"- {s}" for s in skipped) or "_none_"),
            "seconds": round(result.seconds, 1),
            "methods_page": dg.MetadataValue.path(str(paths["html"])),
            "folder": dg.MetadataValue.path(str(folder)),
        },
    )
