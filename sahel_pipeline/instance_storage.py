"""The local Dagster instance's event log, with its SQLite connections kept open between events.

Dagster's SQLite event log (one database per run, and an index) makes a new SQLAlchemy engine for every event it
stores and drops it after the one insert: the engine's first connection and dialect set-up cost about 10 ms of wall
(5 ms of CPU) an event, and a weekly update at 2.5 M events stores about a thousand events, 9.4 s of its time on a
loaded machine. This subclass keeps one engine, and its pooled connection, per database file for the few files a
process writes (the current run's and the index), and lets SQLite sync the write-ahead log (which Dagster's storage
turns on for these files) at checkpoints rather than at every commit (`synchronous=NORMAL`, SQLite's advice for WAL:
the database cannot be corrupted by a crash; a power cut may lose the last events written). Measured alone: 10.1 ->
1.2-1.4 ms an event with the engines kept, 0.4-0.5 ms with the sync at checkpoints (docs/performance.md).

Kept open, the connections no longer checkpoint the log into the run's `.db` file at every event, as closing the last
one did; the webserver follows a live run by watching that file for changes (SqliteEventLogStorageWatchdog). So the
log is checkpointed at every step's and run's start and end (`BOUNDARIES`, about 2.5 ms each): the UI's view of a
running `sahel run` moves on at every step, and its last event is in the file when the run ends.

A new run's database is made by Dagster's `_initdb` (its tables, write-ahead log mode, the Alembic revision stamped):
about 0.3 s a run on a slow host, and `sahel run` starts three or four runs. The first new run's database of a
process is made so and kept as a template in memory (about 100 KB); the others are written from it, which is the
same file in 2-7 ms.

`sahel run` records into the project-local instance with it (`runner.recording_instance`), and the local
`dagster.yaml` (deploy/dagster-local.yaml) names it, so that the runs the UI launches, and the webserver and daemon
reading them, use it too: with Dagster's default a UI run of the sample took 1.3-1.7 times what `sahel run` took on an
idle machine, about 3 s of it storing events (docs/performance.md). Named without a `base_dir`, it keeps the files
where Dagster's own SQLite event log does, `<DAGSTER_HOME>/history/runs`, so a home's earlier runs stay readable.
The files are Dagster's, unchanged: Dagster's default storage reads them as they are.
"""

import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from dagster import DagsterInstance, Field, StringSource
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef, _event_logs_directory
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

OPEN_DATABASES = 8  # engines kept; a process that reads many runs' logs (the webserver) closes the least recent
BOUNDARIES = {
    DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE,
    DagsterEventType.RUN_CANCELED, DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
}


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that reuses an engine per database file instead of making one per event."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._run_template: bytes | None = None  # a new run's database as _initdb makes it, before any event
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> "PooledSqliteEventLogStorage":
        return cls(config_value.get("base_dir") or default_base_dir(), inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            if shard not in self._initialized_dbs and shard != INDEX_SHARD_NAME:
                self._write_from_template(shard)
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _write_from_template(self, shard: str) -> None:
        """A run's database that does not exist yet, written from the template (made first when there is none);
        marked initialized. An existing file (another process's run) is left to _initdb, as Dagster does."""
        path = Path(self.path_for_shard(shard))
        if path.exists():
            return
        if self._run_template is None:
            with tempfile.TemporaryDirectory() as scratch:
                made = Path(scratch, "template.db")
                engine = create_engine(f"sqlite:///{made}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
                self._initdb(engine)
                engine.dispose()  # the last connection closed: the write-ahead log is checkpointed into the file
                self._run_template = made.read_bytes()
        try:
            with open(path, "xb") as fh:  # never over a file another process has just made
                fh.write(self._run_template)
        except FileExistsError:
            return
        except BaseException:
            path.unlink(missing_ok=True)  # a part-written database would be taken for a made one
            raise
        self._initialized_dbs.add(shard)

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        if event.is_dagster_event and event.dagster_event_type in BOUNDARIES and event.run_id:
            with self._db_lock, self._engine(event.run_id).connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        sqlalchemy.event.listen(engine, "connect", _sync_at_checkpoints)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_DATABASES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # the run databases' files are deleted: no connection may keep writing to them
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def default_base_dir() -> str:
    """Where Dagster's own SQLite event log keeps a home's runs, the home being $DAGSTER_HOME's (which Dagster sets
    wherever it reads a dagster.yaml); read when the instance is made."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError(
            "PooledSqliteEventLogStorage without a base_dir keeps the runs under $DAGSTER_HOME/history/runs, and "
            "DAGSTER_HOME is not set: set it, or give the storage a base_dir in dagster.yaml"
        )
    return _event_logs_directory(home)


def sqlite_instance(home: Path) -> DagsterInstance:
    """The instance of a home whose runs are SQLite files, its event log written through this storage in the folder
    Dagster's own keeps them in, whether $DAGSTER_HOME names the home or not."""
    pooled = {
        "module": __name__,
        "class": PooledSqliteEventLogStorage.__name__,
        "config": {"base_dir": _event_logs_directory(str(home))},
    }
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides={"event_log_storage": pooled}))


def names_this_in_the_default_folder(storage: dict) -> bool:
    """Whether a dagster.yaml's `event_log_storage` names this storage and leaves its folder to the default."""
    named = (storage.get("module"), storage.get("class")) == (__name__, PooledSqliteEventLogStorage.__name__)
    return named and not (storage.get("config") or {}).get("base_dir")


def _sync_at_checkpoints(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")
