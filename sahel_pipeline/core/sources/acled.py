"""ACLED exports (full, monadic, id-less extracts) -> canonical columns.
"""

from __future__ import annotations

import hashlib

import polars as pl

from sahel_pipeline.core.actors import read_inter
from sahel_pipeline.core.reference import country_from_file_name
from sahel_pipeline.core.schema import (
    CONTENT_COLUMNS,
    RAW_TEXT_COLUMNS,
)
from sahel_pipeline.core.sources.values import (
    note_unread_values,
    parse_dates,
    text_reader,
    to_float,
    to_small_int,
    to_unix_seconds,
    to_whole_number,
)

ACLED_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%d-%m-%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%B-%Y")


def normalise_acled(frame: pl.DataFrame, name: str, layout: str, notes: list[str]) -> pl.DataFrame:
    """ACLED export, monadic export or id-less extract -> canonical columns."""
    present = set(frame.columns)
    text = text_reader(frame, notes)
    if "country" in present:
        country = text("country")
    else:
        inferred = country_from_file_name(name)
        country = pl.lit(inferred, pl.String)
        notes.append(
            f"no country column: country '{inferred}' taken from the file name"
            if inferred
            else "no country column and the file name names no single country: rows are quarantined"
        )
    event_type = text("event_type")
    actor2 = text("actor2")
    civilian_targeting = (
        text("civilian_targeting").str.to_lowercase().str.contains("civilian").fill_null(False)
        if "civilian_targeting" in present
        else (event_type == "Violence against civilians") | actor2.str.starts_with("Civilians").fill_null(False)
    )
    disorder = text("disorder_type") if "disorder_type" in present else _disorder_from_event_type(event_type)
    events = frame.select(
        event_id=pl.lit("ACLED:") + text("event_id_cnty") if layout != "acled_extract" else pl.lit(None, pl.String),
        event_id_derived=pl.lit(layout == "acled_extract"),
        source=pl.lit("ACLED"),
        event_date=pl.lit(None, pl.Date),  # parsed below, from the raw text
        country=country,
        admin1=text("admin1"),
        admin2=text("admin2"),
        location=text("location"),
        latitude=to_float(text("latitude")),
        longitude=to_float(text("longitude")),
        geo_precision=to_small_int(text("geo_precision")),
        disorder_type=disorder,
        event_type=event_type,
        sub_event_type=text("sub_event_type"),
        actor1=text("actor1"),
        assoc_actor_1=text("assoc_actor_1"),
        actor2=actor2,
        assoc_actor_2=text("assoc_actor_2"),
        inter1=read_inter(text("inter1")),
        inter2=read_inter(text("inter2")),
        civilian_targeting=civilian_targeting,
        fatalities=to_whole_number(text("fatalities")),
        notes=text("notes"),
        revision=text("timestamp"),
        source_file=pl.lit(name),
        source_row=pl.col("source_row"),
        **{raw: text(col) for col, raw in RAW_TEXT_COLUMNS.items()},
    )
    events = events.with_columns(
        parse_dates(events["_raw_event_date"], ACLED_DATE_FORMATS), revision=to_unix_seconds(events["revision"])
    )
    note_unread_values(frame, events, notes, {c: c for c in ("inter1", "inter2", "geo_precision")})
    if layout == "acled_extract":
        events = events.with_columns(event_id=derive_event_ids(events))
    return events


def _disorder_from_event_type(event_type: pl.Expr) -> pl.Expr:
    return (
        pl.when(event_type.is_in(["Protests", "Riots"]))
        .then(pl.lit("Demonstrations"))
        .when(event_type == "Strategic developments")
        .then(pl.lit("Strategic developments"))
        .when(event_type.is_not_null())
        .then(pl.lit("Political violence"))
    )


def derive_event_ids(events: pl.DataFrame) -> pl.Series:
    """Stable ids for rows that came without one: a hash of the row's content, numbered when rows repeat exactly."""
    content = [c for c in CONTENT_COLUMNS if c not in ("event_id",)]
    keys = events.select(
        pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in content if c not in ("source", "event_date")]
            + [pl.col("_raw_event_date").fill_null("")],
            separator="\x1f",
        ).alias("key")
    )["key"]
    digests = pl.Series([hashlib.blake2b(k.encode(), digest_size=8).hexdigest() for k in keys], dtype=pl.String)
    occurrence = pl.DataFrame({"d": digests}).select(pl.int_range(pl.len()).over("d").alias("n"))["n"]
    return pl.Series(
        "event_id",
        [f"ACLED~{d}" if n == 0 else f"ACLED~{d}-{n + 1}" for d, n in zip(digests, occurrence, strict=True)],
        dtype=pl.String,
    )
