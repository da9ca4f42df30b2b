"""Scoring a month: every series of the panels through the count models, fanned out over processes.

A series is one indicator of one (source, armed group, country) or (source, country). Series too sparse to model
(fewer events in the whole baseline and recent window than the indicator's minimum alert count, so they could not
alert) and groups whose type is not alerted (protesters, civilians, ...: `ModelConfig.alerted_types`) are listed as
skipped with the reason, not fitted. The rest go to `models.score_series`, in chunks, on as many worker processes as
asked.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from sahel_pipeline.core.forecast import QUANTILE_COLUMNS
from sahel_pipeline.core.models import (
    BaselineFit,
    ChunkScores,
    ModelConfig,
    SeriesTask,
    input_keys,
    score_chunk,
)
from sahel_pipeline.core.months import index_month_expr, month_index_expr, month_key, window_start
from sahel_pipeline.core.panels import COUNTRY_ONLY_INDICATORS, INDICATORS
from sahel_pipeline.core.pool import FittingPool
from sahel_pipeline.core.series import SERIES_COLUMNS, long_series

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

CHUNK = 64
DIGEST_COLUMNS = ["baseline_key", "level_key", "window_key"]  # models.input_keys, as score columns
Log = Callable[[str], None]

# A forecast row after the series' key (models.forecast_chunk makes them): the columns of stored shards' nested
# forecasts and of the forecasts CSV, in order; and an exceedance row's, for the exceedance CSV.
FORECAST_SCHEMA = {
    "horizon": pl.Int64,
    "target_month": pl.Date,
    "mean": pl.Float64,
    **{column: pl.Int64 for column in QUANTILE_COLUMNS},
    "rate": pl.Float64,
    "rate_log_sd": pl.Float64,
    "alpha": pl.Float64,
}
EXCEEDANCE_SCHEMA = {
    "months": pl.Int64,
    "first_month": pl.Date,
    "last_month": pl.Date,
    "basis": pl.String,
    "at_least": pl.Int64,
    "probability": pl.Float64,
}
# A score row after the series' key (models.score_chunk makes them; a series skipped for a short history fills the
# first few). Frames are built with it rather than inferred from the rows: a shard whose fitted series are all
# country-level would otherwise get a Null-typed group_id, and a month with only skipped series would lack columns.
SCORE_SCHEMA: dict[str, PolarsDataType] = {
    "observed": pl.Int64, "days_covered": pl.Int64, "partial": pl.Boolean, "recent_sum": pl.Int64,
    "recent_active_months": pl.Int64, "baseline_months": pl.Int64, "baseline_sum": pl.Int64,
    "baseline_mean": pl.Float64, "model": pl.String,
    "note": pl.String, "alpha": pl.Float64, "log_mu": pl.Float64, "se": pl.Float64, "slope": pl.Float64,
    "trend_per_year": pl.Float64, "downweighted": pl.Int64, "expected": pl.Float64, "upper": pl.Int64,
    "p_value": pl.Float64, "level_rate": pl.Float64, "level_alpha": pl.Float64, "window_expected": pl.Float64,
    "window_p_value": pl.Float64, "previous_exceedances": pl.Int64, "rate_ratio": pl.Float64,
    "rate_ratio_low": pl.Float64, "rate_ratio_high": pl.Float64, "rate_ratio_method": pl.String,
    "break_label": pl.String, "break_month": pl.Date, "break_rate_ratio": pl.Float64, "break_low": pl.Float64,
    "break_high": pl.Float64, "break_before": pl.Int64, "break_p_value": pl.Float64,
    "level_state": pl.List(pl.Float64), "detection_state": pl.List(pl.Float64),
}
KEY_SCHEMA = {k: pl.String for k in SERIES_COLUMNS}
NESTED = {"forecasts": FORECAST_SCHEMA, "exceedance": EXCEEDANCE_SCHEMA}  # per-series rows kept in list columns
NESTED_ORDER = {"forecasts": ["horizon"], "exceedance": ["months", "basis", "at_least"]}


@dataclass
class MonthScores:
    scores: pl.DataFrame  # one row per modelled or skipped series
    forecasts: pl.DataFrame  # one row per modelled series and horizon
    exceedance: pl.DataFrame  # one row per modelled series, period (next month, next three months) and threshold
    reuse: dict[str, int] = field(default_factory=dict)  # how much of an earlier run's work was kept


def nest_forecasts(result: MonthScores) -> pl.DataFrame:
    """One row per series: its forecast months and exceedance rows go into list columns, so that a month's scores
    are one table."""
    scores = result.scores
    for column, schema in NESTED.items():
        rows = getattr(result, column)
        if rows.height == 0:
            scores = scores.with_columns(pl.lit(None, pl.List(pl.Struct(schema))).alias(column))
            continue
        nested = rows.group_by(SERIES_COLUMNS).agg(pl.struct(list(schema)).alias(column))
        scores = scores.join(nested, on=SERIES_COLUMNS, how="left", nulls_equal=True, maintain_order="left")
    return scores


def unnest_forecasts(scores: pl.DataFrame, column: str = "forecasts") -> pl.DataFrame:
    """The rows of a list column of nested scores (forecasts, or exceedance), one each, in the CSVs' order."""
    if column not in scores.columns:
        return pl.DataFrame(schema={"month": pl.Date, **KEY_SCHEMA, **NESTED[column]})
    return (
        scores.filter(pl.col(column).is_not_null())
        .select("month", *SERIES_COLUMNS, column)
        .explode(column)
        .unnest(column)
        .sort("source", "country", "level", "group_id", "indicator", *NESTED_ORDER[column], nulls_last=True)
    )


def split_forecasts(scores: pl.DataFrame) -> MonthScores:
    """Nested scores back into scores, forecast and exceedance rows (the inverse of nest_forecasts)."""
    return MonthScores(
        scores.drop(*NESTED, strict=False), unnest_forecasts(scores), unnest_forecasts(scores, "exceedance")
    )


def shard_of(country: str, shards: int) -> int:
    """A stable shard number for a country, so that fan-out partitions always get the same countries."""
    return zlib.crc32(country.encode()) % shards


def build_tasks(
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    month: dt.date,
    config: ModelConfig,
    indicators: list[str] = INDICATORS,
    shard: tuple[int, int] | None = None,
) -> tuple[list[SeriesTask], pl.DataFrame]:
    """Series to fit at `month`, and the ones skipped with a reason (sparse, or no data for the month).

    Only the months the models can use are read: the baseline and recent windows, and the period a configured break
    date may reach back to.
    """
    group_panel, country_panel = group_panel.lazy(), country_panel.lazy()
    if shard is not None:
        k, n = shard
        countries = pl.concat([group_panel.select("country"), country_panel.select("country")]).unique().collect()
        mine = [c for c in countries["country"].to_list() if shard_of(c, n) == k]
        group_panel = group_panel.filter(pl.col("country").is_in(mine))
        country_panel = country_panel.filter(pl.col("country").is_in(mine))
    first = window_start(month, config.history_months)
    series = long_series(
        group_panel, country_panel, indicators, first=first, last=month,
        carry=("group_name", "group_type", "days_covered"),
    ).filter((pl.col("level") == "country") | ~pl.col("indicator").is_in(sorted(COUNTRY_ONLY_INDICATORS)))
    return series_tasks(series, month, config)


def series_tasks(series: pl.LazyFrame, month: dt.date, config: ModelConfig) -> tuple[list[SeriesTask], pl.DataFrame]:
    """Long series (SERIES_COLUMNS, month, count, days_covered; the history window up to `month`) as tasks to fit,
    and the ones skipped with a reason. Every kind of count series comes through here: the panels' and the spatial
    buffers' (spatial.buffer_tasks)."""
    window_first = window_start(month, config.window_months)
    collected = (
        series.group_by(SERIES_COLUMNS)
        .agg(
            months=month_index_expr("month").sort(),
            counts=pl.col("count").sort_by("month"),
            exposure=(pl.col("days_covered") / pl.col("month").dt.month_end().dt.day()).sort_by(pl.col("month")),
            last_month=pl.col("month").max(),
            window_sum=pl.col("count").filter(pl.col("month") >= window_first).sum(),
        )
        .sort(SERIES_COLUMNS)  # the groups come in any order: the stored scores' rows would change from run to run
        .collect()
    )
    min_counts = pl.col("indicator").replace_strict(config.min_counts, default=5)
    reasons = (
        pl.when((pl.col("level") == "group") & ~pl.col("group_type").is_in(list(config.alerted_types)))
        .then(pl.format("type not alerted: {}", "group_type"))
        .when(pl.col("last_month") < month)
        .then(pl.lit("no data for this month"))
        .when(pl.col("window_sum") < min_counts)
        .then(pl.lit("sparse: too few events to model"))
    )
    collected = collected.with_columns(reason=reasons)
    skipped = collected.filter(pl.col("reason").is_not_null()).select(
        *SERIES_COLUMNS, model=pl.lit("skipped"), note="reason", recent_sum=pl.lit(None, pl.Int64)
    )
    # Each series' months are a slice of flat arrays (its lists taken to Python row by row were an eighth of the run's
    # process's time in a weekly update).
    ready = collected.filter(pl.col("reason").is_null())
    ends = np.cumsum(ready["counts"].list.len().to_numpy())
    starts = ends - ready["counts"].list.len().to_numpy()
    months = ready["months"].explode().to_numpy().astype(np.int64)
    counts = ready["counts"].explode().to_numpy().astype(float)
    exposure = ready["exposure"].explode().to_numpy().astype(float)
    indicator, country = SERIES_COLUMNS.index("indicator"), SERIES_COLUMNS.index("country")
    tasks = [
        SeriesTask(key, key[indicator], key[country], months[a:b], counts[a:b], exposure[a:b])
        for key, a, b in zip(ready.select(SERIES_COLUMNS).rows(), starts.tolist(), ends.tolist(), strict=True)
    ]
    return tasks, skipped


# Milliseconds of a worker's CPU per series, measured on the benchmark's weekly update (chunks of 64 to 1,000): a
# full fit (7.5-9.6), and a rescore on a kept baseline fit (0.9-1.6: the detector's levels kept too, and often the
# forecast filter's run up to the last month).
FULL_FIT_MS, REUSED_FIT_MS = 8.0, 1.0
# Below this much work, starting other processes costs more than it saves; once they run, feeding them costs little.
POOL_WORTH_MS, STARTED_POOL_WORTH_MS = 3000, 100
# Chunks a worker gets, of about equal work: a weekly update's few refits would otherwise fall in a handful of
# chunks of 64 and keep one worker busy while the other idles. More chunks balance better and cost more to send.
CHUNKS_PER_WORKER = 4
# Work of a chunk at most: a cold run's refits in chunks of about 64 as before (the last chunks finish close
# together), and its arrays (months x candidates a series) stay small. At least: each chunk filters its months once
# whatever its size (a shard of 400 ms of work cut in eight took the workers 0.1-0.2 s more CPU than in four).
MIN_CHUNK_MS, MAX_CHUNK_MS = 100, 500


def task_work(task: SeriesTask) -> float:
    """Milliseconds a task is expected to cost."""
    return REUSED_FIT_MS if task.cached_fit else FULL_FIT_MS


def balanced_chunks(tasks: list[SeriesTask], workers: int) -> list[list[int]]:
    """The tasks (by position) in chunks of about equal work, the dearest tasks first: the workers take the chunks in
    turn, so each ends with light ones and they finish together."""
    work = [task_work(task) for task in tasks]
    target = min(max(sum(work) / (CHUNKS_PER_WORKER * workers), MIN_CHUNK_MS), MAX_CHUNK_MS)
    chunks: list[list[int]] = [[]]
    held = 0.0
    for i in sorted(range(len(tasks)), key=lambda i: -work[i]):
        if chunks[-1] and held >= target:
            chunks.append([])
            held = 0.0
        chunks[-1].append(i)
        held += work[i]
    return chunks if tasks else []


def score_tasks(
    tasks: list[SeriesTask], config: ModelConfig, pool: FittingPool | None = None, log: Log = print
) -> MonthScores:
    """Fit every task, on the pool when there is enough work for it. Logs progress as chunks finish. The rows come in
    the tasks' order."""
    work_ms = sum(task_work(task) for task in tasks)
    started = time.perf_counter()
    use_pool = pool is not None and work_ms > (STARTED_POOL_WORTH_MS if pool.started else POOL_WORTH_MS)
    order = balanced_chunks(tasks, pool.workers if pool is not None and use_pool else 1)
    chunks = [[tasks[i] for i in chunk] for chunk in order]
    if pool is not None and use_pool:
        done_chunks = pool.executor().map(partial(score_chunk, config=config), chunks)
    else:
        done_chunks = (score_chunk(chunk, config) for chunk in chunks)
    results: list[ChunkScores] = []
    done = 0
    for result in done_chunks:
        results.append(result)
        done += len(result.keys)
        _progress(done, len(result.keys), len(tasks), started, log)
    return _frames(results, np.array([i for chunk in order for i in chunk], dtype=np.int64))


def _progress(done: int, last_chunk: int, total: int, started: float, log: Log) -> None:
    every = max(CHUNK, total // 10)
    if done == total or done // every > (done - last_chunk) // every:
        elapsed = time.perf_counter() - started
        log(f"fitted {done:,} of {total:,} series ({done / max(elapsed, 1e-9):.0f} series/s)")


def _frames(chunks: list[ChunkScores], positions: np.ndarray) -> MonthScores:
    """The chunks' columns as frames, their series put back in the tasks' order (`positions`: the task of each
    series, chunk after chunk)."""
    keys = pl.DataFrame([key for chunk in chunks for key in chunk.keys], schema=KEY_SCHEMA, orient="row")
    columns = {
        name: [value for chunk in chunks for value in chunk.scores.get(name, [None] * len(chunk.keys))]
        for name in SCORE_SCHEMA
    }
    scores = pl.concat([keys, pl.DataFrame(columns, schema=SCORE_SCHEMA)], how="horizontal")
    forecasts = _rows_frame(keys, positions, [(c.forecasts, c.forecast_rows) for c in chunks], FORECAST_SCHEMA)
    exceedance = _rows_frame(keys, positions, [(c.exceedance, c.exceedance_rows) for c in chunks], EXCEEDANCE_SCHEMA)
    return MonthScores(scores[np.argsort(positions)], forecasts, exceedance)


def _rows_frame(
    keys: pl.DataFrame,
    positions: np.ndarray,
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]],
    schema: Mapping[str, PolarsDataType],
) -> pl.DataFrame:
    """Per-series rows (each chunk's columns, and its series' numbers of rows) under their series key, the series in
    the tasks' order, with month numbers (models give them so) as dates."""
    months = [column for column, dtype in schema.items() if dtype == pl.Date]
    rows = np.concatenate([n for _, n in parts]) if parts else np.zeros(0, dtype=np.int64)
    held = [part for part, n in parts if n.sum()]
    columns = {name: np.concatenate([part[name] for part in held]) for name in schema} if held else None
    values = pl.DataFrame(columns, schema={**schema, **dict.fromkeys(months, pl.Int64)})
    frame = pl.concat([keys[np.repeat(np.arange(len(rows)), rows)], values], how="horizontal")
    # stable: each series' rows stay in their order
    in_order = frame[np.argsort(np.repeat(positions, rows), kind="stable")]
    return in_order.with_columns(index_month_expr(c).alias(c) for c in months)


def score_month(
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    month: dt.date,
    config: ModelConfig,
    pool: FittingPool | None = None,
    log: Log = print,
    indicators: list[str] = INDICATORS,
    shard: tuple[int, int] | None = None,
    previous: MonthScores | None = None,
) -> MonthScores:
    """Scores and forecasts of every series at `month` (optionally only the countries of one shard).

    `previous` is what an earlier run scored for the same month: a series whose inputs are unchanged keeps its score,
    and one whose baseline is unchanged keeps its baseline fit. The results are the same as without it, only faster.
    """
    tasks, skipped = build_tasks(group_panel, country_panel, month, config, indicators, shard)
    digests = pl.DataFrame(
        [(*task.key, *input_keys(task, config)) for task in tasks],
        schema={**KEY_SCHEMA, **{k: pl.String for k in DIGEST_COLUMNS}},
        orient="row",
    )
    kept, tasks = reuse_earlier(tasks, digests, previous)
    reused_fits = sum(task.cached_fit is not None for task in tasks)
    reused_levels = sum(task.cached_level is not None for task in tasks)
    reused_detection = sum(task.cached_detection is not None for task in tasks)
    log(
        f"{month_key(month)}: {len(tasks):,} series to fit ({reused_fits:,} with an unchanged baseline fit, "
        f"{reused_detection:,} with the detector's levels unchanged, "
        f"{reused_levels:,} with an unchanged forecast filter up to the last month), "
        f"{sum(f.height for f in kept.scores):,} unchanged since the last run, "
        f"{skipped.height:,} skipped (sparse, no data for the month, or a type not alerted)"
    )
    fitted = score_tasks(tasks, config, pool, log)
    if fitted.scores.height:
        fitted.scores = fitted.scores.join(digests, on=SERIES_COLUMNS, how="left", nulls_equal=True)
    scores = pl.concat([fitted.scores, *kept.scores, skipped], how="diagonal_relaxed")
    forecasts = pl.concat([fitted.forecasts, *kept.forecasts], how="diagonal_relaxed")
    exceedance = pl.concat([fitted.exceedance, *kept.exceedance], how="diagonal_relaxed")
    reuse = {
        "series_fitted": len(tasks) - reused_fits,
        "baseline_fits_reused": reused_fits,
        "forecast_filters_reused": reused_levels,
        "detection_levels_reused": reused_detection,
        "scores_reused": sum(f.height for f in kept.scores),
        "series_skipped": skipped.height,
    }
    month_column = pl.lit(month).alias("month")
    return MonthScores(
        # In key order, as stored: the same whichever worker finished first and whichever scores were kept.
        scores.with_columns(month_column).sort(SERIES_COLUMNS, nulls_last=True),
        forecasts.with_columns(month_column),
        exceedance.with_columns(month_column),
        reuse,
    )


@dataclass
class Kept:
    """What an earlier run scored that still holds: frames to add to this run's."""

    scores: list[pl.DataFrame] = field(default_factory=list)
    forecasts: list[pl.DataFrame] = field(default_factory=list)
    exceedance: list[pl.DataFrame] = field(default_factory=list)


def reuse_earlier(
    tasks: list[SeriesTask], digests: pl.DataFrame, previous: MonthScores | None
) -> tuple[Kept, list[SeriesTask]]:
    """Split tasks into series whose earlier score still holds (returned as frames) and series to fit, the latter
    carrying their earlier baseline fit and the detector's filtered levels when the baseline data have not changed,
    and their forecast filter's state at the last month when the months before it have not. `digests` has a row a
    task, in their order: the key and this run's `input_keys`."""
    if previous is None or not {*DIGEST_COLUMNS, "level_state", *SERIES_COLUMNS} <= set(previous.scores.columns):
        return Kept(), tasks
    earlier = previous.scores.filter(pl.col("window_key").is_not_null())
    # scores stored before the detector's levels were kept have no detection_state: those series filter again
    states = [c for c in ("level_state", "detection_state") if c in previous.scores.columns]
    now = digests.rename({k: f"{k}_now" for k in DIGEST_COLUMNS})
    both = now.join(
        earlier.select(*SERIES_COLUMNS, *DIGEST_COLUMNS, *states, *BaselineFit.SCORE_COLUMNS),
        on=SERIES_COLUMNS, how="left", nulls_equal=True, maintain_order="left",
    )
    fitted = pl.col("model").is_in(["negbin", "poisson", "zero-baseline"])
    unchanged = pl.col("window_key") == pl.col("window_key_now")
    same_baseline = ~unchanged & fitted & (pl.col("baseline_key") == pl.col("baseline_key_now"))
    both = both.with_columns(
        _unchanged=unchanged.fill_null(False),
        _fit=same_baseline.fill_null(False),
        _level=(~unchanged & fitted & (pl.col("level_key") == pl.col("level_key_now")))
        .and_(pl.col("level_state").is_not_null())
        .fill_null(False),
        _detection=(same_baseline & pl.col("detection_state").is_not_null()).fill_null(False)
        if "detection_state" in states
        else pl.lit(False),
    )
    fits = iter(
        BaselineFit.from_score(row)
        for row in both.filter("_fit").select(BaselineFit.SCORE_COLUMNS).iter_rows(named=True)
    )
    levels = iter(_rows_of(both.filter("_level")["level_state"]))
    detections = iter(_rows_of(both.filter("_detection")["detection_state"]) if "detection_state" in states else [])
    to_fit = []
    flags = both.select("_unchanged", "_fit", "_level", "_detection").rows()
    for task, (same, fit, level, detection) in zip(tasks, flags, strict=True):
        if same:
            continue
        if not (fit or level):
            to_fit.append(task)
            continue
        to_fit.append(
            replace(
                task,
                cached_fit=next(fits) if fit else None,
                cached_level=next(levels) if level else None,
                cached_detection=next(detections) if detection else None,
            )
        )
    if len(to_fit) == len(tasks):
        return Kept(), to_fit
    chosen = both.filter("_unchanged").select(SERIES_COLUMNS)

    def kept(frame: pl.DataFrame) -> list[pl.DataFrame]:
        return [frame.join(chosen, on=SERIES_COLUMNS, nulls_equal=True).drop("month", strict=False)]

    return Kept(kept(earlier), kept(previous.forecasts), kept(previous.exceedance)), to_fit


def _rows_of(lists: pl.Series) -> list[np.ndarray]:
    """A list column whose lists have one length as the rows of an array (the filters' kept states)."""
    if lists.is_empty():
        return []
    return list(lists.explode().to_numpy().astype(float).reshape(len(lists), -1))
