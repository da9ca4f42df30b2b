"""The recent level of count series, and forecasts from it whose uncertainty grows with the horizon.

Model, per series (a dynamic count model on the log scale, West & Harrison; filtered by posterior modes, Fahrmeir):

    x_t = x_{t-1} + eta_t,  eta_t ~ N(0, q + b_t)       the log rate drifts: a random walk
    y_t | x_t ~ NB2(e_t exp(x_t), alpha)                month t's count; e_t is the share of the month the data cover

q is the variance of the level's change per month. Each series gets one of two: 0.04, a level that drifts (a month's
level within a factor 1.5 of the last one's with 95% probability, six months on within a factor 2.6), or 0.005, a
level that barely moves, chosen with alpha (below) by the likelihood of the filter's own one-month-ahead predictions
plus a prior of 3:1 for the drifting level, so that a steady series is not given intervals that widen like a
volatile one's. The values were chosen on the rolling backtest of the UCDP Burkina Faso file and checked on the ACLED
files (README, Backtest). b_t is added when a known break (a coup) falls between months t-1 and t, so that the
level can move within a month or two of it. The log level is a martingale: a doubling ahead is as likely as a
halving, so the median forecast stays at the current level and the mean rises slightly with the horizon (by
exp(h q / 2): 13% at six months for a drifting level). alpha, the month-to-month noise around the level, is chosen
per series from a grid the same way, so that a bursty series gets wide intervals without its level being thought to
drift.

The filter carries a normal approximation N(m_t, P_t) of the log level given the counts up to month t; each month's
update is a Laplace approximation (Newton steps on the log posterior, which is concave). A month the data do not
cover (e_t = 0, e.g. before a series starts) leaves the level as predicted.

The count h months after the last is a mixture over the level, x_{T+h} ~ N(m_T, P_T + h q (+ b)) = N(m, V), of
negative binomials NB(e exp(x), alpha): its intervals widen with the horizon as V grows. It is computed as a mixture
of three negative binomials at Gauss-Hermite nodes of the level (carrying 70% of V; the other 30% widens each node's
noise, matched in variance), which keeps the lognormal level's narrow centre and long right tail at the cost of
three where one would do. The total of several months shares the level's path: the sum of the months' rates is
matched by a lognormal in mean and variance (Fenton-Wilkinson, from the covariances Cov(x_i, x_j) = P_T + min(i, j) q
of the log levels), the months' noise by a dispersion of the same variance, and the total is then the same kind of
mixture.

Interface (arrays with one row per series, vectorised over series):

    level = filter_levels(counts, exposure, params, breaks=None)
        counts, exposure: (n, T), oldest month first; breaks: (n, T) bool, True where a break follows month t
    level.mean, level.variance, level.alpha, level.drift   the log level at the last month T, its noise, its q
    level.ahead(h)                       mean and variance of the log level h months after T (h = 0: T itself)
    level.month(h, exposure=1.0)         the distribution of month T + h's count, a `Counts`
    level.total([1, 2, 3])               the distribution of the sum of those months' counts
    counts.mean, .quantiles(qs), .cdf(k), .sf_at_least(k), .logpmf(y), .crps(y)

An expectation that follows the recent level, for judging month T itself against the months before it, is
`filter_levels(counts[:, :-1], exposure[:, :-1], params).month(1, exposure[:, -1])`, and `.sf_at_least(observed)`
the probability of a count at least as high.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sahel_pipeline.core import negbin

QUANTILES = (0.025, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.975)
QUANTILE_COLUMNS = ("q025", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q975")
TOTAL_MONTHS = 3  # exceedance is also given for the total of the next three months


@dataclass(frozen=True)
class LevelParams:
    # q, the variance of the log level's change per month: a level that drifts, or one that barely moves, with prior
    # weights (see the module docstring)
    drifts: tuple[float, ...] = (0.04, 0.005)
    drift_prior: tuple[float, ...] = (0.75, 0.25)
    break_variance: float = 0.25  # added across a known break: the level may move by a factor 2.7 at 95%
    alphas: tuple[float, ...] = (0.0, 0.05, 0.15, 0.3, 0.6, 1.2, 2.5)  # candidate month-to-month dispersions
    prior_variance: float = 1.0  # of the log level at a series' first month, around its mean rate over the months
    burn_in: int = 6  # first months of a series whose predictions do not count in choosing alpha
    newton_steps: int = 4  # per monthly update: within 0.002 of the mode on the real files (3: 0.05)
    # In choosing alpha and q, a month counts against a candidate by at most this many log units more than against
    # the month's best candidate (None: no bound). The detector bounds it, so that one outlying month does not choose
    # a heavy tail for years (`detection.py`); the forecasts, whose intervals must hold such months, do not.
    outlier_loglik: float | None = None
    # A month moves the level as if its count were at most this many predictive standard deviations above the
    # predicted mean (None: as counted). The detector caps it, so that a past outbreak does not lift the level it
    # judges later months against; a lasting rise still moves the level, month by month.
    update_cap: float | None = None
    # West & Harrison's Bayes-factor monitors (None: none): CUSUMs of log P(month | the level x factor) / P(month |
    # the level) over the filter's own one-month-ahead predictions; when one passes shift_threshold (log units), the
    # level's variance grows by shift_variance before that month's update and that CUSUM restarts, so that the level
    # follows a lasting fall, or a lasting rise, within months rather than years. A month adds at most rise_step to
    # the rise's CUSUM, so that one outlying month never lifts the level (the update cap's purpose): a run of months
    # does; and the month that completes the run moves the level as counted, not capped. The detector uses them; the
    # forecasts' faster drift follows both ways without.
    fall_factor: float | None = None
    rise_factor: float | None = None
    rise_step: float = 1.5
    shift_threshold: float = 3.0
    shift_variance: float = 0.5
    # A month above this many predictive standard deviations over the predicted mean under every candidate, the
    # heaviest-tailed too (an outbreak whatever the noise), and not following another such month, counts nothing in
    # choosing alpha and q (None: it counts, within outlier_loglik): past outbreaks are left out of the dispersion,
    # as Farrington's re-weighting leaves them out of its baseline; a run of such months is a rise and counts. The
    # detector sets it; the forecasts' intervals must hold such months.
    outbreak_sd: float | None = None


# Three Gauss-Hermite nodes carry most of the level's spread (the rest widens each node's negative binomial): a
# single negative binomial matched to the mixture has a flatter centre and lighter tails than the lognormal level
# gives (its 50% interval held 55% of simulated counts six months ahead, and 59% of the real country series').
NODES, WEIGHTS = np.sqrt(3.0) * np.array([-1.0, 0.0, 1.0]), np.array([1.0, 4.0, 1.0]) / 6
SPREAD = 0.7  # share of the level's variance spread over the nodes


@dataclass
class Counts:
    """Predictive distributions of counts (arrays, one per series): a rate whose logarithm is normal with mean m and
    variance v, times the share of the month covered, and negative-binomial noise of dispersion alpha around it.
    Computed as a three-node mixture of negative binomials (`negbin`)."""

    m: np.ndarray
    v: np.ndarray
    alpha: np.ndarray
    exposure: float | np.ndarray = 1.0

    @property
    def mean(self) -> np.ndarray:
        return self.exposure * np.exp(self.m + self.v / 2)

    def _mixture(self) -> tuple[np.ndarray, np.ndarray]:
        spread, rest = SPREAD * self.v, (1 - SPREAD) * self.v
        exposure = np.asarray(self.exposure, dtype=float)[..., None]  # one per distribution, or one for all
        rates = exposure * np.exp((self.m + rest / 2)[..., None] + np.sqrt(spread)[..., None] * NODES)
        return rates, ((1 + self.alpha) * np.exp(rest) - 1)[..., None]

    def quantiles(self, qs=QUANTILES) -> np.ndarray:
        return negbin.quantiles(*self._mixture(), qs, WEIGHTS)

    def cdf(self, k) -> np.ndarray:
        return negbin.cdf(k, *self._mixture(), WEIGHTS)

    def sf_at_least(self, k) -> np.ndarray:
        return negbin.sf_at_least(k, *self._mixture(), WEIGHTS)

    def logpmf(self, y) -> np.ndarray:
        return negbin.logpmf(y, *self._mixture(), WEIGHTS)

    def crps(self, y) -> np.ndarray:
        return negbin.crps(y, *self._mixture(), WEIGHTS)


@dataclass
class FilterState:
    """Every candidate's prior for one month, N(m, P) (arrays (n, candidates)), the likelihood of the months before,
    and how many months each series had been filtered: what the filter needs to go on from that month."""

    m: np.ndarray
    P: np.ndarray
    loglik: np.ndarray
    age: np.ndarray  # (n, 1)
    # the monitors' CUSUMs (LevelParams.fall_factor, rise_factor); not packed: the forecasts' level has no monitor
    fall: np.ndarray | None = None
    rise: np.ndarray | None = None

    def packed(self) -> np.ndarray:
        """One row of floats per series, to store beside its score."""
        return np.concatenate([self.m, self.P, self.loglik, self.age], axis=1)

    @classmethod
    def unpacked(cls, rows: np.ndarray) -> FilterState:
        c = (rows.shape[1] - 1) // 3
        return cls(rows[:, :c], rows[:, c : 2 * c], rows[:, 2 * c : 3 * c], rows[:, 3 * c :])


@dataclass
class Level:
    """The filtered log level at the last month of each series, N(mean, variance), and the series' noise alpha."""

    mean: np.ndarray
    variance: np.ndarray
    alpha: np.ndarray
    drift: np.ndarray  # q chosen for each series
    pending: np.ndarray  # break variance not yet crossed: a break right after the last month
    reaching_last: FilterState | None = None  # every candidate's state on reaching the last month
    # every (alpha, q) candidate's level (arrays (n, candidates)) and its posterior probability: the detector's
    # predictive averages over them rather than taking the best
    candidates: Level | None = None
    posterior: np.ndarray | None = None

    def ahead(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the log level h months after the last."""
        if h == 0:
            return self.mean, self.variance
        return self.mean, self.variance + h * self.drift + self.pending

    def month(self, h: int, exposure: float | np.ndarray = 1.0) -> Counts:
        """The count h months after the last (h = 0: the last month itself)."""
        return Counts(*self.ahead(h), self.alpha, exposure)

    def total(self, horizons: list[int]) -> Counts:
        """The total count of these months (full months), whose rates share the level's path: the sum of the rates
        is matched by a lognormal in mean and variance (Fenton-Wilkinson), the noise in its variance."""
        months = [self.month(h) for h in horizons]
        rates = [c.mean for c in months]
        total = sum(rates)
        second = sum(r**2 * np.exp(c.v) for r, c in zip(rates, months, strict=True))  # E[rate^2], month by month
        cross = 0.0
        for i in range(len(horizons)):
            for j in range(i + 1, len(horizons)):
                shared = self.ahead(min(horizons[i], horizons[j]))[1]  # the covariance of the two log levels
                cross = cross + 2 * rates[i] * rates[j] * np.exp(shared)
        v = np.log((second + cross) / total**2)
        alpha = self.alpha * second / (total**2 * np.exp(v))  # the months' noise, in the total's terms
        return Counts(np.log(total) - v / 2, v, alpha)

    def __getitem__(self, rows) -> Level:
        return Level(self.mean[rows], self.variance[rows], self.alpha[rows], self.drift[rows], self.pending[rows])

    @classmethod
    def joined(cls, parts: list[tuple[np.ndarray, Level]], n: int) -> Level:
        """One Level of n series from parts, each (the rows it fills, a Level of those rows)."""
        whole = cls(np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n))
        for rows, part in parts:
            for name in ("mean", "variance", "alpha", "drift", "pending"):
                getattr(whole, name)[rows] = getattr(part, name)
        return whole


def filter_levels(
    counts: np.ndarray,
    exposure: np.ndarray,
    params: LevelParams,
    breaks: np.ndarray | None = None,
    resume: FilterState | None = None,
) -> Level:
    """Filter every series (rows) through its months (columns) and return its level at the last month, with the state
    the filter had on reaching the last month (`Level.reaching_last`: to go on from there when only that month's
    count changes). With `resume` (such a state), the counts are the months from that state's month on."""
    y = np.asarray(counts, dtype=float)
    e = np.asarray(exposure, dtype=float)
    n, months = y.shape
    bumps = np.zeros_like(y) if breaks is None else np.asarray(breaks, dtype=float) * params.break_variance
    # every (alpha, drift) candidate at once: arrays (n, candidates)
    alphas = np.repeat(np.asarray(params.alphas, dtype=float), len(params.drifts))[None, :]
    qs = np.tile(np.asarray(params.drifts, dtype=float), len(params.alphas))[None, :]
    prior = np.tile(np.log(np.asarray(params.drift_prior, dtype=float)), len(params.alphas))[None, :]
    state = resume or _starting_state(y, e, params, alphas.shape[1])
    m, P, loglik, age = state.m, state.P, state.loglik, state.age
    fall = np.zeros_like(m) if state.fall is None else state.fall
    rise = np.zeros_like(m) if state.rise is None else state.rise
    last = state
    beyond_before: np.ndarray = np.zeros((n, 1), dtype=bool)
    for t in range(months):
        if t:
            P = np.where(age > 0, P + qs + bumps[:, t - 1 : t], P)
        if t == months - 1:
            last = FilterState(m, P, loglik, age, fall, rise)
        yt, et = y[:, t : t + 1], e[:, t : t + 1]
        counted = (age >= params.burn_in) & (et > 0)
        risen = np.zeros(m.shape, dtype=bool)
        if counted.any():
            dispersion = (1 + alphas) * np.exp(P) - 1
            predicted = negbin.logpmf(yt, et * np.exp(m + P / 2), dispersion, factorial=False)
            if params.fall_factor is not None:
                lower = negbin.logpmf(yt, params.fall_factor * et * np.exp(m + P / 2), dispersion, factorial=False)
                fall = np.where(counted, np.maximum(fall + lower - predicted, 0.0), fall)
                fallen = fall > params.shift_threshold
                P, fall = np.where(fallen, P + params.shift_variance, P), np.where(fallen, 0.0, fall)
            if params.rise_factor is not None:
                higher = negbin.logpmf(yt, params.rise_factor * et * np.exp(m + P / 2), dispersion, factorial=False)
                step = np.minimum(higher - predicted, params.rise_step)
                rise = np.where(counted, np.maximum(rise + step, 0.0), rise)
                risen = rise > params.shift_threshold
                P, rise = np.where(risen, P + params.shift_variance, P), np.where(risen, 0.0, rise)
            if params.outlier_loglik is not None:
                predicted = np.maximum(predicted, predicted.max(axis=1, keepdims=True) - params.outlier_loglik)
            if params.outbreak_sd is not None:
                beyond = counted.all(axis=1, keepdims=True) & (yt > _cap(et, m, P, alphas, params.outbreak_sd)).all(
                    axis=1, keepdims=True
                )
                # the same for every candidate (no evidence), for a month alone: a run of them is a rise
                predicted = np.where(beyond & ~beyond_before, 0.0, predicted)
                beyond_before = np.asarray(beyond)
            loglik = loglik + np.where(counted, predicted, 0.0)
        if params.update_cap is not None:
            yt = np.where(risen, yt, np.minimum(yt, _cap(et, m, P, alphas, params.update_cap)))
        m, P = _update(yt, et, m, P, alphas, params.newton_steps)
        age = age + 1
    score = loglik + prior
    best = np.argmax(score, axis=1)
    rows = np.arange(n)
    pending = bumps[:, -1] if months else np.zeros(n)
    posterior = np.exp(score - score[rows, best][:, None])
    candidates = Level(m, P, np.broadcast_to(alphas, m.shape), np.broadcast_to(qs, m.shape), pending[:, None])
    return Level(
        m[rows, best], P[rows, best], alphas[0, best], qs[0, best], pending, last,
        candidates, posterior / posterior.sum(axis=1, keepdims=True),
    )


def _cap(e, m, P, alphas, sds: float) -> np.ndarray:
    """Per candidate, the count `sds` predictive standard deviations above the month's predicted mean (floored)."""
    mean = e * np.exp(m + P / 2)
    return np.floor(mean + sds * np.sqrt(mean + ((1 + alphas) * np.exp(P) - 1) * mean**2))


def _starting_state(y: np.ndarray, e: np.ndarray, params: LevelParams, candidates: int) -> FilterState:
    """Each series' prior at its first covered month: its mean rate over its first year, with a wide variance (the
    first year, not every month, so that the state reaching the last month does not depend on the last month)."""
    n, months = y.shape
    covered = e > 0
    first = np.where(covered.any(axis=1), covered.argmax(axis=1), months)
    year = (np.arange(months)[None, :] >= first[:, None]) & (np.arange(months)[None, :] < first[:, None] + 12)
    start = np.log(((y * year).sum(axis=1) + 0.5) / np.maximum((e * year).sum(axis=1), 1e-9))[:, None]
    m = np.repeat(start, candidates, axis=1)
    # months before a series' first covered month leave the prior as it is; age counts its filtered months from 0
    return FilterState(m, np.full_like(m, params.prior_variance), np.zeros_like(m), -first[:, None].astype(float))


def _update(y, e, m, P, alpha, steps):
    """Laplace update of N(m, P) by one month's count: the mode and curvature of the log posterior."""
    precision = 1.0 / P
    # Start between the prior and the month's own log rate, weighted by their information, so that a jump from a
    # low level to a burst is not reached by Newton steps overshooting through exp().
    weight = np.where(e > 0, (y + 0.5) / (1 + alpha * (y + 0.5)), 0.0)
    own = np.log((y + 0.5) / np.maximum(e, 1e-12))
    x = (m * precision + own * weight) / (precision + weight)
    noisy = 1 + alpha * y
    for _ in range(steps):
        mu = e * np.exp(x)
        damp = 1.0 / (1.0 + alpha * mu)
        gradient = (y - mu) * damp - (x - m) * precision
        curvature = mu * noisy * damp * damp + precision
        x += np.maximum(np.minimum(gradient / curvature, 2.0), -2.0)  # ufuncs: np.clip's wrapper costs as much
    mu = e * np.exp(x)
    return x, 1.0 / (precision + mu * noisy / (1 + alpha * mu) ** 2)


# --- forecasts from the level ---------------------------------------------------------------------------------------


@dataclass
class Outlook:
    """Forecasts of n series for horizons 1..H (arrays (n, H)), and exceedance probabilities (n, K) of given counts
    next month and over the next TOTAL_MONTHS months."""

    rate: np.ndarray  # exp of the log level's mean: the median monthly rate, the same at every horizon
    rate_log_sd: np.ndarray  # of the log level at each target month: how far the level may have moved by then
    alpha: np.ndarray
    mean: np.ndarray
    quantiles: np.ndarray  # (n, H, len(QUANTILES))
    p_month: np.ndarray  # P(next month's count >= thresholds_month)
    p_total: np.ndarray  # P(next TOTAL_MONTHS months' total >= thresholds_total)


def outlook(level: Level, horizons: int, thresholds_month: np.ndarray, thresholds_total: np.ndarray) -> Outlook:
    """Predictive distributions of months 1..horizons after the last, their quantiles, and exceedance probabilities
    (thresholds: (n, K) arrays of counts, NaN where a series has fewer)."""
    ahead = [level.ahead(h) for h in range(1, horizons + 1)]
    months = Counts(
        np.stack([m for m, _ in ahead], axis=1), np.stack([v for _, v in ahead], axis=1), level.alpha[:, None]
    )
    total = level.total(list(range(1, TOTAL_MONTHS + 1)))
    return Outlook(
        rate=np.exp(level.mean),
        rate_log_sd=np.sqrt(months.v),
        alpha=level.alpha,
        mean=months.mean,
        quantiles=months.quantiles(),
        p_month=Counts(months.m[:, :1], months.v[:, :1], months.alpha).sf_at_least(np.nan_to_num(thresholds_month)),
        p_total=Counts(total.m[:, None], total.v[:, None], total.alpha[:, None]).sf_at_least(
            np.nan_to_num(thresholds_total)
        ),
    )
