"""The Dagster UI: dagster-webserver starts on a free loopback port, serves the asset graph over GraphQL, and stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sahel_pipeline import PROJECT_DIR

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.integration
def test_webserver_serves_the_asset_graph(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "SAHEL_RAW_PATHS": str(tmp_path / "raw"),
        "SAHEL_OUTPUT_DIR": str(tmp_path / "out"),
    }
    (tmp_path / "dagster_home").mkdir()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = graphql(port, QUERY)
                if answer.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
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
