"""Rolling-origin backtest: on the real Burkina Faso and Mali files, and through `sahel backtest` on the sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sahel_pipeline import ALIAS_TABLE, KNOWN_ESCALATIONS
from sahel_pipeline.cli import main
from sahel_pipeline.core.backtest import BASELINES, load_episodes, run_backtest, weighted_interval_score
from sahel_pipeline.core.forecast import QUANTILE_COLUMNS
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline_tests.fixtures import TODAY, real_file, requires_real_data


@pytest.fixture(scope="module")
def real_backtest(tmp_path_factory):
    files = find_csv_files([real_file("acled_burkina_1997-2020.csv"), real_file("acled_mali_2017-2020_actor-rows.csv")])
    events = ingest(files, tmp_path_factory.mktemp("cache"), TODAY, log=lambda _: None).events
    panels = build_panels(events, load_alias_table(ALIAS_TABLE))
    return run_backtest(
        panels.group_month, panels.country_month, dt.date(2017, 12, 1), dt.date(2020, 11, 1), ModelConfig(),
        load_episodes(KNOWN_ESCALATIONS), workers=2, log=lambda _: None,
    )


@requires_real_data
def test_the_2018_2019_issp_and_jnim_surge_in_burkina_faso_is_flagged(real_backtest):
    episodes = real_backtest.episodes.filter(pl.col("country") == "Burkina Faso")
    assert episodes.select("group", "flagged").sort("group").rows() == [("ISSP", True), ("JNIM", True)]
    assert (episodes["alert_months"] >= 3).all()  # flagged repeatedly while it lasted, not once by chance


@requires_real_data
def test_forecasts_beat_every_baseline_at_every_horizon_and_hold_their_coverage(real_backtest):
    by_horizon = real_backtest.by_horizon
    cells = [(level, h) for level in ("country", "group") for h in range(1, 7)]
    assert by_horizon.select("level", "horizon").rows() == cells
    for baseline in BASELINES:
        assert (by_horizon["crps_model"] < by_horizon[f"crps_{baseline}"]).all(), (baseline, by_horizon)
    assert (by_horizon["log_score_model"] < by_horizon["log_score_flat_level"]).all()
    group = by_horizon.filter(pl.col("level") == "group")
    for nominal in (50, 80, 95):  # calibration of the group series' intervals, within 5 points at every horizon
        assert (group[f"pit{nominal}"] - nominal / 100).abs().max() <= 0.05, group
    # the intervals an analyst reads hold at least their share, within 5 points (more at small counts)
    assert (by_horizon["in80"] >= 0.75).all() and (by_horizon["in95"] >= 0.89).all(), by_horizon
    # and they widen: the six-month forecasts' 95% intervals are wider than the next month's
    forecasts = real_backtest.forecasts
    widths = forecasts.group_by("horizon").agg((pl.col("q975") - pl.col("q025")).mean().alias("width"))
    width = widths.sort("horizon")["width"].to_list()
    assert width == sorted(width) and width[-1] > 1.2 * width[0]


@requires_real_data
def test_scores_in_the_forecast_table_are_recomputable(real_backtest):
    """A few rows' scores recomputed by brute force over scipy's negative binomials (not the code under test): the
    model's three-node mixture over the level as the README defines it, and the baselines by their definitions."""
    country = real_backtest.forecasts.filter(pl.col("level") == "country").sort("crps")
    rows = country.gather_every(max(1, country.height // 8)).rows(named=True)  # from the best score to the worst
    assert len(rows) >= 8
    nodes, weights = np.sqrt(3.0) * np.array([-1.0, 0.0, 1.0]), np.array([1.0, 4.0, 1.0]) / 6
    for row in rows:
        v = row["rate_log_sd"] ** 2
        dispersion = (1 + row["alpha"]) * np.exp(0.3 * v) - 1
        rates = row["rate"] * np.exp(0.15 * v + np.sqrt(0.7 * v) * nodes)
        parts = [stats.nbinom(1 / dispersion, 1 / (1 + dispersion * rate)) for rate in rates]
        counts = np.arange(0, max(int(parts[-1].ppf(1 - 1e-12)), row["actual"]) + 2)
        cdf = sum(w * part.cdf(counts) for w, part in zip(weights, parts, strict=True))
        crps = float(np.sum((cdf - (counts >= row["actual"])) ** 2))
        assert row["crps"] == pytest.approx(crps, rel=1e-3, abs=1e-9)
        pmf = sum(w * part.pmf(row["actual"]) for w, part in zip(weights, parts, strict=True))
        assert row["log_score"] == pytest.approx(-np.log(pmf), rel=1e-6)
        assert row["crps_last_value"] == abs(row["last_value"] - row["actual"])
        assert row["crps_zero"] == row["actual"]
        quantiles = np.array([[row[c] for c in QUANTILE_COLUMNS]], dtype=float)
        wis = weighted_interval_score(np.array([float(row["actual"])]), quantiles)
        assert row["wis"] == pytest.approx(float(wis[0]))


@pytest.mark.slow
def test_backtest_command_writes_its_tables(tmp_path, capsys):
    assert main(["backtest", "--out", str(tmp_path), "--months", "6", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    summary = pl.read_csv(tmp_path / "backtest" / "summary.csv")
    assert set(summary["level"]) == {"group", "country"}
    assert (summary["forecasts"] > 0).all()
    by_horizon = pl.read_csv(tmp_path / "backtest" / "by_horizon.csv")
    assert sorted(set(by_horizon["horizon"])) == [1, 2, 3, 4, 5, 6]  # six origins: every horizon scored at least once
    episodes = pl.read_csv(tmp_path / "backtest" / "episodes.csv")
    niger = episodes.filter(pl.col("group") == "JNIM", pl.col("country") == "Niger")
    assert niger["in_backtest_window"].to_list() == [False]  # the sample's January 2024 is before these six months
    assert "backtest tables:" in printed
