"""Ingest: snapshots, revisions, deletions, the manifest and cache, overlaps, and the real files together."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from sahel_pipeline.core import ingest as ingest_module
from sahel_pipeline.core.ingest import duplicated, find_csv_files, ingest, synthetic_reason
from sahel_pipeline_tests.fixtures import BAD_FILES, TODAY, real_file, requires_real_data

HEADER = "event_id_cnty,event_date,event_type,sub_event_type,actor1,actor2,country,admin1,location,fatalities,timestamp"
T0, T1, T2 = 1_715_000_000, 1_715_600_000, 1_716_000_000


def snapshot(rows: list[tuple]) -> str:
    return "\n".join([HEADER] + [",".join(map(str, r)) for r in rows]) + "\n"


# Snapshot A, then B: B corrects E2's fatalities and E3's date with a newer timestamp and adds E6 and E7.
IS, JNIM = "Islamic State (Sahel)", "JNIM: Group for Support of Islam and Muslims"
FAN, CIVILIANS, VAC = "Military Forces of Niger (2023-)", "Civilians (Niger)", "Violence against civilians"
SNAPSHOT_A = [
    ("NIG1", "2024-05-01", "Battles", "Armed clash", IS, FAN, "Niger", "Tillaberi", "Ayorou", 3, T0),
    ("NIG2", "2024-05-02", VAC, "Attack", IS, CIVILIANS, "Niger", "Tillaberi", "Tera", 5, T0),
    ("NIG3", "2024-05-03", "Battles", "Armed clash", JNIM, FAN, "Niger", "Tillaberi", "Makalondi", 2, T0),
    ("NIG4", "2024-05-04", "Protests", "Peaceful protest", "Protesters (Niger)", "", "Niger", "Niamey", "Niamey", 0,
     T0),
    ("NIG5", "2024-05-05", "Battles", "Armed clash", IS, FAN, "Niger", "Tahoua", "Tillia", 0, T0),
]
SNAPSHOT_B = [
    SNAPSHOT_A[0],
    ("NIG2", "2024-05-02", VAC, "Attack", IS, CIVILIANS, "Niger", "Tillaberi", "Tera", 7, T1),
    ("NIG3", "2024-05-06", "Battles", "Armed clash", JNIM, FAN, "Niger", "Tillaberi", "Makalondi", 2, T1),
    SNAPSHOT_A[3],
    SNAPSHOT_A[4],
    ("NIG6", "2024-05-09", "Battles", "Armed clash", IS, FAN, "Niger", "Tillaberi", "Ayorou", 11, T1),
    ("NIG7", "2024-05-10", "Explosions/Remote violence", "Remote explosive/landmine/IED", JNIM, FAN, "Niger", "Dosso",
     "Dosso", 1, T1),
]
# NIG4 deleted after its last revision: gone. NIG6 'deleted' before the revision we hold: it was re-published, kept.
DELETIONS = f"event_id_cnty,deleted_timestamp\nNIG4,{T2}\nNIG6,{T0}\n"


def table(result) -> dict[str, tuple]:
    return {
        r["event_id"]: (r["event_date"], r["fatalities"], r["revision"]) for r in result.events.iter_rows(named=True)
    }


def expected(rows: list[tuple]) -> dict[str, tuple]:
    return {f"ACLED:{r[0]}": (dt.date.fromisoformat(r[1]), r[9], r[10]) for r in rows}


def run(raw, cache):
    return ingest(find_csv_files([raw]), cache, TODAY, log=lambda _: None)


def test_snapshot_then_revised_snapshot_then_deletions_event_by_event(tmp_path):
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    (raw / "acled_niger_2024-05-06.csv").write_text(snapshot(SNAPSHOT_A))
    first = run(raw, cache)
    assert table(first) == expected(SNAPSHOT_A)

    (raw / "acled_niger_2024-05-13.csv").write_text(snapshot(SNAPSHOT_B))
    second = run(raw, cache)
    assert table(second) == expected(SNAPSHOT_B)  # exactly B: corrections replace, nothing counted twice
    assert second.stats["files_read_this_run"] == 1  # only the new weekly file was read
    assert second.stats["revised_events"] == 2  # NIG2 and NIG3
    assert second.stats["superseded_versions"] == 5  # the five events of A now also in B

    (raw / "acled_deletions_2024-05-14.csv").write_text(DELETIONS)
    third = run(raw, cache)
    after_deletions = expected([r for r in SNAPSHOT_B if r[0] != "NIG4"])
    assert table(third) == after_deletions
    assert third.stats["deleted_events"] == 1

    rerun = run(raw, cache)
    assert rerun.stats["files_read_this_run"] == 0
    assert rerun.events.equals(third.events)
    assert rerun.manifest.drop("read_this_run").equals(third.manifest.drop("read_this_run"))


def test_newest_revision_wins_whatever_order_the_files_sort_in(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "z_older_snapshot.csv").write_text(snapshot(SNAPSHOT_A))
    (raw / "a_newer_snapshot.csv").write_text(snapshot(SNAPSHOT_B))
    assert table(run(raw, tmp_path / "cache")) == expected(SNAPSHOT_B)


def test_a_then_b_equals_b_alone(tmp_path):
    both, only_b = tmp_path / "both", tmp_path / "only_b"
    both.mkdir()
    only_b.mkdir()
    (both / "acled_1.csv").write_text(snapshot(SNAPSHOT_A))
    (both / "acled_2.csv").write_text(snapshot(SNAPSHOT_B))
    (only_b / "acled_2.csv").write_text(snapshot(SNAPSHOT_B))
    from_both = run(both, tmp_path / "c1").events.sort("event_id")
    from_b = run(only_b, tmp_path / "c2").events.sort("event_id")
    assert from_both.equals(from_b)


def test_changed_file_is_read_again_and_unchanged_ones_come_from_the_cache(tmp_path):
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    (raw / "a.csv").write_text(snapshot(SNAPSHOT_A[:2]))
    (raw / "b.csv").write_text(snapshot(SNAPSHOT_A[2:]))
    run(raw, cache)
    (raw / "b.csv").write_text(snapshot(SNAPSHOT_A[2:] + SNAPSHOT_B[5:]))
    result = run(raw, cache)
    assert result.manifest.select("file", "read_this_run").rows() == [("a.csv", False), ("b.csv", True)]
    assert result.events.height == 7


def test_same_event_in_an_id_less_extract_is_reported_as_overlap_not_counted_twice(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "acled_niger_export.csv").write_text(snapshot(SNAPSHOT_A))
    (raw / "acled_niger_extract.csv").write_text(
        "EVENT_DATE,EVENT_TYPE,ACTOR1,ACTOR2,LOCATION,FATALITIES\n"
        "2024-05-01,Battles,Islamic State (Greater Sahara),Military Forces of Niger (2021-2023),Ayorou,3\n"  # = NIG1
        "2024-05-02,Violence against civilians,Islamic State (Sahel),Civilians (Niger),Tera,5\n"  # = NIG2
        "2024-05-02,Violence against civilians,Islamic State (Sahel),Civilians (Niger),Tera,5\n"  # a second such event
        "2024-05-20,Battles,Islamic State (Sahel),Military Forces of Niger (2023-),Ayorou,1\n"  # new
    )
    result = run(raw, tmp_path / "cache")
    assert result.stats["overlapping_rows"] == 2
    assert result.events.height == 5 + 2
    assert result.overlaps["location"].to_list() == ["Ayorou", "Tera"]


@requires_real_data
def test_all_real_files_together(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in (
        "acled_burkina_1997-2020.csv",
        "acled_burkina_1997-2023_subset-columns.csv",
        "acled_mali_2017-2020_actor-rows.csv",
        "ucdp_ged_burkina_2016-2023.csv",
    ):
        shutil.copy(real_file(name), raw / name)
    result = run(raw, tmp_path / "cache")

    # Overlaps counted independently: extract rows matching export rows on date, location, type and fatalities.
    def keys(name, date_col, fmt, cols):
        with open(raw / name, newline="", encoding="utf-8") as fh:
            return Counter(
                (
                    dt.datetime.strptime(r[date_col], fmt).date(),
                    *(r[c].strip().lower() if c.lower() == "location" else r[c] for c in cols),
                )
                for r in csv.DictReader(fh)
            )

    export = keys("acled_burkina_1997-2020.csv", "event_date", "%d %B %Y", ["location", "event_type", "fatalities"])
    extract = keys(
        "acled_burkina_1997-2023_subset-columns.csv", "EVENT_DATE", "%Y-%m-%d", ["LOCATION", "EVENT_TYPE", "FATALITIES"]
    )
    overlap = sum(min(n, export[k]) for k, n in extract.items())
    assert result.stats["overlapping_rows"] == overlap > 2500

    # Events per file counted by Python's csv reader: a row each, but one per event id in the actor-rows export.
    def rows(name):
        with open(raw / name, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    mali_events = len({r["event_id_cnty"] for r in rows("acled_mali_2017-2020_actor-rows.csv")})
    acled = sum(extract.values()) + sum(export.values()) - overlap + mali_events
    ucdp = len(rows("ucdp_ged_burkina_2016-2023.csv"))
    assert result.events.height == acled + ucdp
    assert result.quarantine.height == 0
    by_source = dict(result.events.group_by("source").len().iter_rows())
    assert by_source == {"ACLED": acled, "UCDP": ucdp}
    assert result.events["event_id"].n_unique() == result.events.height
    assert not result.manifest["synthetic"].any() and result.stats["synthetic_files"] == 0  # real files are real


@pytest.mark.parametrize("given", ["file", "folder"])
def test_find_csv_files_takes_folders_and_single_files(tmp_path, given):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.CSV").write_text(HEADER)
    (tmp_path / "a.csv").write_text(HEADER)
    (tmp_path / "notes.md").write_text("not data")
    found = find_csv_files([tmp_path / "a.csv"] if given == "file" else [tmp_path])
    names = [name for _, name in found]
    assert names == (["a.csv"] if given == "file" else ["a.csv", "sub/b.CSV"])


def test_missing_raw_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="raw data path does not exist"):
        find_csv_files([tmp_path / "nowhere"])


def test_revision_metadata_counts_when_one_file_repeats_an_event(tmp_path):
    path = tmp_path / "acled_niger.csv"
    path.write_text(snapshot([SNAPSHOT_A[0], SNAPSHOT_A[0], SNAPSHOT_B[1], SNAPSHOT_A[1]]))
    result = ingest([(path, path.name)], tmp_path / "cache", TODAY, log=lambda _: None)
    source_notes = result.manifest["notes"][0]
    assert "1 older revisions" in source_notes and "1 exact repeats" in source_notes
    assert table(result) == expected([SNAPSHOT_A[0], SNAPSHOT_B[1]])  # NIG1 once, NIG2 at its newer revision


def test_hashed_duplicate_ids_agree_with_polars_on_text_ids():
    ids = pl.Series([f"MLI{n % 5003}" for n in range(20_000)] + ["BFA1", "BFA2", "BFA1", None, None])
    assert duplicated(ids).to_list() == ids.is_duplicated().to_list()
    assert duplicated(pl.Series(["a", "b"], dtype=pl.String)).to_list() == [False, False]


def test_hidden_files_and_folders_are_never_read(tmp_path):
    """A pull keeps its pages (.partial/) and half-written files (.name.tmp) hidden: the ingest must not see them."""
    (tmp_path / "deletions.csv").write_text(DELETIONS)
    for hidden in (".partial/abc/page_00001.csv", ".vintages/x.csv", "acled_api/.acled_2026.csv", ".half.csv"):
        (tmp_path / hidden).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / hidden).write_text(snapshot(SNAPSHOT_A))
    assert [name for _, name in find_csv_files([tmp_path])] == ["deletions.csv"]


UCDP_HEADER = "id,date_start,side_a,side_b,type_of_violence,best,country,where_coordinates"


def test_ucdp_replacements_remove_events_and_are_counted_apart_from_acled_deletions(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "acled.csv").write_text(snapshot(SNAPSHOT_A))
    (raw / "deletions.csv").write_text(DELETIONS)
    (raw / "ucdp_candidate.csv").write_text("\n".join(
        [UCDP_HEADER] + [f"{i},2025-01-0{i},Government of Mali,JNIM,1,{i},Mali,Town {i}" for i in range(1, 6)]) + "\n")
    replaced = "id,replaced_by,replaced_at\n2,26.1,1767225600\n4,26.1,1767225600\n,26.1,1\n"  # the last has no id
    (raw / "ucdp_replaced.csv").write_text(replaced)
    result = run(raw, tmp_path / "cache")
    assert (result.stats["replaced_ucdp_events"], result.stats["deleted_events"]) == (2, 1)
    assert sorted(result.events.filter(pl.col("source") == "UCDP")["event_id"]) == ["UCDP:1", "UCDP:3", "UCDP:5"]
    bad = result.quarantine.row(0, named=True)  # a replacement without an id is quarantined, not applied
    assert (bad["source_file"], bad["reason"]) == ("ucdp_replaced.csv", "replacement without an event id")


def test_a_file_is_synthetic_by_its_name_or_when_every_note_says_so():
    notes = pl.DataFrame({"notes": ["SYNTHETIC, not real. An attack.", "SYNTHETIC, not real. A clash."]})
    assert synthetic_reason("acled_sahel_deletions_2024-12-31_SYNTHETIC.csv", None) == "the file name says SYNTHETIC"
    assert synthetic_reason("weekly/synthetic-test.csv", notes.clear()) == "the file name says SYNTHETIC"
    assert synthetic_reason("acled_2024-05-13.csv", notes) == "every event note starts with SYNTHETIC"
    one_real = pl.DataFrame({"notes": ["SYNTHETIC, not real. An attack.", "On 3 May, JNIM attacked..."]})
    assert synthetic_reason("acled_2024-05-13.csv", one_real) is None
    assert synthetic_reason("acled_2024-05-13.csv", pl.DataFrame({"notes": ["SYNTHETIC, x", None]})) is None
    assert synthetic_reason("acled_2024-05-13.csv", notes.clear()) is None  # no events: nothing to go by but the name
    assert synthetic_reason("acled_2024-05-13.csv", pl.DataFrame({"notes": ["synthetic fuel depot attacked"]})) is None


def test_the_manifest_says_which_files_are_synthetic(tmp_path, sample_dir):
    raw = tmp_path / "raw"
    raw.mkdir()
    # renamed: only the notes say it
    shutil.copy(sample_dir / "acled_sahel_update_2024-12-31_SYNTHETIC.csv", raw / "renamed_update.csv")
    shutil.copy(BAD_FILES / "bad_dates.csv", raw / "hand_made.csv")
    result = run(raw, tmp_path / "cache")
    flags = dict(result.manifest.select("file", "synthetic").iter_rows())
    assert flags == {"renamed_update.csv": True, "hand_made.csv": False}
    assert result.stats["synthetic_files"] == 1
    notes = dict(result.manifest.select("file", "notes").iter_rows())
    assert "synthetic: every event note starts with SYNTHETIC" in notes["renamed_update.csv"]
    again = run(raw, tmp_path / "cache")  # from the cache: the flag is kept
    assert dict(again.manifest.select("file", "synthetic").iter_rows()) == flags


def test_the_table_s_parts_are_the_cache_s_files_where_the_merge_removed_none_of_their_rows(tmp_path, monkeypatch):
    """IngestResult.events_parts lets the warehouse copy the cache's files instead of encoding 2.5 M events again:
    a file must hold exactly its part of the table, and be named only when it does."""
    monkeypatch.setattr(ingest_module, "EVENT_PART_ROWS", 2)  # SNAPSHOT_B's 7 events in four parts

    def stored(parts) -> pl.DataFrame:
        return pl.concat([pl.read_parquet(p) if isinstance(p, Path) else p for p in parts])

    raw, cache = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    (raw / "acled_niger.csv").write_text(snapshot(SNAPSHOT_B))
    for _ in ("read now", "from the cache"):
        result = run(raw, cache)
        parts = result.events_parts
        assert len(parts) == 4 and all(isinstance(p, Path) and p.parent == cache for p in parts)
        assert stored(parts).equals(result.events)

    (raw / "acled_deletions.csv").write_text(DELETIONS)  # a second file, which removes NIG4 of the second part
    result = run(raw, cache)
    first, second, *rest = result.events_parts
    assert isinstance(first, Path) and all(isinstance(p, Path) for p in rest) and len(rest) == 2
    assert isinstance(second, pl.DataFrame) and second["event_id"].to_list() == ["ACLED:NIG3"]
    assert stored(result.events_parts).equals(result.events) and result.events.height == len(SNAPSHOT_B) - 1



def test_a_part_in_other_column_types_than_the_table_is_written_again_not_copied(tmp_path):
    """A folder of parts reads as one table only when its parts agree: a cache part whose columns the merge relaxed
    (a count stored as Int32 beside another file's Int64) is written with the table's types."""
    from sahel_pipeline.core.ingest import _kept_parts

    narrow = pl.DataFrame({"id": ["a", "b"], "n": [1, 2]}, schema={"id": pl.String, "n": pl.Int32})
    wide = pl.DataFrame({"id": ["c"], "n": [3]}, schema={"id": pl.String, "n": pl.Int64})
    paths = [tmp_path / "narrow.parquet", tmp_path / "wide.parquet"]
    for frame, path in zip((narrow, wide), paths, strict=True):
        frame.write_parquet(path)
    table = pl.concat([narrow, wide], how="vertical_relaxed").with_columns(_part=pl.Series([0, 0, 1], dtype=pl.Int32))
    merged = table.drop("_part")
    parts = _kept_parts(table["_part"].to_numpy(), [(paths[0], 2, narrow.schema), (paths[1], 1, wide.schema)], merged)
    assert isinstance(parts[0], pl.DataFrame) and parts[0].schema == wide.schema and parts[1] == paths[1]
    assert pl.concat([parts[0], pl.read_parquet(parts[1])]).equals(merged)
