"""The canonical event table: one Polars schema that every source adapter produces."""

from __future__ import annotations

import polars as pl

from sahel_pipeline.core.actors import INTER_DTYPE

CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),  # source-prefixed: ACLED:BFO4217, UCDP:497710, ACLED~<hash> when derived
    "event_id_derived": pl.Boolean(),  # True when the source had no id and it was derived from the row
    "source": pl.String(),  # ACLED | UCDP
    "event_date": pl.Date(),
    "country": pl.String(),
    "admin1": pl.String(),
    "admin2": pl.String(),
    "location": pl.String(),
    "latitude": pl.Float64(),
    "longitude": pl.Float64(),
    "geo_precision": pl.Int8(),  # as the source gives it: ACLED geo_precision 1-3, UCDP where_prec 1-7, else null
    "disorder_type": pl.String(),
    "event_type": pl.String(),
    "sub_event_type": pl.String(),
    "actor1": pl.String(),
    "assoc_actor_1": pl.String(),
    "actor2": pl.String(),
    "assoc_actor_2": pl.String(),
    "inter1": INTER_DTYPE,  # actor1's type (ACLED inter1 as a code or a word; UCDP side_a), in one vocabulary
    "inter2": INTER_DTYPE,  # actor2's type
    "civilian_targeting": pl.Boolean(),
    "fatalities": pl.Int64(),
    "notes": pl.String(),
    "revision": pl.Int64(),  # ACLED `timestamp` (Unix seconds); null where the source has none (UCDP)
    "source_file": pl.String(),
    "source_row": pl.Int64(),  # record number in the file, the header being row 1
}
CANONICAL_COLUMNS: list[str] = list(CANONICAL_SCHEMA)

# Raw text kept next to parsed columns so that a failed parse can be quarantined with the value that failed.
RAW_TEXT_COLUMNS: dict[str, str] = {
    "event_date": "_raw_event_date",
    "fatalities": "_raw_fatalities",
    "latitude": "_raw_latitude",
    "longitude": "_raw_longitude",
}
# Columns that say what happened; two rows with one id that differ here are different versions of an event.
CONTENT_COLUMNS: list[str] = [
    c for c in CANONICAL_COLUMNS if c not in {"revision", "source_file", "source_row", "event_id_derived"}
]

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "event_id": pl.String(),
    "column": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
    "record": pl.String(),  # the whole row as JSON, so a quarantined row can be repaired and re-ingested
}

SOURCES = ("ACLED", "UCDP")


def empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(schema=CANONICAL_SCHEMA)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)
