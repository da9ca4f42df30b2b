"""Ingest assets in Dagster: materialized into a temporary folder, with their checks and metadata."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.core import ingest as ingest_module
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
def test_the_table_is_the_cache_s_parts_copied_where_the_merge_kept_them_whole(tmp_path, sample_dir, monkeypatch):
    """The warehouse's canonical_events is a folder of parts: the cache's part files copied (not linked: nothing
    written into the warehouse may change the cache) where the merge kept every row of them, the kept rows written
    where it did not; the link to the folder is swapped whole and the earlier folder removed."""
    monkeypatch.setattr(ingest_module, "EVENT_PART_ROWS", 4_000)  # the export's 12,454 events in four parts
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
    entries = sorted(settings.ingest_cache.glob("*.events.*.parquet"))
    parts = sorted(stored.glob("*.parquet"))
    assert len(entries) == 4 and copied == entries and stored.is_symlink()
    assert [p.read_bytes() for p in parts] == [e.read_bytes() for e in entries]
    assert not any(p.samefile(e) for p, e in zip(parts, entries, strict=True))
    exported = pl.read_parquet(entries)
    assert pl.read_parquet(stored).equals(exported)

    for other in others:  # the weekly update revises recent events (the export's last part) and a deletion
        shutil.copy(other, raw)
    copied.clear()
    assert materialize_ingest(settings).success
    merged = pl.read_parquet(stored)
    assert 0 < len(set(copied) & set(entries)) < 4  # the export's parts the merge kept whole, copied again
    assert merged.height > exported.height and merged["event_id"].is_unique().all()
    assert len(list(settings.warehouse.glob("canonical_events.parquet*"))) == 2  # the link and its one folder


def test_a_table_in_parts_and_a_table_in_one_file_replace_each_other_whole(tmp_path):
    """canonical_events is stored as a folder of parts behind a link, other tables as one file: each form replaces
    the other (and a folder copied where the link was), reads back as the table it was given, and leaves no earlier
    folder behind."""
    manager = io_manager.PolarsParquetIOManager(tmp_path)
    key = dg.AssetKey("canonical_events")
    stored = tmp_path / "canonical_events.parquet"
    cached = tmp_path / "cached.parquet"
    head, tail = pl.DataFrame({"id": ["a", "b"], "n": [1, 2]}), pl.DataFrame({"id": ["c"], "n": [3]})
    head.write_parquet(cached)

    def store(value) -> pl.DataFrame:
        manager.handle_output(dg.build_output_context(asset_key=key), value)
        return manager.load_input(dg.build_input_context(asset_key=key, dagster_type=dg.DagsterType(
            lambda _, value: True, name="frame", typing_type=pl.DataFrame)))  # fmt: skip

    def folders() -> list[Path]:
        return [p for p in tmp_path.glob("canonical_events.parquet.*") if p.is_dir()]

    assert store(io_manager.StoredParts((cached, tail), head.schema)).equals(pl.concat([head, tail]))
    assert stored.is_symlink() and len(folders()) == 1 and pl.read_parquet(cached).equals(head)
    assert store(tail).equals(tail) and stored.is_file() and folders() == []
    assert store(io_manager.StoredParts((), head.schema)).equals(head.clear())  # no rows left: still the columns
    shutil.copytree(stored, tmp_path / "copied", symlinks=False)
    stored.unlink()
    (tmp_path / "copied").rename(stored)  # a copy of the warehouse that followed the link
    assert store(io_manager.StoredParts((tail, cached), head.schema)).equals(pl.concat([tail, head]))
    assert stored.is_symlink() and len(folders()) == 1
