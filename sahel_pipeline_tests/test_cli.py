"""The `sahel` command line: runs, prints, and fails in one clear line."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import PROJECT_DIR
from sahel_pipeline.cli import format_alerts, frame_table, main
from sahel_pipeline_tests.fixtures import BAD_FILES, real_file, requires_real_data

pytestmark = pytest.mark.slow  # every test runs the command line, most the whole graph


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """`sahel run` on the sample with no month given: its output folder, what it printed, and the DAGSTER_HOME it
    recorded its runs in (its own, so that the other tests' runs are not among them)."""
    out, home = tmp_path_factory.mktemp("cli"), tmp_path_factory.mktemp("cli_dagster_home")
    shutil.copyfile(PROJECT_DIR / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(printed):
        env.setenv("DAGSTER_HOME", str(home))
        env.setattr(sys, "stderr", io.StringIO())
        assert main(["run", "--out", str(out), "--workers", "1"]) == 0
    return out, printed.getvalue(), home


@pytest.fixture(scope="module")
def sample_outputs(sample_run):
    return sample_run[0]


def test_run_defaults_to_the_latest_complete_month_of_the_sample(sample_run):
    # The sample's data end on 31 December 2024 (data/sample/README.md): December is the last complete month.
    out, printed, _ = sample_run
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
        (["run", "--month", "2010-05"], "month 2010-05 is outside the months the data can score, 2018-03 to "),
        (["run", "--from", "2024-01"], "--from and --to go together"),
        (["run", "--from", "2024-05", "--to", "2024-01"], "--from 2024-05 is after --to 2024-01"),
        (["alerts", "--out", "/nowhere/at/all"], "no alerts written under /nowhere/at/all/alerts"),
        (["notify", "--out", "/nowhere/at/all"], "no alerts written under /nowhere/at/all/alerts"),
        (["notify", "--month", "24-12"], "bad month '24-12': expected YYYY-MM"),
    ],
)
def test_user_errors_are_one_line_and_a_non_zero_exit(argv, message, capsys, tmp_path, own_dagster_home):
    status = main([*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert status != 0
    # the last line, and the only error line (a month outside the partitions is known after the ingest's progress)
    last = err.strip().splitlines()[-1]
    assert last.startswith("sahel: error: ") and message in last
    assert err.count("sahel: error") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--month", "2024-13"], "bad month '2024-13': expected YYYY-MM"),
        (["--month", "1999-12"], "month 1999-12 is outside the months the pipeline scores, 2000-01 to "),
        (["--from", "2099-01", "--to", "2099-02"], "month 2099-01 is outside the months the pipeline scores, 2000-01"),
    ],
)
def test_a_month_no_data_can_score_is_refused_before_any_work(argv, message, capsys, tmp_path):
    status = main(["run", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status != 0
    (line,) = err.strip().splitlines()
    assert line.startswith("sahel: error: ") and message in line
    if "2000-01" in message:  # to the current month, in UTC
        assert line.endswith(f"to {dt.datetime.now(dt.UTC):%Y-%m} (the current month)")
    assert not (tmp_path / "warehouse").exists() and not (tmp_path / "logs").exists()  # nothing ingested, no log


def test_a_folder_with_no_recognised_file_fails_clearly(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(BAD_FILES / "unknown_layout.csv", raw)
    status = main(["run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.splitlines()[-1].startswith(
        "sahel: error: check raw_files_are_readable failed: unknown_layout.csv: unrecognised layout"
    )
    assert f"(log: {tmp_path / 'out' / 'logs'}" in err.splitlines()[-1]
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
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"sahel {importlib.metadata.version('sahel-pipeline')}"


def test_the_command_line_starts_without_the_heavy_libraries():
    """`sahel --help` and `--version` answer at once: Dagster, Polars and scipy are imported by the commands."""
    probe = "import sys, sahel_pipeline.cli; print(sorted({'dagster', 'polars', 'scipy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_loading_the_definitions_leaves_the_http_client_for_the_pulls():
    """Every run and every code-location load imports the definitions; httpx (and rich, which it brings) is only the
    pulls' to import: 0.13 s of each start otherwise."""
    probe = "import sys, sahel_pipeline.definitions; print(sorted({'httpx', 'rich'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def sahel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (its own process, so any stray output is caught)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("sahel")), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


DAGSTER_LOG_LINE = re.compile(r" - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - |STEP_START|RUN_START")


def test_output_is_quiet_unless_verbose_and_the_log_goes_to_a_file(tmp_path):
    out = tmp_path / "out"
    quiet = sahel("run", "--out", str(out), "--workers", "1")
    assert quiet.returncode == 0, quiet.stderr
    printed = quiet.stdout + quiet.stderr
    assert not DAGSTER_LOG_LINE.search(printed), printed
    assert "Traceback" not in printed
    # one progress line per step, with its counts: the ingest's events, the shards' series fitted of their total
    # (the ingest's last message is its Great Expectations check's, which runs in its step: the events it validated)
    assert re.search(r"^ingested_events \([\d.]+ s\): .*\b[\d,]+ events\b", quiet.stderr, re.M), quiet.stderr
    assert re.search(r"series_scores/shard_1_of_4 \([\d.]+ s\): fitted (\d+) of \1 series", quiet.stderr), quiet.stderr
    log = Path(quiet.stdout.strip().splitlines()[-1].removeprefix("log: "))
    assert log.parent == out / "logs" and DAGSTER_LOG_LINE.search(log.read_text())

    verbose = sahel("run", "--out", str(out), "--workers", "1", "--verbose")
    assert verbose.returncode == 0
    assert DAGSTER_LOG_LINE.search(verbose.stderr)


def test_an_empty_raw_folder_prints_one_error_line_and_no_traceback(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    done = sahel("run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--workers", "1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert done.stderr.startswith("sahel: error: step ingested_events failed: ")
    assert f"no CSV files under {raw} (log: {tmp_path / 'out' / 'logs'}" in done.stderr
    log = "".join(p.read_text() for p in (tmp_path / "out" / "logs").glob("*.log"))
    assert '\n    raise FileNotFoundError(' in log  # the stack trace is kept, in the log


def test_a_run_is_recorded_in_the_instance_the_ui_reads(sample_run, monkeypatch):
    out, _, home = sample_run
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:  # $DAGSTER_HOME, as the webserver loads it
        assert Path(instance.root_directory) == home
        runs = instance.get_runs(dg.RunsFilter(tags={"sahel/launched_by": "sahel command line"}))
        assert {r.job_name for r in runs} == {"weekly_escalation_job"}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        alerts = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("escalation_alerts"), asset_partitions=["2024-12"]), limit=5
        ).records
        assert alerts, "no materialization of escalation_alerts for 2024-12"
        metadata = alerts[0].asset_materialization.metadata
        written = pl.read_csv(out / "alerts" / "2024-12.csv")
        assert metadata["dagster/row_count"].value == written.height
        assert [c.name for c in metadata["dagster/column_schema"].schema.columns] == written.columns
        evaluations = instance.get_records_for_run(
            alerts[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        checks = {e.event_log_entry.dagster_event.asset_check_evaluation_data.check_name for e in evaluations}
        assert {"alert_table_has_the_documented_columns", "month_has_scored_series"} <= checks
        events = instance.get_latest_materialization_event(dg.AssetKey("canonical_events"))
        assert events is not None and events.run_id in {r.run_id for r in runs}


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


def test_alerts_table_aligns_its_columns_with_long_names():
    row = {
        "month": "2024-12", "source": "ACLED", "indicator": "events", "status": "new", "p_value": "0.001",
        "upper": "6", "rate_ratio_low": "1.2", "rate_ratio_high": "3.0", "group_name": "",
    }
    alerts = pl.DataFrame(
        [
            {**row, "severity": "high", "country": "Niger", "group": "ISSP", "observed": "17", "expected": "6.76",
             "rate_ratio": "2.109", "explanation": "First."},
            {**row, "severity": "medium", "country": "Democratic Republic of Congo",
             "group": "Dozo Communal Militia (Mali)", "observed": "130", "expected": "12.5", "rate_ratio": "26.4",
             "explanation": "Second."},
        ]
    )
    lines = format_alerts(alerts, "2024-12").splitlines()
    header, first, second = lines[2], lines[3], lines[6]
    for column in ("status", "group", "indicator", "rate ratio"):
        start = header.index(column)
        assert first[start - 1] == second[start - 1] == " ", column  # every row starts each column at the header's
    assert header.index("group") > len("Democratic Republic of Congo")
    # rounded as the sentence rounds: 6.76 expected reads 6.8, a rate ratio of 26.4 reads 26x
    assert first.split()[-2:] == ["6.8", "2.1x"] and second.split()[-1] == "26x"


def test_backtest_tables_read_as_plain_tables():
    frame = pl.DataFrame({"level": ["country", "group"], "forecasts": [69, 1024], "mae_model": [11.2915, 1.7]})
    assert frame_table(frame).splitlines() == [
        "level    forecasts  mae_model",
        "country         69      11.29",
        "group        1,024       1.70",
    ]
