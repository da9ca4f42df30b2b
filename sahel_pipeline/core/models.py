"""Count models per series: negative-binomial GLMs (Poisson when not overdispersed) for escalation and forecasts.

For an as-of month M and one monthly count series, three questions are answered:

1. Exceedance. A GLM is fitted on a baseline window that ends before the recent window (by default the 36 months
   before the last 3), so a rise under way does not raise its own bar. A linear trend is kept only when it is
   significant and its prediction for M stays within the range the baseline observed (Farrington et al. 1996).
   Earlier outbreaks in the baseline are down-weighted: months whose standardised Anscombe residual exceeds 2.58 get
   weight s^-2 (Noufaily et al. 2013). The dispersion is estimated by maximum likelihood and the Poisson model kept
   when a likelihood-ratio test finds no overdispersion or the negative-binomial fit fails. The count of M is then set
   against the predictive distribution of the fitted model (negative binomial, widened by the uncertainty of the
   fitted mean), not against a confidence interval of the mean: expected count, 99% upper bound, P(Y >= observed).
   The dispersion used is the larger of the ML and moment estimates (the ML one is biased low on 36 months).
2. Rate ratio. The incidence rate ratio of the recent window against the baseline, with a 95% interval, from a GLM
   with a window dummy ("x2.9 [1.8-4.6]"). When the baseline holds fewer than `exact_ratio_below` events the exact
   conditional (Poisson) interval is used, and the sentences give the two counts rather than a ratio: a dispersion
   fitted to a handful of events made the GLM's interval meaningless ("43x [0.02-91854]").
   The same is computed after a known break date when one is configured for the series' country.
3. Forecast. The next six months from the series' recent level (`forecast.py`: a local level that drifts, filtered
   over the last 39 months), as predictive distributions whose intervals widen with the horizon, with the
   probabilities of reaching given counts next month and over the next three months.

Everything works on plain numpy arrays; `score_chunk` is the unit of work a process pool fans out (its forecasts are
computed for the whole chunk at once).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import special

from sahel_pipeline.core import negbin
from sahel_pipeline.core.actor_types import ARMED_TYPES
from sahel_pipeline.core.detection import (
    DETECTION_LEVEL,
    Verdict,
    judge_last,
    packed_level,
    packed_width,
    unpacked_level,
)
from sahel_pipeline.core.forecast import (
    QUANTILE_COLUMNS,
    TOTAL_MONTHS,
    FilterState,
    Level,
    LevelParams,
    filter_levels,
    outlook,
)
from sahel_pipeline.core.imports import wait_for_import
from sahel_pipeline.core.months import days_in_month, index_month, month_index


@dataclass(frozen=True)
class Break:
    """A dated event after which analysts expect a change, e.g. Niger's coup of 26 July 2023: configured in
    `data/break_dates.csv`, or the day a new regime period of a country's state forces first appears in the data
    (`origin="regime period"`, from the panels' `regime_periods` table)."""

    country: str
    date: dt.date
    label: str
    origin: str = "configured"


def load_breaks(path: str | Path) -> tuple[Break, ...]:
    """Dated events from a CSV with columns country, date (YYYY-MM-DD) and label."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"country", "date", "label"} - set(rows[0] if rows else {"country", "date", "label"})
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return tuple(
        Break(r["country"].strip(), dt.date.fromisoformat(r["date"].strip()), r["label"].strip()) for r in rows
    )


def with_regime_breaks(configured: tuple[Break, ...], periods: list[dict]) -> tuple[Break, ...]:
    """The configured breaks and those the regime periods imply that no configured one stands for (rows of the
    `regime_periods` table whose break_origin is "regime period")."""
    derived = [
        Break(row["country"], row["break_date"], row["break_label"], "regime period")
        for row in periods
        if row.get("break_origin") == "regime period"
    ]
    known = {(b.country, b.date) for b in configured}
    return (*configured, *(b for b in derived if (b.country, b.date) not in known))


# The alert rule's own settings: applied to the scores (`alerts.apply_alert_rule`, new actors), never used in making
# them, so the cache keys (`input_keys`) leave them out and changing one rescores no series. Every other setting is
# a fit setting (`ModelConfig.fit_settings`); alert_p and min_counts are among them, as the scores' count of the
# months before that exceeded (`previous_exceedances`) uses them.
RULE_SETTINGS = ("strong_p", "high_q", "sustained_p", "break_p", "new_actor_min_events", "new_actor_quiet_months")


@dataclass(frozen=True)
class ModelConfig:
    baseline_months: int = 36
    recent_months: int = 3
    min_baseline_months: int = 12  # fewer months of data before the recent window: not modelled
    trend_p: float = 0.05
    # Noufaily et al.: standardised Anscombe residual above which a month is down-weighted
    reweight_threshold: float = 2.58
    # fewer events in the baseline: no trend, no re-weighting (one event is not an outbreak)
    min_events_for_trend: int = 10
    # fewer baseline events: the rate ratio's interval is the exact conditional one and sentences give the counts
    exact_ratio_below: int = 10
    overdispersion_lr: float = 2.706  # LR statistic for alpha > 0 at 5% (boundary-corrected chi-square, 1 df)
    # a month exceeds above its 99.5% bound: with the sustained rule beside it, 0.09 alerts per stable series-year
    # in the evaluation (at 1%: 0.19, over the 0.12 target)
    bound_quantile: float = 0.995
    alert_p: float = 0.005
    strong_p: float = 0.001
    high_q: float = 0.05  # `high` also needs the series' Benjamini-Hochberg q-value among the month's series below this
    # the recent window's total against the level before it: a sustained rise below this. At 0.25% the window spent
    # a sixth of the false alarms and added little within a rise's first two months (the month's test finds most
    # of them): at 0.15%, at a matched 1% of stable months, a x3 rise was flagged within two months in 43% (41% at
    # 0.25%), x2 20% (20%), the regime change 30% (29%), fatalities x4 38% (38%), 240 simulated series each; another
    # seed 50/49%, 23/19%, 24/23%, 29/27%; within the rise's four months the same (README, Detector evaluation).
    # Below strong_p (0.1%) a window would always count as strong.
    sustained_p: float = 0.0015
    # the months since a dated break against those before it (the break rule, `models.looked_again`)
    break_p: float = 0.0025
    min_counts: dict[str, int] = field(
        default_factory=lambda: {"events": 5, "violent_events": 5, "fatalities": 10, "civilian_targeting_events": 5}
    )
    level: LevelParams = LevelParams()  # the forecasts' local level
    detection_level: LevelParams = DETECTION_LEVEL  # the exceedance's recent level (detection.py)
    horizons: int = 6
    # P(count >= k) is given for these k next month and over the next three months, and for the busiest month (and
    # three months) of the last twelve: "at least 25 deaths", "more than in any month of the past year".
    exceedance_counts: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {
            "events": (1, 5, 10, 25, 50, 100), "violent_events": (1, 5, 10, 25, 50, 100),
            "civilian_targeting_events": (1, 5, 10, 25, 50, 100), "fatalities": (1, 10, 25, 100, 250, 1000),
        }
    )
    breaks: tuple[Break, ...] = ()
    max_break_age_months: int = 60  # breaks further back than this are not compared
    # the months since a break are compared with this many months just before it (at least the minimum), and the
    # break rule judges them for as many months after it
    break_before_months: int = 12
    min_break_before_months: int = 6
    alerted_types: tuple[str, ...] = ARMED_TYPES  # group series of other types are neither fitted nor alerted
    new_actor_min_events: int = 5  # a group new in a country is alerted once it has this many events there
    new_actor_quiet_months: int = 12  # new: no event in the country in this many months before (ACLED's tracker)

    @property
    def window_months(self) -> int:
        """Months of history a score needs: the baseline plus the recent window (which ends with the as-of month)."""
        return self.baseline_months + self.recent_months

    @property
    def history_months(self) -> int:
        """Months read per series: the windows, and a baseline before the oldest break that can still be compared."""
        return (
            max(self.window_months, self.max_break_age_months + self.break_before_months)
            if self.breaks
            else self.window_months
        )

    @property
    def first_scorable_offset(self) -> int:
        """Months from a series' first month of data to the first month it can be scored: the minimum baseline, then
        the recent window ending with the month scored."""
        return self.min_baseline_months + self.recent_months - 1

    def min_count(self, indicator: str) -> int:
        return self.min_counts.get(indicator, 5)

    def fit_settings(self, country: str) -> str:
        """What the scores of a series in `country` depend on, as the cache keys hash it: every setting but the alert
        rule's, and of the breaks only the country's. A break elsewhere changing (a state-force period renamed in
        another country's events) must not rescore every series in the world."""
        return self._shared_fit_settings + self._breaks_by_country.get(country, "")

    @cached_property
    def _shared_fit_settings(self) -> str:
        return repr({f.name: getattr(self, f.name) for f in fields(self) if f.name not in (*RULE_SETTINGS, "breaks")})

    @cached_property
    def country_breaks(self) -> dict[str, tuple[Break, ...]]:
        """Each country's breaks, in the configured order: a series looks up its own where scanning every break cost
        a weekly update thousands of series times the regime periods' 140 breaks."""
        found: dict[str, list[Break]] = {}
        for b in self.breaks:
            found.setdefault(b.country, []).append(b)
        return {country: tuple(breaks) for country, breaks in found.items()}

    @cached_property
    def _breaks_by_country(self) -> dict[str, str]:
        # by date: the regime periods' table order is not part of what a series depends on
        return {
            country: repr(tuple(sorted(breaks, key=lambda b: (b.date, b.label, b.origin))))
            for country, breaks in self.country_breaks.items()
        }


# --- distributions --------------------------------------------------------------------------------------------------


def nb_logpmf(y: np.ndarray, mu: np.ndarray, alpha: float) -> np.ndarray:
    """Negative binomial (NB2: variance mu + alpha mu^2) log-probabilities; Poisson when alpha is 0."""
    return negbin.logpmf(y, mu, max(alpha, 0.0))


@dataclass(frozen=True)
class Predictive:
    """Predictive distribution of a count: negative binomial with mean mu and variance mu + (alpha + se^2) mu^2.

    alpha is the process dispersion; se is the standard error of the fitted log mean. Adding se^2 to the dispersion
    carries the uncertainty of the fitted mean into the bounds (a gamma mixture matched to the lognormal's variance),
    where statsmodels' get_prediction would give an interval for the mean only. The parameter term vanishes with the
    mean: a series that has gone quiet is forecast near zero, not given a vast interval.
    """

    mu: float
    se: float
    alpha: float

    @property
    def dispersion(self) -> float:
        return max(self.alpha, 0.0) + self.se**2

    def cdf(self, y: np.ndarray | float) -> np.ndarray:
        """P(Y <= y) for each y."""
        return negbin.cdf(y, self.mu, self.dispersion)

    def sf_at_least(self, y: float) -> float:
        """P(Y >= y), computed as an upper tail so that small probabilities keep their precision."""
        return float(negbin.sf_at_least(y, self.mu, self.dispersion))

    def quantiles(self, qs: list[float]) -> list[int]:
        """Smallest counts whose predictive CDF reaches each q."""
        return negbin.quantiles(self.mu, self.dispersion, qs).tolist()

    def quantile(self, q: float) -> int:
        return self.quantiles([q])[0]

    def crps(self, y: int) -> float:
        """Continuous ranked probability score of a count: the sum over k of (F(k) - 1[k >= y])^2."""
        return float(negbin.crps(y, self.mu, self.dispersion))


# --- fitting --------------------------------------------------------------------------------------------------------


@dataclass
class BaselineFit:
    model: str  # negbin | poisson | zero-baseline
    alpha: float
    log_mu: float  # log mean for a full month at the as-of month
    se: float
    trend: bool
    slope: float  # log change per year (0 without trend)
    trend_per_year: float  # multiplicative change per year when the trend is kept, else 1
    downweighted: int  # baseline months given less weight as past outbreaks
    note: str = ""

    # The score columns a fit is rebuilt from.
    SCORE_COLUMNS = ("model", "alpha", "log_mu", "se", "slope", "trend_per_year", "downweighted", "note")

    @classmethod
    def from_score(cls, score: dict) -> BaselineFit:
        """The fit a score row was made with (scores carry their fit so that it can be reused)."""
        return cls(
            score["model"],
            score["alpha"],
            score["log_mu"],
            score["se"],
            score["slope"] != 0,
            score["slope"],
            score["trend_per_year"],
            score["downweighted"],
            score["note"] or "",
        )

    def predictive(self, years_from_as_of: float, exposure: float) -> Predictive:
        """Predictive distribution of a month's count; exposure is the share of the month the data cover."""
        return Predictive(math.exp(self.log_mu + self.slope * years_from_as_of) * exposure, self.se, self.alpha)


FITTING_MODULES = ("statsmodels.genmod.generalized_linear_model",)  # what the first fit imports (_families)


def _families():
    """statsmodels' GLM and families, imported on first use: the import takes seconds (scipy.stats, pandas), and a
    process that hands its fitting to worker processes never needs it."""
    wait_for_import(FITTING_MODULES[0])
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    return GLM, families


def _glm(y, X, offset, family, weights=None, start=None):
    """A statsmodels GLM fit. Good starting values (the previous fit's, or the closed-form Poisson answer) cut IRLS
    from about six iterations to two: that is most of the model stage's time at thousands of series."""
    GLM, _ = _families()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLM(y, X, family=family, offset=offset, var_weights=weights).fit(start_params=start)


@dataclass
class PoissonFit:
    """What the trend test reads of a Poisson GLM fit (statsmodels' GLMResults' names)."""

    params: np.ndarray
    bse: np.ndarray
    mu: np.ndarray
    pearson_chi2: float
    df_resid: int


def poisson_glm(
    y: np.ndarray, X: np.ndarray, offset: np.ndarray, weights: np.ndarray | None = None, start=None
) -> PoissonFit:
    """The Poisson GLM (log link, offset, variance weights) statsmodels' GLM(..., var_weights=weights) fits, by
    Newton's method, which for the canonical link is its IRLS: the same maximum (tested to 1e-6), without the
    model objects' set-up and convergence checks, which were 20-30% of the model stage's CPU (two such fits a series
    for the trend test; 534 benchmark series, 4.6-5.1 -> 3.4-3.7 s)."""
    w = np.ones_like(y, dtype=float) if weights is None else np.asarray(weights, dtype=float)
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, dtype=float)
    for _ in range(100):
        mu = np.exp(X @ beta + offset)
        information = (X * (w * mu)[:, None]).T @ X
        step = np.linalg.solve(information, X.T @ (w * (y - mu)))
        beta = beta + np.clip(step, -5.0, 5.0)  # damped as IRLS is not: a first step from a poor start can overshoot
        if np.max(np.abs(step)) < 1e-10:
            break
    if not np.all(np.isfinite(beta)):
        raise FloatingPointError("the Poisson trend fit did not converge")
    mu = np.exp(X @ beta + offset)
    covariance = np.linalg.inv((X * (w * mu)[:, None]).T @ X)
    return PoissonFit(
        beta, np.sqrt(np.diag(covariance)), mu, float(np.sum(w * (y - mu) ** 2 / mu)), len(y) - X.shape[1]
    )


def negbin_start(y: np.ndarray, X: np.ndarray, offset: np.ndarray, alpha: float, weights: np.ndarray,
                 start: np.ndarray) -> np.ndarray:
    """Starting values for statsmodels' negative-binomial IRLS at this dispersion: Newton's method on the NB2
    log-likelihood (concave in the coefficients for a fixed dispersion), from `start`, the Poisson fit. From the
    Poisson fit itself, IRLS took 2 to 34 iterations, 12.5 on average, on the benchmark's series with a trend (a
    steep one after years of zeros, a large dispersion, converges slowly by scoring); statsmodels then confirms this
    start in one iteration, and its answer is the fit. `start` when Newton's method does not get there."""
    beta = np.array(start, dtype=float)
    try:
        for _ in range(50):
            mu = np.exp(X @ beta + offset)
            spread = 1.0 + alpha * mu
            score = X.T @ (weights * (y - mu) / spread)
            hessian = (X * (weights * mu * (1.0 + alpha * y) / spread**2)[:, None]).T @ X
            step = np.linalg.solve(hessian, score)
            beta = beta + np.clip(step, -5.0, 5.0)
            if np.max(np.abs(step)) < 1e-10:
                return beta if np.all(np.isfinite(beta)) else np.array(start, dtype=float)
    except np.linalg.LinAlgError:
        pass
    return np.array(start, dtype=float)


def _log_rate(y: np.ndarray, exposure: np.ndarray, weights: np.ndarray | None = None) -> float:
    """log of the (weighted) events per full month: the intercept-only Poisson fit, used as a starting value."""
    events, months = (y.sum(), exposure.sum()) if weights is None else (weights @ y, weights @ exposure)
    return math.log(max(float(events), 1e-9) / float(months))


def _anscombe_weights(y: np.ndarray, mu: np.ndarray, X: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Farrington's re-weighting: standardised Anscombe residuals above the threshold get weight s^-2."""
    n, p = X.shape
    phi = max(1.0, float(np.sum((y - mu) ** 2 / mu) / max(n - p, 1)))
    root_w = np.sqrt(mu)[:, None] * X
    hat = np.einsum("ij,jk,ik->i", root_w, np.linalg.pinv(root_w.T @ root_w), root_w)
    raw = 1.5 * (np.power(y, 2 / 3) * np.power(mu, -1 / 6) - np.sqrt(mu))
    s = raw / np.sqrt(phi * np.clip(1 - hat, 1e-6, None))
    outlying = s > threshold
    weights = np.where(outlying, 1.0 / np.maximum(s, 1e-9) ** 2, 1.0)
    return weights * n / weights.sum(), int(outlying.sum())


def estimate_alpha(y: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood NB2 dispersion given the means, and the likelihood-ratio statistic against Poisson."""
    # Imported here: scipy.optimize is 0.6 s of import that every process starting the pipeline paid, and only the
    # fitting workers (which preload it with statsmodels) need.
    from scipy import optimize

    loglik = negbin.weighted_loglik(y, mu, weights)
    poisson = loglik(0.0)
    result = optimize.minimize_scalar(
        lambda log_a: -loglik(math.exp(log_a)),
        bounds=(math.log(1e-4), math.log(50.0)),
        method="bounded",
        options={"xatol": 1e-3},
    )
    alpha = math.exp(result.x)
    return alpha, 2.0 * (-result.fun - poisson)


def moment_alpha(y: np.ndarray, mu: np.ndarray, weights: np.ndarray, n_params: int) -> float:
    """NB2 dispersion by moments: the weighted mean of ((y - mu)^2 - y) / mu^2, with n - p degrees of freedom."""
    excess = weights * ((y - mu) ** 2 - y) / mu**2
    return max(0.0, float(excess.sum() / max(weights.sum() - n_params, 1.0)))


def fit_baseline(y: np.ndarray, exposure: np.ndarray, t: np.ndarray, config: ModelConfig) -> BaselineFit:
    """The exceedance model on the baseline window; t is time in years, 0 at the as-of month.

    The trend is chosen with statsmodels' Poisson GLMs (an unweighted fit for the residuals, a re-weighted one for the
    test). A series without a trend is an intercept-only model, solved directly by group_rate (the same estimate
    statsmodels gives, at a tenth of the cost); one with a trend keeps statsmodels for its negative-binomial fit.
    """
    if y.sum() == 0:
        # No event in the baseline: half an event over the window is the rate the data cannot rule out.
        rate = 0.5 / exposure.sum()
        return BaselineFit("zero-baseline", 0.0, math.log(rate), 1.0, False, 0.0, 1.0, 0, "no events in the baseline")
    offset = np.log(exposure)
    weights, downweighted = np.ones_like(y), 0
    trend_fit: PoissonFit | None = None
    if y.sum() >= config.min_events_for_trend:
        X = np.column_stack([np.ones_like(t), t])
        first = poisson_glm(y, X, offset, start=np.array([_log_rate(y, exposure), 0.0]))
        weights, downweighted = _anscombe_weights(y, first.mu, X, config.reweight_threshold)
        fit = poisson_glm(y, X, offset, weights, start=first.params)
        # tested on the quasi-Poisson scale (Pearson dispersion, at least 1) so overdispersion does not fake a trend
        phi = max(1.0, float(fit.pearson_chi2 / max(fit.df_resid, 1)))
        trend_p = 2 * special.ndtr(-abs(fit.params[1]) / (fit.bse[1] * math.sqrt(phi)))
        rates = y / exposure
        if np.isfinite(trend_p) and trend_p < config.trend_p and rates.min() <= math.exp(fit.params[0]) <= rates.max():
            trend_fit = fit
        else:
            flat = math.exp(_log_rate(y, exposure)) * exposure  # the intercept-only Poisson fit, in closed form
            weights, downweighted = _anscombe_weights(y, flat, X[:, :1], config.reweight_threshold)

    if trend_fit is not None:
        log_mu, se, mu, params = float(trend_fit.params[0]), float(trend_fit.bse[0]), trend_fit.mu, trend_fit.params
    else:
        log_mu, se = group_rate(y, exposure, 0.0, weights)
        mu = math.exp(log_mu) * exposure
    alpha, lr = estimate_alpha(y, mu, weights)
    model, note = "poisson", "no overdispersion"
    if lr > config.overdispersion_lr:
        # The ML dispersion is biased low in a 36-month window (it made rate-ratio intervals cover 88% instead of
        # 95% in simulations); the moment estimate is not. The larger of the two is used.
        alpha = max(alpha, moment_alpha(y, mu, weights, 2 if trend_fit is not None else 1))
        if trend_fit is None:
            (log_mu, se), model, note = group_rate(y, exposure, alpha, weights), "negbin", ""
        else:
            start = negbin_start(y, X, offset, alpha, weights, trend_fit.params)
            nb = _glm(y, X, offset, _families()[1].NegativeBinomial(alpha=alpha), weights, start=start)
            if nb.converged and np.all(np.isfinite(nb.bse)):
                log_mu, se, params, model, note = float(nb.params[0]), float(nb.bse[0]), nb.params, "negbin", ""
            else:
                note = "negative binomial fit failed: Poisson used"
    if model == "poisson":
        alpha = 0.0
    slope = float(params[1]) if trend_fit is not None else 0.0
    return BaselineFit(model, alpha, log_mu, se, trend_fit is not None, slope, math.exp(slope), downweighted, note)


@dataclass
class RateRatio:
    ratio: float
    low: float
    high: float
    method: str  # glm | exact
    p_rise: float  # one-sided p-value of a ratio at most 1 (Wald, or the conditional binomial's exact tail)


def group_rate(
    y: np.ndarray, exposure: np.ndarray, alpha: float, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """Maximum-likelihood log rate of one group of months (an intercept-only NB2 or Poisson GLM with exposure offsets
    and prior weights), with its standard error.

    The score equation sum w (y - r e) / (1 + alpha r e) = 0 is solved by Newton steps from the Poisson answer, which
    is already exact when the months have equal exposure; the standard error comes from the expected information
    sum w r e / (1 + alpha r e), as statsmodels' GLM computes it. Called twice per series and week, this costs a tenth
    of a statsmodels fit; the tests hold it to statsmodels' GLM.
    """
    w = np.ones_like(y) if weights is None else weights
    log_rate = _log_rate(y, exposure, weights)
    # Dot products rather than sums of products: this runs for every series every week, on arrays of a few dozen.
    if alpha > 0 and exposure.max() > exposure.min():
        for _ in range(20):
            mu = math.exp(log_rate) * exposure
            damp = 1.0 / (1.0 + alpha * mu)
            score = float((w * damp) @ (y - mu))
            slope = float((w * damp**2) @ (mu * (1.0 + alpha * y)))
            step = score / slope
            log_rate += step
            if abs(step) < 1e-10:
                break
    mu = math.exp(log_rate) * exposure
    information = float(w @ (mu / (1.0 + alpha * mu)))
    return log_rate, 1.0 / math.sqrt(information)


def rate_ratio(
    y_base: np.ndarray, e_base: np.ndarray, y_recent: np.ndarray, e_recent: np.ndarray, alpha: float,
    exact_below: int = 1,
) -> RateRatio:
    """Rate of the recent window over the baseline's and its 95% interval: the coefficient of the window dummy in a
    count GLM (intercept + dummy), whose two groups separate into one rate each; the exact conditional interval when
    either window holds no event or the baseline fewer than `exact_below`."""
    base, recent = float(y_base.sum()), float(y_recent.sum())
    if base < exact_below or recent == 0:
        return _exact_rate_ratio(base, e_base.sum(), recent, e_recent.sum())
    log_base, se_base = group_rate(y_base, e_base, alpha)
    log_recent, se_recent = group_rate(y_recent, e_recent, alpha)
    b, se = log_recent - log_base, math.hypot(se_base, se_recent)
    return RateRatio(math.exp(b), math.exp(b - 1.96 * se), math.exp(b + 1.96 * se), "glm", float(special.ndtr(-b / se)))


def _exact_rate_ratio(base: float, e_base: float, recent: float, e_recent: float) -> RateRatio:
    """Conditional binomial (Clopper-Pearson) interval, the one that exists when a window holds no event."""
    total = base + recent
    if total == 0:
        return RateRatio(math.nan, math.nan, math.nan, "exact", 1.0)
    low_p = float(special.betaincinv(recent, base + 1, 0.025)) if recent > 0 else 0.0
    high_p = float(special.betaincinv(recent + 1, base, 0.975)) if base > 0 else 1.0
    scale = e_base / e_recent

    def to_ratio(p: float) -> float:
        return math.inf if p >= 1 else scale * p / (1 - p)

    ratio = math.inf if base == 0 else (recent / e_recent) / (base / e_base)
    # P(X >= recent) for X ~ Binomial(total, the recent window's share of the exposure): no rise
    share = e_recent / (e_base + e_recent)
    p_rise = float(special.betainc(recent, base + 1, share)) if recent > 0 else 1.0
    return RateRatio(ratio, to_ratio(low_p), to_ratio(high_p), "exact", p_rise)


# --- one series -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesTask:
    """One series to score: its whole history up to the as-of month (last element)."""

    key: tuple  # identifies the series in the output (source, level, group_id, group_name, country, indicator)
    indicator: str
    country: str
    months: np.ndarray  # months since 1970-01, consecutive
    counts: np.ndarray
    exposure: np.ndarray  # share of each month the data cover (1 except a partial last month)
    cached_fit: BaselineFit | None = None  # an earlier fit of the same baseline data, reused as is
    # the forecast filter's state on reaching the last month, from an earlier run on the same months before it
    cached_level: np.ndarray | None = None
    # the detector's filtered levels (`SeriesJudgement.detection_state`), from an earlier run on the same baseline
    cached_detection: np.ndarray | None = None


# Part of every input key: change it when the statistics change, so that no earlier fit is reused.
MODEL_VERSION = "5"  # 5: past outbreaks left out of the dispersion (LevelParams.outbreak_sd); 4: looked_again


def input_keys(task: SeriesTask, config: ModelConfig) -> tuple[str, str, str]:
    """Digests of what a score depends on: (the baseline window, the forecast filter's months before the last,
    everything). Equal keys give equal results.

    A weekly update changes the last month of most series but rarely their baseline, which ends three months
    earlier, or the months before the last: the baseline fit, most of the cost, and the forecast filter's run up to
    the last month can then be reused.
    """
    settings = f"{MODEL_VERSION}|{config.fit_settings(task.country)}".encode()
    n = len(task.counts)
    start, end = max(0, n - config.window_months), max(0, n - config.recent_months)
    windows = (slice(start, end), slice(start, n - 1), slice(0, n))
    digests = []
    for window in windows:
        digest = hashlib.blake2b(settings, digest_size=12)
        for array in (task.counts[window], task.exposure[window], task.months[window]):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digests.append(digest.hexdigest())
    baseline, level, everything = digests
    return baseline, level, everything


def score_series(
    task: SeriesTask,
    config: ModelConfig,
    forecast: SeriesForecast | None = None,
    judged: SeriesJudgement | None = None,
) -> tuple[dict, list[dict]]:
    """Exceedance, rate ratios and forecasts of one series at its last month. Returns (score, forecast rows); a
    series not modelled (short history, failed fit) has no forecast.

    `forecast` and `judged` are the series' parts of `forecast_chunk` and `judge_chunk` when the caller computed a
    chunk's at once."""
    score = series_score(task, config, judged)
    if score["model"] in UNMODELLED:
        return score, []
    return score, (forecast or forecast_chunk([task], config)[0]).months


UNMODELLED = ("skipped", "failed")  # the models a score without forecasts names


def series_score(task: SeriesTask, config: ModelConfig, judged: SeriesJudgement | None = None) -> dict:
    """The score of one series at its last month (`score_series` without the forecast rows)."""
    y, exposure = task.counts.astype(float), task.exposure.astype(float)
    recent = slice(max(0, len(y) - config.recent_months), len(y))
    start = max(0, len(y) - config.window_months)
    baseline = slice(start, recent.start)
    n_baseline = recent.start - start
    last = int(task.months[-1])
    score: dict = {
        "observed": int(y[-1]),
        "days_covered": round(exposure[-1] * days_in_month(index_month(last))),
        "partial": bool(exposure[-1] < 1),
        "recent_sum": int(y[recent].sum()),
        "recent_active_months": int((y[recent] > 0).sum()),
        "baseline_months": n_baseline,
        "baseline_sum": int(y[baseline].sum()),
        "baseline_mean": float(y[baseline].sum() / exposure[baseline].sum()) if n_baseline else math.nan,
    }
    if n_baseline < config.min_baseline_months:
        return {**score, "model": "skipped", "note": f"short history: {n_baseline} baseline months"}
    t = (np.arange(start, recent.start) - (len(y) - 1)) / 12.0
    try:
        fit = task.cached_fit or fit_baseline(y[baseline], exposure[baseline], t, config)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as err:  # numerically degenerate series
        return {**score, "model": "failed", "note": f"fit failed: {err}"}
    judged = judged or judge_chunk([task], config)[0]
    ratio = rate_ratio(
        y[baseline], exposure[baseline], y[recent], exposure[recent], fit.alpha, config.exact_ratio_below
    )
    score.update(
        model=fit.model,
        note=fit.note,
        alpha=fit.alpha,
        log_mu=fit.log_mu,
        se=fit.se,
        slope=fit.slope,
        trend_per_year=fit.trend_per_year,
        downweighted=fit.downweighted,
        **judged.now,
        previous_exceedances=judged.previous_exceedances,
        rate_ratio=ratio.ratio,
        rate_ratio_low=ratio.low,
        rate_ratio_high=ratio.high,
        rate_ratio_method=ratio.method,
        # the month-to-month noise around the recent level: the baseline GLM's dispersion also holds the changes of
        # level a break brings
        **_break_ratio(task, config, judged.now["level_alpha"]),
    )
    return score


@dataclass
class SeriesJudgement:
    """One series' last month against its recent level (`detection.judge_last`), as score columns, and how many of
    the two months before it exceeded their own bounds with at least the minimum count (for `status`)."""

    now: dict
    previous_exceedances: int
    # the three levels judged against (the month's, and each of the two months before's), packed: each filters only
    # baseline months (those before the recent window), so an earlier run with the same `baseline_key` gives them
    detection_state: list[float]


def judge_chunk(tasks: list[SeriesTask], config: ModelConfig) -> list[SeriesJudgement]:
    """The detector on several series at once: their last month, and each of the two months before it with the data
    up to that month. A series whose task carries `cached_detection` is not filtered again."""
    if not tasks:
        return []
    counts, exposure, breaks = _chunk_arrays(tasks, config.window_months, config)
    lead, params, months = config.recent_months, config.detection_level, counts.shape[1]
    fresh = np.array([task.cached_detection is None for task in tasks])
    width = packed_width(params)
    levels = []
    for k in (0, 1, 2):  # the level before the month k months back: its last `lead` months left out
        cut = slice(None, months - lead - k)
        packed = np.empty((len(tasks), width))
        if fresh.any():
            packed[fresh] = packed_level(
                filter_levels(counts[fresh, cut], exposure[fresh, cut], params, breaks[fresh, cut])
            )
        for task, row in zip(tasks, packed, strict=True):
            if task.cached_detection is not None:
                row[:] = task.cached_detection[k * width : (k + 1) * width]
        levels.append(packed)
    verdicts = [
        judge_last(
            counts[:, : months - k], exposure[:, : months - k], None, params, lead if k == 0 else None,
            config.bound_quantile if k == 0 else None, lead, unpacked_level(packed, params),
        )
        for k, packed in enumerate(levels)
    ]
    now = _columns(verdicts[0])
    minimum = np.array([config.min_count(task.indicator) for task in tasks])
    exceeded = sum(
        ((counts[:, -1 - k] >= minimum) & (verdicts[k].p_value < config.alert_p)).astype(int) for k in (1, 2)
    )
    state = np.concatenate(levels, axis=1).tolist()
    return [
        SeriesJudgement(row, int(n), kept)
        for row, n, kept in zip(now, np.asarray(exceeded).tolist(), state, strict=True)
    ]


def _columns(verdict: Verdict) -> list[dict]:
    """Score columns of each series' verdict."""
    columns = {
        "expected": verdict.expected,
        "upper": verdict.upper,
        "p_value": verdict.p_value,
        "level_rate": verdict.level_rate,
        "level_alpha": verdict.alpha,
        "window_expected": verdict.window_expected,
        "window_p_value": verdict.window_p_value,
    }
    lists = {name: values.tolist() for name, values in columns.items()}
    return [dict(zip(lists, row, strict=True)) for row in zip(*lists.values(), strict=True)]


def _chunk_arrays(tasks: list[SeriesTask], width: int, config: ModelConfig):
    """The last `width` months of each task as rows (counts, exposure, breaks), right-aligned: a series with a shorter
    history has exposure 0 before its first month. A break marks the month it falls in: its variance is added on
    leaving that month."""
    counts, exposure = np.zeros((len(tasks), width)), np.zeros((len(tasks), width))
    breaks = np.zeros((len(tasks), width), dtype=bool)
    for i, task in enumerate(tasks):
        y, e, months = task.counts[-width:], task.exposure[-width:], task.months[-width:]
        counts[i, width - len(y):], exposure[i, width - len(y):] = y, e
        for brk in config.country_breaks.get(task.country, ()):
            if months[0] <= month_index(brk.date) <= months[-1]:
                breaks[i, width - len(y) + month_index(brk.date) - months[0]] = True
    return counts, exposure, breaks


@dataclass
class SeriesForecast:
    """One series' forecast rows (one per month ahead) and exceedance rows (one per period and threshold), and the
    filter's state on reaching the last month (stored with the score: `SeriesTask.cached_level` next time)."""

    months: list[dict]
    exceedance: list[dict]
    level_state: list[float]


@dataclass
class ChunkForecast:
    """The forecasts of a chunk's series as columns, series after series: `months` (the forecast rows, `horizons`
    a series) and `exceedance` (its rows, `exceedance_rows` a series); indexed, one series' `SeriesForecast`."""

    months: dict[str, np.ndarray]
    exceedance: dict[str, np.ndarray]
    exceedance_rows: np.ndarray
    level_state: list[list[float]]

    def __len__(self) -> int:
        return len(self.level_state)

    def __getitem__(self, i: int) -> SeriesForecast:
        if not 0 <= i < len(self):
            raise IndexError(i)
        horizons = len(self.months["horizon"]) // len(self)
        first = int(self.exceedance_rows[:i].sum())
        return SeriesForecast(
            _rows(self.months, slice(i * horizons, (i + 1) * horizons)),
            _rows(self.exceedance, slice(first, first + int(self.exceedance_rows[i]))),
            self.level_state[i],
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _rows(columns: dict[str, np.ndarray], rows: slice) -> list[dict]:
    values = {name: column[rows].tolist() for name, column in columns.items()}
    return [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]


def forecast_chunk(tasks: list[SeriesTask], config: ModelConfig) -> ChunkForecast:
    """Forecasts of several series at once: their last 39 months through the level filter, vectorised over series."""
    if not tasks:
        return ChunkForecast({}, {}, np.zeros(0, dtype=np.int64), [])
    # a break in the last month itself widens the forecast
    counts, exposure, breaks = _chunk_arrays(tasks, config.window_months, config)
    ladders = [config.exceedance_counts.get(task.indicator, ()) for task in tasks]
    rungs = max(map(len, ladders)) + 1
    month_k, total_k = np.full((len(tasks), rungs), np.nan), np.full((len(tasks), rungs), np.nan)
    for i, task in enumerate(tasks):
        year = task.counts[-12:]
        month_k[i, : len(ladders[i]) + 1] = [*ladders[i], max(1.0, year.max())]
        three = np.convolve(year, np.ones(TOTAL_MONTHS), mode="valid") if len(year) >= TOTAL_MONTHS else year.sum()
        total_k[i, : len(ladders[i]) + 1] = [*ladders[i], max(1.0, three.max())]
    last = np.array([task.months[-1] for task in tasks], dtype=np.int64)
    level, states = _filtered(tasks, counts, exposure, breaks, config)
    view = outlook(level, config.horizons, month_k, total_k)
    ahead = np.arange(1, config.horizons + 1)
    months = {
        "horizon": np.tile(ahead, len(tasks)),
        "target_month": (last[:, None] + ahead).ravel(),
        "mean": view.mean.ravel(),
        **{name: view.quantiles[:, :, q].ravel() for q, name in enumerate(QUANTILE_COLUMNS)},
        "rate": np.repeat(view.rate, config.horizons),
        "rate_log_sd": view.rate_log_sd.ravel(),
        "alpha": np.repeat(view.alpha, config.horizons),
    }
    # every series' rungs (its ladder, then the 12-month high) next month and over the next three, as (n, 2, rungs)
    fixed = np.array([len(ladder) for ladder in ladders])
    spans = np.array([1, TOTAL_MONTHS])[None, :, None]
    shape = (len(tasks), 2, rungs)
    held = np.broadcast_to((np.arange(rungs)[None, :] <= fixed[:, None])[:, None, :], shape)
    exceedance = {
        "months": np.broadcast_to(spans, shape)[held],
        "first_month": np.broadcast_to(last[:, None, None] + 1, shape)[held],
        "last_month": np.broadcast_to(last[:, None, None] + spans, shape)[held],
        "basis": np.broadcast_to(
            np.where(np.arange(rungs)[None, None, :] < fixed[:, None, None], "fixed", "12-month high"), shape
        )[held],
        "at_least": np.stack([month_k, total_k], axis=1)[held].astype(np.int64),
        "probability": np.stack([view.p_month, view.p_total], axis=1)[held],
    }
    return ChunkForecast(months, exceedance, 2 * (fixed + 1), states)


def _filtered(tasks: list[SeriesTask], counts, exposure, breaks, config: ModelConfig) -> tuple[Level, list]:
    """The level of every task at its last month, and the filter's state on reaching it: filtered from the start, or
    from an earlier run's state when the months before the last are unchanged (one month's work instead of 39)."""
    cached = np.array([task.cached_level is not None for task in tasks])
    fresh, resumed = np.flatnonzero(~cached), np.flatnonzero(cached)
    parts = []
    if fresh.size:
        parts.append((fresh, filter_levels(counts[fresh], exposure[fresh], config.level, breaks[fresh])))
    if resumed.size:
        state = FilterState.unpacked(np.stack([np.asarray(tasks[i].cached_level, dtype=float) for i in resumed]))
        last = slice(counts.shape[1] - 1, None)
        month = (counts[resumed, last], exposure[resumed, last])
        parts.append((resumed, filter_levels(*month, config.level, breaks[resumed, last], state)))
    states: list = [None] * len(tasks)
    for rows, level in parts:
        assert level.reaching_last is not None
        for i, state_row in zip(rows.tolist(), level.reaching_last.packed().tolist(), strict=True):
            states[i] = state_row
    return Level.joined(parts, len(tasks)), states


def _break_ratio(task: SeriesTask, config: ModelConfig, alpha: float) -> dict:
    """Rate since the country's latest break before the month scored (the months after the break's month), against
    the `break_before_months` before it, with its 95% interval and the one-sided p-value of no rise. A break after
    the month scored (a later coup, seen from a backfill) is not yet known then. The p-value is given while the
    break is at most `break_before_months` old: the break rule's business is the months after it, before the recent
    level has followed the change."""
    breaks = [b for b in config.country_breaks.get(task.country, ()) if month_index(b.date) < task.months[-1]]
    empty = {
        "break_label": None, "break_month": None, "break_rate_ratio": None, "break_low": None, "break_high": None,
        "break_before": None, "break_p_value": None,
    }
    if not breaks:
        return empty
    latest = max(breaks, key=lambda b: b.date)
    month = month_index(latest.date)
    cut = int(np.searchsorted(task.months, month, side="right"))  # first month after the break month
    before = slice(max(0, cut - config.break_before_months), cut)
    if cut >= len(task.months) or before.stop - before.start < config.min_break_before_months:
        return empty
    y, e = task.counts.astype(float), task.exposure.astype(float)
    ratio = rate_ratio(y[before], e[before], y[cut:], e[cut:], alpha)
    looks = len(task.months) - cut  # the months since the break: how often the rule has judged it
    recent = looks <= config.break_before_months
    return {
        "break_label": latest.label,
        "break_month": index_month(month),
        "break_rate_ratio": ratio.ratio,
        "break_low": ratio.low,
        "break_high": ratio.high,
        "break_before": before.stop - before.start,
        "break_p_value": looked_again(ratio.p_rise, looks) if recent else None,
    }


def looked_again(p: float, looks: int) -> float:
    """A p-value of the months since a break, the k-th month after it, adjusted for the k times the rule has now
    judged that break (Bonferroni over its looks). The same comparison judged unadjusted each month for a year let a
    break with no change alert in 0.6-0.7% of breaks (2.3-2.7 times the level; simulated in-control series,
    test_detection_failures); so adjusted, 0.04-0.1%, while the first months after a break, when a rise is most
    wanted, keep most of their power (the three months at 2.4x of the failure test still alert)."""
    return min(1.0, p * max(1, looks))


@dataclass
class ChunkScores:
    """A chunk's results as columns, what a worker sends back: the month's frames are made a column at a time (made
    from a dict a row, they were a quarter of the run's process's time in a weekly update)."""

    keys: list[tuple]
    scores: dict[str, list]  # score columns, a value a series (None where it has none: a skipped series' fit)
    # the forecast and exceedance rows of the modelled series, series after series, and each series' number of rows
    # (0: not modelled)
    forecasts: dict[str, np.ndarray]
    forecast_rows: np.ndarray
    exceedance: dict[str, np.ndarray]
    exceedance_rows: np.ndarray


def score_chunk(tasks: list[SeriesTask], config: ModelConfig) -> ChunkScores:
    """Score several series: the unit of work sent to a worker process. A series not modelled (short history, failed
    fit) has no forecast."""
    forecast, judged = forecast_chunk(tasks, config), judge_chunk(tasks, config)
    scores = []
    for task, level_state, judgement in zip(tasks, forecast.level_state, judged, strict=True):
        score = series_score(task, config, judgement)
        if score["model"] not in UNMODELLED:  # its filters' states are kept for the next run over the same months
            score["level_state"] = level_state
            score["detection_state"] = judgement.detection_state
        scores.append(score)
    modelled = np.array([score["model"] not in UNMODELLED for score in scores], dtype=bool)
    forecast_rows = modelled * config.horizons
    exceedance_rows = np.where(modelled, forecast.exceedance_rows, 0)
    names = dict.fromkeys(name for score in scores for name in score)
    return ChunkScores(
        [task.key for task in tasks],
        {name: [score.get(name) for score in scores] for name in names},
        {name: column[np.repeat(modelled, config.horizons)] for name, column in forecast.months.items()},
        forecast_rows,
        {name: column[np.repeat(modelled, forecast.exceedance_rows)] for name, column in forecast.exceedance.items()},
        exceedance_rows,
    )
