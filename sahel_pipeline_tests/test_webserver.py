"""The Dagster UI: dagster-webserver starts on a free loopback port, serves the asset graph over GraphQL, and stops."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahel_pipeline import PROJECT_DIR
from sahel_pipeline_tests.fixtures import free_port

QUERY = """
{
  assetNodes { assetKey { path } groupName description hasAssetChecks }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { jobs { name } schedules { name cronSchedule } sensors { name } }
    }
  }
}
"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def webserver(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """dagster-webserver on a free loopback port, with its own DAGSTER_HOME; stopped by its process id."""
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The local instance's settings (its event log storage included), but runs start at once, without a daemon to
    # take them off the queue.
    queued = "class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 1\n"
    local = (PROJECT_DIR / "deploy" / "dagster-local.yaml").read_text()
    assert queued in local
    (home / "dagster.yaml").write_text(local.replace(queued, "class: DefaultRunCoordinator\n"))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SAHEL_RAW_PATHS": str(tmp_path / "raw"),
        "SAHEL_OUTPUT_DIR": str(tmp_path / "out"),
        **(env or {}),
    }
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml", "-h", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "-p", str(port)],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if graphql(port, QUERY).get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        yield port
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.poll() is not None
    with socket.socket() as sock:  # the port is free again
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.integration
def test_webserver_serves_the_asset_graph(tmp_path: Path):
    with webserver(tmp_path) as port:
        answer = graphql(port, QUERY)
    assert answer and answer.get("data"), answer
    nodes = {"/".join(n["assetKey"]["path"]): n for n in answer["data"]["assetNodes"]}
    assert {"canonical_events", "group_month_panel", "escalation_alerts", "alert_report"} <= set(nodes)
    assert nodes["canonical_events"]["hasAssetChecks"]
    assert nodes["escalation_alerts"]["groupName"] == "alerts"
    assert all(n["description"] for n in nodes.values())
    repository = answer["data"]["repositoriesOrError"]["nodes"][0]
    assert {"weekly_escalation_job", "backtest_job"} <= {j["name"] for j in repository["jobs"]}
    assert repository["schedules"] == [{"name": "weekly_escalation_schedule", "cronSchedule": "0 6 * * 1"}]
    assert [s["name"] for s in repository["sensors"]] == ["raw_files_sensor"]


LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection {
        events {
          ... on MessageEvent { message }
          ... on ErrorEvent { error { message causes { message } } }
        }
      }
    }
  }
}
"""
LOCATION = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"


@pytest.mark.slow
@pytest.mark.integration
def test_a_run_launched_with_a_path_outside_the_allowed_roots_is_refused(tmp_path: Path):
    """Whoever reaches the UI launches a run writing through '..': the settings refuse it before any step works."""
    allowed = tmp_path / "allowed"
    (allowed / "raw").mkdir(parents=True)
    escaped = tmp_path / "escaped"
    with webserver(tmp_path, {"SAHEL_ALLOWED_ROOTS": str(allowed)}) as port:
        (repository,) = graphql(port, LOCATION)["data"]["repositoriesOrError"]["nodes"]
        settings = {"raw_paths": str(allowed / "raw"), "output_dir": f"{allowed}/../escaped"}
        params = {
            "selector": {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "jobName": "backtest_job",
            },
            "runConfigData": {"resources": {"settings": {"config": settings}}},
        }
        launched = graphql(port, LAUNCH, {"params": params})["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            run = graphql(port, RUN, {"runId": run_id})["data"]["runOrError"]
            if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
    assert run["status"] == "FAILURE"
    # written by the run's process and read by the webserver through the local yaml's event log storage, in the
    # folder Dagster's default keeps a home's runs in
    assert (tmp_path / "dagster_home" / "history" / "runs" / f"{run_id}.db").exists()
    messages = " ".join(text for e in run["eventConnection"]["events"] for text in event_texts(e))
    assert f"output_dir {allowed}/../escaped resolves to {escaped}, outside the allowed roots {allowed}" in messages
    assert not escaped.exists()


def event_texts(event: dict) -> Iterator[str]:
    """An event's message and its error's, with the errors that caused it (a resource's error is wrapped)."""
    yield event.get("message") or ""
    error = event.get("error")
    if error:
        yield error["message"]
        yield from (cause["message"] for cause in error["causes"])
