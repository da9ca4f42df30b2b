"""Reliability: crashes and races, faults in the output folder (locks, corrupt caches, full disks, dying parents), odd
raw folders and deterministic output. The whole-run fault injection is in test_fault_injection.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

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
    result = score_month(panels.group_month, panels.country_month, dt.date(2024, 5, 1), ModelConfig(), log=lambda _: None)
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
