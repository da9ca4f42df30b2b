"""The evaluation's figures, from detections and the truth of every simulated month.

- **False alarms**: alarms in in-control months, per series-year (12 months) and as a share of months.
- **Detection** of a planted rise (four months): detected within 1 month when the rise's first month alarms, within
  2 months when its first or second does, during the rise when any of its four does; the delay is the month of the
  first alarm counted from the rise's first (0), its median taken over the rises detected during the rise.
- **Matched false-alarm rate**: each detector has a threshold per kind of count (`FAMILIES`), set on the in-control
  months of the stable series of that kind (event counts on `stable`, fatalities on `stable_fatalities`) to the most
  sensitive one whose false-alarm rate is at most the target, then applied to the series of that kind in every
  scenario and among the real series. Fatalities are far more skewed than events: a threshold matched on events
  alone let a detector with a lighter fatality tail spend more false alarms on fatality series than the target (1.4%
  of months instead of 1% for Farrington), which bought it power on the fatality rise. A detector that cannot alarm
  that often at any threshold keeps its most sensitive one, and the table says the target was not reached.
- **P-values**: the share of in-control months with p < 0.001 (nominal 0.001), for detectors that give one.
- **Alerts a break brings**: the renamed force's months are all in control, so every alert on it is false; a
  detector alerts on them by chance at its false-alarm rate, as on any in-control series. The same counts without
  the break date (`renamed_unbroken`) give that chance count, and the difference is what the break itself brings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from sahel_pipeline.core.evaluation.detectors import Detection
from sahel_pipeline.core.evaluation.simulate import (
    IN_CONTROL,
    RISE_MONTHS,
    RISING,
    SCENARIOS,
    CountSeries,
)

DEFAULT = "default"
KEYS = ["series_id", "index"]


def matched(target: float) -> str:
    """The name of the setting matched to a false-alarm rate."""
    return f"matched {target:.2%} of months".replace(".00%", "%")


def share(values: pl.Series) -> float:
    """The mean of a boolean or numeric column as a float (nan when empty)."""
    return float(values.cast(pl.Float64).to_numpy().mean()) if len(values) else math.nan


def truth_frame(series: list[CountSeries]) -> pl.DataFrame:
    """One row per judged month of every simulated series: its scenario, stratum and truth."""
    parts = []
    for s in series:
        if s.state is None or s.in_control is None:  # a real series: no truth
            continue
        index = np.arange(s.first_scored, len(s.counts))
        offset = index - s.rise_start if s.rise_start is not None else np.full(len(index), -1)
        parts.append(
            pl.DataFrame(
                {
                    "series_id": s.id,
                    "index": index.astype(np.int32),
                    "scenario": s.scenario,
                    "indicator": s.indicator,
                    "stratum": s.in_control.label,
                    "alpha": s.in_control.alpha,
                    "state": s.state[index].astype(np.int8),
                    "rise_offset": np.where(s.state[index] == RISING, offset, -1).astype(np.int32),
                }
            )
        )
    schema: dict[str, pl.DataType] = {
        "series_id": pl.String(),
        "index": pl.Int32(),
        "scenario": pl.String(),
        "indicator": pl.String(),
        "stratum": pl.String(),
        "alpha": pl.Float64(),
        "state": pl.Int8(),
        "rise_offset": pl.Int32(),
    }
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def alarms(detection: Detection, months: pl.DataFrame, threshold: float | None) -> pl.DataFrame:
    """`months` (any frame with series_id and index) with the detector's alarm at a threshold; months it gave no
    verdict for (too little history, its own minimum) do not alarm."""
    applicable = months.filter(pl.col("series_id").is_in(list(detection.applies_to)))
    return applicable.join(detection.alarms_at(threshold), on=KEYS, how="left").with_columns(
        pl.col("alarm").fill_null(False)
    )


@dataclass(frozen=True)
class Calibration:
    detector: str
    target: float
    threshold: float | None  # None: the detector did not run, or had no month to calibrate on
    far: float  # its false-alarm rate per month on the calibration months at that threshold
    months: int
    scenario: str
    reached: bool


# The kinds of count a threshold is matched on separately, each on its own stable series.
FAMILIES = ("events", "fatalities")


def family(indicator: pl.Expr) -> pl.Expr:
    """The kind of count an indicator is: fatalities, or events (every event-count indicator)."""
    return pl.when(indicator == "fatalities").then(pl.lit("fatalities")).otherwise(pl.lit("events"))


def calibration_months(truth: pl.DataFrame, detection: Detection, kind: str = "events") -> tuple[str, pl.DataFrame]:
    """The in-control months a threshold for `kind` is set on: the first calibration scenario of that kind the
    detector applies to."""
    for name, scenario in SCENARIOS.items():
        if not scenario.calibration:
            continue
        months = truth.filter(
            pl.col("scenario") == name,
            pl.col("state") == IN_CONTROL,
            family(pl.col("indicator")) == kind,
            pl.col("series_id").is_in(list(detection.applies_to)),
        )
        if months.height:
            return name, months.select(KEYS)
    return "", truth.clear().select(KEYS)


def calibrate(detection: Detection, truth: pl.DataFrame, target: float, kind: str = "events") -> Calibration:
    scenario, months = calibration_months(truth, detection, kind)
    if detection.skipped or months.height == 0:
        return Calibration(detection.detector, target, None, math.nan, months.height, scenario, False)
    if detection.grid is not None:
        rates = {h: share(alarms(detection, months, h)["alarm"]) for h in detection.thresholds}
        within = [h for h, rate in rates.items() if rate <= target]
        threshold = min(within) if within else max(rates)
        return Calibration(
            detection.detector, target, threshold, rates[threshold], months.height, scenario, bool(within)
        )
    joined = months.join(detection.frame.select(*KEYS, "statistic"), on=KEYS, how="left")["statistic"]
    values = np.sort(joined.fill_null(-np.inf).to_numpy())[::-1]
    allowed = int(math.floor(target * len(values) + 1e-9))
    cut = values[allowed] if allowed < len(values) else -np.inf
    if np.isfinite(cut):
        threshold = float(np.nextafter(cut, np.inf))  # every month above the (allowed + 1)-th largest value
    else:
        finite = values[np.isfinite(values)]
        threshold = float(finite.min()) if finite.size else math.inf
    far = float(np.mean(values >= threshold))
    return Calibration(
        detection.detector,
        target,
        threshold,
        far,
        months.height,
        scenario,
        bool(far <= target + 1e-12 and np.isfinite(cut)),
    )


Thresholds = dict[str, dict[str, float | None]]  # per detector, per kind of count (FAMILIES)


def thresholds_by_setting(
    detections: list[Detection], truth: pl.DataFrame, targets: tuple[float, ...]
) -> dict[str, Thresholds]:
    """Thresholds per setting, detector and kind of count: its own (None) and one per target false-alarm rate."""
    out = {DEFAULT: {d.detector: dict.fromkeys(FAMILIES) for d in detections}}
    for target in targets:
        out[matched(target)] = {
            d.detector: {kind: calibrate(d, truth, target, kind).threshold for kind in FAMILIES} for d in detections
        }
    return out


def threshold_table(detections: list[Detection], truth: pl.DataFrame, targets: tuple[float, ...]) -> pl.DataFrame:
    rows = []
    for d in detections:
        for kind in FAMILIES:
            scenario, months = calibration_months(truth, d, kind)
            if not months.height:  # a detector of one kind (HDX Signals: fatalities) has no threshold for the other
                continue
            own = share(alarms(d, months, None)["alarm"]) if not d.skipped else math.nan
            for target in targets:
                c = calibrate(d, truth, target, kind)
                rows.append(
                    {
                        "detector": d.detector,
                        "label": d.label,
                        "counts": kind,
                        "default_threshold": None if d.skipped else d.default_threshold,
                        "default_far": own,
                        "target_far": target,
                        "matched_threshold": c.threshold,
                        "matched_far": c.far,
                        "target_reached": c.reached,
                        "calibrated_on": scenario,
                        "months": c.months,
                    }
                )
    return pl.DataFrame(rows, infer_schema_length=None)


def each_setting(detections: list[Detection], months: pl.DataFrame, chosen: dict[str, Thresholds]):
    """(setting, detection, its alarms on `months`) for every detector that ran and setting it has a threshold for;
    at a matched setting each kind of count is judged at its own threshold, and a kind without one is left out."""
    kinds = months.with_columns(_kind=family(pl.col("indicator")))
    for setting, thresholds in chosen.items():
        for d in detections:
            if d.skipped:
                continue
            if setting == DEFAULT:
                yield setting, d, alarms(d, months, None)
                continue
            parts = [
                alarms(d, kinds.filter(pl.col("_kind") == kind).drop("_kind"), threshold)
                for kind, threshold in thresholds.get(d.detector, {}).items()
                if threshold is not None
            ]
            if parts:
                yield setting, d, pl.concat(parts)


def alarm_counts(judged: pl.DataFrame, by: list[str], detector: str, setting: str) -> pl.DataFrame:
    """Per group of `by`: series, months, alarms, series with an alarm, alarms per month and per series-year."""
    return (
        judged.group_by(by)
        .agg(
            series=pl.col("series_id").n_unique(),
            months=pl.len(),
            alarms=pl.col("alarm").sum(),
            series_with_alarm=pl.col("series_id").filter(pl.col("alarm")).n_unique(),
        )
        .select(
            pl.lit(detector).alias("detector"),
            pl.lit(setting).alias("setting"),
            *by,
            "series",
            "months",
            "alarms",
            per_month=pl.col("alarms") / pl.col("months"),
            per_series_year=pl.col("alarms") / (pl.col("months") / 12),
            series_with_alarm="series_with_alarm",
        )
    )


def false_alarm_table(detections: list[Detection], truth: pl.DataFrame, chosen: dict) -> pl.DataFrame:
    """Alarms on in-control months, per detector, setting, scenario and stratum (and "all" strata)."""
    frames = []
    for setting, d, judged in each_setting(detections, truth.filter(pl.col("state") == IN_CONTROL), chosen):
        by = [
            judged.with_columns(stratum=pl.lit("all")),
            judged.filter(pl.col("scenario").is_in(["stable", "stable_fatalities"])),
        ]
        for part in by:
            frames.append(alarm_counts(part, ["scenario", "stratum"], d.detector, setting))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames).sort("scenario", "stratum", "setting", "detector")


def detection_table(detections: list[Detection], truth: pl.DataFrame, chosen: dict) -> pl.DataFrame:
    """Planted rises detected within 1 and 2 months and during the rise, and the median delay, per alpha and all."""
    frames = []
    for setting, d, judged in each_setting(detections, truth.filter(pl.col("state") == RISING), chosen):
        first = judged.group_by("series_id", "scenario", "alpha").agg(
            first=pl.col("rise_offset").filter(pl.col("alarm")).min()
        )
        for part in (first.with_columns(alpha=pl.lit(None, pl.Float64)), first):
            frames.append(
                part.group_by("scenario", "alpha")
                .agg(
                    rises=pl.len(),
                    pod_1=(pl.col("first") <= 0).fill_null(False).mean(),
                    pod_2=(pl.col("first") <= 1).fill_null(False).mean(),
                    pod_rise=(pl.col("first") < RISE_MONTHS).fill_null(False).mean(),
                    median_delay=pl.col("first").median(),
                )
                .with_columns(detector=pl.lit(d.detector), setting=pl.lit(setting))
            )
    if not frames:
        return pl.DataFrame()
    return (
        pl.concat(frames)
        .with_columns(alpha=pl.col("alpha").cast(pl.String).fill_null("all"))
        .select("detector", "setting", "scenario", "alpha", "rises", "pod_1", "pod_2", "pod_rise", "median_delay")
        .sort("scenario", "alpha", "setting", "detector")
    )


def pvalue_table(detections: list[Detection], truth: pl.DataFrame, nominal: float = 0.001) -> pl.DataFrame:
    """P(p < 0.001) on the calibration scenarios' in-control months, against nominal, for detectors with p-values."""
    rows = []
    stable = truth.filter(
        pl.col("state") == IN_CONTROL, pl.col("scenario").is_in([n for n, s in SCENARIOS.items() if s.calibration])
    )
    for d in detections:
        if d.skipped or d.frame["p_value"].null_count() == d.frame.height:
            continue
        joined = stable.join(d.frame.select(*KEYS, "p_value"), on=KEYS, how="inner").filter(
            pl.col("p_value").is_not_null()
        )
        for (scenario,), part in joined.group_by(["scenario"], maintain_order=True):
            below = share(part["p_value"] < nominal)
            rows.append(
                {
                    "detector": d.detector,
                    "scenario": scenario,
                    "months_with_p": part.height,
                    "share_below": below,
                    "nominal": nominal,
                    "ratio_to_nominal": below / nominal,
                    "share_below_0.01": share(part["p_value"] < 0.01),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None).sort("scenario", "detector") if rows else pl.DataFrame()


def summary_table(false_alarms: pl.DataFrame, detection: pl.DataFrame) -> pl.DataFrame:
    """One row per detector and setting: the figures the targets are stated in."""
    if false_alarms.height == 0:
        return pl.DataFrame()
    far = false_alarms.filter(pl.col("stratum") == "all")

    def far_of(scenario: str, column: str, name: str) -> pl.DataFrame:
        return far.filter(pl.col("scenario") == scenario).select("detector", "setting", pl.col(column).alias(name))

    def pod(scenario: str, name: str) -> pl.DataFrame:
        if detection.height == 0:
            return pl.DataFrame(schema={"detector": pl.String, "setting": pl.String, name: pl.Float64})
        return detection.filter(pl.col("scenario") == scenario, pl.col("alpha") == "all").select(
            "detector", "setting", pl.col("pod_2").alias(name)
        )

    out = far_of("stable", "per_series_year", "stable_alerts_per_series_year")
    for part in (
        far_of("stable_fatalities", "per_series_year", "stable_fatalities_alerts_per_series_year"),
        pod("step_x3", "x3_within_2"),
        pod("step_x2", "x2_within_2"),
        pod("regime", "regime_within_2"),
        pod("fatalities", "fatalities_x4_within_2"),
        far_of("renamed", "alarms", "renamed_alerts"),
        far_of("renamed_unbroken", "alarms", "renamed_unbroken_alerts"),
        far_of("renamed_raw", "alarms", "renamed_raw_alerts"),
    ):
        out = out.join(part, on=["detector", "setting"], how="full", coalesce=True)
    if {"renamed_alerts", "renamed_unbroken_alerts"} <= set(out.columns):
        # the renamed force's truth has no change: its alerts are chance plus what the break brings (target: 0)
        out = out.with_columns(
            renamed_alerts_from_break=pl.col("renamed_alerts").cast(pl.Int64)
            - pl.col("renamed_unbroken_alerts").cast(pl.Int64)
        )
    return out.sort("setting", "detector")
