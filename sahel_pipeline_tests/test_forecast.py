"""Forecasts on known truth: simulated levels that drift or stay, breaks, exceedance probabilities, three-month totals;
and the distribution and score functions against independent computations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from sahel_pipeline.core import negbin
from sahel_pipeline.core.backtest import pit_coverage, sample_crps, sample_quantiles, weighted_interval_score
from sahel_pipeline.core.forecast import QUANTILES, Counts, FilterState, LevelParams, filter_levels
from sahel_pipeline.core.models import Break, ModelConfig, SeriesTask, forecast_chunk, month_index

PARAMS = LevelParams()
MONTHS = 39  # what the pipeline filters: the baseline and recent windows


def simulate(rng, n, months, drift, alpha, start_rate):
    """Counts from the model itself: a log level on a random walk of variance `drift`, NB noise of dispersion alpha."""
    level = np.log(start_rate) + np.cumsum(rng.normal(0, np.sqrt(drift), (n, months)), axis=1)
    rate = np.exp(level) * (rng.gamma(1 / alpha, alpha, (n, months)) if alpha > 0 else 1.0)
    return rng.poisson(rate).astype(float)


def calibration(outcomes, counts, level):
    """Share of outcomes in the central interval of `level`, on the randomised PIT (exactly nominal when calibrated)."""
    return float(pit_coverage(counts.cdf(outcomes - 1), counts.cdf(outcomes), level).mean())


@pytest.fixture(scope="module")
def drifting():
    rng = np.random.default_rng(20)
    counts = simulate(rng, 3000, MONTHS + 6, 0.04, 0.2, 8.0)
    return counts, filter_levels(counts[:, :MONTHS], np.ones((3000, MONTHS)), PARAMS)


@pytest.fixture(scope="module")
def stable():
    rng = np.random.default_rng(21)
    counts = simulate(rng, 3000, MONTHS + 6, 0.0, 0.2, 8.0)
    return counts, filter_levels(counts[:, :MONTHS], np.ones((3000, MONTHS)), PARAMS)


@pytest.mark.slow  # the module's 6,000 simulated series, filtered (about 1.5 s of CPU)
@pytest.mark.parametrize("horizon", [1, 6])
def test_a_drifting_level_gets_intervals_that_hold_at_horizons_1_and_6(drifting, horizon):
    counts, level = drifting
    forecast = level.month(horizon)
    outcome = counts[:, MONTHS - 1 + horizon]
    # within 3 points (measured 0.49, 0.79, 0.94 and 0.51, 0.79, 0.95); the former flat level, the same distribution
    # at every horizon, gave 0.52, 0.82, 0.95 and 0.47, 0.75, 0.91: it fails six months ahead
    for nominal in (0.5, 0.8, 0.95):
        assert calibration(outcome, forecast, nominal) == pytest.approx(nominal, abs=0.03), nominal
    # and the plain intervals an analyst reads hold at least their nominal share (more: counts are discrete)
    q = forecast.quantiles(QUANTILES)
    inside = (q[:, 0] <= outcome) & (outcome <= q[:, -1])
    assert 0.93 <= inside.mean() <= 0.99


@pytest.mark.slow  # the module's 6,000 simulated series, filtered (about 1.5 s of CPU)
def test_intervals_widen_with_the_horizon_for_a_drifting_level_and_only_a_little_for_a_stable_one(drifting, stable):
    def width95(level, h):
        q = level.month(h).quantiles(QUANTILES)
        return float(np.median(q[:, -1] - q[:, 0]))

    drift_ratio = width95(drifting[1], 6) / width95(drifting[1], 1)
    stable_ratio = width95(stable[1], 6) / width95(stable[1], 1)
    assert drift_ratio > 1.15  # measured 1.29
    assert stable_ratio < 1.15  # measured 1.11
    counts, level = stable
    for nominal in (0.5, 0.8, 0.95):  # not much wider than it should be
        assert calibration(counts[:, MONTHS + 5], level.month(6), nominal) == pytest.approx(nominal, abs=0.05)


@pytest.mark.slow  # the module's 6,000 simulated series, filtered (about 1.5 s of CPU)
def test_exceedance_probabilities_are_calibrated(drifting):
    """Reliability: among forecasts that gave P(count >= k) about p, a share p reached k."""
    counts, level = drifting
    thresholds = np.array([1, 5, 10, 25])
    month = level.month(1)
    predicted = (
        Counts(month.m[:, None], month.v[:, None], month.alpha[:, None]).sf_at_least(thresholds[None, :]).ravel()
    )
    happened = (counts[:, MONTHS][:, None] >= thresholds[None, :]).ravel()
    bins = np.digitize(predicted, np.linspace(0, 1, 11)[1:-1])
    for b in np.unique(bins):
        chosen = bins == b
        if chosen.sum() >= 200:
            assert happened[chosen].mean() == pytest.approx(predicted[chosen].mean(), abs=0.05), b
    brier = np.mean((predicted - happened) ** 2)
    climatology = np.mean((happened.mean() - happened) ** 2)
    assert brier < 0.75 * climatology  # the probabilities know something, not only the base rate


@pytest.mark.slow  # the module's 6,000 simulated series, filtered (about 1.5 s of CPU)
def test_the_three_month_total_is_calibrated(drifting):
    counts, level = drifting
    forecast = level.total([1, 2, 3])
    total = counts[:, MONTHS : MONTHS + 3].sum(axis=1)
    for nominal in (0.5, 0.8, 0.95):
        assert calibration(total, forecast, nominal) == pytest.approx(nominal, abs=0.05), nominal
    predicted = forecast.sf_at_least(25)
    for low, high in ((0.1, 0.4), (0.4, 0.7), (0.7, 0.95)):
        chosen = (predicted >= low) & (predicted < high)
        assert (total[chosen] >= 25).mean() == pytest.approx(predicted[chosen].mean(), abs=0.06)


def test_the_total_shares_the_level_path():
    """The total's moments from the closed form equal a simulation of level paths; treating months as independent
    would understate its variance."""
    rng = np.random.default_rng(3)
    counts = simulate(rng, 1, MONTHS, 0.04, 0.3, 12.0)
    level = filter_levels(counts, np.ones_like(counts), PARAMS)
    draws = 400_000
    path = level.mean[0] + np.sqrt(level.variance[0]) * rng.standard_normal(draws)
    totals = np.zeros(draws)
    for _ in range(3):
        path = path + np.sqrt(level.drift[0]) * rng.standard_normal(draws)
        totals += rng.poisson(np.exp(path) * rng.gamma(1 / level.alpha[0], level.alpha[0], draws))
    forecast = level.total([1, 2, 3])
    variance = (
        forecast.mean + forecast.alpha * forecast.mean**2 * np.exp(forecast.v) + forecast.mean**2 * np.expm1(forecast.v)
    )
    assert forecast.mean[0] == pytest.approx(totals.mean(), rel=0.01)
    assert variance[0] == pytest.approx(totals.var(), rel=0.03)
    # the mixture the quantiles come from has the same moments (to the three nodes' precision)
    grid = np.arange(0, 2000)
    pmf = np.exp(Counts(forecast.m[:, None], forecast.v[:, None], forecast.alpha[:, None]).logpmf(grid[None, :]))[0]
    assert pmf @ grid == pytest.approx(totals.mean(), rel=0.01)
    assert pmf @ (grid - pmf @ grid) ** 2 == pytest.approx(totals.var(), rel=0.05)
    independent = sum(
        c.mean + c.alpha * c.mean**2 * np.exp(c.v) + c.mean**2 * np.expm1(c.v)
        for c in (level.month(h) for h in (1, 2, 3))
    )
    assert independent[0] < 0.9 * totals.var()


def test_the_monthly_update_is_the_laplace_approximation_of_the_posterior():
    """One month's update against the posterior of a normal prior on the log level and a negative-binomial count,
    computed numerically: its mode and curvature, and (looser) its mean and variance by quadrature."""
    prior_var, alpha = 0.3, 0.2
    for y in (0.0, 2.0, 9.0, 40.0):
        params = LevelParams(prior_variance=prior_var, alphas=(alpha,), drifts=(0.04,), drift_prior=(1.0,))
        level = filter_levels(np.array([[y]]), np.array([[1.0]]), params)
        centre = np.log(y + 0.5)  # the filter's prior is centred on the series' own mean rate

        def log_posterior(x, y=y, centre=centre):
            return float(negbin.logpmf(y, np.exp(x), alpha)) - (x - centre) ** 2 / (2 * prior_var)

        mode = optimize.minimize_scalar(
            lambda x: -log_posterior(x), bounds=(-10, 10), method="bounded", options={"xatol": 1e-10}
        ).x
        step = 1e-4
        curvature = -(log_posterior(mode + step) - 2 * log_posterior(mode) + log_posterior(mode - step)) / step**2
        assert level.mean[0] == pytest.approx(mode, abs=1e-5), y
        assert level.variance[0] == pytest.approx(1 / curvature, rel=1e-3), y
        _, mean, variance = _moments(lambda x, lp=log_posterior: np.exp(lp(x)))
        assert level.mean[0] == pytest.approx(mean, abs=0.1), y
        assert level.variance[0] == pytest.approx(variance, rel=0.15), y


def _moments(density):
    """Mass, mean and variance of a density on the log scale, by quadrature."""
    norm = integrate.quad(density, -15, 10)[0]
    mean = integrate.quad(lambda x: x * density(x), -15, 10)[0] / norm
    return norm, mean, integrate.quad(lambda x: (x - mean) ** 2 * density(x), -15, 10)[0] / norm


def test_a_coup_moves_the_level_within_a_month():
    """Five events a month for three years, a coup, then fifteen: the forecast made the month after follows the new
    level when the break is known, and lags it when it is not."""
    counts = [5.0] * 42 + [15.0]
    first = dt.date(2020, 1, 1)
    months = np.arange(month_index(first), month_index(first) + len(counts))
    series = SeriesTask(("s",), "events", "Niger", months, np.array(counts), np.ones(len(counts)))
    coup = Break("Niger", dt.date(2023, 6, 20), "a coup")  # in the month before the jump
    known, unknown = (forecast_chunk([series], ModelConfig(breaks=breaks))[0].months[0] for breaks in ((coup,), ()))
    assert known["q50"] >= 11  # measured 12
    assert unknown["q50"] <= known["q50"] - 2
    assert known["q975"] - known["q025"] > unknown["q975"] - unknown["q025"]


def test_a_break_in_the_last_month_widens_the_forecast():
    counts = np.array([8.0] * 39)
    months = np.arange(600, 639)
    series = SeriesTask(("s",), "events", "Mali", months, counts, np.ones(39))
    coup = Break("Mali", dt.date(1970 + 638 // 12, 638 % 12 + 1, 15), "a coup")
    with_break, without = (forecast_chunk([series], ModelConfig(breaks=b))[0].months[0] for b in ((coup,), ()))
    assert with_break["q50"] == without["q50"] == 8
    assert with_break["q975"] - with_break["q025"] > 1.3 * (without["q975"] - without["q025"])


def test_going_on_from_the_state_reaching_the_last_month_equals_filtering_it_all():
    """A weekly rerun changes a series' last month: the filter goes on from the state it had reached (one month's
    work), and gives what filtering every month again gives, breaks and partial months included."""
    rng = np.random.default_rng(12)
    counts = simulate(rng, 50, MONTHS, 0.04, 0.3, 5.0)
    exposure = np.ones_like(counts)
    exposure[:10, :5] = 0  # series that start later
    exposure[::3, -1] = 0.4  # a partial last month
    breaks = np.zeros_like(counts, dtype=bool)
    breaks[::4, -2] = breaks[::5, -1] = True  # breaks into the last month and after it
    earlier = filter_levels(counts, exposure, PARAMS, breaks)
    revised = counts.copy()
    revised[:, -1] += rng.poisson(3, 50)  # this week's new events in the last month
    whole = filter_levels(revised, exposure, PARAMS, breaks)
    state = FilterState.unpacked(earlier.reaching_last.packed())
    resumed = filter_levels(revised[:, -1:], exposure[:, -1:], PARAMS, breaks[:, -1:], state)
    for name in ("mean", "variance", "alpha", "drift", "pending"):
        assert np.allclose(getattr(resumed, name), getattr(whole, name), rtol=1e-12, atol=1e-12), name


def test_a_recent_rise_carries_into_the_forecast_and_a_partial_month_is_scaled():
    rise = np.array([4.0] * 36 + [12.0, 14.0, 16.0])
    level = filter_levels(rise[None, :], np.ones((1, 39)), PARAMS)
    assert 11 <= np.exp(level.mean[0]) <= 16
    # half a month with half the events reads as the full month's rate
    partial = filter_levels(np.array([[8.0] * 38 + [4.0]]), np.array([[1.0] * 38 + [0.5]]), PARAMS)
    assert np.exp(partial.mean[0]) == pytest.approx(8.0, rel=0.05)


def test_forecast_rows_and_exceedance_rows():
    rng = np.random.default_rng(8)
    months = np.arange(600, 639)
    tasks = [
        SeriesTask(("a",), "fatalities", "Mali", months, simulate(rng, 1, 39, 0.04, 0.5, 30.0)[0], np.ones(39)),
        SeriesTask(("b",), "events", "Mali", months, simulate(rng, 1, 39, 0.04, 0.2, 3.0)[0], np.ones(39)),
    ]
    config = ModelConfig()
    fatalities, events = forecast_chunk(tasks, config)
    assert [r["target_month"] for r in fatalities.months] == list(range(639, 645))
    fixed = [r for r in fatalities.exceedance if r["basis"] == "fixed" and r["months"] == 1]
    assert [r["at_least"] for r in fixed] == list(config.exceedance_counts["fatalities"])
    high = [r for r in events.exceedance if r["basis"] == "12-month high"]
    assert [r["at_least"] for r in high] == [
        max(1, int(tasks[1].counts[-12:].max())),
        max(1, int(np.convolve(tasks[1].counts[-12:], np.ones(3), "valid").max())),
    ]
    for row in fatalities.exceedance + events.exceedance:
        assert 0 <= row["probability"] <= 1
    # one series computed alone is the same as in a chunk
    alone = forecast_chunk(tasks[1:], config)[0]
    assert alone.months == events.months and alone.exceedance == events.exceedance


# --- the distribution and the scores, against independent computations -------------------------------------------


@pytest.mark.parametrize(
    "mu, dispersion", [(0.3, 0.0), (7.0, 0.0), (7.0, 0.4), (150.0, 1.5), (2500.0, 0.05), (0.02, 1.0)]
)
def test_negative_binomial_functions_match_scipy(mu, dispersion):
    reference = stats.poisson(mu) if dispersion == 0 else stats.nbinom(1 / dispersion, 1 / (1 + dispersion * mu))
    grid = np.arange(0, 4000)
    assert np.allclose(negbin.cdf(grid, mu, dispersion), reference.cdf(grid), atol=1e-9)
    assert np.allclose(negbin.logpmf(grid[:200], mu, dispersion), reference.logpmf(grid[:200]), atol=1e-8)
    assert np.allclose(
        negbin.sf_at_least(grid[1:200], mu, dispersion), reference.sf(grid[:199]), rtol=1e-6, atol=1e-300
    )
    levels = [0.01, 0.025, 0.1, 0.5, 0.9, 0.975, 0.99]
    assert negbin.quantiles(mu, dispersion, levels).tolist() == [int(v) for v in reference.ppf(levels)]
    for y in (0, 3, int(mu) + 1, int(3 * mu) + 5):
        k = np.arange(0, int(reference.ppf(1 - 1e-12)) + y + 2)
        brute = float(((reference.cdf(k) - (k >= y)) ** 2).sum())
        assert float(negbin.crps(y, mu, dispersion)) == pytest.approx(brute, rel=1e-4, abs=1e-9)


def test_sample_scores_match_brute_force():
    rng = np.random.default_rng(4)
    samples = rng.poisson(5, (50, 12)).astype(float)
    y = rng.poisson(5, 50).astype(float)
    crps = sample_crps(samples, y)
    for row in range(50):
        ecdf = [(samples[row] <= k).mean() for k in range(0, 60)]
        assert crps[row] == pytest.approx(sum((f - (k >= y[row])) ** 2 for k, f in enumerate(ecdf)))
    q = sample_quantiles(samples, QUANTILES)
    for row in range(50):
        assert q[row].tolist() == [float(np.quantile(samples[row], p, method="inverted_cdf")) for p in QUANTILES]


def test_interval_score_and_pit_coverage_match_their_definitions():
    # quantiles of one forecast, an outcome below its 95% interval
    q = np.array([[2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 14.0, 16.0, 19.0]])
    y = np.array([1.0])
    # WIS = (|y - median|/2 + sum_k a_k/2 * IS_k) / (K + 1/2), IS = width + 2/a * miss
    is50, is80, is95 = (11 - 6) + 2 / 0.5 * 5, (14 - 4) + 2 / 0.2 * 3, (19 - 2) + 2 / 0.05 * 1
    expected = (0.5 * 7 + 0.25 * is50 + 0.1 * is80 + 0.025 * is95) / 3.5
    assert weighted_interval_score(y, q)[0] == pytest.approx(expected)
    # the randomised PIT: a uniform draw between F(y - 1) and F(y), as a Monte Carlo would give
    rng = np.random.default_rng(1)
    mu, d, outcomes = 4.0, 0.3, rng.poisson(4, 300).astype(float)
    below, at_most = negbin.cdf(outcomes - 1, mu, d), negbin.cdf(outcomes, mu, d)
    draws = below[:, None] + rng.uniform(size=(300, 4000)) * (at_most - below)[:, None]
    for level in (0.5, 0.8, 0.95):
        low, high = (1 - level) / 2, (1 + level) / 2
        assert pit_coverage(below, at_most, level) == pytest.approx(
            ((draws >= low) & (draws <= high)).mean(axis=1), abs=0.03
        )
