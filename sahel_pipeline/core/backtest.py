"""Rolling-origin backtest: would the models have forecast well, and flagged known escalations, at the time?

For every origin month m in the history window the panels are cut at m (nothing later is seen), every series is
scored as of m, and its forecasts for m + 1 .. m + 6 are compared with what happened (a horizon whose month is past
the data's end is not scored, so horizon 6 has five fewer origins than horizon 1). Each forecast is scored by

* the CRPS for counts (the ranked probability score over unit bins; for a point forecast, the absolute error),
* the weighted interval score of its 50%, 80% and 95% intervals and median (Bracher et al. 2021; it approximates
  the CRPS from the quantiles alone),
* the log score, -log P(Y = outcome) (distributions only: a point forecast's is infinite when it misses),
* the coverage of its 50%, 80% and 95% central intervals: the share of outcomes inside, and the calibration, the
  same share computed on the randomised PIT. A count interval [q_a, q_1-a] holds more than its nominal share when
  counts are small (a forecast with P(0) = 0.6 has 0 in its 50% interval, and covers every 0): the calibration
  columns take that out and are exactly nominal for a calibrated forecast (Czado, Gneiting & Held 2009).

against the baselines ViEWS scores its models against, each with a predictive distribution so that the CRPS is
fair: zero, the last value and the mean of the last 12 months (points), the "conflictology" forecast (the last 12
months' counts as equally likely outcomes), and the flat local level this project forecast with before (a
negative binomial of the level weighted by a two-month half-life, the same for every horizon).

The same rolling scores give the alert statistics: alerts per series-year, and whether and how early each known
escalation episode (`data/known_escalations.csv`) was flagged.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl

from sahel_pipeline.core import negbin
from sahel_pipeline.core.alerts import apply_alert_rule
from sahel_pipeline.core.forecast import QUANTILE_COLUMNS, QUANTILES, Counts
from sahel_pipeline.core.models import ModelConfig, Predictive, group_rate
from sahel_pipeline.core.months import KEY_FORMAT, month_index, month_key, month_range, shift_month
from sahel_pipeline.core.panels import DEMONSTRATIONS, INDICATORS
from sahel_pipeline.core.pool import fitting_pool
from sahel_pipeline.core.scoring import build_tasks, score_month
from sahel_pipeline.core.series import SERIES_COLUMNS, SERIES_KEY, long_series

Log = Callable[[str], None]
EPISODE_COLUMNS = ["source", "group", "country", "first_month", "last_month", "description"]
EARLY_MONTHS = 3  # an alert up to three months before an episode's first month counts as an early flag
INTERVALS = (0.5, 0.8, 0.95)
BASELINES = ("zero", "last_value", "mean12", "conflictology", "flat_level")
HISTORY = 12  # months behind the mean and the conflictology baselines (ViEWS: the last 12)
FLAT_HALF_LIFE = 2.0  # the flat local level as it was: weights halving every two months


@dataclass
class BacktestResult:
    forecasts: pl.DataFrame  # one row per series, origin and horizon: forecast, outcome, the scores of each forecast
    summary: pl.DataFrame  # per source, level, indicator and horizon
    by_horizon: pl.DataFrame  # per level and horizon, over sources and indicators
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
    scores, forecasts, baselines = [], [], []
    pool = fitting_pool(workers)
    for n, origin in enumerate(origins, 1):
        month = score_month(group_panel, country_panel, origin, config, pool, lambda _: None, indicators)
        scores.append(month.scores)
        forecasts.append(month.forecasts)
        baselines.append(baseline_inputs(group_panel, country_panel, origin, config, indicators, month.scores))
        log(
            f"backtest origin {month_key(origin)} ({n} of {len(origins)}): "
            f"{month.forecasts.height // config.horizons:,} series forecast"
        )
    all_scores = apply_alert_rule(pl.concat(scores, how="diagonal_relaxed"), config)
    scored = score_forecasts(
        pl.concat(forecasts, how="diagonal_relaxed"),
        pl.concat(baselines, how="diagonal_relaxed"),
        group_panel,
        country_panel,
        indicators,
    )
    return BacktestResult(
        forecasts=scored,
        summary=summarise(scored, ["source", "level", "indicator", "horizon"]),
        by_horizon=summarise(scored, ["level", "horizon"]),
        alert_rates=alert_rates(all_scores),
        episodes=episode_flags(all_scores, episodes, first_origin, last_origin),
    )


def flat_level(y: np.ndarray, exposure: np.ndarray, alpha: float, half_life: float = FLAT_HALF_LIFE) -> Predictive:
    """The flat local level: an intercept-only count GLM with exponentially decaying weights, newest month last."""
    # Prior weights 1 for the newest month, halving every half_life months: about half_life/ln 2 months of information.
    weights = 0.5 ** (np.arange(len(y))[::-1] / half_life)
    if y.sum() == 0:
        return Predictive(0.5 / float((weights * exposure).sum()), 1.0, 0.0)
    log_rate, se = group_rate(y, exposure, alpha, weights)
    return Predictive(math.exp(log_rate), se, alpha)


def baseline_inputs(
    group_panel: pl.DataFrame,
    country_panel: pl.DataFrame,
    origin: dt.date,
    config: ModelConfig,
    indicators: list[str],
    scores: pl.DataFrame,
) -> pl.DataFrame:
    """Per series forecast at `origin`: the last value, the last 12 months, and the flat level's distribution (with the
    dispersion of the series' baseline fit)."""
    schema: dict[str, pl.DataType] = {
        **{k: pl.String() for k in SERIES_COLUMNS},
        "month": pl.Date(),
        "last_value": pl.Float64(),
        "history": pl.List(pl.Float64),
        "flat_mean": pl.Float64(),
        "flat_dispersion": pl.Float64(),
    }
    if "alpha" not in scores.columns:  # nothing was modelled
        return pl.DataFrame(schema=schema)
    modelled = scores.filter(pl.col("alpha").is_not_null()).select(*SERIES_COLUMNS, "alpha")
    alphas = {tuple(row[:-1]): row[-1] for row in modelled.iter_rows()}
    tasks, _ = build_tasks(group_panel, country_panel, origin, config, indicators)
    rows = []
    for task in tasks:
        if task.key not in alphas:  # not modelled: no forecast to compare with
            continue
        window = slice(max(0, len(task.counts) - config.window_months), len(task.counts))
        flat = flat_level(task.counts[window], task.exposure[window], alphas[task.key])
        rows.append((*task.key, origin, task.counts[-1], task.counts[-HISTORY:].tolist(), flat.mu, flat.dispersion))
    return pl.DataFrame(rows, schema=schema, orient="row")


def score_forecasts(
    forecasts: pl.DataFrame,
    baselines: pl.DataFrame,
    group_panel: pl.DataFrame,
    country_panel: pl.DataFrame,
    indicators: list[str],
) -> pl.DataFrame:
    """Attach the outcome and the baselines to each forecast, and score them all."""
    if forecasts.height == 0:
        return forecasts
    actuals = long_series(group_panel, country_panel, indicators, value_name="actual").collect()
    actuals = actuals.rename({"month": "target_month"})
    joined = (
        forecasts.join(actuals, on=[*SERIES_KEY, "target_month"], how="inner", nulls_equal=True)
        .join(baselines.drop("group_name"), on=[*SERIES_KEY, "month"], how="left", nulls_equal=True)
        .filter(pl.col("history").is_not_null())
        .sort([*SERIES_KEY, "month", "horizon"])  # a join's row order varies from run to run: the table's must not
    )
    y = joined["actual"].to_numpy().astype(float)
    model_q = np.column_stack([joined[c].to_numpy() for c in QUANTILE_COLUMNS]).astype(float)
    model = Counts(np.log(joined["rate"].to_numpy()), joined["rate_log_sd"].to_numpy() ** 2, joined["alpha"].to_numpy())
    history = np.array(joined["history"].to_list(), dtype=float)
    last, flat_mu, flat_d = (joined[c].to_numpy() for c in ("last_value", "flat_mean", "flat_dispersion"))
    points = {"zero": np.zeros_like(y), "last_value": last, "mean12": history.mean(axis=1)}
    quantile_sets = {
        "model": model_q,
        **{name: np.repeat(v[:, None], len(QUANTILES), axis=1) for name, v in points.items()},
        "conflictology": sample_quantiles(history, QUANTILES),
        "flat_level": negbin.quantiles(flat_mu, flat_d, QUANTILES).astype(float),
    }
    columns = {
        "crps": model.crps(y),
        **{f"crps_{name}": np.abs(v - y) for name, v in points.items()},
        "crps_conflictology": sample_crps(history, y),
        "crps_flat_level": negbin.crps(y, flat_mu, flat_d),
        "log_score": -model.logpmf(y),
        "log_score_flat_level": -negbin.logpmf(y, flat_mu, flat_d),
        **{
            ("wis" if name == "model" else f"wis_{name}"): weighted_interval_score(y, q)
            for name, q in quantile_sets.items()
        },
    }
    below, at_most = model.cdf(y - 1), model.cdf(y)
    for level in INTERVALS:
        low, high = _bounds(level)
        columns[f"in{round(level * 100)}"] = (model_q[:, low] <= y) & (y <= model_q[:, high])
        columns[f"pit{round(level * 100)}"] = pit_coverage(below, at_most, level)
    return joined.drop("history").with_columns(**{name: pl.Series(values) for name, values in columns.items()})


def _bounds(level: float) -> tuple[int, int]:
    """Positions in QUANTILES of the central interval's ends."""
    tail = (1 - level) / 2
    return QUANTILES.index(round(tail, 3)), QUANTILES.index(round(1 - tail, 3))


def weighted_interval_score(y: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """WIS of the central 50/80/95% intervals and the median, from quantiles at QUANTILES (columns)."""
    median = quantiles[:, QUANTILES.index(0.5)]
    total = 0.5 * np.abs(y - median)
    for level in INTERVALS:
        a = 1 - level
        low, high = (quantiles[:, i] for i in _bounds(level))
        interval = (high - low) + (2 / a) * np.maximum(low - y, 0) + (2 / a) * np.maximum(y - high, 0)
        total = total + a / 2 * interval
    return total / (len(INTERVALS) + 0.5)


def pit_coverage(below: np.ndarray, at_most: np.ndarray, level: float) -> np.ndarray:
    """Probability that the randomised PIT, uniform on [F(y - 1), F(y)], falls in the central interval of `level`."""
    low, high = (1 - level) / 2, 1 - (1 - level) / 2
    inside = np.clip(np.minimum(at_most, high) - np.maximum(below, low), 0.0, None)
    width = at_most - below
    return np.where(width > 0, inside / np.maximum(width, 1e-300), ((below >= low) & (below <= high)).astype(float))


def sample_crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of an empirical distribution (rows of equally likely values): E|X - y| - E|X - X'| / 2."""
    spread = np.abs(samples[:, :, None] - samples[:, None, :]).mean(axis=(1, 2))
    return np.abs(samples - y[:, None]).mean(axis=1) - 0.5 * spread


def sample_quantiles(samples: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Smallest sample value whose empirical CDF reaches each q (the inverse of the step function)."""
    ordered = np.sort(samples, axis=1)
    n = samples.shape[1]
    return ordered[:, [min(n - 1, max(0, math.ceil(q * n) - 1)) for q in qs]]


def summarise(scored: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Mean scores of the model and the baselines, and the model's coverage, per group of `by`."""
    if scored.height == 0:
        return pl.DataFrame()
    crps = [pl.col("crps").mean().alias("crps_model"), *(pl.col(f"crps_{b}").mean() for b in BASELINES)]
    wis = [pl.col("wis").mean().alias("wis_model"), *(pl.col(f"wis_{b}").mean() for b in BASELINES)]
    coverage = [pl.col(f"{kind}{round(level * 100)}").mean() for kind in ("in", "pit") for level in INTERVALS]
    best = pl.min_horizontal(*(f"crps_{b}" for b in BASELINES))
    return (
        scored.group_by(by)
        .agg(pl.len().alias("forecasts"), *crps, *wis, pl.col("log_score").mean().alias("log_score_model"),
             pl.col("log_score_flat_level").mean(), *coverage)
        .with_columns(crps_vs_best_baseline=pl.col("crps_model") / best)
        .sort(by)
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
    """For each known episode: was the series flagged (any indicator of violence) from 3 months before its start to
    its end? The episodes are escalations of armed violence: a rise in demonstrations does not flag one."""
    alerts = scores.filter(pl.col("alert"), pl.col("indicator") != DEMONSTRATIONS).with_columns(
        group=pl.col("group_id").fill_null("")
    )
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
