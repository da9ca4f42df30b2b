"""The `sahel` command line: runs, prints, and fails in one clear line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sahel_pipeline.cli import main
from sahel_pipeline_tests.fixtures import BAD_FILES, real_file, requires_real_data

pytestmark = pytest.mark.slow  # every test runs the command line, most the whole graph


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """`sahel run` on the sample with no month given: its output folder and what it printed."""
    out = tmp_path_factory.mktemp("cli")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", "--out", str(out), "--workers", "1"]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def sample_outputs(sample_run):
    return sample_run[0]


def test_run_defaults_to_the_latest_complete_month_of_the_sample(sample_run):
    # The sample's data end on 31 December 2024 (data/sample/README.md): December is the last complete month.
    out, printed = sample_run
    assert printed.splitlines()[0] == "month: 2024-12 (the latest month the data cover in full)"
    assert sorted(p.name for p in (out / "alerts").glob("*.csv")) == ["2024-12.csv"]
    assert (out / "reports" / "2024-12.html").exists()


def test_run_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--raw",
                str(real_sample_copy(tmp_path)),
                "--out",
                str(out),
                "--from",
                "2024-12",
                "--to",
                "2025-01",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    events = pl.read_parquet(out / "warehouse" / "canonical_events.parquet")
    assert printed.startswith("SYNTHETIC: 3 of 3 input files are synthetic, not real data\n")
    assert f"events: {events.height:,} from 3 files" in printed
    assert "2024-12: notifications: 3 messages written to the outbox (dry run, nothing sent)" in printed
    assert "5 deleted" in printed and "12 revised" in printed
    alerts = pl.read_csv(out / "alerts" / "2024-12.csv")
    severity = {s: alerts.filter(pl.col("severity") == s).height for s in ("high", "medium", "low")}
    assert alerts.height > 0
    assert (
        f"2024-12: {alerts.height} alerts ({severity['high']} high, {severity['medium']} medium, "
        f"{severity['low']} low); report: {out / 'reports' / '2024-12.html'}"
    ) in printed
    # the sample ends on 31 December 2024: January is not a quiet month, it is a month without data
    assert "2025-01: no series could be scored (no data for the month, or too short a history)" in printed
    page = (out / "reports" / "2025-01.html").read_text()
    assert "No series could be scored for January 2025" in page and "ACLED to 31 December 2024" in page


def real_sample_copy(tmp_path):
    from sahel_pipeline import SAMPLE_DIR

    copy = tmp_path / "raw"
    shutil.copytree(SAMPLE_DIR, copy)
    return copy


def test_alerts_prints_the_table(sample_outputs, capsys):
    assert main(["alerts", "--out", str(sample_outputs)]) == 0
    printed = capsys.readouterr().out
    written = pl.read_csv(sample_outputs / "alerts" / "2024-12.csv")
    assert printed.startswith(f"2024-12: {written.height} alerts (SYNTHETIC data, not real)\n")
    assert printed.count("\n\n") >= written.height  # one block per alert
    assert "HIGH" in printed and "Islamic State Sahel Province (ISSP) in Niger" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--raw", "/nowhere/at/all"], "raw data path does not exist: /nowhere/at/all"),
        (["run", "--month", "2024-13"], "bad month '2024-13': expected YYYY-MM"),
        (["run", "--month", "1999-05"], "month 1999-05 is outside the months the pipeline scores, 2000-01 to "),
        (["run", "--from", "2026-01", "--to", "2099-01"], "is outside the months the pipeline scores"),
        (["run", "--from", "2024-01"], "--from and --to go together"),
        (["run", "--from", "2024-05", "--to", "2024-01"], "--from 2024-05 is after --to 2024-01"),
        (["alerts", "--out", "/nowhere/at/all"], "no alerts written under /nowhere/at/all/alerts"),
        (["notify", "--out", "/nowhere/at/all"], "no alerts written under /nowhere/at/all/alerts"),
        (["notify", "--month", "24-12"], "bad month '24-12': expected YYYY-MM"),
    ],
)
def test_user_errors_are_one_line_and_a_non_zero_exit(argv, message, capsys):
    status = main(argv)
    err = capsys.readouterr().err
    assert status != 0
    assert err.strip() == f"sahel: error: {err.strip().removeprefix('sahel: error: ')}" and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_folder_with_no_recognised_file_fails_clearly(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(BAD_FILES / "unknown_layout.csv", raw)
    status = main(["run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err.strip()  # Dagster's progress log comes first, the error is the last line
    assert status == 1
    assert err.splitlines()[-1].startswith(
        "sahel: error: check raw_files_are_readable failed: unknown_layout.csv: unrecognised layout"
    )
    assert "Traceback" not in err


def test_notify_dry_run_writes_the_outbox_and_sends_nothing(sample_outputs, capsys, monkeypatch):
    monkeypatch.setenv("SAHEL_NOTIFY_DRY_RUN", "false")  # --dry-run wins over the environment
    monkeypatch.setenv("SAHEL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SAHEL_SMTP_PORT", "9")  # nothing listens there: a send would fail and say so
    assert main(["notify", "--out", str(sample_outputs), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "2024-12: notifications: 3 messages written to the outbox (dry run, nothing sent)" in printed
    ledger = [json.loads(line) for line in (sample_outputs / "notifications" / "ledger.jsonl").read_text().splitlines()]
    assert {e["outcome"] for e in ledger} == {"dry_run"}


@pytest.mark.integration
def test_notify_that_cannot_deliver_says_so_and_exits_non_zero(sample_outputs, tmp_path, capsys, monkeypatch):
    from sahel_pipeline_tests.local_services import smtp_server

    out = tmp_path / "out"
    shutil.copytree(sample_outputs, out)
    with smtp_server() as (controller, handler):
        handler.refuse_with = "550 5.7.1 relaying denied"
        monkeypatch.setenv("SAHEL_NOTIFY_DRY_RUN", "false")
        monkeypatch.setenv("SAHEL_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SAHEL_SMTP_PORT", str(controller.port))
        monkeypatch.setenv("SAHEL_SMTP_SECURITY", "none")
        assert main(["notify", "--out", str(out), "--month", "2024-12"]) == 1
    captured = capsys.readouterr()
    assert "2024-12: notifications: 0 sent, 3 failed" in captured.out
    assert "not all delivered: email to " in captured.err
    assert "server answered 550 5.7.1 relaying denied" in captured.err


def test_console_script_is_installed():
    """`sahel` is installed beside this interpreter (the project's venv) and runs."""
    script = Path(sys.executable).with_name("sahel")
    assert script.is_file(), f"no console script at {script}: install the project (make install)"
    completed = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert completed.returncode == 0 and "{run,alerts,backtest,fetch,vintages,notify,evaluate}" in completed.stdout


@requires_real_data
def test_real_burkina_faso_2019_run_flags_issp_or_jnim(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [
            "run",
            "--raw",
            str(real_file("acled_burkina_1997-2020.csv")),
            "--from",
            "2019-01",
            "--to",
            "2019-12",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    months = [pl.read_csv(out / "alerts" / f"2019-{m:02d}.csv", infer_schema=False) for m in range(1, 13)]
    year = pl.concat(months)
    jihadist = year.filter(pl.col("group").is_in(["ISSP", "JNIM"]), pl.col("country") == "Burkina Faso")
    assert jihadist.height > 0
    assert set(jihadist["group"]) == {"ISSP", "JNIM"}
    printed = capsys.readouterr().out
    assert printed.count("report:") == 12


def test_polars_allocator_keeps_freed_memory_unless_the_user_configured_it():
    """jemalloc reports the settings it runs with at exit (stats_print): the package's are there, or the user's."""
    probe = (
        "import os, sahel_pipeline; os.environ['_RJEM_MALLOC_CONF'] += ',stats_print:true,stats_print_opts:J'; "
        "import polars"
    )

    def decay_in_use(environment: dict[str, str]) -> int:
        done = subprocess.run(
            [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True
        )
        return json.loads(done.stderr[done.stderr.index("{") :])["jemalloc"]["arenas"]["dirty_decay_ms"]

    environment = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    assert decay_in_use(environment) == 5_000
    assert decay_in_use(environment | {"_RJEM_MALLOC_CONF": "dirty_decay_ms:2000"}) == 2_000
