"""Scale-out on a real distributed engine: the code location's weekly job with its steps on two Celery workers.

Debian's redis-server (broker and result backend) on a free loopback port, two `celery -A dagster_celery.app worker`
processes with their own node names, and the PostgreSQL-backed instance of deploy/dagster.yaml (runs, event logs
and schedules in PostgreSQL; compute logs under $DAGSTER_HOME, which the workers share with the test on this
machine). Nothing in the code changes for Celery: $SAHEL_CELERY_BROKER, set for the run, makes the code location's
executor (defs/executor.py) send every step to the workers. The alerts must be byte for byte those of an in-process
run of the same data, and every step must have run in one of the workers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from sahel_pipeline import PROJECT_DIR, SAMPLE_DIR
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.automation import UPSTREAM
from sahel_pipeline.defs.executor import CELERY_BACKEND_VARIABLE, CELERY_BROKER_VARIABLE
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline_tests.fixtures import code_location_job, free_port, materialize_upstream, outliving
from sahel_pipeline_tests.postgres import Server

REDIS = shutil.which("redis-server")
MONTH = "2024-12"
WORKERS = ("sahel-worker-1", "sahel-worker-2")
# Every variable the code location reads through EnvVar: empty where it does not apply (nothing is pulled).
PULL_VARIABLES = (
    "ACLED_EMAIL", "ACLED_PASSWORD", "SAHEL_ACLED_API_URL", "SAHEL_FETCH_COUNTRIES",
    "UCDP_API_TOKEN", "SAHEL_UCDP_API_URL", "SAHEL_UCDP_VERSIONS",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        REDIS is None,
        reason="redis-server not installed: run scripts/ensure_test_services.sh as root (Debian's redis-server)",
    ),
]


def wait_for(ready, what: str, processes: list[subprocess.Popen], log: Path, seconds: float = 60) -> None:
    """Poll `ready` until it holds; fail with the log's end if a process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while not ready():
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"{what} did not start:\n{tail}")
        time.sleep(0.2)


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM (a Celery worker's warm shutdown, Redis' clean exit), then SIGKILL for what is left after 20 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    outliving([p.pid for p in processes], seconds=20)
    for process in processes:
        process.wait()


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Redis on a free loopback port, in its own folder, without persistence; yields its URL."""
    port = free_port()
    folder.mkdir()
    log = folder / "redis.log"
    process = subprocess.Popen(
        [str(REDIS), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            return False

        wait_for(answers, "redis-server", [process], log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop([process])


@dataclass(frozen=True)
class Worker:
    name: str  # the node name, name@host
    pid: int


@contextlib.contextmanager
def celery_workers(folder: Path, broker: str) -> Iterator[list[Worker]]:
    """Two Celery workers on dagster-celery's app, each its own process and node, one step at a time (solo pool:
    the step runs in the worker's own process, and fits on its pool of fitting processes)."""
    config = folder / "celery_config"
    config.mkdir(parents=True)
    # dagster_celery.app reads a `dagster_celery_config` module when one is importable: what `dagster-celery worker
    # start -y` writes from the executor's config; here written directly, so that the test owns the worker processes.
    (config / "dagster_celery_config.py").write_text(f"broker_url = {broker!r}\nresult_backend = {broker!r}\n")
    python_path = os.pathsep.join(filter(None, [str(config), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path}
    processes: list[subprocess.Popen] = []
    logs = []
    try:
        for name in WORKERS:
            log = folder / f"{name}.log"
            logs.append(log)
            with log.open("w") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "--pool", "solo",
                     "--prefetch-multiplier", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                     "-n", f"{name}@%h"],
                    cwd=PROJECT_DIR, env=environment, stdout=out, stderr=subprocess.STDOUT,
                ))
        for log in logs:
            wait_for(lambda log=log: " ready." in log.read_text(errors="replace"), f"Celery worker {log.stem}",
                     processes, log, seconds=120)
        yield [Worker(f"{name}@{socket.gethostname()}", p.pid) for name, p in zip(WORKERS, processes, strict=True)]
    finally:
        stop(processes)
        for log in logs:  # shown when the test fails
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")


def alert_files(output: Path) -> dict[str, bytes]:
    """The month's alerts and feeds, byte for byte, but for the Atom feed's <updated> times: when it was written."""
    files = {path.name: path.read_bytes() for path in sorted((output / "alerts").glob(f"{MONTH}.*"))}
    if f"{MONTH}.atom" in files:
        files[f"{MONTH}.atom"] = re.sub(rb"<updated>[^<]*</updated>", b"<updated/>", files[f"{MONTH}.atom"])
    return files


def in_process_alerts(output: Path) -> dict[str, bytes]:
    """The month's alert files from an in-process run of the same data, on an instance of its own."""
    defs = build_definitions(PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(output), sample_fallback=False))
    job = defs.resolve_job_def("weekly_escalation_job")
    with dg.instance_for_test() as instance:
        materialize_upstream(job, instance)
        assert job.execute_in_process(partition_key=MONTH, instance=instance).success
    return alert_files(output)


def steps_and_workers(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, int], dict[str, str]]:
    """Each step's process (STEP_START's pid) and the Celery node dagster-celery says executed it."""
    pids = {
        record.event_log_entry.step_key: record.event_log_entry.dagster_event.pid
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    }
    nodes = {}
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        entry = record.event_log_entry
        metadata = entry.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            nodes[entry.step_key] = metadata["Celery worker"].value
    return pids, nodes


def test_weekly_job_on_two_celery_workers_matches_the_in_process_run(
    postgres_server: Server, postgres_dagster_home: Path, tmp_path: Path, monkeypatch
):
    expected = in_process_alerts(tmp_path / "in_process")
    # The alerts (CSV, JSON, Parquet) and their feeds (Atom, GeoJSON); the month has alerts, not just headers.
    assert set(expected) == {f"{MONTH}.{kind}" for kind in ("csv", "json", "parquet", "atom", "geojson")}
    assert expected[f"{MONTH}.csv"].count(b"\n") > 1

    output = tmp_path / "celery"
    # The code location's own settings, from the environment, as a deployment gives them to every process.
    monkeypatch.setenv("SAHEL_RAW_PATHS", str(SAMPLE_DIR))
    monkeypatch.setenv("SAHEL_OUTPUT_DIR", str(output))
    for name in PULL_VARIABLES:
        monkeypatch.setenv(name, "")
    with redis_server(tmp_path / "redis") as broker:
        monkeypatch.setenv(CELERY_BROKER_VARIABLE, broker)
        monkeypatch.delenv(CELERY_BACKEND_VARIABLE, raising=False)
        with celery_workers(tmp_path / "workers", broker) as workers, dg.DagsterInstance.get() as instance:
            # The job as the webserver's run worker loads it; each Celery task rebuilds it from the same pointer.
            job = code_location_job("weekly_escalation_job")
            with dg.execute_job(job, instance, asset_selection=UPSTREAM) as upstream:
                assert upstream.success, "ingest and panels failed on the workers"
            assert MONTH in instance.get_dynamic_partitions("months")
            with dg.execute_job(job, instance, tags={"dagster/partition": MONTH}) as result:
                assert result.success
                run_id = result.run_id
            runs = {run_id: "weekly", upstream.run_id: "upstream"}

            by_pid = {worker.pid: worker.name for worker in workers}
            for which, run in runs.items():
                pids, nodes = steps_and_workers(instance, which)
                assert pids, f"the {run} run recorded no step"
                # Every step ran in a worker's process, never in the test's, and the worker that reported it is
                # the one whose process it ran in.
                assert all(pid in by_pid for pid in pids.values()), (run, pids, by_pid)
                assert nodes == {step: by_pid[pid] for step, pid in pids.items()}, (run, nodes)
            pids, nodes = steps_and_workers(instance, run_id)
            shards = {step for step in pids if "series_scores" in step}
            assert len(shards) == 4, pids
            # The four shards are ready together: two idle workers, each taking one step at a time, share them.
            assert {nodes[step] for step in shards} == {worker.name for worker in workers}

            # The run is in PostgreSQL, read with Dagster's credentials, and so are its steps' events.
            with contextlib.closing(postgres_server.connect()) as conn, conn.cursor() as cur:
                cur.execute("SELECT pipeline_name, status, partition FROM runs WHERE run_id = %s", (run_id,))
                assert cur.fetchall() == [("weekly_escalation_job", "SUCCESS", MONTH)]
                cur.execute(
                    "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'STEP_SUCCESS'",
                    (run_id,),
                )
                assert cur.fetchone()[0] == len(pids)
            assert os.getpid() not in by_pid

    assert alert_files(output) == expected
