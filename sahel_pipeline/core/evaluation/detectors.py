"""What a detector is for the evaluation, the pipeline's current rule as one, and the oracle.

A detector is given whole series and judges each of their judged months (index >= `first_scored`) with the data up to
that month only. For every such month it returns an alarm at its own settings and a continuous statistic: the alarm
at a threshold h is `statistic >= h`, and its own settings are `default_threshold`, so that a threshold can be set to
reach a target false-alarm rate on stable series. A detector whose alarms are not a function of one statistic (a CUSUM
that restarts after each alarm) returns its alarms on a grid of thresholds instead. Detectors that give a p-value for
the month return it too.

Any object with `name`, `label`, `description`, `indicators`, `needs_truth` and `detect(series, log) -> [Detection]`
is a detector; `run.run_evaluation` takes a list of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

import numpy as np
import polars as pl

from sahel_pipeline.core.alerts import apply_alert_rule
from sahel_pipeline.core.evaluation.simulate import CountSeries, InControl
from sahel_pipeline.core.models import ModelConfig, SeriesTask, score_chunk
from sahel_pipeline.core.pool import FittingPool
from sahel_pipeline.core.scoring import CHUNK

Log = Callable[[str], None]
DETECTION_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.String(),
    "index": pl.Int32(),
    "alarm": pl.Boolean(),
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),
}
GRID_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.String(),
    "index": pl.Int32(),
    "threshold": pl.Float64(),
    "alarm": pl.Boolean(),
}


@dataclass
class Detection:
    """One detector's verdicts on every judged month of the series it applies to."""

    detector: str
    label: str
    frame: pl.DataFrame  # DETECTION_SCHEMA
    default_threshold: float = 0.0
    grid: pl.DataFrame | None = None  # GRID_SCHEMA: alarms at each threshold, when no one statistic gives them
    skipped: str | None = None  # why the detector did not run
    note: str = ""  # what the methods page should say about this run (series R could not judge, ...)
    applies_to: frozenset[str] = frozenset()  # ids of the series it was given (set by the run)

    @property
    def thresholds(self) -> np.ndarray:
        if self.grid is not None:
            return np.unique(self.grid["threshold"].to_numpy())
        values = self.frame["statistic"].to_numpy()
        return np.unique(values[np.isfinite(values)])

    def alarms_at(self, threshold: float | None) -> pl.DataFrame:
        """series_id, index, alarm at a threshold (None: the detector's own settings)."""
        if threshold is None:
            return self.frame.select("series_id", "index", "alarm")
        if self.grid is not None:
            return self.grid.filter(pl.col("threshold") == threshold).select("series_id", "index", "alarm")
        return self.frame.select("series_id", "index", alarm=pl.col("statistic") >= threshold)


class Detector(Protocol):
    name: str
    label: str
    description: str
    indicators: tuple[str, ...] | None  # None: every indicator
    needs_truth: bool  # judges only series whose in-control distribution is known

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]: ...


def applies(detector, series: CountSeries) -> bool:
    if detector.needs_truth and series.in_control is None:
        return False
    return detector.indicators is None or series.indicator in detector.indicators


def skipped(detector, reason: str) -> Detection:
    return Detection(detector.name, detector.label, pl.DataFrame(schema=DETECTION_SCHEMA), skipped=reason)


def detection_frame(ids: list[str], index: list[int], alarm, statistic, p_value=None) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "series_id": ids,
            "index": np.asarray(index, dtype=np.int32),
            "alarm": np.asarray(alarm, dtype=bool),
            "statistic": np.asarray(statistic, dtype=float),
            "p_value": np.full(n, np.nan) if p_value is None else np.asarray(p_value, dtype=float),
        },
        schema=DETECTION_SCHEMA,
    ).with_columns(pl.col("p_value").fill_nan(None))


class Progress:
    """Logs how far a detector has got, about every tenth of the work."""

    def __init__(self, what: str, total: int, log: Log, unit: str = "series-months"):
        self.what, self.total, self.log, self.unit = what, total, log, unit
        self.done, self.next_log, self.started = 0, max(1, total // 10), time.perf_counter()

    def advance(self, n: int) -> None:
        self.done += n
        if self.done >= self.next_log or self.done == self.total:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.log(f"{self.what}: {self.done:,} of {self.total:,} {self.unit} ({rate:,.0f}/s)")
            self.next_log = self.done + max(1, self.total // 10)


# --- the pipeline's current rule ------------------------------------------------------------------------------------

@dataclass
class CurrentRule:
    """The pipeline's escalation rule as it runs every week: `models.score_series` at each month with the data up to
    that month (the months the pipeline reads), then `alerts.apply_alert_rule` on the scores.

    Its statistic scales the rule's levels together: a month alarms at threshold h when its p-value against the
    recent level is below alert_p x 10^-h, or its sustained-rise conditions hold and the recent window's p-value is
    below sustained_p x 10^-h, or the break rule's below break_p x 10^-h (h = 0: the rule as configured).
    """

    config: ModelConfig = field(default_factory=ModelConfig)
    pool: FittingPool | None = None
    name: str = "sahel"
    label: str = "sahel pipeline (current rule)"
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = False

    @property
    def description(self) -> str:
        c = self.config
        return (
            "The pipeline's rule (`models.score_series` + `alerts.apply_alert_rule`): the month against the series' "
            f"recent level (`detection.judge_last`) at p < {c.alert_p:g}, or a sustained rise (the last "
            f"{c.recent_months} months' total against the level before them at p < {c.sustained_p:g}), or a rise "
            f"since a dated break (against the {c.break_before_months} months before it, at p < {c.break_p:g}), "
            "the month reaching the indicator's minimum count whichever fires. Scored at every month with the data up "
            "to it. Threshold scale: every level multiplied by 10^-h."
        )

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        breaks = tuple(b for s in series for b in s.breaks)
        config = replace(self.config, breaks=self.config.breaks + breaks) if breaks else self.config
        tasks, by_id = self._tasks(series, config), {s.id: s for s in series}
        log(f"{self.label}: {len(tasks):,} series-months to fit")
        progress = Progress(self.label, len(tasks), log)
        chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
        if self.pool is not None and len(tasks) > CHUNK:
            done = self.pool.executor().map(partial(score_chunk, config=config), chunks)
        else:
            done = (score_chunk(chunk, config) for chunk in chunks)
        rows = []
        for results in done:
            for key, values in zip(results.keys, zip(*results.scores.values(), strict=True), strict=True):
                score = dict(zip(results.scores, values, strict=True))
                rows.append({"series_id": key[0], "index": key[1], "indicator": by_id[key[0]].indicator, **score})
            progress.advance(len(results.keys))
        if not rows:
            return [Detection(self.name, self.label, pl.DataFrame(schema=DETECTION_SCHEMA))]
        scores = apply_alert_rule(pl.DataFrame(rows, infer_schema_length=None), config)
        statistic = rule_statistic(scores, config)
        frame = detection_frame(
            scores["series_id"].to_list(),
            scores["index"].to_list(),
            scores["alert"].to_numpy(),
            statistic,
            scores["p_value"].fill_null(np.nan).to_numpy(),
        )
        return [Detection(self.name, self.label, frame, default_threshold=0.0)]

    @staticmethod
    def _tasks(series: list[CountSeries], config: ModelConfig) -> list[SeriesTask]:
        """One task per judged month, cut as `scoring.build_tasks` cuts a panel: the months the models read, and none
        for a month whose window holds fewer events than the indicator's minimum (the pipeline does not fit those)."""
        tasks = []
        for s in series:
            counts = s.counts.astype(float)
            window = np.convolve(counts, np.ones(config.window_months))[: len(counts)]  # sum of the last window_months
            for t in s.scored:
                if window[t] < config.min_count(s.indicator):
                    continue
                lo = max(0, t - config.history_months + 1)
                tasks.append(
                    SeriesTask(
                        (s.id, t),
                        s.indicator,
                        s.country,
                        s.months[lo : t + 1],
                        counts[lo : t + 1],
                        s.exposure[lo : t + 1].astype(float),
                    )
                )
        return tasks


def rule_statistic(scores: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """-log10 of the smallest of (month p / alert_p), (window p / sustained_p) and (break p / break_p), over the
    months where each rule's count conditions hold; -inf where none can fire. The rule alerts exactly where this is
    >= 0."""
    if "p_value" not in scores.columns:
        return np.full(scores.height, -np.inf)
    min_count = scores["indicator"].replace_strict(config.min_counts, default=5).to_numpy().astype(float)
    names = ("p_value", "window_p_value", "break_p_value", "observed", "recent_active_months", "expected")
    missing = np.full(scores.height, np.nan)
    col = {c: scores[c].fill_null(np.nan).to_numpy().astype(float) if c in scores.columns else missing for c in names}
    enough = col["observed"] >= min_count
    exceed = np.where(enough, col["p_value"] / config.alert_p, np.nan)
    conditions = enough & (col["recent_active_months"] >= 2) & (col["observed"] >= col["expected"])
    sustained = np.where(conditions, col["window_p_value"] / config.sustained_p, np.nan)
    broke = np.where(enough, col["break_p_value"] / config.break_p, np.nan)
    evidence = np.fmin(np.fmin(exceed, sustained), broke)
    with np.errstate(divide="ignore"):
        return np.where(np.isnan(evidence), -np.inf, -np.log10(evidence))


# --- the oracle -----------------------------------------------------------------------------------------------------


@dataclass
class Oracle:
    """Knows each series' true in-control distribution and tests the month and the sums of the last two and three
    months against it (exact tail probabilities), alarming when the smallest of the three is below a critical value
    set, for each distribution, so that a month of in-control data alarms with probability `far` (found on
    `draws` simulated in-control runs of three months; discreteness keeps it at or under `far`)."""

    far: float = 0.01
    windows: tuple[int, ...] = (1, 2, 3)
    draws: int = 40_000
    name: str = "oracle"
    label: str = "oracle (true in-control distribution)"
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = True

    def __post_init__(self):
        self._critical: dict[InControl, float] = {}

    @property
    def description(self) -> str:
        return (
            "The limit: knows each simulated series' in-control distribution and tests the month and the sums of the "
            f"last 2 and 3 months (exact tail probabilities), alarming when the smallest is below the critical value "
            f"that gives a {self.far:.0%} false-alarm rate per month for that distribution. Its statistic is "
            "log10(critical / smallest p). The month's own p-value is reported."
        )

    def critical(self, truth: InControl) -> float:
        """The largest c with P(min_k p_k <= c) <= far in control."""
        if truth not in self._critical:
            rng = np.random.default_rng([20_240_726, int(truth.mean * 1000), int(truth.alpha * 1000)])
            months = truth.sample(rng, self.draws * max(self.windows)).reshape(self.draws, max(self.windows))
            smallest = np.min([_tail(truth, months[:, -k:].sum(axis=1), k) for k in self.windows], axis=0)
            values = np.sort(smallest)
            at_or_below = np.searchsorted(values, values, side="right")
            allowed = values[at_or_below <= int(self.far * self.draws)]
            self._critical[truth] = float(allowed.max()) if allowed.size else 0.0
        return self._critical[truth]

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        ids, index, statistic, p_month = [], [], [], []
        for s in series:
            truth = s.in_control
            if truth is None:  # the run gives the oracle only series with a known distribution
                raise ValueError(f"{s.id}: the oracle needs the series' in-control distribution")
            c = self.critical(truth)
            t = np.arange(s.first_scored, len(s.counts))
            cumulative = np.concatenate([[0], np.cumsum(s.counts)])
            tails = [_tail(truth, cumulative[t + 1] - cumulative[np.maximum(t + 1 - k, 0)], k) for k in self.windows]
            smallest = np.min(tails, axis=0)
            with np.errstate(divide="ignore"):
                statistic.append(np.log10(c) - np.log10(smallest) if c > 0 else np.full(len(t), -np.inf))
            ids += [s.id] * len(t)
            index += t.tolist()
            p_month.append(tails[0])
        if not ids:
            return [Detection(self.name, self.label, pl.DataFrame(schema=DETECTION_SCHEMA))]
        stat = np.concatenate(statistic)
        log(f"{self.label}: {len(ids):,} series-months")
        return [Detection(self.name, self.label, detection_frame(ids, index, stat >= 0, stat, np.concatenate(p_month)))]


def _tail(truth: InControl, sums: np.ndarray, months: int) -> np.ndarray:
    """P(S >= s) for each s, computed once per distinct value."""
    values, inverse = np.unique(sums, return_inverse=True)
    return np.array([truth.sf(v, months) for v in values])[inverse]
