"""Running the evaluation: simulate, run every detector on the same series, compute the tables, write them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from sahel_pipeline.core.evaluation import methods, metrics, real
from sahel_pipeline.core.evaluation.detectors import CurrentRule, Detection, Oracle, applies
from sahel_pipeline.core.evaluation.peers import NATIVE_PEERS
from sahel_pipeline.core.evaluation.simulate import IN_CONTROL, RISING, SCENARIOS, CountSeries, simulate
from sahel_pipeline.core.evaluation.surveillance import ALL_R_PEERS, SurveillancePeers
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_key
from sahel_pipeline.core.pool import FittingPool
from sahel_pipeline.core.storage import written_aside

Log = Callable[[str], None]
NOT_RUN = "not run (asked not to: --no-r, or use_r off)"
REAL_FIRST, REAL_LAST = dt.date(2017, 1, 1), dt.date(2020, 12, 1)  # the shared real files' common years


@dataclass(frozen=True)
class EvaluationConfig:
    series: int = 60  # per scenario
    years: int = 6  # judged years of the stable series
    seed: int = 2024
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    use_r: bool = True
    r_peers: tuple[str, ...] = ALL_R_PEERS
    r_processes: int = 2
    target_fars: tuple[float, ...] = (0.01,)  # per month: 0.12 alerts per series-year
    real_first: dt.date = REAL_FIRST
    real_last: dt.date = REAL_LAST
    model: ModelConfig = field(default_factory=ModelConfig)  # the current rule's settings

    def __post_init__(self):
        if self.series < 1 or self.years < 1:
            raise ValueError(f"series and years must be at least 1 (got {self.series} and {self.years})")
        if not self.target_fars or not all(0 < t < 1 for t in self.target_fars):
            raise ValueError(f"target false-alarm rates must be between 0 and 1 (got {self.target_fars})")
        for kind, given, known in (("scenario", self.scenarios, SCENARIOS), ("R peer", self.r_peers, ALL_R_PEERS)):
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if self.real_first > self.real_last:
            raise ValueError(f"the real-data window starts after it ends ({self.real_first} > {self.real_last})")


@dataclass
class DetectorInfo:
    name: str
    label: str
    description: str
    status: str  # "ran" or "skipped: <reason>"
    note: str
    seconds: float


@dataclass
class EvaluationResult:
    config: EvaluationConfig
    tables: dict[str, pl.DataFrame]
    detectors: list[DetectorInfo]
    scenarios: pl.DataFrame
    real_data: str  # what the real-data part ran on
    seconds: float
    finished: dt.datetime


def default_detectors(config: EvaluationConfig, pool: FittingPool | None = None) -> list:
    """The current rule, the oracle, the native peers and the R peers (skipped, with the reason, without R or with
    use_r off)."""
    r = SurveillancePeers(config.r_peers, config.r_processes, disabled=None if config.use_r else NOT_RUN)
    return [CurrentRule(config.model, pool), Oracle(), *NATIVE_PEERS, r]


def run_evaluation(
    config: EvaluationConfig,
    group_panel: pl.DataFrame | pl.LazyFrame | None = None,
    country_panel: pl.DataFrame | pl.LazyFrame | None = None,
    episodes: pl.DataFrame | None = None,
    detectors: list | None = None,
    pool: FittingPool | None = None,
    real_data: str = "",
    log: Log = print,
) -> EvaluationResult:
    """Every detector on the simulated series and, when panels are given, on their real series."""
    started = time.perf_counter()
    detectors = detectors if detectors is not None else default_detectors(config, pool)
    simulated = simulate(config.series, config.years, config.seed, config.scenarios)
    for name in config.scenarios:
        mine = [s for s in simulated if s.scenario == name]
        log(f"simulated {name}: {len(mine)} series, {sum(len(s.scored) for s in mine):,} judged months")
    observed = []
    if group_panel is not None and country_panel is not None:
        observed = real.panel_series(
            group_panel, country_panel, config.real_first, config.real_last, config.model.alerted_types
        )
        log(
            f"real data: {len(observed):,} series with events from {month_key(config.real_first)} "
            f"to {month_key(config.real_last)}"
        )
    detections, infos = run_detectors(detectors, simulated + observed, log)

    truth = metrics.truth_frame(simulated)
    chosen = metrics.thresholds_by_setting(detections, truth, config.target_fars)
    false_alarms = metrics.false_alarm_table(detections, truth, chosen)
    detection = metrics.detection_table(detections, truth, chosen)
    tables = {
        "summary": metrics.summary_table(false_alarms, detection),
        "thresholds": metrics.threshold_table(detections, truth, config.target_fars),
        "false_alarms": false_alarms,
        "detection": detection,
        "pvalues": metrics.pvalue_table(detections, truth),
    }
    if observed:
        months = real.judged_months(observed)
        tables["real_alert_rates"] = real.alert_rate_table(detections, months, chosen)
        if episodes is not None:
            tables["episodes"] = real.episode_table(
                detections, months, chosen, episodes, config.real_first, config.real_last
            )
    tables["detectors"] = pl.DataFrame([vars(i) for i in infos], infer_schema_length=None)
    scenarios = scenario_table(simulated, config.scenarios)
    tables["scenarios"] = scenarios
    log(f"evaluation done in {time.perf_counter() - started:.0f} s")
    return EvaluationResult(
        config,
        tables,
        infos,
        scenarios,
        real_data or ("no real data" if not observed else ""),
        time.perf_counter() - started,
        dt.datetime.now(dt.UTC),
    )


def run_detectors(detectors: list, series: list[CountSeries], log: Log) -> tuple[list[Detection], list[DetectorInfo]]:
    """Each detector on the series it applies to; those marked `background` (R) run on a thread meanwhile."""
    results: dict[int, tuple[list[Detection], float]] = {}

    def one(k: int, detector) -> tuple[list[Detection], float]:
        mine = [s for s in series if applies(detector, s)]
        started = time.perf_counter()
        found = detector.detect(mine, log)
        for d in found:
            d.applies_to = frozenset(s.id for s in mine)
        return found, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=1) as background:
        later = {k: background.submit(one, k, d) for k, d in enumerate(detectors) if getattr(d, "background", False)}
        for k, detector in enumerate(detectors):
            if k not in later:
                results[k] = one(k, detector)
        for k, future in later.items():
            results[k] = future.result()
    detections, infos = [], []
    for k, detector in enumerate(detectors):
        found, seconds = results[k]
        labels = detector.descriptions() if hasattr(detector, "descriptions") else {}
        for d in found:
            detections.append(d)
            infos.append(
                DetectorInfo(
                    d.detector,
                    d.label,
                    labels.get(d.detector, detector.description),
                    f"skipped: {d.skipped}" if d.skipped else "ran",
                    d.note,
                    round(seconds, 1),
                )
            )
    return detections, infos


def scenario_table(series: list[CountSeries], names: tuple[str, ...]) -> pl.DataFrame:
    rows = []
    for name in names:
        mine = [s for s in series if s.scenario == name]
        rows.append(
            {
                "scenario": name,
                "description": SCENARIOS[name].description,
                "series": len(mine),
                "judged_months": sum(len(s.scored) for s in mine),
                "in_control_months": sum(int((_state(s)[s.first_scored :] == IN_CONTROL).sum()) for s in mine),
                "rises": sum(1 for s in mine if (_state(s) == RISING).any()),
            }
        )
    return pl.DataFrame(rows)


def _state(s: CountSeries) -> np.ndarray:
    if s.state is None:
        raise ValueError(f"{s.id} is not simulated: it has no truth")
    return s.state


def write_evaluation(result: EvaluationResult, folder: Path) -> dict[str, Path]:
    """The tables as CSV and the methods page as Markdown and HTML, under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.csv" for name in result.tables}
    paths["markdown"], paths["html"] = folder / "methods.md", folder / "methods.html"
    with written_aside() as aside:
        for name, table in result.tables.items():
            table.write_csv(aside(paths[name]))
        aside(paths["markdown"]).write_text(methods.render_markdown(result), encoding="utf-8")
        aside(paths["html"]).write_text(methods.render_html(result), encoding="utf-8")
    return paths
