"""Rolling-origin backtest: would the models have forecast well, and flagged known escalations, at the time?

For every origin month m in the history window the panels are cut at m (nothing later is seen), every series is
scored as of m, and its one-month-ahead forecast is compared with what happened in m + 1. Forecasts are scored by
mean absolute error (of the predictive median), by the continuous ranked probability score for counts (a proper score:
lower is better; for a point forecast it equals the absolute error), and by the share of outcomes inside the 80% and
95% intervals. Two naive forecasts are scored alongside: the last value, and the mean of the last 12 months.

The same rolling scores give the alert statistics: alerts per series-year, and whether and how early each known
escalation episode (`data/known_escalations.csv`) was flagged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import polars as pl

from sahel_pipeline.core.alerts import apply_alert_rule
from sahel_pipeline.core.models import ModelConfig, Predictive
from sahel_pipeline.core.months import KEY_FORMAT, month_index, month_key, month_range, shift_month
from sahel_pipeline.core.panels import INDICATORS
from sahel_pipeline.core.scoring import fitting_pool, score_month
from sahel_pipeline.core.series import SERIES_KEY, long_series

Log = Callable[[str], None]
EPISODE_COLUMNS = ["source", "group", "country", "first_month", "last_month", "description"]
EARLY_MONTHS = 3  # an alert up to three months before an episode's first month counts as an early flag
BACKTEST_MONTHS = 36  # origins of the rolling backtest by default: this many months up to the data's end


@dataclass
class BacktestResult:
    forecasts: pl.DataFrame  # one row per series and origin: forecast, outcome, scores of the model and the naive ones
    summary: pl.DataFrame  # per source, level and indicator
    alert_rates: pl.DataFrame  # alerts per series-year, per source, level and indicator
    episodes: pl.DataFrame  # known escalations: flagged or not, first flag, lead in months


def load_episodes(path: str | Path) -> pl.DataFrame:
    episodes = pl.read_csv(path, infer_schema=False)
    missing = [c for c in EPISODE_COLUMNS if c not in episodes.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(EPISODE_COLUMNS)}")
    return episodes.with_columns(
        pl.col("group").fill_null(""),
        first_month=pl.col("first_month").str.to_date(KEY_FORMAT),
        last_month=pl.col("last_month").str.to_date(KEY_FORMAT),
    )


def run_backtest(
    group_panel: pl.DataFrame,
    country_panel: pl.DataFrame,
    first_origin: dt.date,
    last_origin: dt.date,
    config: ModelConfig,
    episodes: pl.DataFrame,
    indicators: list[str] = INDICATORS,
    workers: int = 1,
    log: Log = print,
) -> BacktestResult:
    origins = month_range(first_origin, last_origin)
    scores, forecasts = [], []
    pool = fitting_pool(workers)
    for n, origin in enumerate(origins, 1):
        month = score_month(group_panel, country_panel, origin, config, pool, lambda _: None, indicators)
        scores.append(month.scores)
        forecasts.append(month.forecasts.filter(pl.col("horizon") == 1))
        log(
            f"backtest origin {month_key(origin)} ({n} of {len(origins)}): "
            f"{month.forecasts.height // config.horizons:,} series forecast"
        )
    all_scores = apply_alert_rule(pl.concat(scores, how="diagonal_relaxed"), config)
    scored = score_forecasts(pl.concat(forecasts, how="diagonal_relaxed"), group_panel, country_panel, indicators)
    return BacktestResult(
        forecasts=scored,
        summary=summarise(scored),
        alert_rates=alert_rates(all_scores),
        episodes=episode_flags(all_scores, episodes, first_origin, last_origin),
    )


def score_forecasts(
    forecasts: pl.DataFrame, group_panel: pl.DataFrame, country_panel: pl.DataFrame, indicators: list[str]
) -> pl.DataFrame:
    """Attach the outcome and the naive forecasts to each one-month-ahead forecast, and score all three."""
    if forecasts.height == 0:
        return forecasts
    actuals = long_series(group_panel, country_panel, indicators, value_name="actual").collect().sort("month")
    history = actuals.with_columns(
        last_value=pl.col("actual"),
        mean12=pl.col("actual").rolling_mean(12, min_samples=1).over(SERIES_KEY),
    )
    joined = forecasts.join(
        actuals.rename({"month": "target_month"}), on=[*SERIES_KEY, "target_month"], how="inner", nulls_equal=True
    ).join(
        history.select(*SERIES_KEY, "month", "last_value", "mean12"),
        on=[*SERIES_KEY, "month"],
        how="left",
        nulls_equal=True,
    )
    crps = [
        Predictive(mu, se, alpha).crps(int(actual))
        for mu, se, alpha, actual in joined.select("expected", "se", "alpha", "actual").iter_rows()
    ]
    return joined.with_columns(
        crps=pl.Series(crps),
        abs_error=(pl.col("median") - pl.col("actual")).abs(),
        in80=pl.col("actual").is_between(pl.col("lo80"), pl.col("hi80")),
        in95=pl.col("actual").is_between(pl.col("lo95"), pl.col("hi95")),
        # a point forecast's CRPS is its absolute error
        last_value_error=(pl.col("last_value") - pl.col("actual")).abs(),
        mean12_error=(pl.col("mean12") - pl.col("actual")).abs(),
    )


def summarise(scored: pl.DataFrame) -> pl.DataFrame:
    if scored.height == 0:
        return pl.DataFrame()
    return (
        scored.group_by("source", "level", "indicator")
        .agg(
            forecasts=pl.len(),
            mae_model=pl.col("abs_error").mean(),
            mae_last_value=pl.col("last_value_error").mean(),
            mae_mean12=pl.col("mean12_error").mean(),
            crps_model=pl.col("crps").mean(),
            crps_last_value=pl.col("last_value_error").mean(),
            crps_mean12=pl.col("mean12_error").mean(),
            coverage80=pl.col("in80").mean(),
            coverage95=pl.col("in95").mean(),
        )
        .sort("source", "level", "indicator")
    )


def alert_rates(scores: pl.DataFrame) -> pl.DataFrame:
    modelled = scores.filter(pl.col("p_value").is_not_null())
    return (
        modelled.group_by("source", "level", "indicator")
        .agg(series_months=pl.len(), alerts=pl.col("alert").sum(), high=(pl.col("severity") == "high").sum())
        .with_columns(alerts_per_series_year=pl.col("alerts") / (pl.col("series_months") / 12))
        .sort("source", "level", "indicator")
    )


def episode_flags(
    scores: pl.DataFrame, episodes: pl.DataFrame, first_origin: dt.date, last_origin: dt.date
) -> pl.DataFrame:
    """For each known episode: was the series flagged (any indicator) from 3 months before its start to its end?"""
    alerts = scores.filter(pl.col("alert")).with_columns(group=pl.col("group_id").fill_null(""))
    rows = []
    for episode in episodes.iter_rows(named=True):
        level = "group" if episode["group"] else "country"
        window_start = shift_month(episode["first_month"], -EARLY_MONTHS)
        covered = first_origin <= episode["first_month"] and episode["last_month"] <= last_origin
        hits = alerts.filter(
            pl.col("source") == episode["source"],
            pl.col("level") == level,
            pl.col("group") == episode["group"],
            pl.col("country") == episode["country"],
            pl.col("month").is_between(window_start, episode["last_month"]),
        ).sort("month")
        first = cast(dt.date, hits["month"].min()) if hits.height else None
        rows.append(
            {
                **{k: episode[k] for k in ("source", "group", "country", "description")},
                "first_month": episode["first_month"],
                "last_month": episode["last_month"],
                "in_backtest_window": covered,
                "flagged": hits.height > 0,
                "first_flag": first,
                "lead_months": month_index(episode["first_month"]) - month_index(first) if first else None,
                "alert_months": hits["month"].n_unique(),
                "indicators": ", ".join(sorted(set(hits["indicator"]))) if hits.height else "",
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)
