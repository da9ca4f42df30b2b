"""Each hand-made bad file gets a clear message naming file, row and column, and loses nothing else."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sahel_pipeline.core.ingest import IngestResult, ingest
from sahel_pipeline_tests.fixtures import BAD_FILES, TODAY


def ingest_one(name: str, tmp_path) -> IngestResult:
    return ingest([(BAD_FILES / name, name)], tmp_path / "cache", TODAY, log=lambda _: None)


def quarantined(result: IngestResult) -> dict[str, tuple[str, str, str]]:
    """event id (or row number) -> (column, value, reason)."""
    return {
        (row["event_id"] or f"row {row['source_row']}"): (row["column"], row["value"], row["reason"])
        for row in result.quarantine.iter_rows(named=True)
    }


def kept_ids(result: IngestResult) -> list[str]:
    return sorted(result.events["event_id"].to_list())


@pytest.mark.parametrize("name, note", [("empty.csv", "empty file"), ("header_only.csv", "header only")])
def test_files_without_rows_are_recorded_not_fatal(tmp_path, name, note):
    result = ingest_one(name, tmp_path)
    assert result.events.height == 0
    assert result.quarantine.height == 0
    entry = result.manifest.row(0, named=True)
    assert note in entry["notes"]
    assert entry["error"] is None


def test_byte_order_mark_is_removed_and_the_first_column_still_recognised(tmp_path):
    result = ingest_one("bom.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2", "ACLED:TST3"]
    assert "byte-order mark" in result.manifest["notes"][0]


def test_latin1_file_is_decoded_and_says_so(tmp_path):
    result = ingest_one("latin1.csv", tmp_path)
    assert result.events.height == 4
    assert "decoded as Windows-1252" in result.manifest["notes"][0]
    notes = result.events.filter(pl.col("event_id") == "ACLED:TST4")["notes"][0]
    assert "Tillabéri" in notes and "près" in notes


def test_truncated_last_line_is_quarantined_with_its_row_and_missing_column(tmp_path):
    result = ingest_one("truncated_last_line.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2", "ACLED:TST3"]
    row = result.quarantine.row(0, named=True)
    assert row["source_file"] == "truncated_last_line.csv"
    assert row["source_row"] == 5
    assert row["column"] == "location"
    assert "row has 12 fields, the header has 18" in row["reason"]
    assert json.loads(row["record"])["raw_line"].startswith("TST4,15 March 2023")


def test_unparseable_and_future_dates(tmp_path):
    result = ingest_one("bad_dates.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2", "ACLED:TST3"]
    assert quarantined(result) == {
        "ACLED:TST4": ("event_date", "31 Febtember 2023", "date does not parse"),
        "ACLED:TST5": ("event_date", "12 March 2031", f"date in the future (after {TODAY})"),
    }
    assert result.quarantine["source_row"].to_list() == [5, 6]


def test_negative_non_numeric_and_fractional_fatalities(tmp_path):
    result = ingest_one("bad_fatalities.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2", "ACLED:TST3"]
    assert quarantined(result) == {
        "ACLED:TST4": ("fatalities", "-3", "negative fatalities"),
        "ACLED:TST5": ("fatalities", "many", "fatalities is not a whole number"),
        "ACLED:TST6": ("fatalities", "2.5", "fatalities is not a whole number"),
        "ACLED:TST7": ("fatalities", "inf", "fatalities is not a whole number"),
        "ACLED:TST8": ("fatalities", "1e19", "fatalities is not a whole number"),  # beyond 64-bit integers
    }


def test_duplicate_id_with_conflicting_content_quarantines_both_versions(tmp_path):
    result = ingest_one("conflicting_duplicate.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST3"]
    assert sorted(result.quarantine["source_row"].to_list()) == [3, 5]
    assert set(result.quarantine["reason"]) == {
        "event id appears 2 times in this file: same event id and revision, different content"
    }


def test_missing_and_unknown_country(tmp_path):
    result = ingest_one("missing_country.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2", "ACLED:TST3"]
    assert quarantined(result) == {
        "ACLED:TST4": ("country", None, "missing country"),
        "ACLED:TST5": ("country", "Atlantis", "unknown country name"),
    }


def test_row_with_an_extra_field_is_quarantined_and_the_others_keep_their_row_numbers(tmp_path):
    result = ingest_one("extra_field.csv", tmp_path)
    rows = dict(result.events.select("event_id", "source_row").iter_rows())
    assert rows == {"ACLED:TST1": 2, "ACLED:TST2": 3, "ACLED:TST3": 5}
    bad = result.quarantine.row(0, named=True)
    assert (bad["source_row"], bad["column"]) == (4, "(after timestamp)")
    assert bad["reason"] == "row has 19 fields, the header has 18: 1 unexpected extra field(s)"


def test_unknown_layout_is_recorded_as_unreadable_and_the_other_files_still_load(tmp_path):
    files = [(BAD_FILES / "unknown_layout.csv", "unknown_layout.csv"), (BAD_FILES / "bom.csv", "bom.csv")]
    result = ingest(files, tmp_path / "cache", TODAY, log=lambda _: None)
    assert result.events.height == 3
    unreadable = result.unreadable_files()
    assert unreadable["file"].to_list() == ["unknown_layout.csv"]
    assert "unrecognised layout" in unreadable["error"][0]


def test_quarantine_counts_rows_once_even_when_a_row_breaks_several_rules(tmp_path):
    path = tmp_path / "two_problems.csv"
    path.write_text(
        "event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n"
        "NIG1,2023-03-12,Battles,A,B,Niger,1\n"
        "NIG2,not a date,Battles,A,B,Atlantis,-1\n"
    )
    result = ingest([(path, path.name)], tmp_path / "cache", TODAY, log=lambda _: None)
    assert result.events["event_id"].to_list() == ["ACLED:NIG1"]
    assert sorted(result.quarantine["column"].to_list()) == ["country", "event_date", "fatalities"]
    assert result.stats["quarantined_rows"] == 1
    assert result.manifest["quarantined_rows"].to_list() == [1]


def test_values_padded_with_blanks_are_stripped_and_the_manifest_says_so(tmp_path):
    result = ingest_one("padded_values.csv", tmp_path)
    assert kept_ids(result) == ["ACLED:TST1", "ACLED:TST2"]
    padded = result.events.filter(pl.col("event_id") == "ACLED:TST2").row(0, named=True)
    assert (padded["actor1"], padded["country"], padded["admin1"]) == ("Islamic State (Sahel)", "Niger", "Tillaberi")
    assert "values padded with blanks, stripped: actor1, admin1, country" in result.manifest["notes"][0]


def test_a_tab_inside_a_value_is_not_padding_but_one_at_its_end_is(tmp_path):
    path = tmp_path / "tabs.csv"
    path.write_text(
        "event_id_cnty,event_date,event_type,actor1,actor2,country,admin1,fatalities\n"
        "NIG1,2023-03-12,Battles,A\tB,C,Niger,Tillaberi\t,1\n"
    )
    result = ingest([(path, path.name)], tmp_path / "cache", TODAY, log=lambda _: None)
    row = result.events.row(0, named=True)
    assert (row["actor1"], row["admin1"]) == ("A\tB", "Tillaberi")
    notes = result.manifest["notes"][0]
    assert "values padded with blanks, stripped: admin1" in notes and "actor1" not in notes
