"""The series-level detector: how unusual a series' last month, and its last few months, are against its recent level.

For each series (a row of counts, oldest month first, with the share of each month the data cover and the months a
known break follows), the expectation of the last month is the series' **recent level**: the forecasts' local level
(`forecast.filter_levels`, a log level that drifts, with negative-binomial noise around it) filtered through the
months before the last, and its one-month-ahead predictive distribution. Because the level follows the series, an
expectation never carries a trend from an earlier phase, nor extrapolates a decline below where the series now is,
and it needs no guard against zeros in the baseline.

Two questions are asked of every series:

* the **month**: P(count >= observed) under the level filtered up to the month before the recent window, three
  months ahead (expected count, 99.5% bound): the months of a rise under way do not lift the level it is judged
  against (against the level of the month before, the sample's planted rise was only `medium` in its third month);
* the **recent window** (the last `recent_months`): P(total >= observed total) under the level filtered up to the
  month before the window, whose months share the level's path (`Level.total`). A rise over two or three months that
  no single month makes exceptional accumulates here, and the window's own months do not raise its bar.

The dispersion is chosen with the level as the forecasts choose it, by the likelihood of the filter's one-month-ahead
predictions, except that one month can count against a candidate dispersion by at most `outlier_loglik` log units
more than against the month's best candidate (`LevelParams.outlier_loglik`): a past mass-casualty month is one
month's worth of evidence for a heavy tail, not a bound made unreachable for years.

Everything is vectorised over series; `judge_last` is what the pipeline's scores, the evaluation and buffer series
(spatial escalation) all call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sahel_pipeline.core.forecast import WEIGHTS, Counts, Level, LevelParams, filter_levels

# The level as the forecasts filter it, but slower (a level within a factor 1.15 of last month's at 95%, or 1.06),
# with each month's weight in choosing the dispersion bounded. The forecasts' faster level (0.04) chased a month's
# noise into the next month's expectation: a month of 40 after fourteen at about 17 was judged against 24.
#
# The slow level alone followed a fall badly: after two high years (up to 3x) and 18 months back at the low level, it
# was still 1.18x the low level (median; 1.25x on alpha-1 series) and a x2.5 rise was flagged within two months in 8%
# of the evaluation's regime series. A fall monitor (West & Harrison's Bayes-factor CUSUM for a halving, 3 log units,
# then the level's variance +1) brings it to 1.06x and 25% at a matched 1% false-alarm rate (x3 and x2 unchanged; the
# same rule with the filter started at the true end of the high years: 25% at its own settings): README, Detector
# evaluation. The same monitor for a doubling (each month adding at most 1.5 log units, so that it takes a run of
# months) releases the update cap: without it a level near zero floored every count to 0 (the cap, mean + 3 sd, is
# below 1), and a group active again after years of silence was judged against 0.03 a month for ever (JNIM in
# Burkina Faso alerted every month of 2019).
#
# Two mass-casualty months still chose a heavy tail (the fatality scenario's posterior weight on alpha 2.5 at the
# rise: median 0.15 on 240 series, about 0.03 on stable fatality series): a month alone above 3.5 predictive sds
# under every candidate counts nothing in choosing the dispersion (0.05; the x4 rise after them flagged within two
# months 0.29 -> 0.33 at own settings, the other scenarios unchanged: README, Detector evaluation). Alone: the first
# months of a series rising from nothing are a run, which keeps its evidence (counting none of them, the raw renamed
# forces' new names alerted 302 times instead of 250).
DETECTION_LEVEL = LevelParams(
    drifts=(0.005, 0.001),
    drift_prior=(0.5, 0.5),
    outlier_loglik=3.0,
    update_cap=3.0,
    fall_factor=0.5,
    rise_factor=2.0,
    shift_threshold=3.0,
    shift_variance=1.0,
    outbreak_sd=3.5,
)


@dataclass
class Verdict:
    """Per series (arrays (n,)): the last month against the recent level, and the recent window's total against the
    level before it."""

    expected: np.ndarray  # mean of the last month's predictive distribution (for the days it covers)
    upper: np.ndarray  # its bound_quantile quantile
    p_value: np.ndarray  # P(count >= observed)
    level_rate: np.ndarray  # the recent level, events per full month (the median rate)
    alpha: np.ndarray  # the month-to-month dispersion chosen around the level
    window_expected: np.ndarray  # expected total of the recent window, from the level before it
    window_p_value: np.ndarray  # P(total >= observed total)
    level: Level  # the level the month was judged against (`packed_level`: to judge again without filtering)


def judge_last(
    counts: np.ndarray,
    exposure: np.ndarray,
    breaks: np.ndarray | None = None,
    level: LevelParams = DETECTION_LEVEL,
    window: int | None = 3,
    bound_quantile: float | None = 0.99,
    lead: int = 1,
    before: Level | None = None,
) -> Verdict:
    """Judge the last month (column) of every series (row), and its last `window` months. counts, exposure: (n, T);
    breaks: (n, T) bool, True where a known break follows month t. Months before a series starts have exposure 0.
    The month is judged against the level filtered up to `lead` months before it (the pipeline: the recent window's
    length, so that a rise under way does not raise its own bar; the window's level then serves both tests).
    Without a window or a bound quantile, those columns are NaN (a caller that needs only the month's p-value).
    `before`, that level already filtered (`unpacked_level` of an earlier verdict's), spares the filter run."""
    y = np.asarray(counts, dtype=float)
    e = np.asarray(exposure, dtype=float)
    b = np.zeros(y.shape, dtype=bool) if breaks is None else np.asarray(breaks, dtype=bool)
    if before is None:
        before = filter_levels(y[:, :-lead], e[:, :-lead], level, b[:, :-lead])
    month = averaged(before, lambda candidates: candidates.month(lead, e[:, -1:]))
    missing = np.full(len(y), np.nan)
    window_expected, window_p = missing, missing
    if window is not None:
        window_level = (
            before if window == lead else filter_levels(y[:, :-window], e[:, :-window], level, b[:, :-window])
        )
        # the window's months as full months: a partial last month makes the test conservative, not wrong
        total = averaged(window_level, lambda candidates: candidates.total(list(range(1, window + 1))))
        window_expected, window_p = total.mean, total.sf_at_least(y[:, -window:].sum(axis=1))
    return Verdict(
        expected=month.mean,
        upper=month.quantile(bound_quantile) if bound_quantile is not None else missing,
        p_value=month.sf_at_least(y[:, -1]),
        level_rate=np.exp(before.mean),
        alpha=before.alpha,
        window_expected=window_expected,
        window_p_value=window_p,
        level=before,
    )


def packed_level(level: Level) -> np.ndarray:
    """A filtered level as one row of floats per series (every candidate's mean and variance, their posterior, the
    pending break variance): all a verdict needs of it, to store beside the score."""
    assert level.candidates is not None and level.posterior is not None
    c = level.candidates
    return np.concatenate([c.mean, c.variance, level.posterior, level.pending[:, None]], axis=1)


def packed_width(params: LevelParams) -> int:
    """Floats per series of a `packed_level`."""
    return 3 * len(params.alphas) * len(params.drifts) + 1


def unpacked_level(rows: np.ndarray, params: LevelParams) -> Level:
    """The Level `packed_level` stored, the candidates' dispersions and drifts from `params` (which the cache keys
    hash): the same predictive as the filter gave, without filtering again."""
    c = (rows.shape[1] - 1) // 3
    mean, variance, posterior, pending = rows[:, :c], rows[:, c : 2 * c], rows[:, 2 * c : 3 * c], rows[:, 3 * c]
    alphas = np.repeat(np.asarray(params.alphas, dtype=float), len(params.drifts))
    qs = np.tile(np.asarray(params.drifts, dtype=float), len(params.alphas))
    best, n = np.argmax(posterior, axis=1), np.arange(len(rows))
    candidates = Level(mean, variance, np.broadcast_to(alphas, mean.shape), np.broadcast_to(qs, mean.shape),
                       pending[:, None])
    return Level(mean[n, best], variance[n, best], alphas[best], qs[best], pending, None, candidates, posterior)


@dataclass
class Averaged:
    """A predictive distribution per series that averages the candidates' (Counts of shape (n, candidates)) with
    their posterior probabilities."""

    counts: Counts
    weights: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return (self.weights * self.counts.mean).sum(axis=1)

    def sf_at_least(self, k: np.ndarray) -> np.ndarray:
        return (self.weights * self.counts.sf_at_least(np.asarray(k, dtype=float)[:, None])).sum(axis=1)

    def cdf(self, k: np.ndarray) -> np.ndarray:
        return (self.weights * self.counts.cdf(np.asarray(k, dtype=float)[:, None])).sum(axis=1)

    def quantile(self, q: float) -> np.ndarray:
        """The smallest count whose averaged CDF reaches q: bisection from a Cantelli bound of the mixture, which the
        quantile cannot exceed (P(Y - m >= t) <= s^2 / (s^2 + t^2))."""
        rates, dispersion = self.counts._mixture()
        nodes = WEIGHTS
        first = (rates * nodes).sum(axis=-1)
        second = ((rates + (1 + dispersion) * rates**2) * nodes).sum(axis=-1)
        mean, square = (self.weights * first).sum(axis=1), (self.weights * second).sum(axis=1)
        sd = np.sqrt(np.maximum(square - mean**2, 0.0))
        low, high = np.full(len(mean), -1.0), np.ceil(mean + sd * np.sqrt(q / (1 - q))) + 1  # F(low) < q <= F(high)
        while (open_ := np.flatnonzero(high - low > 1)).size:
            middle = np.floor((low[open_] + high[open_]) / 2)
            reached = self[open_].cdf(middle) >= q  # only the series not yet settled: most of the weekly cost
            high[open_] = np.where(reached, middle, high[open_])
            low[open_] = np.where(reached, low[open_], middle)
        return high.astype(np.int64)

    def __getitem__(self, rows: np.ndarray) -> Averaged:
        c = self.counts
        exposure = c.exposure[rows] if isinstance(c.exposure, np.ndarray) and c.exposure.ndim else c.exposure
        return Averaged(Counts(c.m[rows], c.v[rows], c.alpha[rows], exposure), self.weights[rows])


def averaged(level: Level, predict) -> Averaged:
    """`predict` (a function of a Level) applied to every candidate of a filtered level, averaged over them."""
    assert level.candidates is not None and level.posterior is not None
    return Averaged(predict(level.candidates), level.posterior)


# --- evidence that accumulates: the negative-binomial GLR-CUSUM -----------------------------------------------------


def accumulated_evidence(
    counts: np.ndarray,
    exposure: np.ndarray,
    breaks: np.ndarray | None = None,
    level: LevelParams = DETECTION_LEVEL,
    window: int = 6,
) -> np.ndarray:
    """The GLR-CUSUM (`glr_last`) at the last month of every series, its in-control means the recent level's
    expectations for the last `window` months, filtered up to the month before them (so that a rise under way does
    not raise its own in-control mean), with the level's dispersion: evidence of a rise accumulated over up to
    `window` months. A plug-in statistic, as glrnb's is: the level's own uncertainty is not in it."""
    y = np.asarray(counts, dtype=float)
    e = np.asarray(exposure, dtype=float)
    b = np.zeros(y.shape, dtype=bool) if breaks is None else np.asarray(breaks, dtype=bool)
    before = filter_levels(y[:, :-window], e[:, :-window], level, b[:, :-window])
    mu0 = np.stack([before.month(h, e[:, h - window - 1]).mean for h in range(1, window + 1)], axis=1)
    return glr_last(y, np.maximum(mu0, 1e-9), before.alpha, window)


def glr_last(counts: np.ndarray, mu0: np.ndarray, alpha: np.ndarray, window: int, newton_steps: int = 6) -> np.ndarray:
    """The negative-binomial GLR-CUSUM for a rise (Höhle & Paul 2008; R `surveillance::glrnb` with change =
    "intercept", dir = "inc", Mtilde = 1) at the last month of every series (row): the largest, over the windows of
    1 to `window` months ending with it, of the log-likelihood ratio of the window's counts under their in-control
    means raised by a common factor exp(kappa) >= 1, kappa at its maximum likelihood, against the in-control means.

    counts: (n, T); mu0: (n, T), (n, window) or (n,), the in-control mean of each month (e.g. the recent level's
    expectation; only the last `window` months of either are read); alpha: (n,) the NB2 dispersion (0: Poisson).
    kappa solves the window's score equation sum (y - mu) / (1 + alpha mu) = 0 (the log-likelihood is concave in
    kappa) by Newton's method from the ratio of the window's totals, which is the solution when mu0 is constant."""
    y = np.asarray(counts, dtype=float)[:, -window:]
    mu0 = np.asarray(mu0, dtype=float)
    mu = np.broadcast_to((mu0 if mu0.ndim == 2 else mu0[:, None])[:, -window:], y.shape)
    a = np.asarray(alpha, dtype=float).reshape(-1, 1, 1)
    w = y.shape[1]
    # windows as masks over the last w months: window j holds the last j + 1 months, arrays (n, windows, months)
    inside = (np.arange(w)[None, :] >= w - 1 - np.arange(w)[:, None])[None]
    y3, mu3 = y[:, None, :], mu[:, None, :]
    kappa = np.log(np.maximum((y3 * inside).sum(-1), 1e-12) / (mu3 * inside).sum(-1))[..., None]
    for _ in range(newton_steps):
        raised = mu3 * np.exp(kappa)
        damp = 1 / (1 + a * raised)
        score = ((y3 - raised) * damp * inside).sum(-1, keepdims=True)
        information = (raised * (1 + a * y3) * damp**2 * inside).sum(-1, keepdims=True)
        kappa = kappa + np.clip(score / np.maximum(information, 1e-12), -2.0, 2.0)
    kappa = np.maximum(kappa, 0.0)  # a rise only: a window below its in-control means carries no evidence
    raised = mu3 * np.exp(kappa)
    ratio = np.where(a > 0, (y3 + 1 / np.where(a > 0, a, 1)) * np.log((1 + a * mu3) / (1 + a * raised)), mu3 - raised)
    llr = ((y3 * kappa + ratio) * inside).sum(-1)
    return llr.max(axis=1)
