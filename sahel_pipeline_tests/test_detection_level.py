"""The detector's recent level after a regime change, and its GLR-CUSUM against R's glrnb (issue 13)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sahel_pipeline.core.detection import accumulated_evidence, glr_last, judge_last
from sahel_pipeline.core.evaluation.simulate import regime
from sahel_pipeline.core.evaluation.surveillance import RESULT_SCHEMA, RPeer, _run, _write_inputs, glr_matrix
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline_tests.test_surveillance_peers import requires_r, series

CONFIG = ModelConfig()


def _judged(series, months):
    """judge_last as the pipeline calls it, at each series' given months (the pipeline's history, lead and window)."""
    width = CONFIG.window_months
    rows = np.array([s.counts[t - width + 1 : t + 1] for s, t in zip(series, months, strict=True)], dtype=float)
    verdict = judge_last(
        rows, np.ones_like(rows), None, CONFIG.detection_level, CONFIG.recent_months, None, CONFIG.recent_months
    )
    alarm = (rows[:, -1] >= CONFIG.min_count("events")) & (
        (verdict.p_value < CONFIG.alert_p) | (verdict.window_p_value < CONFIG.sustained_p)
    )
    return verdict, alarm


def test_the_level_follows_a_lasting_fall_so_a_rise_after_it_is_seen():
    # The evaluation's regime scenario: two high years growing to 3x the low level, 18 low months, then x2.5 the
    # low level. The slow level alone stayed at 1.18x the low level (median) and the rule flagged 5 of 60 rises
    # within two months; the oracle, which knows the low level, flags about 23 at the same false-alarm rate.
    series = regime(60, 3, 2024)
    starts = [s.rise_start for s in series]
    verdict, first = _judged(series, starts)
    _, second = _judged(series, [t + 1 for t in starts])
    low = np.array([s.in_control.mean for s in series])
    assert np.median(verdict.level_rate / low) <= 1.1
    assert (first | second).mean() >= 0.18


def test_the_glr_matches_its_closed_form_when_the_in_control_mean_is_constant():
    rng = np.random.default_rng(3)
    x = rng.negative_binomial(2, 0.2, size=40).astype(float)
    x[-4:] += 12
    for alpha in (0.2, 1.0):
        G = glr_matrix(x, 7.5, alpha)  # the evaluation's check of R's run, windows k..t in closed form
        for t in (15, 30, 39):
            mine = glr_last(x[None, : t + 1], np.full((1, t + 1), 7.5), np.array([alpha]), 6)[0]
            assert mine == pytest.approx(G[t - 5 : t + 1, t].max(), rel=1e-9, abs=1e-9)


def test_accumulated_evidence_grows_with_a_rise_and_not_with_a_stable_series():
    rng = np.random.default_rng(5)
    stable = rng.negative_binomial(1 / 0.3, 1 / (1 + 0.3 * 10), size=(200, 39)).astype(float)
    risen = stable.copy()
    risen[:, -4:] = rng.negative_binomial(1 / 0.3, 1 / (1 + 0.3 * 25), size=(200, 4))
    quiet = accumulated_evidence(stable, np.ones_like(stable))
    loud = accumulated_evidence(risen, np.ones_like(risen))
    assert np.median(quiet) < 1.0 < 5.0 < np.median(loud)
    assert (quiet >= 5.0).mean() < 0.05


def _r_glrnb(counts: np.ndarray, mu0: np.ndarray, alpha: float, window: int, phase1: int) -> np.ndarray:
    """R surveillance's glrnb on one series through the evaluation's Rscript machinery (`surveillance_peers.R`), its
    in-control means and dispersion given, its threshold out of reach (no restart): its GLR at each month after the
    first `phase1`."""

    control = {
        "c.ARL": 1e9,
        "mu0": tuple(float(m) for m in mu0[phase1:]),
        "alpha": alpha,
        "Mtilde": 1,
        "M": window - 1,  # glrnb's windows start at n - M .. n: M + 1 months at most
        "change": "intercept",
        "dir": "inc",
        "ret": "value",
        "phase1": phase1,
    }
    peer = RPeer("glrnb", "glrnb, given mu0", "glrnb", control, "")
    with tempfile.TemporaryDirectory(prefix="sahel-glr-") as root:
        _write_inputs(Path(root), [series(counts, phase1)], [peer])
        _run([Path(root)], lambda _: None)
        return pl.read_csv(Path(root) / "results.csv", schema=RESULT_SCHEMA).sort("t")["upperbound"].to_numpy()


@requires_r
def test_the_native_glr_equals_r_glrnb_on_the_same_series():
    # In-control means that vary month to month (so that kappa needs Newton's method, not the closed form) and a
    # tripling in the last ten months; R computes the NB GLR for every window of up to `window` months.
    rng = np.random.default_rng(7)
    n, phase1, window, alpha = 48, 12, 6, 0.5
    mu0 = np.exp(np.log(6) + 0.3 * np.sin(np.arange(n) / 3))
    factor = np.r_[np.ones(n - 10), np.full(10, 3.0)]
    counts = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu0 * factor))
    theirs = _r_glrnb(counts, mu0, alpha, window, phase1)
    x, m = counts[phase1:].astype(float), mu0[phase1:]
    mine = np.array([glr_last(x[None, : j + 1], m[None, : j + 1], np.array([alpha]), window)[0] for j in range(len(x))])
    assert len(theirs) == len(mine) and theirs.max() > 5  # the rise is found
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)


def test_the_level_follows_a_lasting_rise_from_zero_but_not_one_outlying_month():
    # A group silent for years, then active for a year (12 a month): the update cap (a month moves the level as if at
    # most 3 predictive sd above it) floored every count to 0 at a level near zero, so the level stayed at 0.03 and
    # every month of the new activity was alerted (JNIM in Burkina Faso all through 2019 on the real file). A run of
    # months now lifts it; one month of 40 amid zeros still does not.
    rng = np.random.default_rng(11)
    n = 200
    active = np.hstack([np.zeros((n, 27)), rng.negative_binomial(1 / 0.3, 1 / (1 + 0.3 * 12), size=(n, 12))])
    verdict = judge_last(active, np.ones_like(active), None, CONFIG.detection_level, 3, None, 3)
    assert np.median(verdict.expected) > 4.0
    once = np.zeros((n, 39))
    once[:, 20] = 40
    verdict = judge_last(once, np.ones_like(once), None, CONFIG.detection_level, 3, None, 3)
    assert np.median(verdict.expected) < 0.5
