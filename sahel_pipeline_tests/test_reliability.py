"""Reliability: crashes and races, faults in the output folder (locks, corrupt caches, full disks, dying parents), odd
raw folders and deterministic output. The whole-run fault injection is in test_fault_injection.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.models import ModelConfig, SeriesTask, score_chunk
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline.core.scoring import score_month
from sahel_pipeline_tests.fixtures import TODAY

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
    [(_, score, forecasts, _)] = score_chunk([task], ModelConfig())
    assert forecasts and set(score) == set(SCORE_SCHEMA)


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
