"""The production instance config, deploy/dagster.yaml, against a real PostgreSQL server.

A throwaway cluster is started for the test; the shipped file is copied unchanged into a temporary DAGSTER_HOME,
the weekly job runs on the sample for December 2024, and the run, its materializations and its asset check
evaluations are read back both from PostgreSQL's tables and through Dagster's instance API.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline_tests.fixtures import materialize_upstream
from sahel_pipeline_tests.postgres import Server

DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy"
MONTH = "2024-12"


@pytest.fixture
def production_instance(postgres_dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    # DagsterInstance.get() is how the webserver and the daemon load $DAGSTER_HOME/dagster.yaml.
    with dg.DagsterInstance.get() as instance:
        yield instance  # disposed (connections closed) before the server stops


@pytest.mark.slow
@pytest.mark.integration
def test_weekly_job_is_recorded_in_postgres(postgres_server: Server, production_instance, tmp_path: Path):
    # Imported here: a second of CPU that a unit run, which collects this module without running it, need not pay.
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = production_instance
    # What deploy/dagster.yaml promises, as Dagster understood it.
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1

    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path / "out"), sample_fallback=False)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("weekly_escalation_job")
    materialize_upstream(job, instance)  # ingest and panels add the month partitions, in PostgreSQL
    assert MONTH in instance.get_dynamic_partitions("months")
    result = job.execute_in_process(partition_key=MONTH, instance=instance)
    assert result.success
    run_id = result.run_id
    every_check = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    alerts_key, events_key = dg.AssetKey("escalation_alerts"), dg.AssetKey("canonical_events")

    # Straight from PostgreSQL, with the credentials Dagster was given: the rows are really there.
    with contextlib.closing(postgres_server.connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pipeline_name, status, partition FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("weekly_escalation_job", "SUCCESS", MONTH)]

        materialized = (
            "SELECT partition FROM event_logs"
            " WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s"
        )
        cur.execute(materialized, (run_id, alerts_key.to_string()))
        assert cur.fetchall() == [(MONTH,)]
        cur.execute(materialized, (run_id, events_key.to_string()))
        assert cur.fetchall() == [(None,)]  # canonical_events is not partitioned

        # A partitioned run records each check twice, PLANNED for the partition and then its outcome: the outcome is
        # what counts (reading both into a dict kept whichever row PostgreSQL returned last).
        cur.execute(
            "SELECT check_name, execution_status FROM asset_check_executions"
            " WHERE run_id = %s AND execution_status <> 'PLANNED'", (run_id,),
        )
        assert sorted(cur.fetchall()) == sorted((name, "SUCCEEDED") for name in every_check)
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_CHECK_EVALUATION'",
            (run_id,),
        )
        assert cur.fetchone()[0] == len(every_check)

    # Through the instance API, as the webserver and the daemon will read them.
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert record.dagster_run.tags["dagster/partition"] == MONTH

    alerts = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=alerts_key, asset_partitions=[MONTH]), limit=10
    )
    assert [(r.run_id, r.partition_key) for r in alerts.records] == [(run_id, MONTH)]
    latest_events = instance.get_latest_materialization_event(events_key)
    assert latest_events is not None and latest_events.run_id == run_id

    evaluations = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    passed = {}
    for event in evaluations:
        evaluation = event.event_log_entry.dagster_event.asset_check_evaluation_data
        passed[evaluation.check_name] = evaluation.passed
    assert passed == dict.fromkeys(every_check, True)


@pytest.mark.slow  # runs a job on a local instance
def test_local_config_keeps_sqlite_and_one_run_at_a_time(tmp_path: Path, monkeypatch):
    # deploy/dagster-local.yaml is what `dagster dev` reads from .dagster_home ($DAGSTER_HOME): no PostgreSQL needed.
    shutil.copyfile(DEPLOY_DIR / "dagster-local.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
        assert Path(instance.event_log_storage._base_dir) == tmp_path / "history" / "runs"
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
