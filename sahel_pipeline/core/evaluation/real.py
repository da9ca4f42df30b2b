"""The evaluation on real data: every series of the panels judged over a window of months, the known episodes
(`data/known_escalations.csv`) flagged or not, and the alert burden per series-year.

There is no truth here beyond the episodes analysts agree on, so these figures say how often each detector would
have spoken, and whether it caught what everybody saw.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sahel_pipeline.core.backtest import episode_flags
from sahel_pipeline.core.evaluation.detectors import Detection
from sahel_pipeline.core.evaluation.metrics import alarm_counts, each_setting
from sahel_pipeline.core.evaluation.simulate import CountSeries
from sahel_pipeline.core.months import index_month, month_index
from sahel_pipeline.core.panels import COUNTRY_ONLY_INDICATORS, INDICATORS
from sahel_pipeline.core.series import SERIES_COLUMNS, long_series


def panel_series(
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    first: dt.date,
    last: dt.date,
    alerted_types: tuple[str, ...],
    indicators: list[str] = INDICATORS,
) -> list[CountSeries]:
    """Every series the pipeline would score (country series, and group series of the alerted types; the
    country-only indicators at country level) with at least one event from `first` to `last`, with all its history
    up to `last`; detectors are judged on the months from `first` (or from the series' start, if later)."""
    long = long_series(
        group_panel, country_panel, indicators, last=last, carry=("group_name", "group_type", "days_covered")
    )
    scored = (pl.col("level") == "country") | (
        pl.col("group_type").is_in(list(alerted_types)) & ~pl.col("indicator").is_in(sorted(COUNTRY_ONLY_INDICATORS))
    )
    grouped = (
        long.filter(scored)
        .sort("month")
        .group_by(SERIES_COLUMNS)
        .agg(
            month=pl.col("month"),
            count=pl.col("count"),
            exposure=pl.col("days_covered") / pl.col("month").dt.month_end().dt.day(),
            in_window=pl.col("count").filter(pl.col("month") >= first).sum(),
        )
        .filter(pl.col("in_window") > 0)
        .sort(SERIES_COLUMNS, nulls_last=True)
        .collect()
    )
    out = []
    for row in grouped.iter_rows(named=True):
        months = np.array([month_index(m) for m in row["month"]], dtype=np.int64)
        key = {k: row[k] for k in SERIES_COLUMNS}
        out.append(
            CountSeries(
                id="|".join("" if row[k] is None else str(row[k]) for k in SERIES_COLUMNS),
                scenario="real",
                indicator=row["indicator"],
                country=row["country"],
                months=months,
                counts=np.asarray(row["count"], dtype=np.int64),
                exposure=np.asarray(row["exposure"], dtype=float),
                first_scored=int(np.searchsorted(months, month_index(first))),
                key=key,
            )
        )
    return out


def judged_months(series: list[CountSeries]) -> pl.DataFrame:
    """series_id, index and the keys and month of every judged month of real series."""
    parts = [
        pl.DataFrame(
            {
                "series_id": s.id,
                "index": np.arange(s.first_scored, len(s.counts), dtype=np.int32),
                "month": [index_month(int(m)) for m in s.months[s.first_scored :]],
                **{k: [s.key[k]] * (len(s.counts) - s.first_scored) for k in SERIES_COLUMNS},
            },
            schema_overrides={k: pl.String for k in SERIES_COLUMNS},
        )
        for s in series
        if s.key and len(s.counts) > s.first_scored
    ]
    return (
        pl.concat(parts)
        if parts
        else pl.DataFrame(
            schema={
                "series_id": pl.String,
                "index": pl.Int32,
                "month": pl.Date,
                **{k: pl.String for k in SERIES_COLUMNS},
            }
        )
    )


def episode_table(
    detections: list[Detection],
    months: pl.DataFrame,
    chosen: dict,
    episodes: pl.DataFrame,
    first: dt.date,
    last: dt.date,
) -> pl.DataFrame:
    """For each detector, setting and known episode: flagged on any indicator from three months before its start
    to its end (the backtest's definition), its first flag and lead."""
    frames = []
    for setting, d, judged in each_setting(detections, months, chosen):
        if judged.height == 0:  # judges no real series (the oracle needs a known in-control distribution)
            continue
        flags = episode_flags(judged.rename({"alarm": "alert"}), episodes, first, last)
        if flags.height:
            frames.append(flags.with_columns(detector=pl.lit(d.detector), setting=pl.lit(setting)))
    if not frames:
        return pl.DataFrame()
    covered = _covered(months, episodes)
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .join(covered, on=["source", "group", "country"], how="left")
        .with_columns(pl.col("in_data").fill_null(False))
        .select(
            "detector",
            "setting",
            "source",
            "group",
            "country",
            "first_month",
            "last_month",
            "in_data",
            "in_backtest_window",
            "flagged",
            "first_flag",
            "lead_months",
            "alert_months",
            "indicators",
        )
        .rename({"in_backtest_window": "in_window"})
        .sort("source", "country", "group", "setting", "detector")
    )


def _covered(months: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """Whether the data hold the episode's series at all (a group or country the files do not cover cannot be
    flagged, which is not a miss)."""
    present = months.select("source", group=pl.col("group_id").fill_null(""), country="country").unique()
    return (
        episodes.select("source", "group", "country")
        .unique()
        .join(present, on=["source", "group", "country"], how="semi")
        .with_columns(in_data=pl.lit(True))
    )


def alert_rate_table(detections: list[Detection], months: pl.DataFrame, chosen: dict) -> pl.DataFrame:
    """Alerts per series-year over the judged months, per detector, setting and level (group or country)."""
    frames = [
        alarm_counts(judged, ["level"], d.detector, setting)
        for setting, d, judged in each_setting(detections, months, chosen)
        if judged.height
    ]
    return pl.concat(frames).sort("level", "setting", "detector") if frames else pl.DataFrame()


def describe_panels(country_panel: pl.DataFrame | pl.LazyFrame) -> str:
    """What the panels hold, in one line for the methods page: sources, countries and months."""
    spans = (
        country_panel.lazy()
        .group_by("source")
        .agg(countries=pl.col("country").unique().sort(), first=pl.col("month").min(), last=pl.col("month").max())
        .sort("source")
        .collect()
    )
    if spans.height == 0:
        return "no events"
    return "; ".join(
        f"{r['source']}: {', '.join(r['countries'])} ({r['first']:%Y-%m} to {r['last']:%Y-%m})"
        for r in spans.iter_rows(named=True)
    )
