"""Count models on data with known truth: planted rises, stable series, zero baselines, equidispersion."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sahel_pipeline.core.alerts import apply_alert_rule, explain
from sahel_pipeline.core.forecast import QUANTILE_COLUMNS
from sahel_pipeline.core.models import Break, ModelConfig, Predictive, SeriesTask, rate_ratio, score_series
from sahel_pipeline.core.months import month_index
from sahel_pipeline.core.series import SERIES_KEY

CONFIG = ModelConfig()


def negbin(rng, mu, alpha, n):
    return rng.poisson(rng.gamma(1 / alpha, mu * alpha, n)) if alpha > 0 else rng.poisson(mu, n)


def task(counts, indicator="events", exposure=None, country="Niger", first_month=dt.date(2020, 1, 1)) -> SeriesTask:
    counts = np.asarray(counts, dtype=float)
    start = month_index(first_month)
    return SeriesTask(("s",), indicator, country, np.arange(start, start + len(counts)), counts,
                      np.ones(len(counts)) if exposure is None else np.asarray(exposure, dtype=float))


def scored(tasks: list[SeriesTask], config: ModelConfig = CONFIG) -> pl.DataFrame:
    rows = []
    for t in tasks:
        score, _ = score_series(t, config)
        rows.append({"indicator": t.indicator, **score})
    return apply_alert_rule(pl.DataFrame(rows, infer_schema_length=None), config)


@pytest.mark.slow  # hundreds of simulated series
def test_planted_threefold_rise_is_flagged_and_its_interval_covers_three():
    rng = np.random.default_rng(2024)
    series = [np.concatenate([negbin(rng, 8, 0.15, 36), negbin(rng, 24, 0.15, 3)]) for _ in range(200)]
    result = scored([task(s) for s in series])
    covers = (result["rate_ratio_low"] <= 3) & (result["rate_ratio_high"] >= 3)
    assert result["alert"].mean() >= 0.65  # a 3-month x3 rise on a bursty baseline: power measured at 0.75
    assert covers.mean() >= 0.85  # nominal 0.95; measured 0.89 (36 baseline months estimate the dispersion)
    assert 2.5 < result["rate_ratio"].median() < 3.5
    # and one clean case, start to finish
    clean = scored([task([8, 7, 9, 8, 6, 10, 8, 9, 7, 8, 9, 8] * 3 + [22, 25, 27])]).row(0, named=True)
    assert clean["alert"] and clean["severity"] == "high"
    assert clean["rate_ratio_low"] < 3 < clean["rate_ratio_high"]


@pytest.mark.slow  # hundreds of simulated series
def test_stable_series_alert_at_about_the_nominal_rate_over_many_years():
    rng = np.random.default_rng(7)
    tasks = []
    for _ in range(12):  # twelve series of 20 years, scored at every month after the first 39
        series = negbin(rng, 10, 0.2, 240)
        tasks += [task(series[: m + 1]) for m in range(39, 240)]
    result = scored(tasks)
    rate = result["alert"].mean()
    assert 0.002 < rate < 0.025, rate  # nominal 1% per series-month; measured about 1.5%
    assert (result["p_value"] < 0.05).mean() == pytest.approx(0.05, abs=0.02)  # exceedance p-values are calibrated


def test_zero_to_one_is_not_an_alert_but_zero_to_eight_is():
    quiet = [0] * 38
    one, eight = scored([task(quiet + [1]), task(quiet + [8])]).iter_rows(named=True)
    assert one["model"] == eight["model"] == "zero-baseline"
    assert not one["alert"]
    assert eight["alert"] and eight["p_value"] < 1e-6
    assert math.isinf(eight["rate_ratio"]) and eight["rate_ratio_low"] > 1  # exact interval when the baseline is empty


@pytest.mark.slow  # hundreds of simulated series
def test_the_dispersion_search_likelihood_is_the_pmfs_sum_to_the_bit():
    from sahel_pipeline.core import negbin as nb

    rng = np.random.default_rng(11)
    for n in (1, 3, 36, 39):
        mu = rng.gamma(1.5, 4.0, n)
        y = rng.poisson(mu * rng.gamma(2.0, 0.5, n)).astype(float)
        weights = rng.uniform(0.2, 1.0, n)
        mu[0] = 0.0  # a mean of zero is floored as logpmf floors it
        loglik = nb.weighted_loglik(y, mu, weights)
        for dispersion in (0.0, 1e-9, nb.POISSON, 1e-4, 0.013, 0.4, 1.0, 7.5, 50.0):
            assert loglik(dispersion) == float(np.sum(weights * nb.logpmf(y, mu, dispersion)))


def test_poisson_fallback_on_equidispersed_data_and_negbin_on_overdispersed():
    rng = np.random.default_rng(3)
    poisson = scored([task(rng.poisson(12, 39)) for _ in range(100)])
    overdispersed = scored([task(negbin(rng, 12, 0.5, 39)) for _ in range(100)])
    assert (poisson["model"] == "poisson").mean() >= 0.85
    assert (overdispersed["model"] == "negbin").mean() >= 0.85
    assert overdispersed.filter(pl.col("model") == "negbin")["alpha"].median() == pytest.approx(0.5, rel=0.4)


def test_partial_month_is_judged_on_the_days_it_covers():
    counts = [10] * 38 + [5]
    half = task(counts, exposure=[1.0] * 38 + [15 / 31])
    full = task(counts)
    partial_score, full_score = (score_series(t, CONFIG)[0] for t in (half, full))
    assert partial_score["expected"] == pytest.approx(10 * 15 / 31, rel=0.05)
    assert partial_score["partial"] and partial_score["days_covered"] == 15
    assert partial_score["p_value"] > 0.3  # 5 in half a month is normal, not a drop and not a rise
    assert full_score["expected"] == pytest.approx(10, rel=0.05)


def test_past_outbreak_in_the_baseline_is_down_weighted():
    calm = [5, 6, 4, 5, 5, 6, 5, 4, 6, 5, 5, 5] * 3
    with_spike = calm.copy()
    with_spike[10] = 60  # one earlier outbreak
    base = score_series(task(calm + [5, 5, 14]), CONFIG)[0]
    spiked = score_series(task(with_spike + [5, 5, 14]), CONFIG)[0]
    assert spiked["downweighted"] >= 1
    assert spiked["upper"] <= base["upper"] + 3  # the spike does not raise the bar for ever
    assert spiked["p_value"] < 0.01


def test_trend_is_kept_only_when_significant_and_not_extrapolating():
    rising = [round(5 * 1.04**m) for m in range(39)]  # projected to M, the trend exceeds every baseline month
    within = rising.copy()
    within[33] = 30  # one baseline month above the projection: the trend no longer extrapolates
    flat = [5, 6, 4, 5] * 9 + [5, 6, 4]
    rising_score, within_score, flat_score = (score_series(task(s), CONFIG)[0] for s in (rising, within, flat))
    assert rising_score["trend_per_year"] == 1.0
    assert within_score["trend_per_year"] > 1.3
    assert flat_score["trend_per_year"] == 1.0


def test_rate_ratio_is_the_ratio_of_window_means_with_a_wald_interval():
    base, recent = np.array([4.0, 6, 5, 5, 3, 7] * 6), np.array([15.0, 12, 18])
    ratio = rate_ratio(base, np.ones(36), recent, np.ones(3), alpha=0.0)
    assert ratio.ratio == pytest.approx(recent.mean() / base.mean())
    se = math.sqrt(1 / recent.sum() + 1 / base.sum())  # Poisson: var(log mean) = 1 / count
    assert ratio.low == pytest.approx(ratio.ratio * math.exp(-1.96 * se), rel=1e-6)
    assert ratio.high == pytest.approx(ratio.ratio * math.exp(1.96 * se), rel=1e-6)


@pytest.mark.slow  # 41 simulated series scored, with their forecasts
def test_a_rise_after_a_near_empty_baseline_is_told_in_counts_with_an_exact_interval():
    # 0.1 events a month for three years (a few events, or none), then 8 a month: the true ratio is 80. A dispersion
    # fitted to a handful of events gave "43x [0.02-91854] the baseline rate"; the exact conditional interval
    # covers the truth and the sentence gives the two counts instead.
    covered, seeds = 0, range(40)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        counts = np.concatenate([negbin(rng, 0.1, 0.5, 36), rng.poisson(8.0, 3)])
        score, _ = score_series(task(counts), CONFIG)
        assert score["rate_ratio_method"] == "exact", (seed, score["rate_ratio_method"])
        covered += score["rate_ratio_low"] <= 80 <= score["rate_ratio_high"]
        before = int(counts[:36].sum())
        assert score["baseline_sum"] == before
        row = {**score, "group_id": "g", "group_name": "G", "country": "Niger", "source": "ACLED",
               "indicator": "events", "month": dt.date(2023, 3, 1)}
        sentence = explain(row, CONFIG)
        assert f"hold {int(counts[36:].sum())} events against {before or 'none'} in the 36 months before" in sentence
        assert "the baseline rate" not in sentence, sentence
    assert covered >= 0.9 * len(seeds)
    # with enough baseline events the GLM's interval stays
    many = np.concatenate([np.full(36, 2.0), [8.0, 8, 8]])
    assert score_series(task(many), CONFIG)[0]["rate_ratio_method"] == "glm"


def test_break_date_rate_ratio_after_a_coup():
    config = ModelConfig(breaks=(Break("Niger", dt.date(2023, 7, 26), "the July 2023 coup"),))
    counts = [5] * 43 + [15] * 11  # 2020-01 .. 2024-06: x3 from August 2023, the month after the coup
    score = score_series(task(counts), config)[0]
    assert score["break_label"] == "the July 2023 coup"
    assert score["break_month"] == dt.date(2023, 7, 1)
    assert score["break_rate_ratio"] == pytest.approx(3.0, rel=0.02)
    assert score["break_low"] > 1.5  # against the 12 months just before the coup (60 events)


def test_a_month_between_two_breaks_is_compared_with_the_earlier_one():
    coups = (
        Break("Mali", dt.date(2020, 8, 18), "the August 2020 coup"),
        Break("Mali", dt.date(2021, 5, 24), "the May 2021 coup"),
    )
    config = ModelConfig(breaks=coups)
    counts = [5] * 44 + [10] * 6  # 2017-01 .. 2021-02: x2 from September 2020
    score = score_series(task(counts, country="Mali", first_month=dt.date(2017, 1, 1)), config)[0]
    assert score["break_label"] == "the August 2020 coup"
    assert score["break_rate_ratio"] == pytest.approx(2.0, rel=0.02)
    later = score_series(task([5] * 44 + [10] * 11, country="Mali", first_month=dt.date(2017, 1, 1)), config)[0]
    assert later["break_label"] == "the May 2021 coup"  # July 2021: the latest coup is known by then


def test_forecasts_give_six_months_with_ordered_quantiles():
    rng = np.random.default_rng(5)
    score, forecasts = score_series(task(negbin(rng, 20, 0.1, 48)), CONFIG)
    assert [f["horizon"] for f in forecasts] == [1, 2, 3, 4, 5, 6]
    for f in forecasts:
        quantiles = [f[c] for c in QUANTILE_COLUMNS]
        assert quantiles == sorted(quantiles)
        assert 10 < f["mean"] < 35 and 10 < f["q50"] < 35


@pytest.mark.parametrize("mu, se, alpha", [(7.0, 0.0, 0.0), (7.0, 0.0, 0.3), (150.0, 0.2, 1.5), (0.02, 1.0, 0.0)])
def test_predictive_distribution_matches_scipy(mu, se, alpha):
    predictive = Predictive(mu, se, alpha)
    dispersion = alpha + se**2
    reference = stats.poisson(mu) if dispersion == 0 else stats.nbinom(1 / dispersion, 1 / (1 + dispersion * mu))
    grid = np.arange(0, 60)
    assert np.allclose(predictive.cdf(grid), reference.cdf(grid), atol=1e-6)
    levels = [0.025, 0.10, 0.5, 0.90, 0.975, 0.99]
    assert predictive.quantiles(levels) == [int(v) for v in reference.ppf(levels)]
    assert predictive.quantile(0.99) == reference.ppf(0.99)
    assert predictive.sf_at_least(12) == pytest.approx(reference.sf(11), rel=1e-6)
    observed = 9
    counts = np.arange(0, 20_000)
    crps = float(np.sum((reference.cdf(counts) - (counts >= observed)) ** 2))
    assert predictive.crps(observed) == pytest.approx(crps, rel=1e-3)


def test_short_history_and_failed_fits_are_reported_not_raised():
    score, forecasts = score_series(task([3, 4, 5, 6, 7]), CONFIG)
    assert score["model"] == "skipped" and "short history" in score["note"]
    assert forecasts == []


@pytest.fixture(scope="module")
def sample_panels(sample_events):
    from sahel_pipeline import ALIAS_TABLE
    from sahel_pipeline.core.groups import load_alias_table
    from sahel_pipeline.core.panels import build_panels

    return build_panels(sample_events, load_alias_table(ALIAS_TABLE))


@pytest.mark.slow  # ingests the sample and scores its month three times
def test_scores_reused_from_an_earlier_run_equal_a_fresh_run(sample_panels):
    """A weekly update changes the last month of a series: its baseline fit is reused, the rest recomputed."""
    from sahel_pipeline.core.scoring import score_month

    panels = sample_panels
    month = dt.date(2024, 12, 1)
    last_week = score_month(panels.group_month, panels.country_month, month, CONFIG, log=lambda _: None)
    one_more = pl.col("group_id").eq("ISSP") & pl.col("country").eq("Niger") & pl.col("month").eq(month)
    updated = panels.group_month.with_columns(events=pl.when(one_more).then(pl.col("events") + 1).otherwise("events"))
    reused = score_month(updated, panels.country_month, month, CONFIG, log=lambda _: None, previous=last_week)
    fresh = score_month(updated, panels.country_month, month, CONFIG, log=lambda _: None)
    assert reused.reuse["baseline_fits_reused"] == 1  # ISSP Niger events: only its last month changed
    assert reused.reuse["forecast_filters_reused"] == 1  # ... so its forecast filter goes on from the month before
    assert reused.reuse["detection_levels_reused"] == 1  # ... and the detector's levels (baseline months) are kept
    assert reused.reuse["series_fitted"] == 0
    assert reused.reuse["scores_reused"] == fresh.scores.filter(pl.col("model") != "skipped").height - 1
    keys = SERIES_KEY
    assert reused.scores.sort(keys, nulls_last=True).equals(
        fresh.scores.select(reused.scores.columns).sort(keys, nulls_last=True)
    )
    order = [*keys, "horizon"]
    assert reused.forecasts.sort(order, nulls_last=True).equals(
        fresh.forecasts.select(reused.forecasts.columns).sort(order, nulls_last=True)
    )
    order = [*keys, "months", "basis", "at_least"]
    assert reused.exceedance.height == fresh.exceedance.height > 0
    assert reused.exceedance.sort(order, nulls_last=True).equals(
        fresh.exceedance.select(reused.exceedance.columns).sort(order, nulls_last=True)
    )


def test_the_cache_keys_hash_the_fit_settings_not_the_alert_rules():
    """Changing how alerts are drawn from the scores rescores nothing; changing what the scores are made of does."""
    from sahel_pipeline.core.models import RULE_SETTINGS, input_keys

    series = task(negbin(np.random.default_rng(3), 6, 0.3, 39))
    keys = input_keys(series, CONFIG)
    rule = dataclasses.replace(CONFIG, strong_p=0.0005, high_q=0.1, sustained_p=0.002, break_p=0.001,
                               new_actor_min_events=3, new_actor_quiet_months=6)
    assert {name for name in RULE_SETTINGS if getattr(rule, name) != getattr(CONFIG, name)} == set(RULE_SETTINGS)
    assert input_keys(series, rule) == keys
    slower = dataclasses.replace(CONFIG.detection_level, update_cap=2.0)
    for change in ({"alert_p": 0.01}, {"bound_quantile": 0.99}, {"exact_ratio_below": 5}, {"detection_level": slower},
                   {"min_counts": {**CONFIG.min_counts, "events": 3}}):
        fit = dataclasses.replace(CONFIG, **change)
        assert all(a != b for a, b in zip(input_keys(series, fit), keys, strict=True)), change


def test_the_cache_keys_hash_the_breaks_of_the_series_country_only():
    """A state-force period renamed in one country (its break's label changes) rescores that country's series, not
    every series: on the global export that rename made a weekly update refit all 20,000 series."""
    from sahel_pipeline.core.models import input_keys

    series = task(negbin(np.random.default_rng(3), 6, 0.3, 39), country="Niger")
    coup = Break("Niger", dt.date(2023, 7, 26), "the coup")
    elsewhere = Break("Brunei", dt.date(2018, 1, 4), "the change of government (period 2018-2018)")
    keys = input_keys(series, dataclasses.replace(CONFIG, breaks=(coup, elsewhere)))
    renamed = dataclasses.replace(elsewhere, label="the change of government (period 2018-2024)")
    assert input_keys(series, dataclasses.replace(CONFIG, breaks=(renamed, coup))) == keys
    assert input_keys(series, dataclasses.replace(CONFIG, breaks=(coup,))) == keys
    for own in (dataclasses.replace(coup, label="a coup"), dataclasses.replace(coup, date=dt.date(2023, 8, 1))):
        changed = input_keys(series, dataclasses.replace(CONFIG, breaks=(own, elsewhere)))
        assert all(a != b for a, b in zip(changed, keys, strict=True)), own


def test_the_detectors_kept_levels_give_the_verdicts_of_filtering_again():
    """A weekly update judges a series from the levels an earlier run filtered over the same baseline months: the
    same verdicts (series long and short, a partial last month, a break in the months filtered), not filtered."""
    from sahel_pipeline.core.models import judge_chunk

    rng = np.random.default_rng(5)
    config = ModelConfig(breaks=(Break("Niger", dt.date(2022, 3, 1), "a coup"),))
    tasks = []
    for i, (mu, n) in enumerate([(0.3, 39), (4, 20), (12, 60), (40, 39), (8, 45), (2, 39)]):
        exposure = np.ones(n)
        exposure[-1] = 0.4 if i % 2 else 1.0
        tasks.append(task(negbin(rng, mu, 0.3, n), exposure=exposure, country="Niger" if i % 3 else "Mali",
                          first_month=dt.date(2023, 5, 1) - dt.timedelta(days=30.44 * n)))
    first = judge_chunk(tasks, config)
    again = judge_chunk([dataclasses.replace(t, cached_detection=np.asarray(j.detection_state))
                         for t, j in zip(tasks, first, strict=True)], config)
    assert [(j.now, j.previous_exceedances) for j in again] == [(j.now, j.previous_exceedances) for j in first]
    # the kept levels are what the verdicts use: another series' levels give another verdict
    swapped = judge_chunk([dataclasses.replace(tasks[0], cached_detection=np.asarray(first[3].detection_state))],
                          config)
    assert swapped[0].now["expected"] != first[0].now["expected"]


@pytest.mark.slow  # ingests the sample and scores its month
def test_a_stored_month_splits_back_into_its_scores_forecasts_and_exceedance(sample_panels):
    """A shard stores one row per series with its forecasts and exceedance nested; reading it back gives the rows."""
    from sahel_pipeline.core.scoring import nest_forecasts, score_month, split_forecasts, unnest_forecasts

    month = score_month(sample_panels.group_month, sample_panels.country_month, dt.date(2024, 12, 1), CONFIG,
                        log=lambda _: None)
    stored = nest_forecasts(month)
    assert stored.height == month.scores.height
    back = split_forecasts(stored)
    assert back.scores.equals(month.scores)
    for name in ("forecasts", "exceedance"):
        rows = getattr(month, name)
        assert getattr(back, name).equals(unnest_forecasts(stored, name)) and getattr(back, name).height == rows.height
        assert getattr(back, name).select(rows.columns).sort(rows.columns).equals(rows.sort(rows.columns))


@pytest.mark.slow  # ingests the sample and scores its month twice
def test_a_stored_month_is_the_same_bytes_whatever_the_order_of_the_panels(sample_panels, tmp_path):
    from sahel_pipeline.core.scoring import nest_forecasts, score_month

    def stored(group_month: pl.DataFrame, country_month: pl.DataFrame, name: str) -> bytes:
        month = score_month(group_month, country_month, dt.date(2024, 12, 1), CONFIG, log=lambda _: None)
        nest_forecasts(month).write_parquet(tmp_path / name, compression="lz4")  # as the IO manager writes a shard
        return (tmp_path / name).read_bytes()

    panels = sample_panels
    reversed_panels = (panels.group_month.reverse(), panels.country_month.reverse())
    assert stored(panels.group_month, panels.country_month, "a.parquet") == stored(*reversed_panels, "b.parquet")


@pytest.mark.slow  # starts worker processes and scores the sample's month twice
def test_a_warmed_up_pool_scores_what_this_process_scores(sample_panels):
    import gc

    from sahel_pipeline.core.pool import FittingPool
    from sahel_pipeline.core.scoring import FULL_FIT_MS, STARTED_POOL_WORTH_MS, build_tasks, score_tasks

    tasks, _ = build_tasks(sample_panels.group_month, sample_panels.country_month, dt.date(2024, 12, 1), CONFIG)
    assert len(tasks) * FULL_FIT_MS > STARTED_POOL_WORTH_MS  # enough work for a running pool to be used
    pool = FittingPool(2)
    pool.warm_up()
    # The workers are forked from a server that froze its imports out of the garbage collector's reach.
    assert pool.executor().submit(gc.get_freeze_count).result(timeout=120) > 0
    assert pool.started
    pooled = score_tasks(tasks, CONFIG, pool, log=lambda _: None)
    here = score_tasks(tasks, CONFIG, None, log=lambda _: None)
    assert pooled.scores.height == len(tasks)
    assert pooled.scores.equals(here.scores)
    assert pooled.forecasts.equals(here.forecasts)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
@pytest.mark.parametrize("partial", [False, True])
def test_direct_rate_fits_equal_statsmodels_glm(alpha, partial):
    """The rate ratio's and the backtest's flat level's small GLMs are solved directly; they must be statsmodels' GLM
    (to its convergence tolerance: IRLS stops within about 1e-5 of the exact maximum)."""
    import statsmodels.api as sm

    from sahel_pipeline.core.backtest import flat_level
    from sahel_pipeline.core.models import rate_ratio

    rng = np.random.default_rng(11)
    y_base, y_recent = negbin(rng, 6, 0.4, 36).astype(float), negbin(rng, 14, 0.4, 3).astype(float)
    e_base, e_recent = np.ones(36), np.array([1.0, 1.0, 0.45 if partial else 1.0])
    family = sm.families.NegativeBinomial(alpha=alpha) if alpha else sm.families.Poisson()

    y = np.concatenate([y_base, y_recent])
    window = np.r_[np.zeros(36), np.ones(3)]
    glm = sm.GLM(y, np.column_stack([np.ones(39), window]), family=family, offset=np.log(np.r_[e_base, e_recent])).fit()
    ratio = rate_ratio(y_base, e_base, y_recent, e_recent, alpha)
    assert ratio.ratio == pytest.approx(math.exp(glm.params[1]), rel=1e-4)
    assert ratio.low == pytest.approx(math.exp(glm.params[1] - 1.96 * glm.bse[1]), rel=1e-4)

    weights = 0.5 ** (np.arange(39)[::-1] / 2.0)
    exposure = np.r_[e_base, e_recent]
    level = sm.GLM(y, np.ones((39, 1)), family=family, offset=np.log(exposure), var_weights=weights).fit()
    forecast = flat_level(y, exposure, alpha, 2.0)
    assert forecast.mu == pytest.approx(math.exp(level.params[0]), rel=1e-4)
    assert forecast.se == pytest.approx(level.bse[0], rel=1e-4)


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_the_trend_tests_poisson_fit_is_statsmodels_glm(seed):
    """The trend test's two Poisson GLMs (trend, then re-weighted) are solved by Newton's method; they must be
    statsmodels' GLM with the same offset and variance weights: coefficients, standard errors, Pearson chi-square."""
    import statsmodels.api as sm

    from sahel_pipeline.core.models import poisson_glm

    rng = np.random.default_rng(seed)
    t = (np.arange(36) - 38) / 12.0
    exposure = np.r_[np.ones(35), 0.4]
    y = rng.poisson(8 * np.exp(0.3 * t) * exposure).astype(float)
    y[7] *= 5  # an outbreak month, so that the weights matter
    weights = np.where(np.arange(36) == 7, 0.2, 1.0)
    X = np.column_stack([np.ones(36), t])
    for w in (None, weights):
        ours = poisson_glm(y, X, np.log(exposure), w, start=np.array([math.log(y.mean()), 0.0]))
        theirs = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.log(exposure), var_weights=w).fit(tol=1e-12)
        assert ours.params == pytest.approx(theirs.params, rel=1e-6, abs=1e-9)
        assert ours.bse == pytest.approx(theirs.bse, rel=1e-6)
        assert ours.pearson_chi2 == pytest.approx(theirs.pearson_chi2, rel=1e-6)
        assert ours.mu == pytest.approx(theirs.mu, rel=1e-6)
        assert ours.df_resid == theirs.df_resid


@pytest.mark.parametrize("seed", [5, 8, 13])
def test_the_negative_binomial_fit_starts_at_its_maximum_and_statsmodels_confirms_it_at_once(seed):
    """A series with years of zeros and then events (a group appearing): a steep trend, a large dispersion. From the
    Poisson fit statsmodels' IRLS crawls; from `negbin_start` (Newton's method on the same likelihood) it confirms
    the maximum in a few iterations, and that maximum is statsmodels' own, run to a far tighter tolerance."""
    import statsmodels.api as sm

    from sahel_pipeline.core.models import negbin_start, poisson_glm

    rng = np.random.default_rng(seed)
    t = (np.arange(36) - 35) / 12.0
    y = np.r_[np.zeros(23), negbin(rng, 15, 1.5, 13)].astype(float)
    X, offset = np.column_stack([np.ones(36), t]), np.zeros(36)
    weights = np.where(np.arange(36) == 27, 0.15, 1.0)
    poisson = poisson_glm(y, X, offset, weights, start=np.array([math.log(y.mean()), 0.0])).params
    family = sm.families.NegativeBinomial(alpha=2.0)
    exact = sm.GLM(y, X, family=family, offset=offset, var_weights=weights).fit(
        start_params=poisson, tol=1e-14, maxiter=1000
    )
    start = negbin_start(y, X, offset, 2.0, weights, poisson)
    assert start == pytest.approx(exact.params, rel=1e-7)
    from_poisson = sm.GLM(y, X, family=family, offset=offset, var_weights=weights).fit(start_params=poisson)
    from_start = sm.GLM(y, X, family=family, offset=offset, var_weights=weights).fit(start_params=start)
    assert from_start.converged and from_start.fit_history["iteration"] <= 3 < from_poisson.fit_history["iteration"]
    assert from_start.params == pytest.approx(exact.params, rel=1e-7)
    assert from_start.bse == pytest.approx(exact.bse, rel=1e-6)


def test_heavy_imports_start_in_the_background_once():
    import sys

    from sahel_pipeline.core.imports import import_in_background

    assert "mailbox" not in sys.modules  # a standard-library module nothing here imports
    thread = import_in_background("mailbox", "json")
    assert thread is not None
    thread.join(timeout=30)
    assert "mailbox" in sys.modules
    assert import_in_background("mailbox", "json") is None


def test_forecast_and_exceedance_rows_have_the_columns_of_their_schemas():
    from sahel_pipeline.core.models import forecast_chunk
    from sahel_pipeline.core.scoring import EXCEEDANCE_SCHEMA, FORECAST_SCHEMA

    rng = np.random.default_rng(5)
    _, forecasts = score_series(task(rng.poisson(6.0, 48)), CONFIG)
    assert len(forecasts) == CONFIG.horizons
    assert all(list(row) == list(FORECAST_SCHEMA) for row in forecasts)
    exceedance = forecast_chunk([task(rng.poisson(6.0, 48))], CONFIG)[0].exceedance
    assert exceedance and all(list(row) == list(EXCEEDANCE_SCHEMA) for row in exceedance)



def test_a_weekly_rescoring_equals_scoring_each_series_alone():
    """score_month with an earlier run (chunks of equal work, results as columns, the earlier scores matched by a
    join) gives what scoring each series alone gives, for every kind of series: refitted (a baseline month revised),
    rescored on its kept fit (its last month, or a recent month, revised), kept (nothing changed), skipped (sparse, a
    type not alerted) and too short to model."""
    from sahel_pipeline.core.models import forecast_chunk, judge_chunk
    from sahel_pipeline.core.months import index_month_expr
    from sahel_pipeline.core.scoring import (
        EXCEEDANCE_SCHEMA,
        FORECAST_SCHEMA,
        KEY_SCHEMA,
        SCORE_SCHEMA,
        build_tasks,
        score_month,
    )
    from sahel_pipeline.core.series import SERIES_COLUMNS

    rng = np.random.default_rng(11)
    months = pl.date_range(dt.date(2018, 1, 1), dt.date(2024, 12, 1), "1mo", eager=True)
    month, config = months[-1], ModelConfig(breaks=(Break("Niger", dt.date(2023, 7, 26), "the coup"),))
    kinds = {"refit": 6, "last": 6, "recent": 4, "kept": 6, "sparse": 3, "civilians": 2, "short": 3}
    group = pl.concat(
        pl.DataFrame({
            "source": "ACLED", "group_id": f"{kind}-{i}", "group_name": f"{kind} {i}",
            "group_type": "civilians" if kind == "civilians" else "rebel group", "country": ["Niger", "Mali"][i % 2],
            "month": months, "events": negbin(rng, 0.05 if kind == "sparse" else 3 + 4 * i, 0.3, len(months)),
            "kind": kind,
        }).tail(12 if kind == "short" else len(months))
        for kind, n in kinds.items()
        for i in range(n)
    ).with_columns(days_covered=pl.col("month").dt.month_end().dt.day().cast(pl.Int64))
    # the month the update revises: in the baseline, the last month, the month before it
    revised = {"refit": months[-10], "last": month, "recent": months[-2]}
    updated = group.with_columns(
        events=pl.when(pl.col("month") == pl.col("kind").replace_strict(revised, default=None))
        .then(pl.col("events") + 3)
        .otherwise("events")
    )

    def panels(group: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        country = group.group_by("source", "country", "month").agg(pl.first("days_covered"), pl.sum("events"))
        return group.drop("kind"), country

    earlier = score_month(*panels(group), month, config, log=lambda _: None, indicators=["events"])
    weekly = score_month(*panels(updated), month, config, log=lambda _: None, indicators=["events"], previous=earlier)
    # every kind is there; the two countries' series are refitted, their baselines' sums having changed
    assert weekly.reuse["series_fitted"] == kinds["refit"] + 2
    assert weekly.reuse["baseline_fits_reused"] == kinds["last"] + kinds["recent"]
    assert weekly.reuse["forecast_filters_reused"] == kinds["last"]
    assert weekly.reuse["scores_reused"] == kinds["kept"] + kinds["short"]
    notes = dict(weekly.scores.filter(pl.col("model") == "skipped").select("group_id", "note").iter_rows())
    for kind, note in (("sparse", "sparse"), ("civilians", "type not alerted"), ("short", "short history")):
        assert {k for k, n in notes.items() if n.startswith(note)} == {f"{kind}-{i}" for i in range(kinds[kind])}

    # the reference: each series scored alone, its rows made into frames one dict a row
    tasks, _ = build_tasks(*panels(updated), month, config, ["events"])
    scores, forecasts, exceedance = [], [], []
    for t in tasks:
        score, ahead = score_series(t, config)
        key = dict(zip(SERIES_COLUMNS, t.key, strict=True))
        if ahead:
            forecast = forecast_chunk([t], config)[0]
            score |= {"level_state": forecast.level_state}
            score |= {"detection_state": judge_chunk([t], config)[0].detection_state}
            forecasts += [key | row for row in ahead]
            exceedance += [key | row for row in forecast.exceedance]
        scores.append(key | score)

    def same(got: pl.DataFrame, rows: list[dict], schema: dict, *order: str) -> None:
        # the forecast and exceedance rows give months as month numbers, a score its break month as a date
        dates = [c for c, dtype in schema.items() if dtype == pl.Date and schema is not SCORE_SCHEMA]
        want = pl.DataFrame(rows, schema={**KEY_SCHEMA, **schema, **dict.fromkeys(dates, pl.Int64)})
        want = want.with_columns(index_month_expr(c).alias(c) for c in dates)
        got = got.filter(pl.col("model") != "skipped") if "model" in schema else got
        want = want.filter(pl.col("model") != "skipped") if "model" in schema else want
        assert got.height == want.height > 0
        keys = [*SERIES_COLUMNS, *order]
        assert got.select(want.columns).sort(keys, nulls_last=True).equals(want.sort(keys, nulls_last=True))

    same(weekly.scores, scores, SCORE_SCHEMA)
    same(weekly.forecasts, forecasts, FORECAST_SCHEMA, "horizon")
    same(weekly.exceedance, exceedance, EXCEEDANCE_SCHEMA, "months", "basis", "at_least")


def test_the_workers_get_chunks_of_about_equal_work_the_refits_first():
    """A weekly update's few refits cost several times a rescore: chunks are cut by work, not by count, so that the
    two workers finish together; the dearest go first, so that each worker ends on light chunks."""
    from sahel_pipeline.core.models import BaselineFit
    from sahel_pipeline.core.scoring import CHUNKS_PER_WORKER, FULL_FIT_MS, balanced_chunks, task_work

    fit = BaselineFit("poisson", 0.0, 1.0, 0.1, False, 0.0, 1.0, 0)
    series = task(np.full(39, 3.0))
    tasks = [series if i % 30 == 0 else dataclasses.replace(series, cached_fit=fit) for i in range(1200)]
    chunks = balanced_chunks(tasks, 2)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(1200))
    work = [sum(task_work(tasks[i]) for i in chunk) for chunk in chunks]
    assert len(chunks) == 2 * CHUNKS_PER_WORKER
    assert max(work[:-1]) - min(work[:-1]) <= FULL_FIT_MS and work[-1] <= min(work[:-1])  # the last: what is left
    assert [i for chunk in chunks for i in chunk][:40] == list(range(0, 1200, 30))  # the refits first
    assert balanced_chunks([], 2) == [] and len(balanced_chunks(tasks[:90], 2)) == 2  # little work: fewer chunks


def test_series_come_to_be_scored_in_the_order_of_their_keys_whatever_the_rows_order():
    """The tasks (and so the rows of the stored scores) are in the series keys' order: a group_by gives its groups
    in any order, and the same inputs stored their buffer scores in a different order from one run to the next."""
    import datetime as dt

    from sahel_pipeline.core.scoring import series_tasks

    month = dt.date(2026, 10, 1)
    months = [dt.date(2024 + (m // 12), m % 12 + 1, 1) for m in range(22, 34)]  # Nov 2025 .. Oct 2026
    rows = [
        {"source": "ACLED", "level": "group", "group_id": f"G{g:04d}", "group_name": f"G{g:04d}", "group_type":
         "rebel group", "country": f"C{g % 7}", "indicator": "events", "month": m, "count": 5 + g % 3,
         "days_covered": 28}
        for g in range(1500) for m in months
    ]  # fmt: skip
    frame = pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=3)
    tasks, _ = series_tasks(frame.lazy(), month, ModelConfig())
    keys = [task.key for task in tasks]
    assert len(keys) == 1500 and keys == sorted(keys)
