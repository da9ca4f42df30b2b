"""Backtest asset: how the models would have forecast, and flagged known escalations, at the time."""

import dagster as dg
import polars as pl

from sahel_pipeline.core.backtest import load_episodes, run_backtest
from sahel_pipeline.core.months import month_key, shift_month
from sahel_pipeline.core.panels import last_complete_month
from sahel_pipeline.core.storage import written_aside
from sahel_pipeline.core.text import spreadsheet_safe
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings


@dg.asset(
    group_name="models",
    kinds={"statsmodels", "polars", "csv"},
    ins={"group_month_panel": dg.AssetIn(), "country_month_panel": dg.AssetIn(), "regime_periods": dg.AssetIn()},
)
def forecast_backtest(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    group_month_panel: pl.DataFrame,
    country_month_panel: pl.DataFrame,
    regime_periods: pl.DataFrame,
) -> dg.MaterializeResult:
    """Rolling-origin backtest of the forecasts at horizons 1-6 (CRPS, interval and log scores, coverage, against
    ViEWS' baselines and the former flat level) and of the alerts."""
    last = last_complete_month(country_month_panel)
    first, last_origin = shift_month(last, -models.backtest_months), shift_month(last, -1)
    result = run_backtest(
        group_month_panel, country_month_panel, first, last_origin, models.config(regime_periods.to_dicts()),
        load_episodes(models.known_escalations), workers=models.workers, log=context.log.info,
    )
    folder = settings.output_path / "backtest"
    folder.mkdir(parents=True, exist_ok=True)
    with written_aside() as aside:
        for name in ("by_horizon", "summary", "alert_rates", "episodes", "forecasts"):
            spreadsheet_safe(getattr(result, name)).write_csv(aside(folder / f"{name}.csv"))
    return dg.MaterializeResult(
        value=result.summary,
        metadata={
            "origins": f"{month_key(first)} to {month_key(last_origin)}",
            "forecasts_scored": result.forecasts.height,
            "by_horizon": dg.MetadataValue.md(markdown_table(result.by_horizon)),
            "alerts_per_series_year": dg.MetadataValue.md(markdown_table(result.alert_rates)),
            "known_episodes": dg.MetadataValue.md(markdown_table(result.episodes.drop("description"))),
            "folder": dg.MetadataValue.path(str(folder)),
        },
    )
