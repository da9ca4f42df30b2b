"""Source adapters on every real shape of file, checked against counts made independently with the csv module."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.core.schema import CANONICAL_COLUMNS
from sahel_pipeline.core.sources import SourceError, csv_text, read_source_file
from sahel_pipeline.core.sources.csv_text import RawTable
from sahel_pipeline.core.sources.layouts import detect_layout
from sahel_pipeline_tests.fixtures import BAD_FILES, real_file, requires_real_data


def csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@requires_real_data
def test_mali_monadic_export_collapses_to_one_row_per_event_keeping_every_actor():
    path = real_file("acled_mali_2017-2020_actor-rows.csv")
    source = read_source_file(path)
    header, rows = csv_rows(path)
    ids = [r[header.index("event_id_cnty")] for r in rows]
    assert source.layout == "acled_monadic"
    assert source.rows == len(rows) == 6214
    assert source.events.height == len(set(ids)) == 3314
    assert source.events["event_id"].n_unique() == 3314
    # Every actor of every row survives the collapse, as actor1 or actor2.
    actors_per_event: dict[str, set[str]] = {}
    for r in rows:
        actors_per_event.setdefault(r[header.index("event_id_cnty")], set()).add(r[header.index("actor1")])
    collapsed = {
        row["event_id"].removeprefix("ACLED:"): {row["actor1"], row["actor2"]} - {None}
        for row in source.events.select("event_id", "actor1", "actor2").iter_rows(named=True)
    }
    assert collapsed == actors_per_event
    katiba = source.events.filter(pl.col("event_id") == "ACLED:MLI4682").row(0, named=True)
    assert (katiba["actor1"], katiba["assoc_actor_1"], katiba["actor2"]) == (
        "Katiba Macina",
        "JNIM: Group for Support of Islam and Muslims",
        "Civilians (Mali)",
    )
    assert katiba["event_date"] == dt.date(2020, 12, 31)


@requires_real_data
def test_burkina_full_export_dates_fatalities_and_timestamps():
    path = real_file("acled_burkina_1997-2020.csv")
    source = read_source_file(path)
    header, rows = csv_rows(path)
    assert source.layout == "acled"
    assert source.events.height == len(rows) == 3010
    assert source.quarantine.height == 0
    assert source.events["fatalities"].sum() == sum(int(r[header.index("fatalities")]) for r in rows)
    assert source.events["event_date"].min() == dt.date(1997, 2, 1)
    assert source.events["event_date"].max() == dt.date(2020, 12, 3)
    first = source.events.filter(pl.col("event_id") == "ACLED:BFO4217").row(0, named=True)
    assert first["revision"] == 1607374999
    assert first["source_row"] == 2  # the header is row 1
    assert set(source.events.columns) >= set(CANONICAL_COLUMNS)


@requires_real_data
def test_upper_case_extract_without_ids_gets_stable_derived_ids():
    path = real_file("acled_burkina_1997-2023_subset-columns.csv")
    first = read_source_file(path)
    again = read_source_file(path)
    _, rows = csv_rows(path)
    assert first.layout == "acled_extract"
    assert first.events.height == len(rows) > 8000  # one event per row, counted by Python's csv reader
    assert first.events["event_id_derived"].all()
    assert first.events["event_id"].n_unique() == len(rows)
    assert first.events["event_id"].str.starts_with("ACLED~").all()
    assert first.events["event_id"].to_list() == again.events["event_id"].to_list()
    assert first.events["country"].unique().to_list() == ["Burkina Faso"]  # from the file name
    assert first.events["civilian_targeting"].sum() == sum(r[11] == "Civilian targeting" for r in rows)
    assert first.events["event_date"].max() == dt.date(2023, 4, 28)


@requires_real_data
def test_ucdp_ged_with_one_field_more_than_its_header():
    path = real_file("ucdp_ged_burkina_2016-2023.csv")
    source = read_source_file(path)
    header, rows = csv_rows(path)
    assert len(header) == 47 and {len(r) for r in rows} == {48}
    assert source.layout == "ucdp_ged"
    assert source.events.height == len(rows) > 1000
    assert any("empty field" in note for note in source.notes)
    assert source.events["fatalities"].sum() == sum(int(r[header.index("best_est")]) for r in rows)
    violence = Counter(r[header.index("type_of_violence")] for r in rows)
    types = Counter(source.events["event_type"].to_list())
    assert types["Violence against civilians"] == violence["3"]
    assert types["Battles"] == violence["1"] + violence["2"]
    first = source.events.filter(pl.col("event_id") == "UCDP:497710").row(0, named=True)
    assert first["event_date"] == dt.date(2023, 10, 6)  # 10/06/2023 is month/day in this download
    assert (first["actor1"], first["actor2"], first["admin1"]) == ("JNIM", "Civilians", "Boucle du Mouhoun")


@pytest.mark.parametrize(
    "written, expected",
    [
        ("2024-05-15", dt.date(2024, 5, 15)),
        ("15-05-2024", dt.date(2024, 5, 15)),
        ("15 May 2024", dt.date(2024, 5, 15)),
        ("5 May 2024", dt.date(2024, 5, 5)),
    ],
)
def test_acled_date_formats(tmp_path, written, expected):
    path = tmp_path / "acled_niger.csv"
    path.write_text(
        "event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n"
        f"NIG1,{written},Battles,Islamic State (Sahel),Military Forces of Niger (2023-),Niger,3\n"
    )
    source = read_source_file(path)
    assert source.events["event_date"].to_list() == [expected]


def test_unknown_layout_names_the_file_and_the_expected_columns():
    with pytest.raises(SourceError) as err:
        read_source_file(BAD_FILES / "unknown_layout.csv")
    message = str(err.value)
    assert message.startswith("unknown_layout.csv: unrecognised layout")
    # the one column a layout uses is named; the others, which could be anyone's text, are only counted
    assert "Columns recognised: id (and 2 other columns, not shown)" in message
    assert "when" not in message.split("Expected")[0] and "what" not in message
    assert "event_id_cnty" in message and "side_a" in message and "deleted_timestamp" in message


def test_layout_detection_is_case_insensitive():
    assert detect_layout(["EVENT_DATE", "EVENT_TYPE", "ACTOR1", "FATALITIES"], "x.csv") == "acled_extract"
    assert detect_layout(["event_id_cnty", "deleted_timestamp"], "x.csv") == "acled_deletions"


def test_the_parse_takes_its_buffers_from_jemalloc_not_mimalloc(tmp_path):
    # mimalloc, pyarrow's default, made the kernel zero a fresh (huge) page for every page of a large parse: 4.6-5.5 s
    # of system time on the benchmark's export (csv_text.parsing_pool says more).
    import pyarrow as pa

    from sahel_pipeline.core.sources.csv_text import parsing_pool

    try:
        jemalloc = pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow wheel has no jemalloc pool")
    path = tmp_path / "acled_niger.csv"
    path.write_text(
        "event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n"
        + "".join(f"NIG{i},2024-05-15,Battles,Islamic State (Sahel),Civilians,Niger,{i % 7}\n" for i in range(2000))
        + "NIG2000,2024-05-15\n"  # a short record: only pyarrow's parse says which, so this file takes it
    )
    before = jemalloc.num_allocations()
    source = read_source_file(path)
    assert source.events.height == 2000 and source.quarantine["source_row"].to_list() == [2002]
    assert parsing_pool().backend_name == "jemalloc"
    assert jemalloc.num_allocations() > before


def _read_by_pyarrow_only(path: Path, monkeypatch) -> RawTable:
    with monkeypatch.context() as patched:
        patched.setattr(csv_text, "_regular_records", lambda *_: None)
        return csv_text.read_csv_text(path, path.name)


def _same_table(a: RawTable, b: RawTable) -> bool:
    return (
        (a.header, a.layout, a.notes) == (b.header, b.layout, b.notes)
        and a.frame.equals(b.frame)
        and (a.bad_rows.equals(b.bad_rows))
    )


def test_polars_reader_gives_the_values_pyarrow_gives_quotes_line_breaks_and_missing_texts(tmp_path, monkeypatch):
    path = tmp_path / "acled_niger.csv"
    path.write_bytes(
        b"\xef\xbb\xbfevent_id_cnty,event_date,event_type,actor1,actor2,country,notes,fatalities\r\n"
        b'NIG1,2024-05-15,Battles,"JNIM, a coalition",NA,Niger,"two lines:\r\nan ambush near ""Tera""",3\r\n'
        b'NIG2,2024-05-16,Battles,"NA","",Niger,n/a, 0\r\n'
        b"NIG3,2024-05-17,Riots,Rioters (Niger),,Niger,,1"  # no line break at the end
    )
    raw = csv_text.read_csv_text(path, path.name)
    assert csv_text._regular_records(path, raw.header) is not None  # the fast reader took it
    assert _same_table(raw, _read_by_pyarrow_only(path, monkeypatch))
    assert raw.frame["notes"].to_list() == ['two lines:\r\nan ambush near "Tera"', None, None]
    assert raw.frame["actor1"].to_list() == ["JNIM, a coalition", None, "Rioters (Niger)"]
    assert raw.frame["fatalities"].to_list() == ["3", " 0", "1"] and raw.frame["source_row"].to_list() == [2, 3, 4]


def test_a_short_record_in_the_middle_is_quarantined_not_filled_with_nulls(tmp_path):
    # Polars' reader would read the short record with a missing fatalities count: the empty last column sends the
    # file to pyarrow's parse, which sets the record aside with its number.
    path = tmp_path / "acled_niger.csv"
    path.write_text(
        "event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n"
        "NIG1,2024-05-15,Battles,JNIM,Civilians,Niger,3\n"
        "NIG2,2024-05-16,Battles,JNIM\n"
        "NIG3,2024-05-17,Battles,JNIM,Civilians,Niger,0\n"
    )
    source = read_source_file(path)
    assert source.events["event_id"].to_list() == ["ACLED:NIG1", "ACLED:NIG3"]
    assert source.quarantine["source_row"].to_list() == [3]
    assert "stops before column 'actor2'" in source.quarantine["reason"][0]


@pytest.mark.parametrize(
    "name",
    [
        "acled_burkina_1997-2020.csv",
        "acled_mali_2017-2020_actor-rows.csv",
        "acled_burkina_1997-2023_subset-columns.csv",
    ],
)
@requires_real_data
def test_both_readers_give_the_real_exports_the_same_records(name, monkeypatch):
    path = real_file(name)
    raw = csv_text.read_csv_text(path, name)
    assert csv_text._regular_records(path, raw.header) is not None
    assert raw.frame.height > 1000 and _same_table(raw, _read_by_pyarrow_only(path, monkeypatch))


def test_both_readers_give_the_bundled_sample_the_same_records(monkeypatch):
    for path in sorted(SAMPLE_DIR.glob("*.csv")):
        raw = csv_text.read_csv_text(path, path.name)
        assert csv_text._regular_records(path, raw.header) is not None, path.name
        assert _same_table(raw, _read_by_pyarrow_only(path, monkeypatch)), path.name
