"""Reliability: crashes and races, faults in the output folder (locks, corrupt caches, full disks, dying parents), odd
raw folders and deterministic output. The whole-run fault injection is in test_fault_injection.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import io
import json
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from sahel_pipeline import ALIAS_TABLE
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.models import ModelConfig, SeriesTask, score_chunk
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline.core.scoring import score_month
from sahel_pipeline_tests.fixtures import BAD_FILES, TODAY, outliving, running

HEADER = "event_id_cnty,event_date,event_type,sub_event_type,actor1,actor2,country,admin1,location,fatalities,timestamp"


def few_events_file(folder: Path, n: int = 50) -> Path:
    """`n` valid events in Niger dated 2024-04-25 to 2024-05-15, each of 25 militias holding two: every group series
    is too sparse to fit, the country's series are fitted."""
    folder.mkdir(parents=True, exist_ok=True)
    first = dt.date(2024, 4, 25)
    rows = [
        f"NIG{i},{first + dt.timedelta(days=i % 21)},Battles,Armed clash,Militia {i % 25},Military Forces of Niger,"
        f"Niger,Tillaberi,Ayorou,{i % 4},1715000000"
        for i in range(n)
    ]
    path = folder / "acled_few.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def panels_of(raw: Path, cache: Path):
    events = ingest(find_csv_files([raw]), cache, TODAY, log=lambda _: None).events
    return build_panels(events, load_alias_table(ALIAS_TABLE))


# --- crashes ----------------------------------------------------------------------------------------------------------


def test_a_month_whose_fitted_series_are_all_country_level_is_scored(tmp_path):
    panels = panels_of(few_events_file(tmp_path / "raw").parent, tmp_path / "cache")
    month = dt.date(2024, 5, 1)
    result = score_month(panels.group_month, panels.country_month, month, ModelConfig(), log=lambda _: None)
    groups = result.scores.filter(pl.col("level") == "group")
    assert groups.height == 25 * 4 and set(groups["note"]) == {"sparse: too few events to model"}
    assert result.scores.schema["group_id"] == pl.String
    # the country's series with events were fitted (a short history: skipped with the reason), none was lost
    country = result.scores.filter(pl.col("level") == "country", pl.col("observed").is_not_null())
    assert country.height == 3 and all(note.startswith("short history") for note in country["note"])


def test_score_rows_have_exactly_the_declared_columns():
    from sahel_pipeline.core.scoring import SCORE_SCHEMA

    months = np.arange(600, 640)
    task = SeriesTask(("ACLED", "country", None, None, None, "Niger", "events"), "events", "Niger", months,
                      np.full(40, 4.0), np.ones(40))
    chunk = score_chunk([task], ModelConfig())
    assert chunk.forecast_rows.tolist() == [ModelConfig().horizons] and set(chunk.scores) == set(SCORE_SCHEMA)


# A fresh process starts the ingest's warm-up of Great Expectations while its main thread does what Dagster's storage
# does beside it: use SQLAlchemy, here importing part of its ORM at the moment the warm-up is inside the ORM. Then the
# warm-up must have imported Great Expectations whole (a failed background import leaves it out of sys.modules).
WARM_UP_RACE = """
import sys, threading, time
sys.setswitchinterval(1e-6)  # threads take turns as often as they can: the two imports interleave finely
from sahel_pipeline.core.validation import warm_up_great_expectations
warm_up_great_expectations()
deadline = time.monotonic() + 60
while "sqlalchemy.orm.util" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.0005)
import sqlalchemy.orm.context
sqlalchemy.orm.context.QueryContext
for thread in threading.enumerate():
    if thread is not threading.current_thread():
        thread.join()
print("imported" if "great_expectations" in sys.modules else "not imported")
"""


@pytest.mark.slow
def test_great_expectations_warm_up_never_races_the_main_thread_in_fresh_processes():
    runs = 20

    def one(_):
        return subprocess.run([sys.executable, "-c", WARM_UP_RACE], capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(runs)))
    failures = [r.stderr.strip().splitlines()[-1] for r in results if r.returncode != 0 or "Traceback" in r.stderr]
    assert not failures, f"{len(failures)} of {runs} fresh processes failed: {failures[:3]}"
    assert [r.stdout.strip() for r in results] == ["imported"] * runs


# --- the output folder's lock -----------------------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from sahel_pipeline.core.lock import hold_for_this_process
hold_for_this_process(Path(sys.argv[1]), "test holder")
print("held", flush=True)
time.sleep(120)
"""


def start_holder(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_the_output_folder_naming_the_holder(tmp_path):
    from sahel_pipeline.core.lock import OutputFolderLocked, take

    holder = start_holder(tmp_path)
    try:
        with pytest.raises(OutputFolderLocked) as refused:
            take(tmp_path, "second run")
        message = str(refused.value)
        assert f"PID {holder.pid}" in message and "test holder" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_and_temporary_files_of_interrupted_writes_removed(tmp_path):
    from sahel_pipeline.core.lock import LOCK_FILE, read_holder, take

    holder = start_holder(tmp_path)
    holder.kill()  # kill -9: the lock file stays, naming a process that is gone
    holder.wait()
    (tmp_path / "alerts").mkdir()
    leftover = tmp_path / "alerts" / ".2024-12.csv.999.abcd1234.tmp"
    leftover.write_text("half a file")
    said: list[str] = []
    assert take(tmp_path, "next run", log=said.append)
    assert read_holder(tmp_path).pid == os.getpid()
    assert not leftover.exists()
    assert any(f"PID {holder.pid}" in line and "no longer runs" in line for line in said)
    assert (tmp_path / LOCK_FILE).exists()


def test_a_reused_pid_does_not_hold_the_folder(tmp_path):
    from sahel_pipeline.core.lock import LOCK_FILE, Holder, take

    # the lock names this very process's PID but another start time: the process that took it is gone
    (tmp_path / LOCK_FILE).write_text(json.dumps(dataclasses.asdict(
        Holder(os.getppid(), socket.gethostname(), "1", None, "2024-01-01T00:00:00+00:00", "old run")
    )))
    assert take(tmp_path, "this run", log=lambda _: None)


@pytest.mark.slow  # runs a job on a local instance
def test_the_steps_of_one_dagster_run_join_its_lock_and_another_run_is_refused(tmp_path):
    from sahel_pipeline.core.lock import OutputFolderLocked, take

    holder = start_holder(tmp_path / "a")
    try:
        assert take(tmp_path / "b", "Dagster run", run_id="run-1")
        # another step of run-1, in another process: joins; a step of run-2 is refused
        step = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from sahel_pipeline.core.lock import take;"
             "print(take(Path(sys.argv[1]), 'Dagster run', run_id=sys.argv[2]))", str(tmp_path / "b"), "run-1"],
            capture_output=True, text=True, check=True,
        )
        assert step.stdout.strip() == "False"
        with pytest.raises(OutputFolderLocked):
            take(tmp_path / "a", "Dagster run", run_id="run-2")
    finally:
        holder.kill()
        holder.wait()


# --- outputs written aside -----------------------------------------------------------------------------------------


def test_a_failed_write_leaves_every_earlier_file_whole_and_no_temporary_file(tmp_path):
    from sahel_pipeline.core.storage import written_aside

    first, second = tmp_path / "report.html", tmp_path / "report.md"
    first.write_text("last month's page")
    second.write_text("last month's markdown")
    with pytest.raises(OSError), written_aside() as aside:
        aside(first).write_text("this month's page")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert first.read_text() == "last month's page" and second.read_text() == "last month's markdown"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md"]


# --- worker processes -----------------------------------------------------------------------------------------------

POOL_OWNER = """
import time
from sahel_pipeline.core.pool import FittingPool
if __name__ == "__main__":
    executor = FittingPool(2).executor()
    assert list(executor.map(abs, [-1, -2, -3, -4])) == [1, 2, 3, 4]
    import multiprocessing.forkserver as forkserver
    print(*executor._processes, forkserver._forkserver._forkserver_pid, flush=True)
    time.sleep(300)
"""


@pytest.mark.slow
def test_fitting_workers_end_when_their_owner_is_killed(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(POOL_OWNER)
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert owner.stdout is not None
    helpers = [int(pid) for pid in owner.stdout.readline().split()]
    assert len(helpers) == 3 and all(running(pid) for pid in helpers)  # two workers and their fork server
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    left = outliving(helpers, seconds=5)
    assert not left, f"{len(left)} of the pool's processes outlived their owner by 5 s"


# --- corrupt caches -------------------------------------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


@pytest.mark.parametrize("part", ["events.0000.parquet", "quarantine.parquet", "json", "manifest"])
def test_a_corrupt_ingest_cache_file_is_discarded_with_a_warning_and_the_file_read_again(tmp_path, part):
    raw, cache = few_events_file(tmp_path / "raw").parent, tmp_path / "cache"
    first = ingest(find_csv_files([raw]), cache, TODAY, log=lambda _: None)
    broken = cache / "manifest.json" if part == "manifest" else next(cache.glob(f"*.{part}"))
    truncate(broken)
    said: list[str] = []
    again = ingest(find_csv_files([raw]), cache, TODAY, log=said.append)
    assert again.events.equals(first.events)
    assert any(str(broken) in line and "unreadable" in line for line in said), said
    # healed: the next run reads everything from the cache again, without a word about it
    said.clear()
    third = ingest(find_csv_files([raw]), cache, TODAY, log=said.append)
    assert third.events.equals(first.events) and not any("unreadable" in line for line in said)
    assert third.stats["files_read_this_run"] == 0


@pytest.mark.parametrize("part", ["current.json", "admin1.parquet", "digests.parquet"])
def test_corrupt_panel_counts_are_discarded_and_every_month_counted_again(tmp_path, part):
    from sahel_pipeline.core.panels import load_counts, save_counts

    panels = panels_of(few_events_file(tmp_path / "raw").parent, tmp_path / "cache")
    save_counts(panels.counts, tmp_path / "counts")
    truncate(next((tmp_path / "counts").rglob(part)))
    said: list[str] = []
    assert load_counts(tmp_path / "counts", said.append) is None
    assert len(said) == 1 and part in said[0] and "counted again" in said[0]


def test_corrupt_stored_scores_are_not_reused(tmp_path):
    import dagster as dg

    from sahel_pipeline.defs.io_manager import previous_output

    stored = tmp_path / "series_scores" / "shard_1_of_4" / "2024-05.parquet"
    stored.parent.mkdir(parents=True)
    pl.DataFrame({"a": list(range(1000))}).write_parquet(stored)
    truncate(stored)
    said: list[str] = []
    key = dg.AssetKey(["series_scores", "shard_1_of_4"])
    assert previous_output(tmp_path, key, "2024-05", said.append) is None
    assert len(said) == 1 and str(stored) in said[0] and not stored.exists()


@pytest.mark.slow  # imports matplotlib (about a second of CPU)
def test_a_drawn_plot_is_a_whole_png():
    from sahel_pipeline.core.report.plots import _png, _pyplot
    from sahel_pipeline.core.storage import is_whole_png

    fig, _ = _pyplot().subplots(figsize=(1, 1))
    assert is_whole_png(_png(fig))


def test_a_damaged_cached_plot_is_drawn_again_not_embedded(tmp_path):
    from sahel_pipeline.core.report.plots import PLOT_INDEX, earlier_plots
    from sahel_pipeline.core.storage import is_whole_png

    stored = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(stored, "PNG")  # a PNG from Pillow: no need to import matplotlib
    png = stored.getvalue()
    assert is_whole_png(png)
    for name, data in {"alert1.png": png, "alert2.png": png[:-20], "alert3.png": png[:40] + b"x" + png[41:]}.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / PLOT_INDEX).write_text(json.dumps({"d1": "alert1.png", "d2": "alert2.png", "d3": "alert3.png"}))
    said: list[str] = []
    assert earlier_plots(tmp_path, said.append) == {"d1": png}
    assert sorted(Path(line.split(" is unreadable")[0]).name for line in said) == ["alert2.png", "alert3.png"]


# --- raw folders ----------------------------------------------------------------------------------------------------

def test_an_unreadable_folder_and_a_dangling_link_are_reported_not_skipped(tmp_path, monkeypatch):
    from sahel_pipeline.core.ingest import scan_raw_paths

    raw = tmp_path / "raw"
    few_events_file(raw)
    locked = raw / "week_21"
    locked.mkdir()
    (locked / "acled_2024-05-20.csv").write_text(HEADER + "\n")
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any folder: the refusal a user would meet is injected where it would arise
        scandir = os.scandir

        def refusing(path=".", *args):
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return scandir(path, *args)

        monkeypatch.setattr(os, "scandir", refusing)
    (raw / "acled_2024-05-27.csv").symlink_to(raw / "moved_away.csv")
    try:
        scan = scan_raw_paths([raw])
    finally:
        locked.chmod(0o755)
    assert [name for _, name in scan.files] == ["acled_few.csv"]
    reasons = {u.name: u.reason for u in scan.unreadable}
    assert set(reasons) == {"week_21/", "acled_2024-05-27.csv"}
    assert reasons["week_21/"] == "folder cannot be read: Permission denied"
    assert "does not exist" in reasons["acled_2024-05-27.csv"]


def test_unreadable_paths_are_in_the_manifest_and_nothing_readable_is_an_error(tmp_path):
    from sahel_pipeline.core.ingest import discover_raw_files

    raw = tmp_path / "raw"
    few_events_file(raw)
    (raw / "acled_2024-05-27.csv").symlink_to(raw / "moved_away.csv")
    scan = discover_raw_files(str(raw), None, print)
    said: list[str] = []
    result = ingest(scan.files, tmp_path / "cache", TODAY, log=lambda _: None, unreadable=scan.unreadable,
                    warn=said.append)
    row = result.manifest.filter(pl.col("file") == "acled_2024-05-27.csv").row(0, named=True)
    assert row["layout"] == "unreadable" and "does not exist" in row["notes"] and row["error"] is None
    assert result.stats["unreadable_paths"] == 1 and result.stats["files"] == 1
    assert len(said) == 1 and "acled_2024-05-27.csv" in said[0]
    (raw / "acled_few.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no readable CSV files under .*acled_2024-05-27.csv: a link to"):
        discover_raw_files(str(raw), None, print)


def test_a_file_that_vanished_since_the_last_run_is_said_with_what_it_held(tmp_path):
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    few_events_file(raw)
    newest = raw / "acled_newest.csv"
    newest.write_text(HEADER + "\n" + "\n".join(
        f"NEW{i},2024-05-16,Battles,Armed clash,Militia {i},Army,Niger,Tillaberi,Ayorou,1,1715000000" for i in range(7)
    ) + "\n")
    assert ingest(find_csv_files([raw]), cache, TODAY, log=lambda _: None).events.height == 57
    newest.unlink()
    said: list[str] = []
    result = ingest(find_csv_files([raw]), cache, TODAY, log=said.append)
    assert result.events.height == 50
    assert [line for line in said if "acled_newest.csv" in line and "7 events are no longer counted" in line]
    row = result.manifest.filter(pl.col("file") == "acled_newest.csv").row(0, named=True)
    assert row["layout"] == "vanished" and row["events"] == 0 and "7 events" in row["notes"]
    assert (result.stats["vanished_files"], result.stats["vanished_events"]) == (1, 7)


# --- deterministic output -------------------------------------------------------------------------------------------


def test_admin1_units_whose_rises_tie_are_listed_by_name():
    from sahel_pipeline.core.report.selection import admin1_table

    month = dt.date(2024, 5, 1)
    names = [f"Region {c}" for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA"]  # given in reverse order
    admin1 = pl.DataFrame({"admin1": names, "month": [month] * len(names), "count": [2] * len(names)})
    table = admin1_table(admin1, month, ModelConfig(), rows=26)
    assert table["admin1"].to_list() == sorted(names)


# --- what a file holds stays out of messages ------------------------------------------------------------------------


def test_a_private_file_linked_into_the_raw_folder_is_refused_without_echoing_it(tmp_path):
    from sahel_pipeline.core.sources import SourceError, read_source_file

    private = tmp_path / "secrets.txt"
    private.write_text("root:$6$hashedpassword:19000:0:99999:7:::,api_key=SECRET-TOKEN-123,date\nmore,secret,lines\n")
    link = tmp_path / "raw.csv"
    link.symlink_to(private)
    with pytest.raises(SourceError) as refused:
        read_source_file(link)
    message = str(refused.value)
    assert message.startswith("raw.csv: unrecognised layout")
    assert "SECRET" not in message and "hashedpassword" not in message and "secret" not in message.lower()
    assert "(and 3 other columns, not shown)" in message


@pytest.mark.parametrize(
    "name, said",
    [
        ("semicolon_delimited.csv", "the delimiter seems to be `;`"),
        ("no_fatalities.csv", "it looks like an ACLED export but is missing column `fatalities`"),
    ],
)
def test_a_file_that_nearly_fits_says_what_is_wrong(name, said):
    from sahel_pipeline.core.sources import SourceError, read_source_file

    with pytest.raises(SourceError) as refused:
        read_source_file(BAD_FILES / name)
    assert str(refused.value) == f"{name}: {said}" or str(refused.value).startswith(f"{name}: {said}")


def test_a_field_of_megabytes_is_read_with_the_rest_of_the_file(tmp_path):
    from sahel_pipeline.core.sources import read_source_file

    notes = "x" * (3 << 20)  # three times pyarrow's block
    rows = [f"NIG{i},2024-05-0{i + 1},Battles,Armed clash,Militia,Army,Niger,Tillaberi,Ayorou,{i},1715000000,"
            + (notes if i == 3 else "short") for i in range(8)]
    path = tmp_path / "acled_long_notes.csv"
    path.write_text("\n".join([HEADER + ",notes", *rows]) + "\n")
    source = read_source_file(path)
    assert source.events.height == 8 and source.quarantine.height == 0
    assert source.events.filter(pl.col("event_id") == "ACLED:NIG3")["notes"].item() == notes
