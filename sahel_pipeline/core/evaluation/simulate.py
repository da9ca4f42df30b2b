"""Simulated monthly count series with known truth, seeded, for the detector evaluation.

Every series starts with a burn-in of 39 months that no detector is judged on (the current rule's 36-month baseline
and 3-month recent window; Farrington's three reference years and a window of three months), then months whose
truth is known: in control (drawn from the series' in-control distribution), rising (a planted rise), or excluded
(a planted spike that is neither). Each series carries its in-control distribution, which the oracle uses.

Counts are negative binomial (NB2: variance mu + alpha mu^2). Fatalities are events times deaths per event: the
month's events are negative binomial and each event's deaths are negative binomial with a large dispersion, so most
events kill nobody and a few kill many; the month's total is then negative binomial given the events, and its exact
distribution is computed by Panjer's recursion.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sahel_pipeline.core.models import Break, Predictive, nb_logpmf
from sahel_pipeline.core.months import index_month, month_index

BURN_IN = 39
FIRST_MONTH = dt.date(2010, 1, 1)
RISE_MONTHS = 4

# The truth of a month.
BURN_IN_STATE, IN_CONTROL, RISING, EXCLUDED = 0, 1, 2, 3
STATE_NAMES = {BURN_IN_STATE: "burn-in", IN_CONTROL: "in control", RISING: "rising", EXCLUDED: "excluded"}

MEANS = (2, 5, 10, 20, 50)  # events a month of the stable and step series
ALPHAS = (0.3, 1.0)


@dataclass(frozen=True)
class DeathsPerEvent:
    """Negative-binomial deaths per event: mean 3 and dispersion 3 put 46% of events at zero and 1% above 30."""

    mean: float = 3.0
    alpha: float = 3.0


@dataclass(frozen=True)
class InControl:
    """The distribution of a month's count when nothing is happening: events, or fatalities when `deaths` is set."""

    mean: float  # events a month
    alpha: float  # dispersion of the events
    deaths: DeathsPerEvent | None = None

    @property
    def label(self) -> str:
        kind = f"events {self.mean:g}" if self.deaths else f"mean {self.mean:g}"
        return f"{kind}, alpha {self.alpha:g}"

    def sf(self, y: float, months: int = 1) -> float:
        """P(S >= y), S the sum of `months` independent in-control months (sizes of negative binomials add)."""
        if y <= 0:
            return 1.0
        if self.deaths is None:
            return Predictive(self.mean * months, 0.0, self.alpha / months).sf_at_least(y)
        tail = _compound_tail(months / self.alpha, self.mean * months, self.deaths.mean, self.deaths.alpha)
        return float(tail[int(y)]) if y < len(tail) else 0.0

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        event_factor: np.ndarray | float = 1.0,
        death_factor: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """n months; a planted rise multiplies the events' mean, a mass-casualty month the deaths' mean."""
        mean = self.mean * np.broadcast_to(event_factor, (n,))
        events = rng.negative_binomial(1 / self.alpha, 1 / (1 + self.alpha * mean))
        if self.deaths is None:
            return events.astype(np.int64)
        size = 1 / self.deaths.alpha
        p = 1 / (1 + self.deaths.alpha * self.deaths.mean * np.broadcast_to(death_factor, (n,)))
        # the deaths of N events are one negative binomial with N times the size
        deaths = rng.negative_binomial(np.maximum(events, 1) * size, p)
        return np.where(events > 0, deaths, 0).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _compound_tail(size: float, mean: float, death_mean: float, death_alpha: float) -> np.ndarray:
    """P(S >= s) for s = 0, 1, ... of a negative binomial number of events (size, mean) times negative-binomial deaths,
    by Panjer's recursion, up to where the remaining probability is below 1e-13."""
    support = np.arange(0, 20_000, dtype=float)
    deaths = np.exp(nb_logpmf(support, np.full(len(support), death_mean), death_alpha))
    deaths = deaths[: int(np.searchsorted(np.cumsum(deaths), 1 - 1e-15)) + 1]
    p = size / (size + mean)
    a, b = 1 - p, (size - 1) * (1 - p)
    scale = 1 / (1 - a * deaths[0])
    expected = mean * death_mean
    pmf = np.zeros(max(1024, int(20 * expected)))
    pmf[0] = (p / (1 - a * deaths[0])) ** size
    total, s = pmf[0], 0
    j = np.arange(1, len(deaths), dtype=float)
    while total < 1 - 1e-12 and not (s > 10 * expected and pmf[s] < 1e-18):
        s += 1
        if s == len(pmf):
            pmf = np.concatenate([pmf, np.zeros(len(pmf))])
        k = min(s, len(deaths) - 1)
        # g(s) = sum_j (a + b j / s) f(j) g(s - j) / (1 - a f(0)), j = 1..k
        pmf[s] = scale * float(((a + b * j[:k] / s) * deaths[1 : k + 1]) @ pmf[s - 1 :: -1][:k])
        total += pmf[s]
    pmf = pmf[: s + 1]
    return np.append(np.cumsum(pmf[::-1])[::-1] + max(0.0, 1 - total), 0.0)


@dataclass(frozen=True, eq=False)
class CountSeries:
    """One monthly series as detectors see it, with what is known about it."""

    id: str
    scenario: str
    indicator: str
    country: str
    months: np.ndarray  # months since 1970-01, consecutive
    counts: np.ndarray
    exposure: np.ndarray  # share of each month the data cover
    first_scored: int  # index of the first month detectors are judged on
    state: np.ndarray | None = None  # truth per month (IN_CONTROL, ...); None for real series
    rise_start: int | None = None
    in_control: InControl | None = None
    breaks: tuple[Break, ...] = ()
    key: dict = field(default_factory=dict)  # real series: source, level, group_id, group_name, country, indicator

    @property
    def scored(self) -> range:
        return range(self.first_scored, len(self.counts))


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[int, int, int], list[CountSeries]]  # (series, years, seed) -> series
    calibration: bool = False  # its in-control months set thresholds to a false-alarm rate


def _series(
    scenario: str,
    i: int,
    counts: np.ndarray,
    state: np.ndarray,
    in_control: InControl,
    indicator: str = "events",
    rise_start: int | None = None,
    breaks: tuple[Break, ...] = (),
    suffix: str = "",
) -> CountSeries:
    sid = f"{scenario}/{i:03d}{suffix}"
    start = month_index(FIRST_MONTH)
    return CountSeries(
        id=sid,
        scenario=scenario,
        indicator=indicator,
        country=breaks[0].country if breaks else f"sim:{sid}",
        months=np.arange(start, start + len(counts)),
        counts=np.asarray(counts, dtype=np.int64),
        exposure=np.ones(len(counts)),
        first_scored=BURN_IN,
        state=state,
        rise_start=rise_start,
        in_control=in_control,
        breaks=breaks,
    )


def _states(n: int) -> np.ndarray:
    state = np.full(n, IN_CONTROL, dtype=np.int8)
    state[:BURN_IN] = BURN_IN_STATE
    return state


def _rng(seed: int, scenario: str, i: int) -> np.random.Generator:
    # one stream per series, so a series does not change when others are added
    return np.random.default_rng([seed, sum(map(ord, scenario)), i])


def _cells(*axes: tuple) -> list[tuple]:
    return [(a, b) for a in axes[0] for b in axes[1]]


def stable(n: int, years: int, seed: int) -> list[CountSeries]:
    out = []
    for i, (mean, alpha) in zip(range(n), _cycle(_cells(MEANS, ALPHAS)), strict=False):
        truth = InControl(mean, alpha)
        length = BURN_IN + 12 * years
        out.append(_series("stable", i, truth.sample(_rng(seed, "stable", i), length), _states(length), truth))
    return out


def _cycle(cells: list[tuple]):
    while True:
        yield from cells


def step(factor: float) -> Callable[[int, int, int], list[CountSeries]]:
    name = f"step_x{factor:g}"

    def build(n: int, years: int, seed: int) -> list[CountSeries]:
        out = []
        for i, (mean, alpha) in zip(range(n), _cycle(_cells(MEANS, ALPHAS)), strict=False):
            rng = _rng(seed, name, i)
            start = BURN_IN + int(rng.integers(12, 25))
            length = start + RISE_MONTHS
            rise = np.ones(length)
            rise[start:] = factor
            state = _states(length)
            state[start:] = RISING
            truth = InControl(mean, alpha)
            out.append(_series(name, i, truth.sample(rng, length, event_factor=rise), state, truth, rise_start=start))
        return out

    return build


REGIME_LOWS = (4, 8, 16)


def regime(n: int, years: int, seed: int) -> list[CountSeries]:
    """Two high years in which the group grows from the low level to three times it, eighteen low months, then
    x2.5 the low level for four months: a trend fitted over the high years points the wrong way."""
    out = []
    for i, (low, alpha) in zip(range(n), _cycle(_cells(REGIME_LOWS, ALPHAS)), strict=False):
        factor = np.concatenate([np.linspace(1.0, 3.0, 24), np.ones(18), np.full(RISE_MONTHS, 2.5)])
        start = 24 + 18
        state = _states(len(factor))
        state[start:] = RISING
        truth = InControl(low, alpha)
        counts = truth.sample(_rng(seed, "regime", i), len(factor), event_factor=factor)
        out.append(_series("regime", i, counts, state, truth, rise_start=start))
    return out


FORCE_MEANS = (10, 20, 50)  # state forces are among the busiest actors
RENAMED_YEARS = 3


def _renamed_force(i: int, seed: int) -> tuple[InControl, np.ndarray, int, Break]:
    mean, alpha = _cells(FORCE_MEANS, ALPHAS)[i % 6]
    rng = _rng(seed, "renamed", i)
    length = BURN_IN + 12 * RENAMED_YEARS
    coup = BURN_IN + int(rng.integers(12, 25))
    truth = InControl(mean, alpha)
    counts = truth.sample(rng, length)
    date = index_month(month_index(FIRST_MONTH) + coup).replace(day=15)
    return truth, counts, coup, Break(f"sim:renamed/{i:03d}", date, "a simulated coup")


def renamed(n: int, years: int, seed: int) -> list[CountSeries]:
    """A state force renamed at a coup with no change in its rate, as the panel sees it once the alias table maps
    both names to one group: one continuous series, and the coup as a dated break for its country."""
    out = []
    for i in range(n):
        truth, counts, _, coup = _renamed_force(i, seed)
        out.append(_series("renamed", i, counts, _states(len(counts)), truth, breaks=(coup,)))
    return out


def renamed_unbroken(n: int, years: int, seed: int) -> list[CountSeries]:
    """The same forces, the same counts, with no break date: what each detector alerts on them by chance. The
    renamed series' truth holds no change at all (every month is drawn from the in-control distribution), so an
    alert on either is false; `renamed` alerts beyond these are the ones the break itself brings."""
    return [
        _series("renamed_unbroken", i, counts, _states(len(counts)), truth)
        for i in range(n)
        for truth, counts, _, _ in [_renamed_force(i, seed)]
    ]


def renamed_raw(n: int, years: int, seed: int) -> list[CountSeries]:
    """The same forces before actor normalisation: the old name's series stops at the coup (zeros after it) and the
    new name's starts there (zeros before it). Nothing changed, so every alert on either is false."""
    out = []
    for i in range(max(1, n // 2)):
        truth, counts, cut, coup = _renamed_force(i, seed)
        old, new = counts.copy(), counts.copy()
        old[cut:], new[:cut] = 0, 0
        for suffix, part in (("/old", old), ("/new", new)):
            out.append(_series("renamed_raw", i, part, _states(len(counts)), truth, breaks=(coup,), suffix=suffix))
    return out


FATALITY_EVENT_MEANS = (5, 10, 20)


def fatalities(n: int, years: int, seed: int) -> list[CountSeries]:
    """Fatalities with two mass-casualty months (deaths per event x8) in the baseline of a later x4 rise in events."""
    out = []
    for i, (mean, alpha) in zip(range(n), _cycle(_cells(FATALITY_EVENT_MEANS, ALPHAS)), strict=False):
        rng = _rng(seed, "fatalities", i)
        start = BURN_IN + int(rng.integers(12, 25))
        length = start + RISE_MONTHS
        events, deaths = np.ones(length), np.ones(length)
        events[start:] = 4.0
        spikes = [start - 30, start - 18]  # both inside the 36 months before the rise's recent window
        deaths[spikes] = 8.0
        state = _states(length)
        state[start:] = RISING
        state[[s for s in spikes if s >= BURN_IN]] = EXCLUDED
        truth = InControl(mean, alpha, DeathsPerEvent())
        counts = truth.sample(rng, length, event_factor=events, death_factor=deaths)
        out.append(_series("fatalities", i, counts, state, truth, indicator="fatalities", rise_start=start))
    return out


def stable_fatalities(n: int, years: int, seed: int) -> list[CountSeries]:
    out = []
    for i, (mean, alpha) in zip(range(n), _cycle(_cells(FATALITY_EVENT_MEANS, ALPHAS)), strict=False):
        truth = InControl(mean, alpha, DeathsPerEvent())
        length = BURN_IN + 12 * years
        counts = truth.sample(_rng(seed, "stable_fatalities", i), length)
        out.append(_series("stable_fatalities", i, counts, _states(length), truth, indicator="fatalities"))
    return out


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "stable",
            "Stable negative-binomial event series, means 2, 5, 10, 20 and 50 a month, alpha 0.3 and "
            "1.0; every judged month is in control.",
            stable,
            calibration=True,
        ),
        Scenario(
            "stable_fatalities",
            "Stable fatality series: events with means 5, 10 and 20 a month (alpha 0.3 "
            "and 1.0) times negative-binomial deaths per event (mean 3, alpha 3).",
            stable_fatalities,
            calibration=True,
        ),
        Scenario(
            "step_x2",
            "A stable event series (as above) that doubles for four months, starting 12 to 24 "
            "months into the judged period; the series ends with the rise.",
            step(2),
        ),
        Scenario("step_x3", "The same with a threefold rise.", step(3)),
        Scenario(
            "regime",
            "Two high years (growing from the low level to three times it), 18 low months (4, 8 or "
            "16 a month), then x2.5 the low level for four months.",
            regime,
        ),
        Scenario(
            "renamed",
            "A state force (10, 20 or 50 events a month) renamed at a dated coup with no change in "
            "rate, after actor normalisation: one continuous series and the coup as a break date.",
            renamed,
        ),
        Scenario(
            "renamed_unbroken",
            "The same forces and counts with no break date: the alerts a detector gives them by chance, "
            "against which `renamed` shows what the break brings.",
            renamed_unbroken,
        ),
        Scenario(
            "renamed_raw",
            "The same forces without normalisation: the old name stops at the coup and the new "
            "name starts there (two series each).",
            renamed_raw,
        ),
        Scenario(
            "fatalities",
            "Fatalities (events 5, 10 or 20 a month times deaths per event as above) with two "
            "mass-casualty months (deaths per event x8) 30 and 18 months before a x4 rise in events lasting four "
            "months; the mass-casualty months are left out of the figures.",
            fatalities,
        ),
    )
}


def simulate(series: int, years: int, seed: int, scenarios: tuple[str, ...] | None = None) -> list[CountSeries]:
    """`series` series of each scenario (half as many forces for `renamed_raw`, two series each)."""
    names = scenarios or tuple(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [s for name in names for s in SCENARIOS[name].build(series, years, seed)]
