"""The seven ways the alert rule failed analysts (issue 13), each on simulated series with known truth.

Each test failed on the rule before the detection redesign (notes/detection.md records how): a trend carried from
an earlier phase, a dispersion inflated by old mass-casualty months, a break date that did not enter the rule, a
downward trend extrapolated towards zero, alerts on months with almost nothing, a rule that alerted on stable series
more than it said, and one alert per indicator for one rise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from sahel_pipeline.core.alerts import alert_table, apply_alert_rule
from sahel_pipeline.core.detection import judge_last
from sahel_pipeline.core.models import Break, ModelConfig, SeriesTask, _break_ratio, score_series
from sahel_pipeline.core.months import month_index, month_range
from sahel_pipeline.core.scoring import score_month

CONFIG = ModelConfig()
FIRST = dt.date(2018, 1, 1)


def negbin(rng: np.random.Generator, mu, alpha: float, n: int) -> np.ndarray:
    """n negative-binomial months (variance mu + alpha mu^2), mu a number or one per month."""
    mu = np.broadcast_to(np.asarray(mu, dtype=float), (n,))
    return rng.poisson(rng.gamma(1 / alpha, mu * alpha)).astype(float)


def fatalities(rng: np.random.Generator, n: int, events: float = 10, deaths_factor=None) -> np.ndarray:
    """Deaths of negative-binomial events (alpha 0.3), each event's deaths negative binomial (mean 3, alpha 3:
    half the events kill nobody); `deaths_factor` multiplies the deaths per event of some months."""
    factor = np.ones(n) if deaths_factor is None else deaths_factor
    n_events = negbin(rng, events, 0.3, n)
    deaths = rng.negative_binomial(np.maximum(n_events, 1) / 3.0, 1 / (1 + 3.0 * 3.0 * factor))
    return np.where(n_events > 0, deaths, 0).astype(float)


def judge(counts, indicator: str = "events", config: ModelConfig = CONFIG, country: str = "Niger") -> dict:
    """The score of a series' last month with the alert rule applied to it."""
    y = np.asarray(counts, dtype=float)
    start = month_index(FIRST)
    task = SeriesTask(("s",), indicator, country, np.arange(start, start + len(y)), y, np.ones(len(y)))
    score, _ = score_series(task, config)
    return apply_alert_rule(pl.DataFrame([{"indicator": indicator, **score}], infer_schema_length=None), config).row(
        0, named=True
    )


@pytest.mark.slow  # 24 simulated series judged, each with a trend fit
def test_a_trend_from_an_earlier_phase_does_not_hide_a_rise_above_the_recent_level():
    # Two years of growth from 8 to 25 a month, then 14 months back at 17, then a month of 40 (x2.4 the recent
    # level, p about 1e-4 under the true one): the trend fitted over the whole baseline used to lift the expectation
    # to 23-31, and flagged 3 of 12 such months.
    flagged, expected, recent = [], [], []
    for seed in range(24):
        rng = np.random.default_rng(seed)
        level = np.concatenate([np.linspace(8, 25, 24), np.full(14, 17.0)])
        counts = negbin(rng, level, 0.05, len(level))
        score = judge([*counts, 40])
        flagged.append(score["alert"])
        expected.append(score["expected"])
        recent.append(counts[-13:].mean())
    # The expectation is the recent level, as the months at 17 show it ...
    assert np.median(expected) <= 1.15 * np.median(recent)
    # ... and many such months are flagged: not all, since 13 months at 17 often look as dispersed as alpha 0.12 (a
    # sample variance of 60 and more), under which 40 is about a 1% month, and the rule alerts at 0.5% against the
    # level before the recent window (measured: 9 of 24 flagged; 11 of 24 against the level of the month before; the
    # rule before the redesign flagged 3 of 12 at 1%).
    assert np.mean(flagged) >= 0.35


@pytest.mark.slow  # 16 simulated series judged
def test_old_mass_casualty_months_do_not_make_the_fatality_bound_unreachable():
    # The same fatality series with and without two months of eight times the deaths per event in its baseline.
    ratios = []
    factor = np.ones(39)
    factor[[6, 18]] = 8.0
    for seed in range(8):
        clean = fatalities(np.random.default_rng(seed), 39)
        spiked = fatalities(np.random.default_rng(seed), 39, deaths_factor=factor)
        ratios.append(judge(spiked, "fatalities")["upper"] / judge(clean, "fatalities")["upper"])
    # before: the two months raised the 99% bound by a median 1.5-fold (up to 2.6-fold); the bound is now 99.5%
    assert np.median(ratios) <= 1.3


def test_past_mass_casualty_months_do_not_choose_the_dispersion_of_later_fatality_months():
    # 200 fatality series (events: mean 10, alpha 1; deaths per event: mean 3, alpha 3), judged at month 39 as the
    # pipeline judges it, and the same series with months 8 and 20 at eight times their deaths (the evaluation's
    # fatality scenario places its two mass-casualty months so). Each such month counted up to 3 log units for the
    # heaviest dispersions: the averaged dispersion rose by a median 8%, the 99.5% bound by 26% (now that a month
    # above 3.5 sds under every dispersion counts nothing in choosing it: 1% and 16%).
    rng = np.random.default_rng(11)
    events = rng.poisson(rng.gamma(1.0, 10.0, size=(200, 39)))
    clean = np.where(events > 0, rng.negative_binomial(np.maximum(events, 1) / 3.0, 0.1), 0).astype(float)
    spiked = clean.copy()
    spiked[:, [8, 20]] *= 8
    lead = CONFIG.recent_months
    clean_v, spiked_v = (
        judge_last(y, np.ones_like(y), None, CONFIG.detection_level, lead, 0.995, lead) for y in (clean, spiked)
    )

    def dispersion(verdict):
        return (verdict.level.posterior * verdict.level.candidates.alpha).sum(axis=1)

    assert np.median(dispersion(spiked_v) / dispersion(clean_v)) <= 1.04
    assert np.median(spiked_v.upper / clean_v.upper) <= 1.21


@pytest.mark.slow  # fits and judges six simulated series with their break (1.5 s)
def test_a_rise_after_a_dated_break_is_compared_with_the_months_just_before_it():
    # 24 months at 20 a month, 15 at 8, a coup, then 3 months at 19: x2.4 the months just before the coup, but
    # about the rate of the 36 months before it (the earlier, higher regime), which was all the rule compared with.
    coup = Break("Niger", dt.date(2021, 3, 20), "the March 2021 coup")
    config = replace(CONFIG, breaks=(coup,))
    results = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        counts = np.concatenate([negbin(rng, 20, 0.05, 24), negbin(rng, 8, 0.05, 15), negbin(rng, 19.2, 0.05, 3)])
        results.append(judge(counts, config=config))
    for r in results:  # against the months just before: the true ratio within the interval
        assert r["break_low"] <= 2.4 <= r["break_high"]
        assert r["break_low"] > 1  # and the rise seen
    # Alerted by the break rule in all but one: seed 1's twelve months before the coup hold a 24 and a 1 (variance 30
    # around 7.7, as dispersed as alpha 0.4), under which 50 events in three months is 2.2x [1.2-4.0], p 0.006.
    assert sum(bool(r["alert"]) and "break" in r["rules"] for r in results) >= len(results) - 1
    assert sum("since the March 2021 coup" in (r.get("break_sentence") or "") for r in results) == len(results)


def test_a_break_the_rule_no_longer_judges_gives_no_sentence():
    # The same coup three years before the month: the break rule judges only the 12 months after a break, and a
    # ratio over the three years since it says nothing of this month's rise (the old sentence read "since the
    # change of government of January 2016: 16x ..." on a February 2019 alert).
    coup = Break("Niger", dt.date(2018, 12, 20), "the December 2018 coup")
    config = replace(CONFIG, breaks=(coup,))
    rng = np.random.default_rng(3)
    old = judge([*negbin(rng, 4, 0.3, 12), *negbin(rng, 20, 0.3, 36), 60], config=config)  # the coup in the 12th month
    assert old["break_rate_ratio"] > 1 and old["break_p_value"] is None  # computed, no longer judged
    assert old["break_sentence"] is None


def test_a_downward_trend_is_not_extrapolated_below_the_recent_level_when_the_baseline_has_zeros():
    # A decline from 45 to about 6 a month, flat at 6 for 16 months with two empty months (which made the guard
    # "the trend's prediction lies within the observed rates" vacuous), then a month of 12: about the 98th
    # percentile under the recent level, but "12 against 2.1 expected" before.
    counts = [45, 43, 40, 38, 35, 33, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 9, 8, 7]
    counts += [6, 5, 7, 0, 6, 5, 6, 0, 7, 6, 5, 6, 6, 7, 5, 6, 6, 5, 7, 12]
    recent_level = np.mean(counts[-13:-1])
    score = judge(counts)
    assert score["expected"] >= 0.7 * recent_level
    assert not score["alert"]


@pytest.mark.parametrize(
    "counts, indicator",
    [
        ([0] * 12 + [1] + [0] * 23 + [3, 2, 1], "events"),  # "1 events in ...": the sustained rule fired
        ([0] * 12 + [1] + [0] * 23 + [4, 3, 4], "events"),
        ([0] * 30 + [2] + [0] * 5 + [12, 9, 8], "fatalities"),
    ],
)
def test_no_alert_on_a_month_below_the_indicators_minimum_whichever_rule_fires(counts, indicator):
    score = judge(counts, indicator)
    assert score["observed"] < CONFIG.min_count(indicator)
    assert not score["alert"]


@pytest.mark.slow  # 2,400 judged months
def test_stable_series_alert_at_most_once_in_a_hundred_months_and_p_values_are_calibrated():
    rng = np.random.default_rng(13)
    flags, p_values = [], []
    for mean in (2, 5, 10, 20, 50):
        for alpha in (0.3, 1.0):
            for _ in range(4):  # 40 series of 39 + 60 months, judged at each of the last 60
                counts = negbin(rng, mean, alpha, 99)
                for t in range(39, 99):
                    score = judge(counts[: t + 1])
                    flags.append(bool(score["alert"]))
                    p_values.append(score.get("p_value") if score.get("p_value") is not None else 1.0)
    # targets: 0.12 alerts per series-year (1% of months), P(p < 0.001) at most twice nominal; a little room for
    # the sample's noise (before the redesign: 2.8% of months here)
    assert np.mean(flags) <= 0.0125
    assert np.mean(np.asarray(p_values) < 0.001) <= 0.0025


def panels_of(group_counts: dict[str, list[float]], months: list[dt.date]):
    """Group, country and admin1 panels of one group in Niger, one indicator column per entry."""
    n = len(months)
    base = {"source": ["ACLED"] * n, "country": ["Niger"] * n, "month": months}
    days = [31] * n
    indicators = {k: [int(v) for v in vals] for k, vals in group_counts.items()}
    zero = [0] * n
    columns = {i: indicators.get(i, zero) for i in ("events", "violent_events", "fatalities",
                                                     "civilian_targeting_events")}
    group = pl.DataFrame(
        {**base, "group_id": ["G"] * n, "group_name": ["Group G"] * n, "group_type": ["rebel group"] * n,
         **columns, "demonstrations": zero, "days_covered": days}
    )
    country = pl.DataFrame({**base, **columns, "demonstrations": zero, "days_covered": days})
    admin1 = pl.DataFrame(
        {**base, "level": ["group"] * n, "group_id": ["G"] * n, "admin1": ["Tillaberi"] * n, **columns}
    )
    return group, country, admin1


def test_one_rise_on_several_indicators_is_one_alert_with_the_others_listed():
    rng = np.random.default_rng(3)
    months = month_range(FIRST, dt.date(2021, 3, 1))
    events = negbin(rng, 10, 0.1, 38).tolist() + [40]
    counts = {"events": events, "violent_events": [e - 1 if e else 0 for e in events],
              "civilian_targeting_events": [e // 2 for e in events]}
    group, country, admin1 = panels_of(counts, months)
    scores = score_month(group, country, months[-1], CONFIG, log=lambda _: None).scores
    alerts = alert_table(scores.filter(pl.col("level") == "group"), admin1, CONFIG)
    rising = apply_alert_rule(scores.filter(pl.col("level") == "group"), CONFIG).filter(pl.col("alert"))
    assert rising.height >= 2  # the rise is seen on several indicators ...
    assert alerts.height == 1  # ... and said once
    row = alerts.row(0, named=True)
    assert row["indicator"] == "events"
    assert set(row["indicators"].split(", ")) >= set(rising["indicator"].to_list())


@pytest.mark.slow  # judges 2,400 simulated breaks over their year (3 s)
def test_a_break_with_no_change_alerts_by_the_break_rule_at_most_at_its_level_over_the_year_it_is_judged():
    # A state force renamed at a coup, its rate unchanged (the evaluation's `renamed`): the break rule judges the
    # same comparison every month for a year. Unadjusted, 0.6-0.7% of such breaks crossed 0.25% in one of the twelve
    # months (2.3 times the level; each month alone 0.18%). 2,400 breaks, means 10-50 and alpha 0.3 and 1.0 as
    # the evaluation's forces, at the true dispersion.
    config = replace(CONFIG, breaks=(Break("Niger", dt.date(2019, 12, 20), "a coup"),))
    start, rng, crossed = month_index(FIRST), np.random.default_rng(13), 0
    for mean, alpha in [(m, a) for m in (10, 20, 50) for a in (0.3, 1.0)] * 400:
        y = negbin(rng, mean, alpha, 36)  # the coup in the 24th month
        for last in range(24, 36):
            task = SeriesTask(("s",), "events", "Niger", np.arange(start, start + last + 1), y[: last + 1],
                              np.ones(last + 1))
            p = _break_ratio(task, config, alpha)["break_p_value"]
            if p is not None and p < config.break_p:
                crossed += 1
                break
    assert crossed / 2400 <= config.break_p  # measured: 16 of 2,400 unadjusted, 1 adjusted
