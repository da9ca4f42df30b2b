"""R surveillance's peers (Debian's r-cran-surveillance, through Rscript): each checked on a small case worked by hand
before it is compared with, its quirks shown, and the peers skipped with the reason where R is missing."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess

import numpy as np
import polars as pl
import pytest
from scipy import optimize, special

from sahel_pipeline.core.evaluation.run import EvaluationConfig, run_evaluation
from sahel_pipeline.core.evaluation.simulate import CountSeries, simulate
from sahel_pipeline.core.evaluation.surveillance import (
    EARS_C1,
    EARS_C2,
    FARRINGTON,
    GLRNB,
    NOUFAILY,
    SurveillancePeers,
    glr_matrix,
    glr_run,
)
from sahel_pipeline.core.models import nb_logpmf
from sahel_pipeline.core.months import month_index


def requires_r(test):
    """A test that runs Rscript: marked integration (and slow: R starts in seconds), skipped with the reason without
    R or its surveillance package."""
    return pytest.mark.integration(pytest.mark.slow(pytest.mark.usefixtures("r_peers_available")(test)))  # conftest


def series(counts, first_scored, sid="hand") -> CountSeries:
    counts = np.asarray(counts, dtype=np.int64)
    start = month_index(dt.date(2012, 1, 1))
    return CountSeries(
        sid,
        "hand",
        "events",
        "Nowhere",
        np.arange(start, start + len(counts)),
        counts,
        np.ones(len(counts)),
        first_scored,
    )


def run_peers(peers: tuple[str, ...], s: list[CountSeries]) -> dict:
    return {d.detector: d for d in SurveillancePeers(peers, processes=1).detect(s, lambda _: None)}


def rscript(code: str) -> str:
    done = subprocess.run(
        ["Rscript", "--vanilla", "-e", f"suppressMessages(library(surveillance)); {code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


# --- Farrington and Noufaily ----------------------------------------------------------------------------------------

QUIET = np.array([4, 6, 5, 3, 7, 5, 4, 6, 5, 5, 6, 4] * 3 + [5, 6, 4, 5])  # 40 months


@requires_r
def test_farrington_delta_threshold_by_hand():
    """Intercept only (no trend, no re-weighting): the mean of the 21 reference months, quasi-Poisson dispersion
    at least 1, and the bound (mu^(2/3) + z sd)^(3/2) with sd from the 2/3-power delta method."""
    y = np.append(QUIET, 11)
    control = {**FARRINGTON.control, "trend": False, "reweight": False}
    peer = FARRINGTON.__class__("farrington", FARRINGTON.label, "farrington", control, FARRINGTON.description)
    row = _only_farrington(peer, y)
    k = len(y) - 1
    ref = np.concatenate([y[k - 12 * j - 3 : k - 12 * j + 4] for j in (1, 2, 3)])
    mu = ref.mean()
    dispersion = float(np.sum((ref - mu) ** 2 / mu) / (len(ref) - 1))
    phi = max(1.0, dispersion)
    # the fitted mean's se uses the estimated dispersion, not phi: farringtonFlexible puts `dispersion = phi` into
    # predict.glm's newdata, where it is ignored
    se_fit = math.sqrt(dispersion * mu / len(ref))
    tau = phi + se_fit**2 / mu
    sd = math.sqrt(4 / 9 * mu ** (1 / 3) * tau)
    upper = (mu ** (2 / 3) + special.ndtri(0.95) * sd) ** 1.5
    assert row["upperbound"] == pytest.approx(upper, rel=1e-6)
    assert row["expected"] == pytest.approx(mu, rel=1e-9)
    assert row["pvalue"] == pytest.approx(special.ndtr(-(11 ** (2 / 3) - mu ** (2 / 3)) / sd), rel=1e-6)
    assert row["alarm"] == (11 > upper)


def _only_farrington(peer, y):
    from sahel_pipeline.core.evaluation import surveillance

    original = surveillance.R_PEERS[peer.name]
    surveillance.R_PEERS[peer.name] = peer
    try:
        [d] = SurveillancePeers((peer.name,), processes=1).detect([series(y, len(y) - 1)], lambda _: None)
    finally:
        surveillance.R_PEERS[peer.name] = original
    row = d.frame.row(0, named=True)
    p = row["p_value"]
    upper_expected = _raw_r_row(peer, y)
    return {"pvalue": p, "alarm": row["alarm"], **upper_expected}


def _raw_r_row(peer, y) -> dict:
    control = ", ".join(f"{k} = {_r(v)}" for k, v in peer.control.items())
    out = rscript(
        f"s <- sts(observed = c({', '.join(map(str, y))}), frequency = 12, start = c(2000, 1)); "
        f"f <- farringtonFlexible(s, control = list({control}, range = {len(y)})); "
        "cat(sprintf('%.15g', c(upperbound(f), f@control$expected)), '\\n')"
    )
    upper, expected = map(float, out.split()[-2:])
    return {"upperbound": upper, "expected": expected}


def _r(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, tuple):
        return f"c({', '.join(map(str, value))})"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


@requires_r
def test_noufaily_plug_in_threshold_by_hand():
    """One intercept per period (window + five periods), no trend, no re-weighting: the window's level is the mean of
    its reference months; the bound is the negative-binomial quantile with the quasi-Poisson dispersion."""
    y = np.append(QUIET, 12)
    control = {**NOUFAILY.control, "trend": False, "reweight": False}
    peer = NOUFAILY.__class__("noufaily", NOUFAILY.label, "farrington", control, NOUFAILY.description)
    row = _only_farrington(peer, y)
    k = len(y) - 1
    used = [i for i in range(k - 39, k - 6)]  # the 3 years and their windows, without the last 6 months
    window = [i for i in used if any(abs(i - (k - 12 * j)) <= 3 for j in (1, 2, 3))]
    level = y[window].mean()
    # a saturated factor model fits each period's mean; a period is a month's offset from its reference month
    pooled = {}
    for i in used:
        j = min(range(1, 4), key=lambda j: abs(i - (k - 12 * j)))
        offset = i - (k - 12 * j)
        pooled.setdefault("window" if abs(offset) <= 3 else offset % 12, []).append(y[i])
    assert len(pooled) == 6  # the window and five one-month periods
    means = {g: np.mean(v) for g, v in pooled.items()}
    pearson = sum(((np.array(v) - means[g]) ** 2 / means[g]).sum() for g, v in pooled.items())
    phi = max(1.0, pearson / (len(used) - len(pooled)))
    assert row["expected"] == pytest.approx(level, rel=1e-6)
    if phi > 1:  # negative binomial with variance phi x mean
        size, p = level / (phi - 1), 1 / phi
        cdf = [special.betainc(size, q + 1, p) for q in range(200)]
    else:  # Poisson
        cdf = [special.pdtr(q, level) for q in range(200)]
    assert row["upperbound"] == next(q for q in range(200) if cdf[q] >= 0.95)  # the 95% quantile
    assert row["pvalue"] == pytest.approx(1 - cdf[11], rel=1e-6)  # P(Y >= 12)


@requires_r
def test_farrington_ten_periods_mislabel_monthly_data_and_six_do_not():
    """Quirk: blocks() with w = 3 and noPeriods = 10 on monthly data puts label 9 on a window month."""
    code = (
        "ref <- surveillance:::algo.farrington.referencetimepoints(60, b = 3, freq = 12, epochAsDate = FALSE, "
        "epochStr = 'none'); for (p in c(10, 6)) cat(p, ':', surveillance:::blocks(ref, 1:60, 'none', 60, 3, 3, p, "
        "FALSE)[25:36], '\\n')"
    )
    lines = {
        line.split(":")[0].strip(): line.split(":")[1].split() for line in rscript(code).splitlines() if ":" in line
    }
    ten, six = lines["10"], lines["6"]
    # months 25-36 of 60: the window around month 36 is 33..39; month 33 should carry the window's label
    assert ten[8] == "9" and ten[9:] == ["10"] * 3  # the first window month is labelled as period 9
    assert set(ten[3:8]) == {"1", "2", "3", "4", "9"}  # periods 5-8 are empty, 9 is written twice
    assert six[:3] == ["6"] * 3 and six[3:8] == ["1", "2", "3", "4", "5"] and six[8:] == ["6"] * 4


@requires_r
def test_a_range_with_gaps_is_judged_month_by_month():
    """Quirk: farringtonFlexible fails on a range with gaps; the peers call it once per run of consecutive months."""
    failing = rscript(
        "s <- sts(observed = rpois(60, 5), frequency = 12, start = c(2000, 1)); "
        "farringtonFlexible(s, control = list(range = c(41, 45), b = 3))"
    )
    assert "subscript out of bounds" in failing
    y = np.concatenate([QUIET, [0, 0, 0, 0, 0, 9, 8, 7]])  # months with under 5 cases in 4 are not fitted
    d = run_peers(("farrington",), [series(y, 40)])["farrington"]
    assert d.note == ""
    assert sorted(d.frame["index"].to_list()) == [40, 41, 42, 45, 46, 47]  # 43 and 44: under 5 cases in 4 months


# --- glrnb ----------------------------------------------------------------------------------------------------------


def _glr_by_hand(x, mu, alpha):
    """max over windows of the NB log-likelihood ratio, maximised over the rise numerically (not in closed form)."""
    best = 0.0
    for k in range(len(x)):
        window = np.asarray(x[k:], dtype=float)

        def loss(kappa, w=window):
            return -float(
                np.sum(
                    nb_logpmf(w, np.full(len(w), mu * math.exp(kappa)), alpha)
                    - nb_logpmf(w, np.full(len(w), mu), alpha)
                )
            )

        result = optimize.minimize_scalar(loss, bounds=(0, 5), method="bounded", options={"xatol": 1e-10})
        best = max(best, -result.fun)
    return best


def test_the_glr_recursion_is_the_likelihood_ratio_by_hand():
    x = [5, 6, 12, 14, 13, 5, 4, 6]
    values = glr_run(glr_matrix(np.array(x), 5.0, 0.2), np.inf)[1]
    for t in range(len(x)):
        assert values[t] == pytest.approx(_glr_by_hand(x[: t + 1], 5.0, 0.2), abs=1e-6)
    alarm, value = glr_run(glr_matrix(np.array(x), 5.0, 0.2), 3.0)
    assert alarm.tolist() == [False, False, False, True, False, False, False, False]
    assert value[4] == pytest.approx(_glr_by_hand([13], 5.0, 0.2), abs=1e-6)  # it restarts after the alarm


@requires_r
def test_glrnb_matches_the_recursion_and_restarts_after_an_alarm():
    x = [5, 6, 12, 14, 13, 5, 4, 6]
    for h in (1.0, 3.0, 5.0):
        out = rscript(
            f"s <- sts(observed = c(rep(5, 36), {', '.join(map(str, x))}), frequency = 12, start = c(2000, 1)); "
            f"g <- glrnb(s, control = list(range = 37:44, c.ARL = {h}, mu0 = rep(5, 8), alpha = 0.2, ret = 'value')); "
            "cat(alarms(g), '\\n'); cat(upperbound(g), '\\n')"
        )
        alarms, values = (line.split() for line in out.strip().splitlines()[-2:])
        alarm, value = glr_run(glr_matrix(np.array(x), 5.0, 0.2), h)
        assert [a == "1" or a == "TRUE" for a in alarms] == alarm.tolist()
        assert np.allclose([float(v) for v in values], value, atol=1e-5)


@requires_r
def test_glrnb_quirks_seasonal_default_and_alpha_required_with_a_vector_mu0():
    flat = "set.seed(1); s <- sts(observed = rpois(48, 5), frequency = 12, start = c(2000, 1))"  # no season in it
    seasonal = rscript(
        f"{flat}; g <- suppressWarnings(glrnb(s, control = list(range = 37:48))); cat(range(g@control$mu0))"
    )
    low, high = map(float, seasonal.split()[-2:])
    assert high - low > 0.01  # a flat series given a seasonal in-control mean
    flat_mu0 = rscript(
        f"{flat}; g <- suppressWarnings(glrnb(s, control = list(range = 37:48, mu0 = list(S = 0, trend = FALSE)))); "
        "cat(range(g@control$mu0))"
    )
    low, high = map(float, flat_mu0.split()[-2:])
    assert high - low < 1e-9
    assert "argument is of length zero" in rscript(f"{flat}; glrnb(s, control = list(range = 37:48, mu0 = rep(5, 12)))")


@requires_r
def test_glrnb_peer_alarms_on_a_rise_and_its_grid_reproduces_r():
    rng = np.random.default_rng(3)
    quiet = rng.negative_binomial(1 / 0.3, 1 / (1 + 0.3 * 8), 48)
    y = np.concatenate([quiet, [30, 35, 32]])
    d = run_peers(("glrnb",), [series(y, 48)])["glrnb"]
    assert d.note == "" and d.frame["alarm"].any()
    own = d.grid.filter(pl.col("threshold") == GLRNB.value("c.ARL")).sort("index")["alarm"].to_list()
    assert own == d.frame.sort("index")["alarm"].to_list()


# --- EARS -----------------------------------------------------------------------------------------------------------


@requires_r
def test_ears_c1_and_c2_bounds_by_hand():
    y = np.array([5, 6, 4, 5, 7, 5, 6, 5, 4, 6, 5, 6, 30])
    d = run_peers(("ears_c1", "ears_c2"), [series(y, 12)])
    c1 = y[5:12]
    z = (30 - c1.mean()) / c1.std(ddof=1)
    assert d["ears_c1"].frame["statistic"][0] == pytest.approx(z, rel=1e-6)
    c2 = y[3:10]  # a guard band of two months
    assert d["ears_c2"].frame["statistic"][0] == pytest.approx((30 - c2.mean()) / c2.std(ddof=1), rel=1e-6)
    assert d["ears_c1"].frame["alarm"][0] and d["ears_c1"].default_threshold == pytest.approx(
        special.ndtri(1 - EARS_C1.value("alpha"))
    )
    assert EARS_C2.value("baseline") == 7


@requires_r
def test_ears_c3_ignores_the_month_it_judges_and_the_corrected_c3_does_not():
    y = np.array([5, 6, 4, 5, 7, 5, 6, 5, 4, 6, 5, 30, 31, 5])
    d = run_peers(("ears_c3", "ears_c3_corrected"), [series(y, 11)])
    shipped = d["ears_c3"].frame.sort("index")["alarm"].to_list()
    corrected = d["ears_c3_corrected"].frame.sort("index")["alarm"].to_list()
    assert shipped == [False, True, True]  # the spike is missed in its month; the month back at 5 is flagged
    assert corrected == [True, True, True]
    assert d["ears_c3"].note == ""  # the statistic reproduces R's alarms exactly


# --- the evaluation with R, and without it --------------------------------------------------------------------------


@requires_r
def test_a_small_evaluation_with_one_r_peer(tmp_path):
    result = run_evaluation(
        EvaluationConfig(series=3, years=1, r_peers=("glrnb",), scenarios=("stable", "step_x3")), log=lambda _: None
    )
    status = dict(result.tables["detectors"].select("name", "status").iter_rows())
    assert status["glrnb"] == "ran"
    assert "glrnb" in set(result.tables["summary"]["detector"])
    matched = result.tables["thresholds"].filter(pl.col("detector") == "glrnb").row(0, named=True)
    assert matched["matched_far"] <= 0.01 and matched["calibrated_on"] == "stable"


def test_without_rscript_the_r_peers_are_skipped_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no Rscript on it
    detections = SurveillancePeers(processes=1).detect(simulate(1, 1, 1, ("stable",)), lambda _: None)
    assert {d.detector for d in detections} >= {"farrington", "noufaily", "glrnb", "ears_c1", "ears_c3_corrected"}
    assert all(
        d.skipped and "Rscript is not on PATH" in d.skipped and "r-cran-surveillance" in d.skipped for d in detections
    )
    assert os.environ["PATH"] == str(tmp_path)
