"""Scoring a month: every series of the panels through the count models, fanned out over processes.

A series is one indicator of one (source, armed group, country) or (source, country). Series too sparse to model
(fewer events in the whole baseline and recent window than the indicator's minimum alert count, so they could not
alert) are listed as skipped with the reason, not fitted. The rest go to `models.score_series`, in chunks, on as many
worker processes as asked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl

from sahel_pipeline.core.models import ModelConfig, SeriesTask, score_chunk
from sahel_pipeline.core.panels import INDICATORS

SERIES_KEYS = ["source", "level", "group_id", "group_name", "country", "indicator"]
CHUNK = 64
Log = Callable[[str], None]


@dataclass
class MonthScores:
    scores: pl.DataFrame  # one row per modelled or skipped series
    forecasts: pl.DataFrame  # one row per modelled series and horizon


def month_index(month: dt.date) -> int:
    return (month.year - 1970) * 12 + month.month - 1


def index_month(index: int) -> dt.date:
    return dt.date(1970 + index // 12, index % 12 + 1, 1)


def shard_of(country: str, shards: int) -> int:
    """A stable shard number for a country, so that fan-out partitions always get the same countries."""
    return zlib.crc32(country.encode()) % shards


def series_long(group_panel: pl.LazyFrame, country_panel: pl.LazyFrame, first: dt.date, month: dt.date, indicators: list[str]) -> pl.LazyFrame:
    """Both panels from `first` to `month`, one row per (series key, month) with the indicator as a column value."""
    country = country_panel.with_columns(group_id=pl.lit(None, pl.String), group_name=pl.lit(None, pl.String))
    columns = ["source", "level", "group_id", "group_name", "country", "month", "days_covered", *indicators]
    both = pl.concat(
        [group_panel.with_columns(level=pl.lit("group")).select(columns), country.with_columns(level=pl.lit("country")).select(columns)]
    )
    return both.filter(pl.col("month").is_between(first, month)).unpivot(
        index=columns[:7], on=indicators, variable_name="indicator", value_name="count"
    )


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
    first = index_month(month_index(month) - config.history_months + 1)
    window_start = index_month(month_index(month) - config.window_months + 1)
    series = (
        series_long(group_panel, country_panel, first, month, indicators)
        .group_by(SERIES_KEYS)
        .agg(
            months=pl.col("month").sort(),
            counts=pl.col("count").sort_by("month"),
            exposure=(pl.col("days_covered") / pl.col("month").dt.month_end().dt.day()).sort_by(pl.col("month")),
            last_month=pl.col("month").max(),
            window_sum=pl.col("count").filter(pl.col("month") >= window_start).sum(),
        )
        .collect()
    )
    min_counts = pl.col("indicator").replace_strict(config.min_counts, default=5)
    reasons = (
        pl.when(pl.col("last_month") < month)
        .then(pl.lit("no data for this month"))
        .when(pl.col("window_sum") < min_counts)
        .then(pl.lit("sparse: too few events to model"))
    )
    series = series.with_columns(reason=reasons)
    skipped = series.filter(pl.col("reason").is_not_null()).select(
        *SERIES_KEYS, model=pl.lit("skipped"), note="reason", recent_sum=pl.lit(None, pl.Int64)
    )
    tasks = [
        SeriesTask(
            key=tuple(row[k] for k in SERIES_KEYS),
            indicator=row["indicator"],
            country=row["country"],
            months=np.array([month_index(m) for m in row["months"]]),
            counts=np.asarray(row["counts"], dtype=float),
            exposure=np.asarray(row["exposure"], dtype=float),
        )
        for row in series.filter(pl.col("reason").is_null()).iter_rows(named=True)
    ]
    return tasks, skipped


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """A process pool for fitting (None for one worker). Reuse it across months: starting workers costs a second.

    Workers come from a fork server that has imported the models once; scripts that use it need the usual
    `if __name__ == "__main__":` guard.
    """
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sahel_pipeline.core.models"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def score_tasks(tasks: list[SeriesTask], config: ModelConfig, pool: Executor | None = None, log: Log = print) -> MonthScores:
    """Fit every task, on the pool when one is given. Logs progress as chunks finish."""
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    started = time.perf_counter()
    results: list = []
    done_chunks = pool.map(partial(score_chunk, config=config), chunks) if pool and len(chunks) > 1 else (
        score_chunk(chunk, config) for chunk in chunks
    )
    for done in done_chunks:
        results.extend(done)
        _progress(len(results), len(tasks), started, log)
    return _frames(results)


def _progress(done: int, total: int, started: float, log: Log) -> None:
    every = max(CHUNK, total // 10)
    if done == total or done % every < CHUNK:
        elapsed = time.perf_counter() - started
        log(f"fitted {done:,} of {total:,} series ({done / max(elapsed, 1e-9):.0f} series/s)")


def _frames(results: list[tuple[tuple, dict, list[dict]]]) -> MonthScores:
    score_rows = [dict(zip(SERIES_KEYS, key)) | score for key, score, _ in results]
    forecast_rows = [dict(zip(SERIES_KEYS, key)) | row for key, _, rows in results for row in rows]
    scores = pl.DataFrame(score_rows, infer_schema_length=None) if score_rows else pl.DataFrame(schema={k: pl.String for k in SERIES_KEYS})
    forecasts = (
        pl.DataFrame(forecast_rows, infer_schema_length=None).with_columns(
            target_month=pl.col("target_month").map_elements(index_month, return_dtype=pl.Date)
        )
        if forecast_rows
        else pl.DataFrame(schema={k: pl.String for k in SERIES_KEYS})
    )
    return MonthScores(scores, forecasts)


def score_month(
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    month: dt.date,
    config: ModelConfig,
    pool: Executor | None = None,
    log: Log = print,
    indicators: list[str] = INDICATORS,
    shard: tuple[int, int] | None = None,
) -> MonthScores:
    """Scores and forecasts of every series at `month` (optionally only the countries of one shard)."""
    tasks, skipped = build_tasks(group_panel, country_panel, month, config, indicators, shard)
    log(f"{month:%Y-%m}: {len(tasks):,} series to fit, {skipped.height:,} skipped (sparse or no data for the month)")
    fitted = score_tasks(tasks, config, pool, log)
    scores = pl.concat([fitted.scores, skipped], how="diagonal_relaxed") if fitted.scores.height else skipped
    return MonthScores(scores.with_columns(month=pl.lit(month)), fitted.forecasts.with_columns(month=pl.lit(month)))
