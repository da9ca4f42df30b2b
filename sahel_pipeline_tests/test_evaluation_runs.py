"""`sahel evaluate` and the `detector_evaluation` asset, on small configurations of the bundled sample, and the
evaluation on the real files: the known Burkina Faso episodes and the alert burden of 2017-2020."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE, KNOWN_ESCALATIONS, SAMPLE_DIR
from sahel_pipeline.cli import main
from sahel_pipeline.core.backtest import load_episodes
from sahel_pipeline.core.evaluation.run import EvaluationConfig, run_evaluation
from sahel_pipeline.core.evaluation.surveillance import r_status
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline.defs.evaluation import detector_evaluation
from sahel_pipeline.defs.resources import EvaluationSettings, ModelSettings, PipelineSettings
from sahel_pipeline_tests.fixtures import TODAY, real_file, requires_real_data

pytestmark = pytest.mark.slow


def panels_of(paths, tmp_path):
    events = ingest(find_csv_files(paths), tmp_path / "cache", TODAY, log=lambda _: None).events
    return build_panels(events, load_alias_table(ALIAS_TABLE))


def test_evaluate_command_writes_tables_and_lists_r_peers_skipped_without_rscript(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # Python's folder: no Rscript on it
    assert (
        main(
            [
                "evaluate",
                "--out",
                str(tmp_path),
                "--series",
                "2",
                "--years",
                "1",
                "--from",
                "2024-07",
                "--to",
                "2024-12",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    folder = tmp_path / "evaluation"
    for name in (
        "summary",
        "thresholds",
        "false_alarms",
        "detection",
        "pvalues",
        "episodes",
        "real_alert_rates",
        "detectors",
        "scenarios",
    ):
        assert (folder / f"{name}.csv").exists(), name
    detectors = pl.read_csv(folder / "detectors.csv")
    skipped = detectors.filter(pl.col("status").str.starts_with("skipped"))
    assert set(skipped["name"]) == {
        "farrington",
        "noufaily",
        "glrnb",
        "ears_c1",
        "ears_c2",
        "ears_c3",
        "ears_c3_corrected",
    }
    assert skipped["status"].str.contains("Rscript is not on PATH").all()
    printed = capsys.readouterr().out
    assert "Rscript is not on PATH" in printed and f"evaluation tables and methods page: {folder}" in printed
    page = (folder / "methods.html").read_text()
    assert page.startswith("<!doctype html>") and "Real data: known episodes" in page
    episodes = pl.read_csv(folder / "episodes.csv")
    assert set(episodes["detector"]) >= {"sahel", "acled_trendfinder"}  # every detector that judges real series
    assert "oracle" not in set(episodes["detector"])  # it needs a known in-control distribution


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--series", "0"], "series and years must be at least 1"),
        (["evaluate", "--from", "2020-13"], "bad month '2020-13'"),
        (["evaluate", "--from", "2021-01", "--to", "2020-01"], "the real-data window starts after it ends"),
        (["evaluate", "--target-far", "2"], "target false-alarm rates must be between 0 and 1"),
    ],
)
def test_evaluate_refuses_bad_settings_in_one_line(argv, message, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("sahel: error: ") and message in err and len(err.splitlines()) == 1


def test_the_asset_runs_on_the_sample_with_one_r_peer(tmp_path):
    panels = panels_of([SAMPLE_DIR], tmp_path)
    context = dg.build_asset_context()
    result = detector_evaluation(
        context,
        settings=PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path)),
        models=ModelSettings(),
        evaluation=EvaluationSettings(series=2, years=1, r_peers=["glrnb"], real_first="2023-10", real_last="2024-03"),
        group_month_panel=panels.group_month,
        country_month_panel=panels.country_month,
    )
    folder = tmp_path / "evaluation"
    assert result.metadata["methods_page"].path == str(folder / "methods.html")
    status = dict(pl.read_csv(folder / "detectors.csv").select("name", "status").iter_rows())
    version, why_not = r_status()
    assert status["glrnb"] == ("ran" if version else f"skipped: {why_not}")
    episodes = pl.read_csv(folder / "episodes.csv", infer_schema=False)
    planted = episodes.filter(
        pl.col("detector") == "sahel",
        pl.col("setting") == "default",
        pl.col("country") == "Niger",
        pl.col("group") == "JNIM",
    )
    assert planted["flagged"].to_list() == ["true"]  # the sample's JNIM in Niger, from almost nothing in January 2024


@requires_real_data
def test_real_files_flag_the_burkina_faso_episodes_and_count_the_alert_burden(tmp_path):
    panels = panels_of(
        [real_file("acled_burkina_1997-2020.csv"), real_file("acled_mali_2017-2020_actor-rows.csv")], tmp_path
    )
    config = EvaluationConfig(series=2, years=1, use_r=False, scenarios=("stable",))
    result = run_evaluation(
        config, panels.group_month, panels.country_month, load_episodes(KNOWN_ESCALATIONS), log=lambda _: None
    )
    episodes = result.tables["episodes"].filter(
        pl.col("detector") == "sahel", pl.col("setting") == "default", pl.col("country") == "Burkina Faso"
    )
    assert episodes.select("group", "flagged").sort("group").rows() == [("ISSP", True), ("JNIM", True)]
    rates = result.tables["real_alert_rates"].filter(pl.col("setting") == "default", pl.col("level") == "group")
    # every detector is judged on the same months: each group series the pipeline scores (armed types, indicators of
    # violence) with an event in 2017-2020, over those months
    window = (
        panels.group_month.filter(pl.col("group_type").is_in(list(ModelConfig().alerted_types)))
        .unpivot(
            index=["source", "group_id", "country", "month"],
            on=["events", "violent_events", "fatalities", "civilian_targeting_events"],
        )
        .filter(pl.col("month").is_between(dt.date(2017, 1, 1), dt.date(2020, 12, 1)))
    )
    active = window.group_by("source", "group_id", "country", "variable").agg(
        total=pl.col("value").sum(), months=pl.len()
    )
    active = active.filter(pl.col("total") > 0)
    months = dict(rates.select("detector", "months").iter_rows())
    fatalities = active.filter(pl.col("variable") == "fatalities")["months"].sum()
    assert months.pop("hdx_signals") == fatalities  # its one indicator
    assert set(months.values()) == {active["months"].sum()}
    sahel = rates.filter(pl.col("detector") == "sahel").row(0, named=True)
    assert 0 < sahel["per_series_year"] < 1  # the README's figure is measured on these files
