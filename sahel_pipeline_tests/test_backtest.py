"""Rolling-origin backtest: on the real Burkina Faso and Mali files, and through `sahel backtest` on the sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sahel_pipeline import ALIAS_TABLE, KNOWN_ESCALATIONS
from sahel_pipeline.cli import main
from sahel_pipeline.core.backtest import load_episodes, run_backtest
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
def test_forecasts_beat_the_last_value_on_the_proper_score(real_backtest):
    summary = real_backtest.summary
    assert summary.height == 8  # group and country level, four indicators
    assert (summary["crps_model"] < summary["crps_last_value"]).all(), summary
    assert (summary["crps_model"] < summary["crps_mean12"]).all(), summary
    assert summary["coverage95"].min() > 0.85 and summary["coverage80"].min() > 0.7


@requires_real_data
def test_scores_in_the_forecast_table_are_recomputable(real_backtest):
    """The CRPS of a few rows by brute force over scipy's predictive distribution (not the code under test)."""
    country = real_backtest.forecasts.filter(pl.col("level") == "country").sort("crps")
    rows = country.gather_every(max(1, country.height // 8)).rows(named=True)  # from the best score to the worst
    assert len(rows) >= 8
    for row in rows:
        dispersion = row["alpha"] + row["se"] ** 2
        reference = (
            stats.poisson(row["expected"]) if dispersion == 0
            else stats.nbinom(1 / dispersion, 1 / (1 + dispersion * row["expected"]))
        )
        counts = np.arange(0, max(int(reference.ppf(1 - 1e-12)), row["actual"]) + 2)
        crps = float(np.sum((reference.cdf(counts) - (counts >= row["actual"])) ** 2))
        assert row["crps"] == pytest.approx(crps, rel=1e-3, abs=1e-9)
        assert row["last_value_error"] == abs(row["last_value"] - row["actual"])
        assert row["abs_error"] == abs(row["median"] - row["actual"])


@pytest.mark.slow
def test_backtest_command_writes_its_tables(tmp_path, capsys):
    assert main(["backtest", "--out", str(tmp_path), "--months", "6", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    summary = pl.read_csv(tmp_path / "backtest" / "summary.csv")
    assert set(summary["level"]) == {"group", "country"}
    assert (summary["forecasts"] > 0).all()
    episodes = pl.read_csv(tmp_path / "backtest" / "episodes.csv")
    niger = episodes.filter(pl.col("group") == "JNIM", pl.col("country") == "Niger")
    assert niger["in_backtest_window"].to_list() == [False]  # the sample's January 2024 is before these six months
    assert "backtest tables:" in printed
