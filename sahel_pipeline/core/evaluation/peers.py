"""The rules conflict analysts already use, written here and adapted to monthly series.

- **ACLED Trendfinder** (Country Change Level map): the period's events against the mean of the periods before (the
  previous year: 52 weeks there, 12 months here); a change above +25% is a "large increase". Low-activity guard: a
  unit averaging two events or fewer before, with five or fewer now, is "limited change" whatever the percentage.
- **ACLED Subnational Surge Tracker**: +100% or more in the latest week against the weekly mean of the month before
  (here: the month against the mean of the four months before, the same 1:4 ratio).
- **ACLED Subnational Threat Tracker**: +100% or more in the latest month against the monthly mean of the past year
  (here: the month against the mean of the twelve months before).
  Both trackers are limited to units averaging at least one event per period in the comparison window.
- **HDX Signals** (`src/utils/alert_daily_ts.R`, `src/indicators/acled_conflict/`): for fatalities, an alert when
  the rolling 30-day sum is at least its maximum over the past year (level 1) or three years (level 2, which implies
  level 1) and at least 100; here the month's fatalities against the maximum of the twelve months before. The
  180-day cool-down HDX applies between signals is a delivery filter and is not applied.

The guards and minima are counts per period, kept as the tools state them: they protect percentages from small
numbers, which are the same numbers in a month as in a week.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sahel_pipeline.core.detection import accumulated_evidence
from sahel_pipeline.core.evaluation.detectors import Detection, Log, detection_frame
from sahel_pipeline.core.evaluation.simulate import CountSeries
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_index


def previous_mean(counts: np.ndarray, months: int) -> np.ndarray:
    """Mean of the `months` months before each month (nan until that many exist)."""
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    t = np.arange(len(counts))
    out = (cumulative[t] - cumulative[np.maximum(t - months, 0)]) / months
    return np.where(t >= months, out, np.nan)


def previous_max(counts: np.ndarray, months: int) -> np.ndarray:
    """Maximum of the `months` months before each month (nan until that many exist)."""
    out = np.full(len(counts), np.nan)
    if len(counts) > months:
        windows = np.lib.stride_tricks.sliding_window_view(counts.astype(float), months)[:-1]
        out[months:] = windows.max(axis=1)
    return out


def percent_change(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        change = 100 * (now - before) / before
    return np.where(before == 0, np.where(now > 0, np.inf, 0.0), change)


@dataclass(frozen=True)
class PercentChangeRule:
    """An alarm when the month's count is at least `threshold` percent above the mean of the `window` months before,
    outside the rule's low-activity guard. Its statistic is the percentage change (-inf where guarded)."""

    name: str
    label: str
    description: str
    window: int
    threshold: float
    strict: bool  # "more than" (Trendfinder) rather than "at least" (the trackers)
    guard_mean: float  # guarded when the window's mean is at most this ...
    guard_now: float | None  # ... and the month's count at most this (None: the mean alone; then "below")
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = False

    def statistic(self, counts: np.ndarray) -> np.ndarray:
        before = previous_mean(counts, self.window)
        change = percent_change(counts.astype(float), before)
        if self.guard_now is None:
            guarded = before < self.guard_mean
        else:
            guarded = (before <= self.guard_mean) & (counts <= self.guard_now)
        return np.where(np.isnan(before) | guarded, -np.inf, change)

    @property
    def default_threshold(self) -> float:
        return float(np.nextafter(self.threshold, np.inf)) if self.strict else self.threshold

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        return [_by_statistic(self, series, self.statistic, self.default_threshold, log)]


@dataclass(frozen=True)
class HdxSignals:
    """HDX Signals' conflict rule on monthly fatalities; statistic: the month over the past year's maximum (-inf
    below the minimum of 100 or without a year of history)."""

    minimum: int = 100
    window: int = 12
    name: str = "hdx_signals"
    label: str = "HDX Signals (max of the past year, at least 100)"
    indicators: tuple[str, ...] | None = ("fatalities",)
    needs_truth: bool = False
    default_threshold: float = 1.0

    @property
    def description(self) -> str:
        return (
            f"HDX Signals' conflict rule, fatalities only: the month's fatalities at least the maximum of the "
            f"{self.window} months before (their 1-year level; the 3-year level implies it) and at least "
            f"{self.minimum}. Statistic: the month over that maximum (the minimum kept as it is)."
        )

    def statistic(self, counts: np.ndarray) -> np.ndarray:
        peak = previous_max(counts, self.window)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(peak > 0, counts / peak, np.inf)
        return np.where(np.isnan(peak) | (counts < self.minimum), -np.inf, ratio)

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        return [_by_statistic(self, series, self.statistic, self.default_threshold, log)]


@dataclass(frozen=True)
class NativeGlr:
    """The negative-binomial GLR-CUSUM on the pipeline's recent level (`detection.accumulated_evidence`, the native
    counterpart of R's glrnb): the evidence of a rise over the last 1 to `window` months against the level filtered
    up to before them, judged at each month with the pipeline's history (the last `history` months). Statistic: the
    GLR (-inf below the indicator's minimum count); its own threshold is glrnb's c.ARL = 5."""

    window: int = 6
    default_threshold: float = 5.0
    config: ModelConfig = field(default_factory=ModelConfig)  # the history read, the level, the minimum counts
    name: str = "glr_native"
    label: str = "NB GLR-CUSUM on the recent level (native)"
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = False

    @property
    def description(self) -> str:
        return (
            "The negative-binomial GLR-CUSUM for a rise (glrnb's statistic, change in the intercept, computed "
            f"natively in numpy) over windows of 1 to {self.window} months ending with the month, against in-control "
            "means from the pipeline's recent level filtered up to before them, with its dispersion; the month must "
            f"reach the indicator's minimum count. Threshold: c = {self.default_threshold:g}, glrnb's c.ARL."
        )

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        width = self.config.window_months
        ids, index, rows, exposure, broken, floors = [], [], [], [], [], []
        for s in series:
            # right-aligned as the pipeline's chunks are: exposure 0 before a series starts
            y, e, b = (np.zeros(width + len(s.counts)) for _ in range(3))
            y[width:], e[width:] = s.counts, s.exposure
            for brk in s.breaks:
                b[width + month_index(brk.date) - int(s.months[0])] = 1.0
            for t in s.scored:
                rows.append(y[t + 1 : t + 1 + width])
                exposure.append(e[t + 1 : t + 1 + width])
                broken.append(b[t + 1 : t + 1 + width] > 0)
            floors += [self.config.min_count(s.indicator)] * len(s.scored)
            ids += [s.id] * len(s.scored)
            index += list(s.scored)
        if not ids:
            return [Detection(self.name, self.label, detection_frame([], [], [], []))]
        y = np.array(rows)
        glr = accumulated_evidence(y, np.array(exposure), np.array(broken), self.config.detection_level, self.window)
        statistic = np.where(y[:, -1] >= np.array(floors), glr, -np.inf)
        log(f"{self.label}: {len(ids):,} series-months")
        frame = detection_frame(ids, index, statistic >= self.default_threshold, statistic)
        return [Detection(self.name, self.label, frame, default_threshold=self.default_threshold)]


def _by_statistic(detector, series: list[CountSeries], statistic, threshold: float, log: Log) -> Detection:
    ids, index, values = [], [], []
    for s in series:
        stat = statistic(s.counts)[s.first_scored :]
        ids += [s.id] * len(stat)
        index += list(s.scored)
        values.append(stat)
    stat = np.concatenate(values) if values else np.array([])
    log(f"{detector.label}: {len(ids):,} series-months")
    return Detection(
        detector.name, detector.label, detection_frame(ids, index, stat >= threshold, stat), default_threshold=threshold
    )


TRENDFINDER = PercentChangeRule(
    name="acled_trendfinder",
    label="ACLED Trendfinder (large increase, >25% vs 12 months)",
    description="ACLED Trendfinder's change bands: the month against the mean of the 12 months before; more than "
    "+25% is a large increase, except under the low-activity guard (a mean of 2 or fewer before and 5 or fewer now). "
    "Statistic: the percentage change.",
    window=12,
    threshold=25.0,
    strict=True,
    guard_mean=2.0,
    guard_now=5.0,
)
SURGE = PercentChangeRule(
    name="acled_surge",
    label="ACLED Surge (+100% vs 4 months)",
    description="ACLED's Subnational Surge Tracker at monthly cadence: at least +100% against the mean of the 4 "
    "months before (the tracker's week against the 4 weeks before), where that mean is at least 1. Statistic: the "
    "percentage change.",
    window=4,
    threshold=100.0,
    strict=False,
    guard_mean=1.0,
    guard_now=None,
)
THREAT = PercentChangeRule(
    name="acled_threat",
    label="ACLED Threat (+100% vs 12 months)",
    description="ACLED's Subnational Threat Tracker at monthly cadence: at least +100% against the mean of the 12 "
    "months before, where that mean is at least 1. Statistic: the percentage change.",
    window=12,
    threshold=100.0,
    strict=False,
    guard_mean=1.0,
    guard_now=None,
)
NATIVE_PEERS = (TRENDFINDER, SURGE, THREAT, HdxSignals(), NativeGlr())
