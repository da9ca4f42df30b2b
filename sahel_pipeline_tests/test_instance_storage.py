"""The command line's event log storage: Dagster's SQLite files, written with their connections kept open."""

import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from sahel_pipeline import instance_storage
from sahel_pipeline.instance_storage import OPEN_DATABASES, PooledSqliteEventLogStorage
from sahel_pipeline.runner import recording_instance


def step_event(run_id: str, n: int, kind: DagsterEventType = DagsterEventType.STEP_START) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=20, user_message=f"event {n}", run_id=run_id, timestamp=time.time(), step_key="s",
        job_name="j", dagster_event=DagsterEvent(kind.value, "j", step_key="s"),
    )


def log_line(run_id: str, n: int) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=20, user_message=f"line {n}", run_id=run_id, timestamp=time.time(), step_key="s",
        job_name="j", dagster_event=None,
    )


@pytest.fixture
def engines_made(monkeypatch) -> list[str]:
    made: list[str] = []
    real = instance_storage.create_engine

    def counting(url, **kwargs):
        made.append(str(url))
        return real(url, **kwargs)

    monkeypatch.setattr(instance_storage, "create_engine", counting)
    return made


@pytest.mark.slow  # nine run databases made, each committing its events to disk
def test_one_engine_per_database_however_many_events(tmp_path, engines_made):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    for n in range(30):
        storage.store_event(step_event("run_a", n))
    assert len(storage.get_records_for_run("run_a").records) == 30
    # Dagster's own storage makes an engine for every event (30 here); this one, one for the run's file
    assert sum("run_a" in url for url in engines_made) == 1
    for k in range(OPEN_DATABASES + 1):
        storage.store_event(step_event(f"run_{k}", 0))
    assert len(storage._engines) == OPEN_DATABASES  # the least recently used are closed
    storage.dispose()
    assert not storage._engines


def test_the_write_ahead_log_is_synced_at_checkpoints_not_at_every_event(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    storage.store_event(step_event("run_d", 0))
    with storage.run_connection("run_d") as conn:
        # WAL is Dagster's choice for these files; NORMAL (1) rather than FULL (2) is ours, SQLite's advice for WAL
        assert conn.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 1


def test_a_steps_start_reaches_the_file_the_webserver_watches(tmp_path):
    """The webserver follows a live run by watching its .db file; with the connection kept open the log would reach
    that file only at SQLite's occasional checkpoints."""
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    storage.store_event(step_event("run_e", 0))
    watched = tmp_path / "run_e.db"
    size = watched.stat().st_size
    for n in range(20):
        storage.store_event(log_line("run_e", n))
    storage.store_event(step_event("run_e", 1, DagsterEventType.STEP_START))  # the next step: a boundary
    assert watched.stat().st_size > size  # the lines and the step's start checkpointed into it
    assert len(SqliteEventLogStorage(str(tmp_path)).get_records_for_run("run_e").records) == 22


def test_what_it_writes_reads_back_with_dagsters_own_storage(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    for n in range(5):
        storage.store_event(step_event("run_b", n))
    default = SqliteEventLogStorage(str(tmp_path))  # as the webserver and the daemon open the same files
    assert [r.event_log_entry.user_message for r in default.get_records_for_run("run_b").records] == [
        f"event {n}" for n in range(5)
    ]
    default.store_event(step_event("run_b", 5))  # and the other way round, while this one keeps its connection
    storage.store_event(step_event("run_b", 6))
    assert len(storage.get_records_for_run("run_b").records) == 7


def test_wipe_closes_the_connections_to_the_deleted_files(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    storage.store_event(step_event("run_c", 0))
    storage.wipe()
    assert not (tmp_path / "run_c.db").exists()
    storage.store_event(step_event("run_c", 1))  # a new file, not the deleted one's open handle
    assert (tmp_path / "run_c.db").exists()
    assert [r.event_log_entry.user_message for r in SqliteEventLogStorage(str(tmp_path)).get_records_for_run(
        "run_c").records] == ["event 1"]


def test_the_command_lines_sqlite_instance_records_through_it_and_the_ui_reads_the_runs(own_dagster_home):
    @dg.asset
    def counted() -> int:
        return 1

    with recording_instance() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert dg.materialize([counted], instance=instance).success
    runs = own_dagster_home / "history" / "runs"
    with dg.DagsterInstance.get() as ui:  # $DAGSTER_HOME as the webserver, the daemon and UI runs load it
        assert type(ui.event_log_storage) is PooledSqliteEventLogStorage  # the local yaml names it
        assert Path(ui.event_log_storage._base_dir) == runs  # where Dagster's own keeps a home's runs
        assert ui.get_latest_materialization_event(dg.AssetKey("counted")) is not None
    (own_dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # a home of Dagster's defaults
    with dg.DagsterInstance.get() as stock:
        assert type(stock.event_log_storage) is SqliteEventLogStorage
        assert stock.get_latest_materialization_event(dg.AssetKey("counted")) is not None


def test_named_without_a_folder_it_needs_dagster_home_and_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match="DAGSTER_HOME is not set"):
        PooledSqliteEventLogStorage.from_config_value(None, {})
    given = PooledSqliteEventLogStorage.from_config_value(None, {"base_dir": str(tmp_path / "runs")})
    assert given._base_dir == str(tmp_path / "runs")


def test_a_dagster_yaml_that_names_a_storage_is_used_as_it_is(own_dagster_home):
    runs = own_dagster_home / "elsewhere"
    (own_dagster_home / "dagster.yaml").write_text(
        "event_log_storage:\n  module: dagster._core.storage.event_log\n  class: SqliteEventLogStorage\n"
        f"  config:\n    base_dir: {runs}\n"
    )
    with recording_instance() as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert instance.event_log_storage._base_dir == str(runs)


def sqlite_schema(path) -> tuple:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return (
            sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()),
            conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            conn.execute("PRAGMA journal_mode").fetchall(),
        )


def test_a_new_runs_database_is_written_from_the_template_as_dagster_would_make_it(tmp_path, monkeypatch):
    made = []
    real = PooledSqliteEventLogStorage._initdb
    monkeypatch.setattr(PooledSqliteEventLogStorage, "_initdb", lambda self, engine, **kw: made.append(1) or real(
        self, engine, **kw))  # fmt: skip
    storage = PooledSqliteEventLogStorage(str(tmp_path / "pooled"))
    made.clear()  # the index's
    for run in ("run_f", "run_g", "run_h"):
        storage.store_event(step_event(run, 0))
        storage.store_event(step_event(run, 1))
    assert len(made) == 1  # the template's, once; the three runs' files are copies of it
    reference = SqliteEventLogStorage(str(tmp_path / "dagster"))
    reference.store_event(step_event("run_ref", 0))
    assert sqlite_schema(tmp_path / "pooled" / "run_h.db") == sqlite_schema(tmp_path / "dagster" / "run_ref.db")
    default = SqliteEventLogStorage(str(tmp_path / "pooled"))
    assert [r.event_log_entry.user_message for r in default.get_records_for_run("run_h").records] == ["event 0",
                                                                                                       "event 1"]


def test_a_run_database_another_process_made_is_not_overwritten(tmp_path):
    other = SqliteEventLogStorage(str(tmp_path))  # as the webserver or another `sahel` would
    other.store_event(step_event("run_i", 0))
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    storage.store_event(step_event("run_i", 1))
    assert [r.event_log_entry.user_message for r in storage.get_records_for_run("run_i").records] == ["event 0",
                                                                                                       "event 1"]
