"""Vintages: each pull's manifest, the vintage every output records, and `--as-of` recomputing a past week exactly;
the pull assets in Dagster, with and without credentials, and credentials kept out of every output."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import urllib.parse

import dagster as dg
import polars as pl
import pytest
from dagster_shared.serdes import serialize_value

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.cli import main
from sahel_pipeline.core import vintages
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs import fetch
from sahel_pipeline.defs.fetch import AcledApi, UcdpApi
from sahel_pipeline.defs.ingest import ingested_events
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline_tests.fake_providers import FakeProviders
from sahel_pipeline_tests.test_fetch_acled import sample_rows, synthetic_rows
from sahel_pipeline_tests.test_fetch_ucdp import MALI, ged_rows

SAMPLE_FILES = (
    "acled_sahel_2017-2024_SYNTHETIC.csv",
    "acled_sahel_update_2024-12-31_SYNTHETIC.csv",
    "acled_sahel_deletions_2024-12-31_SYNTHETIC.csv",
)


def sample_ids(name: str) -> list[str]:
    """The event ids of a file of the bundled sample, read with Python's csv module."""
    with open(SAMPLE_DIR / name, encoding="utf-8") as fh:
        return [row["event_id_cnty"] for row in csv.DictReader(fh)]

EMAIL, PASSWORD, TOKEN = "ops+acled&team@example.org", "s3cret &+ pass phrase", "ucdp+tok&en value"
SECRETS = [EMAIL, PASSWORD, TOKEN]


def secret_forms() -> set[str]:
    """Each secret as written and as a form or URL would encode it."""
    return {form for s in SECRETS for form in (s, urllib.parse.quote_plus(s), urllib.parse.quote(s, safe=""))}


def leaks_in(folder) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.relative_to(folder)}: {form!r}" for form in secret_forms() if form in text]
    return found


# --- vintages ---------------------------------------------------------------------------------------------------------


def test_holdings_identify_a_vintage_and_a_changed_file_is_refused(tmp_path):
    raw = tmp_path / "raw"
    (raw / "manual").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "acled_sahel_2017-2024_SYNTHETIC.csv", raw / "manual" / "acled_2024-12-20.csv")
    record = {"vintage": "2026-11-23T060012Z-acled", "provider": "ACLED", "created_at": "2026-11-23T06:00:12+00:00",
              "made_by": "cli", "files": []}
    vintage = vintages.record_vintage(raw, record)
    held = {h.file: h.sha256 for h in vintage.holdings}
    assert list(held) == ["manual/acled_2024-12-20.csv"]
    assert vintages.identify([raw], held) == vintage.id
    assert vintages.identify([raw], {**held, "manual/extra.csv": "0" * 64}) is None
    assert vintages.input_digest(held) != vintages.input_digest({**held, "manual/extra.csv": "0" * 64})
    assert vintages.vintage_date(vintage.id) == dt.date(2026, 11, 23)

    (raw / "manual" / "later.csv").write_text("event_id_cnty,deleted_timestamp\nX1,1\n")  # arrived after the vintage
    assert [name for _, name in vintages.files_at([raw], vintage.id)] == ["manual/acled_2024-12-20.csv"]
    with open(raw / "manual" / "acled_2024-12-20.csv", "a") as fh:
        fh.write("\n")
    with pytest.raises(vintages.VintageError, match="changed since vintage 2026-11-23T060012Z-acled"):
        vintages.files_at([raw], vintage.id)
    with pytest.raises(vintages.VintageError, match="no vintage 2026-01-01T000000Z-acled"):
        vintages.files_at([raw], "2026-01-01T000000Z-acled")


# --- Dagster ----------------------------------------------------------------------------------------------------------


def _instance(tmp_path) -> dg.DagsterInstance:
    """An instance whose runs and event logs are kept on disk (SQLite), so the tests can read them back."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return dg.DagsterInstance.local_temp(tempdir=str(home))


@pytest.mark.slow
def test_without_credentials_the_pulls_say_why_and_the_ingest_goes_on(tmp_path):
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path / "out"), sample_fallback=False)
    definitions = build_definitions(settings)
    result = dg.materialize([fetch.acled_pull, fetch.ucdp_pull, ingested_events], resources=definitions.resources,
                            instance=_instance(tmp_path))
    assert result.success
    metadata = {m.asset_key.to_user_string(): m.materialization.metadata
                for m in result.get_asset_materialization_events()}
    assert metadata["acled_pull"]["pulled"].value is False
    assert metadata["acled_pull"]["reason"].value == "ACLED_EMAIL and ACLED_PASSWORD are not set"
    assert metadata["ucdp_pull"]["reason"].value == "UCDP_API_TOKEN is not set"
    # the sample's events, counted with Python's csv module: the export and the update, less the deletions
    ids = {event for name in SAMPLE_FILES[:2] for event in sample_ids(name)}
    assert metadata["canonical_events"]["dagster/row_count"].value == len(ids - set(sample_ids(SAMPLE_FILES[2])))
    assert not (SAMPLE_DIR / ".vintages").exists() and not (SAMPLE_DIR / "acled_api").exists()


@pytest.mark.slow
def test_the_weekly_job_pulls_then_ingests_and_no_output_holds_a_credential(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("ACLED_EMAIL", EMAIL)
    monkeypatch.setenv("ACLED_PASSWORD", PASSWORD)
    monkeypatch.setenv("UCDP_API_TOKEN", TOKEN)
    with FakeProviders(email=EMAIL, password=PASSWORD, ucdp_token=TOKEN) as providers:
        providers.publish(synthetic_rows(30, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
        providers.ucdp["25.1"] = ged_rows(range(1, 15), MALI, dt.date(2020, 1, 1))
        raw = tmp_path / "raw"
        settings = PipelineSettings(raw_paths=str(raw), output_dir=str(tmp_path / "out"), sample_fallback=False)
        acled = AcledApi(email=dg.EnvVar("ACLED_EMAIL"), password=dg.EnvVar("ACLED_PASSWORD"),
                         base_url=providers.url, countries="Mali")
        ucdp = UcdpApi(token=dg.EnvVar("UCDP_API_TOKEN"), base_url=providers.url, versions="25.1", countries="Mali")
        definitions = build_definitions(settings, acled=acled, ucdp=ucdp)
        instance = _instance(tmp_path)
        result = dg.materialize([fetch.acled_pull, fetch.ucdp_pull, ingested_events],
                                resources=definitions.resources, instance=instance)
        assert result.success
        summary = pl.read_parquet(tmp_path / "out" / "warehouse" / "ingest_summary.parquet").row(0, named=True)
        assert summary["events"] == 44
        assert summary["vintage"] == vintages.read_vintages(raw)[-1].id  # both pulls recorded: the second holds all
        assert {v.made_by for v in vintages.read_vintages(raw)} == {"dagster"}

        monkeypatch.setenv("ACLED_PASSWORD", PASSWORD + "!")  # a mistyped password
        failed = dg.materialize([fetch.acled_pull], resources=definitions.resources, instance=instance,
                                raise_on_error=False)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error
        assert "e-mail address and password were refused" in failure.message

    stored = []  # what Dagster keeps of each run: its config, its job's snapshot (compressed on disk), its events
    for run in instance.get_runs():
        stored += [json.dumps(run.run_config, default=str),
                   serialize_value(instance.get_job_snapshot(run.job_snapshot_id))]
        stored += [str(event) for event in instance.all_logs(run.run_id)]
    assert len(stored) > 10 and not [form for form in secret_forms() if any(form in text for text in stored)]
    logs = capfd.readouterr()
    assert not [form for form in secret_forms() if form in logs.out + logs.err]
    assert leaks_in(tmp_path) == []  # raw files, manifests, warehouse, and Dagster's run and event-log storage
    assert not [form for form in secret_forms() if form in failure.to_string()]


@pytest.mark.slow
def test_as_of_a_vintage_recomputes_that_weeks_alerts_byte_for_byte(tmp_path, monkeypatch, capsys):
    """Pull week 1, run; pull week 2, run; then --as-of week 1 into a new folder gives week 1's alert files exactly."""
    monkeypatch.setenv("ACLED_EMAIL", EMAIL)
    monkeypatch.setenv("ACLED_PASSWORD", PASSWORD)
    raw = tmp_path / "raw"
    countries = ["--country", "Burkina Faso", "Mali", "Niger"]
    run = ["run", "--raw", str(raw), "--month", "2024-12", "--workers", "1"]
    with FakeProviders(email=EMAIL, password=PASSWORD) as providers:
        monkeypatch.setenv("SAHEL_ACLED_API_URL", providers.url)
        providers.publish(sample_rows("acled_sahel_2017-2024_SYNTHETIC.csv"))
        assert main(["fetch", "acled", "--raw", str(raw), *countries]) == 0
        week1 = vintages.read_vintages(raw)[-1].id
        assert main([*run, "--out", str(tmp_path / "week1")]) == 0

        providers.clock += 7 * 86400
        providers.publish(sample_rows("acled_sahel_update_2024-12-31_SYNTHETIC.csv"))
        providers.delete(sample_ids(SAMPLE_FILES[2])[:2])  # two of week 1's events
        assert main(["fetch", "acled", "--raw", str(raw), *countries]) == 0
        week2 = vintages.read_vintages(raw)[-1].id
        assert main([*run, "--out", str(tmp_path / "week2")]) == 0
    assert week2 != week1
    capsys.readouterr()
    assert main([*run, "--as-of", week1, "--out", str(tmp_path / "again")]) == 0
    printed = capsys.readouterr().out  # week 1 held one file, the stand-in's copy of the synthetic sample
    assert "SYNTHETIC: 1 of 1 input files are synthetic, not real data" in printed
    assert f"data vintage: {week1} (input digest " in printed

    def output(week: str, name: str) -> bytes:
        return (tmp_path / week / name).read_bytes()

    for name in (f"alerts/2024-12.{ext}" for ext in ("csv", "json", "parquet")):
        assert output("again", name) == output("week1", name), name
    def report(week: str) -> list[bytes]:  # but the minute it was generated: the runs can fall in different minutes
        return [line for line in output(week, "reports/2024-12.md").splitlines() if not line.startswith(b"- Generated")]

    assert report("again") == report("week1")
    assert output("week2", "alerts/2024-12.csv") != output("week1", "alerts/2024-12.csv")  # week 2 did change them
    documents = {week: json.loads(output(week, "alerts/2024-12.json")) for week in ("week1", "week2", "again")}
    assert documents["week1"]["vintage"] == documents["again"]["vintage"] == week1
    assert documents["week2"]["vintage"] == week2
    assert f"data vintage: {week1}" in output("again", "reports/2024-12.md").decode()


def test_as_of_needs_its_own_out_folder_and_a_known_vintage(tmp_path, capsys):
    assert main(["run", "--raw", str(tmp_path), "--as-of", "2026-01-01T000000Z-acled"]) == 2
    assert "--as-of recomputes a past week: give --out DIR" in capsys.readouterr().err
    unknown = ["run", "--raw", str(tmp_path), "--as-of", "2026-01-01T000000Z-acled", "--out", str(tmp_path / "o")]
    assert main(unknown) == 2
    assert "no vintage 2026-01-01T000000Z-acled" in capsys.readouterr().err
