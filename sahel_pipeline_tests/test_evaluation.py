"""The detector evaluation's core: simulations with known truth, the oracle, the current rule as a detector, the
native peers checked on cases worked by hand, thresholds matched to a false-alarm rate, and a small evaluation."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
from scipy import special

from sahel_pipeline.core.alerts import apply_alert_rule
from sahel_pipeline.core.evaluation import metrics
from sahel_pipeline.core.evaluation.detectors import CurrentRule, Detection, Oracle, detection_frame
from sahel_pipeline.core.evaluation.peers import SURGE, THREAT, TRENDFINDER, HdxSignals
from sahel_pipeline.core.evaluation.run import NOT_RUN, EvaluationConfig, run_evaluation, write_evaluation
from sahel_pipeline.core.evaluation.simulate import (
    BURN_IN,
    EXCLUDED,
    IN_CONTROL,
    RISING,
    CountSeries,
    DeathsPerEvent,
    InControl,
    simulate,
)
from sahel_pipeline.core.models import ModelConfig, SeriesTask, nb_logpmf, score_series
from sahel_pipeline.core.months import month_index
from sahel_pipeline.core.text import markdown_text


def hand_series(counts, indicator="events", first_scored=None, sid="hand") -> CountSeries:
    counts = np.asarray(counts, dtype=np.int64)
    start = month_index(dt.date(2015, 1, 1))
    return CountSeries(
        sid,
        "hand",
        indicator,
        "Nowhere",
        np.arange(start, start + len(counts)),
        counts,
        np.ones(len(counts)),
        len(counts) - 1 if first_scored is None else first_scored,
    )


def last_verdict(detector, counts, indicator="events") -> tuple[bool, float]:
    [d] = detector.detect([hand_series(counts, indicator)], lambda _: None)
    row = d.frame.row(-1, named=True)
    return row["alarm"], row["statistic"]


# --- simulations ----------------------------------------------------------------------------------------------------


def test_simulations_are_seeded_and_carry_their_truth():
    first, again, other = simulate(4, 2, 11), simulate(4, 2, 11), simulate(4, 2, 12)
    assert [s.id for s in first] == [s.id for s in again]
    assert all(np.array_equal(a.counts, b.counts) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.counts, b.counts) for a, b in zip(first, other, strict=True))
    by = {s.id: s for s in first}
    step = by["step_x3/000"]
    assert (step.state[:BURN_IN] == 0).all() and step.rise_start >= BURN_IN + 12
    assert (step.state[step.rise_start :] == RISING).sum() == 4 and len(step.counts) == step.rise_start + 4
    fat = by["fatalities/000"]
    spikes = [fat.rise_start - 30, fat.rise_start - 18]
    assert all(fat.state[s] in (0, EXCLUDED) for s in spikes)  # neither in control nor a target
    raw_old, raw_new, renamed = by["renamed_raw/000/old"], by["renamed_raw/000/new"], by["renamed/000"]
    cut = int(np.flatnonzero(raw_new.counts)[0])
    assert np.array_equal(raw_old.counts + raw_new.counts, renamed.counts)  # the same force under two names
    assert raw_old.counts[cut:].sum() == 0 and raw_new.counts[:cut].sum() == 0
    assert renamed.breaks and (renamed.state[BURN_IN:] == IN_CONTROL).all()


@pytest.mark.slow
def test_a_planted_threefold_rise_triples_the_mean():
    rises = [s for s in simulate(2000, 1, 5, ("step_x3",)) if s.in_control.mean == 20]
    before = np.mean([s.counts[BURN_IN : s.rise_start].mean() for s in rises])
    during = np.mean([s.counts[s.rise_start :].mean() for s in rises])
    assert during / before == pytest.approx(3, rel=0.05)


def test_the_fatality_distribution_is_the_exact_compound_of_events_and_deaths():
    """Panjer's recursion against a brute-force sum over the number of events of convolved deaths."""
    truth = InControl(2.0, 0.5, DeathsPerEvent(3.0, 3.0))
    size, p = 1 / truth.alpha, 1 / (1 + truth.alpha * truth.mean)
    support = np.arange(400)
    deaths = np.exp(nb_logpmf(support.astype(float), np.full(len(support), 3.0), 3.0))
    events = np.exp(
        special.gammaln(np.arange(60) + size)
        - special.gammaln(size)
        - special.gammaln(np.arange(60) + 1)
        + size * np.log(p)
        + np.arange(60) * np.log(1 - p)
    )
    total, convolved = np.zeros(400), np.zeros(400)
    convolved[0] = 1.0
    for n in range(60):
        total += events[n] * convolved
        convolved = np.convolve(convolved, deaths)[:400]
    for y in (1, 5, 20, 60):
        assert truth.sf(y) == pytest.approx(1 - total[:y].sum(), rel=1e-6, abs=1e-12)
    rng = np.random.default_rng(0)
    draws = truth.sample(rng, 200_000)
    assert (draws >= 20).mean() == pytest.approx(truth.sf(20), abs=0.003)
    assert draws.mean() == pytest.approx(6.0, rel=0.02)


# --- the oracle and the current rule --------------------------------------------------------------------------------


def test_the_oracle_alarms_on_about_one_percent_of_stable_months():
    stable = simulate(40, 6, 21, ("stable",))
    [d] = Oracle().detect(stable, lambda _: None)
    rate = d.frame["alarm"].mean()
    assert 0.006 <= rate <= 0.013, rate  # nominal 1%, at most (discrete counts cannot always reach it)


def test_the_oracle_tests_the_month_and_the_last_two_and_three_months():
    truth = InControl(10, 0.3)
    oracle = Oracle()
    c = oracle.critical(truth)
    assert 0.01 / 3 <= c <= 0.01  # between Bonferroni and a single test
    single = next(y for y in range(10, 200) if truth.sf(y) <= c)  # one month alone
    quiet = [10] * 40
    s = CountSeries(
        "o", "hand", "events", "x", np.arange(43), np.array(quiet + [10, 10, single]), np.ones(43), 40, in_control=truth
    )
    [d] = oracle.detect([s], lambda _: None)
    assert d.frame["alarm"].to_list() == [False, False, True]
    # three months each below the single-month bound, whose sum is beyond the three-month one
    moderate = next(y for y in range(10, 200) if truth.sf(3 * y, 3) <= c)
    assert truth.sf(moderate) > c
    s3 = CountSeries(
        "o3", "hand", "events", "x", np.arange(43), np.array(quiet + [moderate] * 3), np.ones(43), 40, in_control=truth
    )
    [d3] = oracle.detect([s3], lambda _: None)
    assert d3.frame["alarm"].to_list()[-1]


@pytest.mark.slow
def test_the_current_rule_is_the_pipelines_rule_at_every_month():
    series = simulate(3, 2, 8, ("stable", "step_x3", "renamed"))
    [d] = CurrentRule().detect(series, lambda _: None)
    assert (d.frame["alarm"] == (d.frame["statistic"] >= d.default_threshold)).all()  # the statistic gives the rule
    assert d.frame["alarm"].sum() > 0
    config = ModelConfig(breaks=tuple(b for s in series for b in s.breaks))
    s = next(x for x in series if x.scenario == "step_x3")
    for t in (s.rise_start, s.rise_start + 2):  # scored with the data up to that month only
        lo = max(0, t - config.history_months + 1)
        task = SeriesTask(
            ("x",), "events", s.country, s.months[lo : t + 1], s.counts[lo : t + 1].astype(float), np.ones(t + 1 - lo)
        )
        score, _ = score_series(task, config)
        expected = apply_alert_rule(pl.DataFrame([{"indicator": "events", **score}], infer_schema_length=None), config)
        got = d.frame.filter(pl.col("series_id") == s.id, pl.col("index") == t).row(0, named=True)
        assert got["alarm"] == expected["alert"][0]
        assert got["p_value"] == pytest.approx(score["p_value"])


def test_the_rule_statistic_follows_its_two_levels():
    """Scaling the levels: a month whose exceedance p is 1e-4 alarms up to h = 1.7 (alert_p 0.005 x 10^-1.7)."""
    rule = CurrentRule()
    quiet = [8, 7, 9, 8, 6, 10, 8, 9, 7, 8, 9, 8] * 3
    alarm, stat = last_verdict(rule, quiet + [8, 8, 30])
    score, _ = score_series(
        SeriesTask(("x",), "events", "x", np.arange(39), np.array(quiet + [8, 8, 30], float), np.ones(39)),
        ModelConfig(),
    )
    assert alarm and stat >= -math.log10(score["p_value"] / ModelConfig().alert_p) - 1e-9
    alarm, stat = last_verdict(rule, quiet + [8, 8, 8])
    assert not alarm and stat < 0
    # a rise over the recent window from nothing: the sustained rule's level, scaled
    alarm0, stat0 = last_verdict(rule, [0] * 36 + [6, 6, 6])
    score0, _ = score_series(
        SeriesTask(("x",), "events", "x", np.arange(39), np.array([0] * 36 + [6, 6, 6], float), np.ones(39)),
        ModelConfig(),
    )
    assert alarm0 and stat0 >= -math.log10(score0["window_p_value"] / ModelConfig().sustained_p) - 1e-9


# --- the native peers, by hand --------------------------------------------------------------------------------------


def test_trendfinder_bands_and_its_low_activity_guard():
    assert last_verdict(TRENDFINDER, [10] * 12 + [13]) == (True, pytest.approx(30.0))  # +30%: large increase
    assert last_verdict(TRENDFINDER, [10] * 12 + [12])[0] is False  # +20%: moderate, not an alarm
    assert last_verdict(TRENDFINDER, [8] * 12 + [10])[0] is False  # exactly +25% is not "more than 25%"
    assert last_verdict(TRENDFINDER, [2] * 12 + [5]) == (False, -math.inf)  # limited activity: guarded
    assert last_verdict(TRENDFINDER, [2] * 12 + [6]) == (True, pytest.approx(200.0))
    assert last_verdict(TRENDFINDER, [0] * 12 + [6]) == (True, math.inf)


def test_surge_and_threat_compare_with_four_and_twelve_months():
    assert last_verdict(SURGE, [9] * 8 + [5, 5, 5, 5, 10]) == (True, pytest.approx(100.0))
    assert last_verdict(THREAT, [9] * 8 + [5, 5, 5, 5, 10])[0] is False  # 10 against the year's mean of 7.7
    assert last_verdict(THREAT, [5] * 12 + [10]) == (True, pytest.approx(100.0))
    assert last_verdict(SURGE, [0, 1, 0, 1, 4]) == (False, -math.inf)  # a mean below one event: guarded


def test_hdx_signals_needs_the_years_maximum_and_a_hundred_deaths():
    hdx = HdxSignals()
    assert last_verdict(hdx, [50] * 11 + [90, 120], "fatalities") == (True, pytest.approx(120 / 90))
    assert last_verdict(hdx, [50] * 11 + [130, 120], "fatalities")[0] is False  # below the year's maximum
    assert last_verdict(hdx, [10] * 12 + [99], "fatalities") == (False, -math.inf)  # below 100
    assert last_verdict(hdx, [300] + [10] * 12 + [120], "fatalities")[0]  # 13 months back is outside the year


# --- matched false-alarm rates and the tables ---------------------------------------------------------------------


def test_a_matched_threshold_reaches_the_target_rate_on_stable_series():
    stable = simulate(20, 6, 4, ("stable",))
    truth = metrics.truth_frame(stable)
    [d] = TRENDFINDER.detect(stable, lambda _: None)
    d.applies_to = frozenset(s.id for s in stable)
    for target in (0.01, 0.05):
        c = metrics.calibrate(d, truth, target)
        rate = metrics.alarms(d, truth, c.threshold)["alarm"].mean()
        assert c.reached and rate == pytest.approx(c.far)
        assert target - 3 / truth.height <= rate <= target  # as close as ties allow, never above
    assert metrics.alarms(d, truth, None)["alarm"].mean() > 0.1  # at its own settings it is far above


def test_fatality_series_are_judged_at_a_threshold_matched_on_stable_fatality_series():
    # Fatalities are far more skewed than events: Trendfinder's % change crosses any threshold matched on event
    # series more often on fatality series. Each kind of count gets its own threshold, so the matched rate holds on
    # both (one threshold for both let the fatality series alarm far above the target).
    simulated = simulate(20, 6, 4, ("stable", "stable_fatalities"))
    truth = metrics.truth_frame(simulated)
    [d] = TRENDFINDER.detect(simulated, lambda _: None)
    d.applies_to = frozenset(s.id for s in simulated)
    target = 0.02
    chosen = metrics.thresholds_by_setting([d], truth, (target,))
    thresholds = chosen[metrics.matched(target)][d.detector]
    assert thresholds["events"] != thresholds["fatalities"]
    far = metrics.false_alarm_table([d], truth, chosen).filter(
        pl.col("setting") == metrics.matched(target), pl.col("stratum") == "all"
    )
    rates = dict(far.select("scenario", "per_month").iter_rows())
    assert set(rates) == {"stable", "stable_fatalities"}
    assert all(target - 0.01 <= rate <= target for rate in rates.values())
    # the events' threshold alone on the fatality series: far above the target
    fatal = truth.filter(pl.col("scenario") == "stable_fatalities")
    assert metrics.alarms(d, fatal, thresholds["events"])["alarm"].mean() > 1.5 * target
    table = metrics.threshold_table([d], truth, (target,))
    assert dict(table.select("counts", "calibrated_on").iter_rows()) == {
        "events": "stable",
        "fatalities": "stable_fatalities",
    }


def test_a_grid_detector_is_matched_on_its_grid():
    months = pl.DataFrame(
        {
            "series_id": ["s"] * 100,
            "index": np.arange(100, dtype=np.int32),
            "scenario": "stable",
            "indicator": "events",
            "state": np.int8(IN_CONTROL),
        }
    )
    rng = np.random.default_rng(1)
    rows = [
        {"series_id": "s", "index": i, "threshold": h, "alarm": bool(rng.random() < 0.3 / h)}
        for h in (1.0, 2.0, 5.0, 10.0, 40.0)
        for i in range(100)
    ]
    grid = pl.DataFrame(rows).cast({"index": pl.Int32})
    d = Detection(
        "g",
        "grid",
        detection_frame(["s"] * 100, list(range(100)), np.zeros(100), np.zeros(100)),
        5.0,
        grid=grid,
        applies_to=frozenset({"s"}),
    )
    c = metrics.calibrate(d, months, 0.05)
    rates = {h: grid.filter(pl.col("threshold") == h)["alarm"].mean() for h in (1.0, 2.0, 5.0, 10.0, 40.0)}
    assert c.threshold == min(h for h, r in rates.items() if r <= 0.05)
    assert c.far == rates[c.threshold]


def test_detection_counts_delays_from_the_rises_first_month():
    months = pl.DataFrame(
        {
            "series_id": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
            "index": np.tile(np.arange(4, dtype=np.int32), 3),
            "scenario": "step_x3",
            "indicator": "events",
            "alpha": 0.3,
            "state": np.int8(RISING),
            "rise_offset": np.tile(np.arange(4, dtype=np.int32), 3),
        }
    )
    alarm = [True, False, False, False, False, True, True, False, False, False, False, False]
    d = Detection(
        "d",
        "d",
        detection_frame(months["series_id"].to_list(), months["index"].to_list(), alarm, np.where(alarm, 1.0, -1.0)),
        0.0,
        applies_to=frozenset("abc"),
    )
    table = metrics.detection_table([d], months, {metrics.DEFAULT: {"d": None}})
    row = table.filter(pl.col("alpha") == "all").row(0, named=True)
    assert (row["rises"], row["pod_1"], row["pod_2"], row["pod_rise"], row["median_delay"]) == (
        3,
        1 / 3,
        2 / 3,
        2 / 3,
        0.5,
    )


@pytest.mark.slow
def test_a_small_evaluation_runs_without_r_and_writes_its_tables(tmp_path):
    config = EvaluationConfig(series=3, years=1, use_r=False)
    result = run_evaluation(config, log=lambda _: None)
    paths = write_evaluation(result, tmp_path)
    status = dict(result.tables["detectors"].select("name", "status").iter_rows())
    assert status["sahel"] == status["oracle"] == status["acled_trendfinder"] == "ran"
    assert status["farrington"] == status["glrnb"] == f"skipped: {NOT_RUN}"
    summary = pl.read_csv(paths["summary"])
    assert {"sahel", "oracle", "acled_surge", "hdx_signals"} <= set(summary["detector"])
    assert set(summary["setting"]) == {"default", "matched 1% of months"}
    page = paths["html"].read_text()
    assert "<h2>Quirks of R surveillance found on the way</h2>" in page and "farringtonFlexible" in page
    assert markdown_text(f"skipped: {NOT_RUN}") in paths["markdown"].read_text()  # as written once rendered


def test_the_methods_page_writes_what_it_is_given_as_text(tmp_path):
    """The page is written by the report's renderers: a path or a detector's note holding Markdown or HTML syntax is
    shown as typed in both pages, and the tables keep the page's number format."""
    from sahel_pipeline.core.evaluation import methods
    from sahel_pipeline.core.evaluation.run import EvaluationResult
    from sahel_pipeline.core.text import html_text

    path = "/data/<b>acled</b>_*2024*_[raw](x).csv"
    note = "fails on `mu0$S` | <script>"
    frame = pl.DataFrame({"detector": ["sahel"], "stratum": ["all"], "rate": [0.000123]})
    detectors = pl.DataFrame({"name": ["glrnb"], "label": ["GLR"], "status": ["ran"], "description": ["d"],
                              "note": [note], "seconds": [1.5]})
    result = EvaluationResult(
        config=EvaluationConfig(series=1, years=1, use_r=False),
        tables={name: frame for name in ("summary", "thresholds", "false_alarms", "detection", "pvalues")}
        | {"detectors": detectors},
        detectors=[],
        scenarios=pl.DataFrame({"scenario": ["stable"]}),
        real_data=path,
        seconds=3.0,
        finished=dt.datetime(2026, 12, 1, 12, 0),
    )
    markdown, page = methods.render_markdown(result), methods.render_html(result)
    assert markdown.startswith("# Detector evaluation\n\n") and page.startswith("<!doctype html>")
    assert f"Real data: {markdown_text(path)}, judged" in markdown and markdown_text(note) in markdown
    assert f"Real data: {html_text(path)}, judged" in page and html_text(note) in page
    assert "<b>" not in page and "<script>" not in page
    assert "| 1.23e-04 |" in markdown and "<td>1.23e-04</td>" in page  # methods.cell, not str()


@dataclass
class AlarmsAfterBreaks:
    """A made-up detector that alarms on every judged month of a series with a break date, and never otherwise."""

    name: str = "after_breaks"
    label: str = "alarms after breaks"
    description: str = "every month of a series with a break"
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = False

    def detect(self, series, log):
        rows = [(s.id, t, bool(s.breaks)) for s in series for t in s.scored]
        ids, index, alarm = zip(*rows, strict=True)
        frame = detection_frame(list(ids), list(index), alarm, np.where(alarm, 1.0, -1.0))
        return [Detection(self.name, self.label, frame, 0.0)]


def test_the_renamed_forces_chance_alerts_are_counted_on_the_same_counts_without_the_break():
    series = simulate(4, 1, 3, ("renamed", "renamed_unbroken"))
    renamed = [s for s in series if s.scenario == "renamed"]
    unbroken = [s for s in series if s.scenario == "renamed_unbroken"]
    assert all(np.array_equal(a.counts, b.counts) for a, b in zip(renamed, unbroken, strict=True))
    assert all(s.breaks for s in renamed) and not any(s.breaks for s in unbroken)
    assert all((s.state[BURN_IN:] == IN_CONTROL).all() for s in series)  # no change in either: every alert false
    scenarios = ("stable", "renamed", "renamed_unbroken")
    config = EvaluationConfig(series=4, years=1, seed=3, use_r=False, scenarios=scenarios)
    result = run_evaluation(config, detectors=[Oracle(), TRENDFINDER, AlarmsAfterBreaks()], log=lambda _: None)
    summary = result.tables["summary"].filter(pl.col("setting") == metrics.DEFAULT)
    by = {row["detector"]: row for row in summary.iter_rows(named=True)}
    months = sum(len(s.scored) for s in renamed)
    assert by["after_breaks"]["renamed_alerts"] == months and by["after_breaks"]["renamed_alerts_from_break"] == months
    for blind in ("oracle", "acled_trendfinder"):  # detectors that do not read break dates: the same alerts on both
        assert by[blind]["renamed_alerts"] == by[blind]["renamed_unbroken_alerts"]
        assert by[blind]["renamed_alerts_from_break"] == 0
    assert by["acled_trendfinder"]["renamed_alerts"] > 0  # its 3 alerts a series-year: there is something to compare
