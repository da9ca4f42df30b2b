"""Fault injection on whole runs of `sahel run` (the sample, December 2024): a run killed (SIGKILL) at each stage and
run again gives exactly the files of a clean run; every kind of cache file corrupted heals with a warning naming it;
a second process on the same output folder is refused; a full disk during the report leaves the last report whole.
The hostile names are in test_hostile_input.py."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline_tests.fixtures import outliving, without_report_time

pytestmark = pytest.mark.slow

MONTH = "2024-12"
SAHEL = [sys.executable, "-m", "sahel_pipeline.cli"]
# What a run writes that must equal a clean run's, byte for byte.
COMPARED = [
    f"alerts/{MONTH}.csv", f"alerts/{MONTH}.json", f"alerts/{MONTH}.parquet", f"forecasts/{MONTH}.csv",
    f"reports/{MONTH}.html", f"reports/{MONTH}.md",
]
# A stage is reached when the run's log says so (the step's key, then what it logs first); `--verbose` puts Dagster's
# log on standard error as the run goes.
STAGES = {
    "ingest": "ingested_events - reading",
    "validation": "ingested_events - Great Expectations",
    "panels": "monthly_panels - panels:",
    "models": "series_scores__shard_1_of_4 - 2024-12:",
    "forecasts": "series_forecasts - forecasts of",
    "alerts": "month_alerts - ",
    "report": "month_alerts - writing the report",
}


def run(out: Path, raw: Path = SAMPLE_DIR, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SAHEL, "run", "--raw", str(raw), "--out", str(out), "--month", MONTH, "--workers", "2", "--verbose", *extra],
        capture_output=True, text=True, timeout=600,
    )


def outputs(out: Path) -> dict[str, bytes]:
    """Every compared output, the report's time of making aside: every other byte must equal the clean run's."""
    return {name: without_report_time((out / name).read_bytes()) for name in COMPARED}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    children.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found += kids
        frontier += kids
    return found


def killed_at(out: Path, marker: str) -> tuple[bool, list[int]]:
    """Start a run, SIGKILL it when its log shows `marker`; returns whether it got there, and the processes it had
    started that were still running 20 s after the kill."""
    process = subprocess.Popen(
        [*SAHEL, "run", "--raw", str(SAMPLE_DIR), "--out", str(out), "--month", MONTH, "--workers", "2", "--verbose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None
    reached = False
    for line in process.stderr:
        if marker in line:
            reached = True
            break
    helpers = descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # A fork server whose owner is killed mid-preload finishes its imports (several seconds on a loaded machine)
    # before it reads that its owner is gone; a worker ends within a second of it.
    return reached, outliving(helpers, seconds=20)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    done = run(out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_a_run_killed_at_any_stage_then_run_again_equals_a_clean_run(clean, tmp_path):
    expected = outputs(clean)

    def scenario(stage: str) -> list[str]:
        out = tmp_path / stage
        reached, left = killed_at(out, STAGES[stage])
        problems = [] if reached else [f"{stage}: the run ended before its log reached the stage"]
        problems += [f"{stage}: {len(left)} processes outlived the killed run"] if left else []
        again = run(out)
        if again.returncode != 0:
            return [*problems, f"{stage}: the run after the kill failed: {again.stderr.strip().splitlines()[-1]}"]
        differ = [name for name, data in outputs(out).items() if data != expected[name]]
        problems += [f"{stage}: {', '.join(differ)} differ from the clean run's"] if differ else []
        leftovers = [p.name for p in out.rglob("*.tmp")]
        return problems + ([f"{stage}: temporary files left: {leftovers}"] if leftovers else [])

    with ThreadPoolExecutor(2) as pool:
        problems = [p for found in pool.map(scenario, STAGES) for p in found]
    assert not problems


def test_every_kind_of_corrupt_cache_file_heals_with_a_warning(clean, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    warehouse = out / "warehouse"
    broken = [
        next((warehouse / "_ingest_cache").glob("*.events.0000.parquet")),
        warehouse / "_ingest_cache" / "manifest.json",
        next((warehouse / "_panel_counts").glob("counts-*/admin1.parquet")),
        next((warehouse / "series_scores").glob(f"shard_*/{MONTH}.parquet")),
        out / "reports" / MONTH / "alert1.png",
    ]
    for path in broken:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    done = run(out)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if " - WARNING - " in line and "unreadable" in line]
    assert sorted(p for p in broken if not any(str(p) in line for line in warnings)) == []
    assert outputs(out) == outputs(clean)
    plot = Path("reports", MONTH, "alert1.png")
    assert (out / plot).read_bytes() == (clean / plot).read_bytes()  # drawn again, not left broken
    again = run(out)  # healed: nothing to warn about any more
    assert again.returncode == 0
    assert not [line for line in again.stderr.splitlines() if " - WARNING - " in line and "unreadable" in line]


def test_a_second_run_on_the_same_output_folder_is_refused(clean, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(
        [*SAHEL, "run", "--raw", str(SAMPLE_DIR), "--out", str(out), "--month", MONTH, "--workers", "2", "--verbose"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert first.stderr is not None
    for line in first.stderr:
        if STAGES["ingest"] in line:
            break
    other = tmp_path / "other_data"
    other.mkdir()
    shutil.copy(SAMPLE_DIR / "acled_sahel_2017-2024_SYNTHETIC.csv", other)
    second = run(out, other)
    rest = first.stderr.read()
    first_out = first.stdout.read() if first.stdout else ""
    assert first.wait() == 0, rest[-2000:]
    assert second.returncode == 1
    refusal = second.stderr.strip().splitlines()
    assert len(refusal) == 1 and refusal[0].startswith(f"sahel: error: output folder {out} is in use by another run")
    assert f"PID {first.pid} " in refusal[0]
    assert outputs(out) == outputs(clean)  # the first run's outputs, not a mix
    events = pl.read_parquet(out / "warehouse" / "canonical_events.parquet").height
    assert f"events: {events:,} from 3 files" in first_out  # its own data's count, not the other run's


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB filesystem (tmpfs, when this runs as root and may mount), else None."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_the_report_leaves_the_last_report_whole(clean, small_disk, tmp_path, monkeypatch):
    from sahel_pipeline.core.lock import release
    from sahel_pipeline.defs.alerts import month_alerts
    from sahel_pipeline.defs.partitions import MONTHS
    from sahel_pipeline.runner import Runner

    out = (small_disk or tmp_path) / "out"
    shutil.copytree(clean, out)
    # Last week's report of the month was shorter than this week's will be (a rewrite of the same size could fit in
    # the space it frees).
    for page in (out / "reports" / f"{MONTH}.html", out / "reports" / f"{MONTH}.md"):
        page.write_text(f"last week's report ({page.suffix})")
    before = {p: p.read_bytes() for p in (out / "reports").rglob("*") if p.is_file()}
    runner = Runner([str(SAMPLE_DIR)], out, workers=1)
    assert MONTHS.name is not None
    runner.instance.add_dynamic_partitions(MONTHS.name, [MONTH])  # as the clean run's panels did in its instance
    if small_disk is not None:  # fill it: the report's writes meet a real ENOSPC
        # unbuffered: a buffered file keeps the bytes the disk refused, and closing it raised ENOSPC again
        with open(small_disk / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * (1 << 16))
            except OSError as err:
                assert err.errno == errno.ENOSPC
    else:  # no filesystem of our own: the disk fills half-way through each write of the report
        write_text = Path.write_text

        def full(path, text, *args, **kwargs):
            if path.suffix == ".tmp":
                write_text(path, text[: len(text) // 2], *args, **kwargs)
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return write_text(path, text, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", full)
    result = runner.weekly.execute_in_process(
        asset_selection=list(month_alerts.keys), partition_key=MONTH, instance=runner.instance, raise_on_error=False
    )
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any("No space left on device" in m for m in messages)
    after = {p: p.read_bytes() for p in (out / "reports").rglob("*") if p.is_file()}
    assert after == before  # the last report, pages and plots, is whole; nothing half-written is left
    release(out)  # the folder was held by this process (the Runner) for the in-process run
    if small_disk is not None:
        (small_disk / "filler").unlink()
        done = run(out)
        assert done.returncode == 0 and outputs(out) == outputs(clean)


def weekly_job() -> dg.JobDefinition:
    """The code location's weekly job on the multiprocess executor (a process per step, as a cluster executor runs
    steps), rebuilt in each step process."""
    from sahel_pipeline.definitions import defs
    from sahel_pipeline.defs.automation import weekly_escalation_job

    multiprocess = dg.Definitions(
        assets=defs.assets, resources=defs.resources, jobs=[weekly_escalation_job], executor=dg.multiprocess_executor
    )
    return multiprocess.resolve_job_def("weekly_escalation_job")


def test_a_multiprocess_dagster_run_keeps_the_lock_across_its_steps_and_another_run_is_refused(tmp_path, monkeypatch):
    from sahel_pipeline.core.lock import read_holder
    from sahel_pipeline.defs.automation import UPSTREAM as upstream
    from sahel_pipeline_tests.test_reliability import start_holder
    monkeypatch.setenv("SAHEL_RAW_PATHS", str(SAMPLE_DIR))
    free, held = tmp_path / "free", tmp_path / "held"
    holder = start_holder(held)
    try:
        with dg.instance_for_test() as instance:
            monkeypatch.setenv("SAHEL_OUTPUT_DIR", str(free))
            # ingest and panels run in two processes, children of the run's: the second joins the first's lock
            done = dg.execute_job(dg.reconstructable(weekly_job), instance, asset_selection=upstream,
                                  tags={"dagster/partition": MONTH}, raise_on_error=False)
            assert done.success
            assert (free / "warehouse" / "country_month_panel.parquet").exists()
            step_processes = {e.pid for e in done.all_events if e.is_step_start}
            assert len(step_processes) >= 2 and os.getpid() not in step_processes
            lock = read_holder(free)  # taken by the first step for the run's process, and left to go stale with it
            assert lock is not None and (lock.pid, lock.run_id) == (os.getpid(), done.run_id)
            monkeypatch.setenv("SAHEL_OUTPUT_DIR", str(held))
            refused = dg.execute_job(dg.reconstructable(weekly_job), instance, asset_selection=upstream,
                                     tags={"dagster/partition": MONTH}, raise_on_error=False)
            assert not refused.success
            failures = [e for e in refused.all_events if e.is_failure]
            assert any(f"is in use by another run: PID {holder.pid} " in str(e.event_specific_data)
                       for e in failures), failures
            assert not (held / "warehouse").exists()  # nothing written
    finally:
        holder.kill()
        holder.wait()
