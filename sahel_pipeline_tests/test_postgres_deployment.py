"""The production instance config, deploy/dagster.yaml, against a real PostgreSQL server.

A throwaway cluster is started for the test; the shipped file is copied unchanged into a temporary DAGSTER_HOME,
the weekly job runs on the sample for December 2024, and the run, its materializations and its asset check
evaluations are read back both from PostgreSQL's tables and through Dagster's instance API.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.resources import PipelineSettings

DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy"
MONTH = "2024-12"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_postgres_bin() -> Path | None:
    """A folder holding initdb, pg_ctl and postgres: PATH first, then Debian's /usr/lib/postgresql/<version>/bin,
    which Debian's package does not put on PATH."""
    on_path = shutil.which("initdb")
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in ([Path(on_path).parent] if on_path else []) + [Path(p) for p in debian]:
        if all(os.access(folder / tool, os.X_OK) for tool in PG_TOOLS):
            return folder
    return None


@dataclass
class Server:
    port: int
    db_name: str = "dagster"
    username: str = "dagster"
    password: str = "dagster-test-password"
    host: str = "127.0.0.1"

    def connect(self):
        return psycopg2.connect(
            host=self.host, port=self.port, dbname=self.db_name, user=self.username, password=self.password
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def postgres_server() -> Iterator[Server]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: run scripts/ensure_postgres.sh as root, "
            "or install Debian's `postgresql` package"
        )

    # PostgreSQL refuses to run as root, and tests often do (CI containers): then the cluster belongs to an
    # unprivileged user. pytest's tmp_path sits under /tmp/pytest-of-root, mode 0700, which that user cannot
    # enter, so the cluster lives in its own temporary folder (short, too: a socket path must fit in 107 bytes).
    as_root = os.geteuid() == 0
    run_as: dict = {}
    if as_root:
        owner = next((u for u in ("postgres", "nobody") if user_exists(u)), None)
        if owner is None:
            pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to own the cluster")
        account = pwd.getpwnam(owner)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    with tempfile.TemporaryDirectory(prefix="sahel-pg-", ignore_cleanup_errors=True) as base_name:
        base = Path(base_name)
        data, log, pwfile = base / "data", base / "server.log", base / "superuser-password"
        pwfile.write_text("superuser-test-password\n")
        if as_root:
            for path in (base, pwfile):
                os.chown(path, run_as["user"], run_as["group"])

        def pg(*args: str) -> None:
            try:
                subprocess.run(args, check=True, capture_output=True, text=True, cwd=base, **run_as)
            except subprocess.CalledProcessError as error:
                server_log = log.read_text()[-3000:] if log.exists() else ""
                pytest.fail(f"{' '.join(args)} failed:\n{error.stdout}\n{error.stderr}\n{server_log}")

        # Password authentication everywhere, as in production: the test proves the credentials in the
        # environment reach the server, not that a trust rule let everyone in.
        pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
           "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{base}'\n"  # not /var/run/postgresql: may not exist or be writable
                # A throwaway cluster needs no durability; this makes Dagster's table creation quick.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

        server = Server(port=free_port())
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", f"-p {server.port}", "-w", "start")
        try:
            admin = psycopg2.connect(
                host=server.host, port=server.port, dbname="postgres", user="postgres",
                password="superuser-test-password",
            )
            admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with contextlib.closing(admin), admin.cursor() as cur:
                cur.execute(f"CREATE ROLE {server.username} LOGIN PASSWORD %s", (server.password,))
                # Since PostgreSQL 15 only the database owner may create tables in schema public: Dagster's
                # role owns its database, as deploy/README.md tells production to do.
                cur.execute(f"CREATE DATABASE {server.db_name} OWNER {server.username}")
            yield server
        finally:
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")


@pytest.fixture
def production_instance(postgres_server: Server, tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    # The shipped file, byte for byte: only the environment differs from production.
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", postgres_server.username)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres_server.password)
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres_server.host)
    monkeypatch.setenv("DAGSTER_PG_DB", postgres_server.db_name)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres_server.port))
    # DagsterInstance.get() is how the webserver and the daemon load $DAGSTER_HOME/dagster.yaml.
    with dg.DagsterInstance.get() as instance:
        yield instance  # disposed (connections closed) before the server stops


@pytest.mark.slow
@pytest.mark.integration
def test_weekly_job_is_recorded_in_postgres(postgres_server: Server, production_instance, tmp_path: Path):
    instance = production_instance
    # What deploy/dagster.yaml promises, as Dagster understood it.
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1

    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path / "out"), sample_fallback=False)
    defs = build_definitions(settings)
    result = defs.resolve_job_def("weekly_escalation_job").execute_in_process(partition_key=MONTH, instance=instance)
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


def test_local_config_keeps_sqlite_and_one_run_at_a_time(tmp_path: Path):
    # deploy/dagster-local.yaml is what `dagster dev` reads from .dagster_home: no PostgreSQL needed.
    shutil.copyfile(DEPLOY_DIR / "dagster-local.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
