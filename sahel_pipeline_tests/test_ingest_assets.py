"""Ingest assets in Dagster: materialized into a temporary folder, with their checks and metadata."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.core.ingest import raw_path_list
from sahel_pipeline.defs import ingest as ingest_defs
from sahel_pipeline.defs import io_manager
from sahel_pipeline.defs.io_manager import parquet_warehouse
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline.runner import failure_message
from sahel_pipeline_tests.fixtures import BAD_FILES

INGEST = [ingest_defs.ingested_events]  # its checks run in its step


def materialize_ingest(
    settings: PipelineSettings, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        INGEST,
        resources={"settings": settings, "io_manager": parquet_warehouse},
        raise_on_error=False,
        instance=instance,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.mark.slow  # materializes the sample's ingest
def test_sample_ingest_materializes_with_passing_checks(tmp_path, sample_dir):
    settings = PipelineSettings(raw_paths=str(sample_dir), output_dir=str(tmp_path), sample_fallback=False)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_ingest(settings, instance)
    assert result.success
    assert checks(result) == {
        "raw_files_are_readable": True,
        "canonical_events_pass_great_expectations": True,
        "quarantine_share_is_small": True,
    }
    events = pl.read_parquet(tmp_path / "warehouse" / "canonical_events.parquet")
    metadata = {
        m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()
    }
    assert metadata["canonical_events"]["dagster/row_count"].value == events.height
    assert metadata["canonical_events"]["deleted_events"].value == 5
    assert metadata["raw_file_manifest"]["files"].value == 3
    # The suite runs on a thread beside the writes; what it says is logged by the step, once, as the check describes it
    said = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.is_dagster_event is False]
    described = great_expectations_evaluation(result).description
    assert [m for m in said if m.startswith("Great Expectations:")] == [f"Great Expectations: {described}"]


@pytest.mark.slow  # materializes the sample's ingest
def test_default_raw_folder_without_csv_falls_back_to_the_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fresh clone: data/raw is there and empty
    (tmp_path / "data" / "raw").mkdir(parents=True)
    settings = PipelineSettings(raw_paths="data/raw", output_dir=str(tmp_path / "out"))
    result = materialize_ingest(settings)
    assert result.success
    manifest = pl.read_parquet(tmp_path / "out" / "warehouse" / "raw_file_manifest.parquet")
    assert all("SYNTHETIC" in name for name in manifest["file"])


@pytest.mark.slow  # materializes the ingest
@pytest.mark.parametrize("layout", ["empty folder", "missing folder", "one of two missing"])
def test_a_raw_path_given_on_purpose_never_falls_back_to_the_sample(tmp_path, layout):
    """A mistyped SAHEL_RAW_PATHS must stop the run, not publish the sample's (or one source's) alerts."""
    real, typo = tmp_path / "acled", tmp_path / "ucdp_typo"
    real.mkdir()
    if layout != "empty folder":
        shutil.copy(SAMPLE_DIR / sorted(p.name for p in SAMPLE_DIR.glob("*.csv"))[0], real)
    raw_paths = {
        "empty folder": str(real),
        "missing folder": str(typo),
        "one of two missing": os.pathsep.join([str(real), str(typo)]),
    }
    result = materialize_ingest(PipelineSettings(raw_paths=raw_paths[layout], output_dir=str(tmp_path / "out")))
    assert not result.success
    failure = failure_message(result)
    assert ("no CSV files under" if layout == "empty folder" else f"raw data path does not exist: {typo}") in failure
    assert not (tmp_path / "out" / "warehouse" / "canonical_events.parquet").exists()


def test_raw_paths_expand_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert raw_path_list(os.pathsep.join(["~/acled", " ~/ucdp "])) == [tmp_path / "acled", tmp_path / "ucdp"]


@pytest.mark.slow  # materializes the ingest
def test_unreadable_file_fails_the_blocking_check_with_its_message(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(BAD_FILES / "unknown_layout.csv", raw)
    shutil.copy(BAD_FILES / "bom.csv", raw)
    settings = PipelineSettings(raw_paths=str(raw), output_dir=str(tmp_path / "out"), sample_fallback=False)
    result = materialize_ingest(settings)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "raw_files_are_readable")
    assert not evaluation.passed
    assert evaluation.description.startswith("unknown_layout.csv: unrecognised layout")


def great_expectations_evaluation(result: dg.ExecuteInProcessResult):
    return next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "canonical_events_pass_great_expectations"
    )


@pytest.mark.slow  # materializes the ingest (Great Expectations)
def test_great_expectations_check_fails_on_an_empty_table(tmp_path):
    """A file with a header and no row: nothing to validate is not a pass."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(BAD_FILES / "header_only.csv", raw)
    settings = PipelineSettings(raw_paths=str(raw), output_dir=str(tmp_path / "out"), sample_fallback=False)
    evaluation = great_expectations_evaluation(materialize_ingest(settings))
    assert not evaluation.passed
    assert evaluation.description == "canonical_events is empty: there is nothing to validate"
    assert evaluation.metadata["rows_in_table"].value == 0


@pytest.mark.slow  # materializes the sample's ingest twice
def test_great_expectations_check_on_a_cached_rerun_reports_the_whole_table(tmp_path, sample_dir):
    settings = PipelineSettings(raw_paths=str(sample_dir), output_dir=str(tmp_path), sample_fallback=False)
    first = great_expectations_evaluation(materialize_ingest(settings))
    events = pl.read_parquet(tmp_path / "warehouse" / "canonical_events.parquet").height
    assert first.passed and first.metadata["rows_validated_now"].value == events
    again = great_expectations_evaluation(materialize_ingest(settings))
    assert again.passed
    assert again.metadata["rows_validated_now"].value == 0
    assert again.metadata["rows_validated_earlier"].value == again.metadata["rows_in_table"].value == events
    assert again.metadata["files_validated_earlier"].value == 3
    assert "validated earlier and unchanged since (3 files, validated 20" in again.description

    # a file changed since (same name, new content) is validated again; the others are still counted as earlier
    changed = tmp_path / "raw"
    shutil.copytree(sample_dir, changed)
    update = next(changed.glob("*update*.csv"))
    update.write_text(update.read_text() + "\n")
    settings = PipelineSettings(raw_paths=str(changed), output_dir=str(tmp_path), sample_fallback=False)
    third = great_expectations_evaluation(materialize_ingest(settings))
    assert third.passed and third.metadata["files_validated_now"].value == 1
    assert third.metadata["files_validated_earlier"].value == 2
    total = third.metadata["rows_validated_now"].value + third.metadata["rows_validated_earlier"].value
    assert total == third.metadata["rows_in_table"].value


@pytest.mark.slow  # materializes the ingest
def test_a_single_file_s_table_is_its_cache_entry_copied_and_more_files_are_written(tmp_path, sample_dir, monkeypatch):
    """The warehouse's canonical_events is the cache entry copied (not linked: writing into the warehouse file
    must not change the cache) when one file makes the table, and the merge written when several do."""
    copied: list[Path] = []
    copy = io_manager.copyfile
    monkeypatch.setattr(io_manager, "copyfile", lambda source, target: copied.append(source) or copy(source, target))
    raw = tmp_path / "raw"
    raw.mkdir()
    first, *others = sorted(sample_dir.glob("*.csv"))
    shutil.copy(first, raw)
    settings = PipelineSettings(raw_paths=str(raw), output_dir=str(tmp_path / "out"), sample_fallback=False)
    assert materialize_ingest(settings).success
    stored = settings.warehouse / "canonical_events.parquet"
    (entry,) = settings.ingest_cache.glob("*.events.parquet")
    assert copied == [entry]
    assert stored.read_bytes() == entry.read_bytes() and not stored.samefile(entry)
    pl.DataFrame({"x": [1]}).write_parquet(stored)  # writing into the warehouse's file ...
    assert pl.read_parquet(entry).height > 1  # ... leaves the cache as it was

    for other in others:
        shutil.copy(other, raw)
    assert materialize_ingest(settings).success
    assert copied == [entry]  # nothing copied this time: the merge is written
    assert pl.read_parquet(stored).height > pl.read_parquet(entry).height
