"""Values read from text: stripped where padded, dates in the file's own format, numbers, Unix times. A value that
does not parse becomes null next to its raw text. Also the canonical rows' empty frame and their JSON record.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from sahel_pipeline.core.actors import unrecognised_inter
from sahel_pipeline.core.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    RAW_TEXT_COLUMNS,
)

# Formats that read the same text as different dates: never fall back from one to the other.
_AMBIGUOUS_TWINS = {"%d/%m/%Y": "%m/%d/%Y", "%m/%d/%Y": "%d/%m/%Y"}
_TIME_OF_DAY = r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$"


# Free text is kept as written; the columns events are identified, dated, placed and grouped by are stripped.
_FREE_TEXT = {
    "notes",
    "source",
    "source_scale",
    "tags",
    "source_article",
    "source_headline",
    "source_original",
    "geom_wkt",
}


def text_reader(frame: pl.DataFrame, notes: list[str]) -> Callable[[str], pl.Expr]:
    """Column by name, stripped of surrounding blanks when it has any (checking costs a quarter of stripping at
    millions of rows), which the file's notes record; a null column when the file lacks it. Free text (notes) is not
    checked: it is most of a file's bytes and nothing is matched on it. A blank is a space or a tab at either end:
    a tab inside a value is kept by stripping anyway (and looking for one anywhere cost most of the check: 1.8 of
    2.7 s of CPU at 2.5 M events)."""
    checked = [c for c in frame.columns if frame.schema[c] == pl.String and c not in _FREE_TEXT]
    padded_flags = (
        frame.select(
            [
                pl.any_horizontal(
                    getattr(pl.col(c).str, end)(blank) for end in ("starts_with", "ends_with") for blank in " \t"
                ).any()
                for c in checked
            ]
        ).row(0)
        if checked
        else ()
    )
    padded = {c for c, flag in zip(checked, padded_flags, strict=True) if flag}
    if padded:
        notes.append(f"values padded with blanks, stripped: {', '.join(sorted(padded))}")

    def text(column: str) -> pl.Expr:
        if column not in frame.columns:
            return pl.lit(None, pl.String)
        return pl.col(column).str.strip_chars() if column in padded else pl.col(column)

    return text


def parse_dates(raw: pl.Series, formats: tuple[str, ...]) -> pl.Series:
    """Dates in the file's own format, chosen on a sample; other unambiguous formats only for the rows it misses.

    Parsing every row in every format would cost seconds at millions of rows; most files use one format throughout.
    Unparseable text becomes null (and the row is quarantined with its raw value).
    """
    if raw.drop_nulls().head(1000).str.contains(_TIME_OF_DAY).any():
        raw = raw.str.replace(_TIME_OF_DAY, "")
    sample = raw.drop_nulls().head(5000)
    best = (
        formats[int(np.argmin([sample.str.to_date(f, strict=False).null_count() for f in formats]))]
        if len(sample)
        else formats[0]
    )
    parsed = raw.str.to_date(best, strict=False)
    missed = parsed.is_null() & raw.is_not_null()
    others = [f for f in formats if f != best and f != _AMBIGUOUS_TWINS.get(best)]
    if missed.any() and others:
        subset = raw.filter(missed)
        rescued = pl.select(pl.coalesce([subset.str.to_date(f, strict=False) for f in others])).to_series()
        parsed = parsed.scatter(missed.arg_true(), rescued)
    return parsed.alias("event_date")


def to_small_int(raw: pl.Expr) -> pl.Expr:
    """A precision code (1-7) as given; text that is not one is null, and counted in the file's notes."""
    return raw.str.strip_chars().cast(pl.Int8, strict=False)


def note_unread_values(frame: pl.DataFrame, events: pl.DataFrame, notes: list[str], read: dict[str, str]) -> None:
    """Values of descriptive columns (actor types, precision codes) that do not read as one are left empty, not
    quarantined: the event stands without them. The file's notes say how many, per column."""
    for raw_column, column in read.items():
        if raw_column not in frame.columns:
            continue
        raw = frame[raw_column]
        if column.startswith("inter"):
            missed = unrecognised_inter(raw, events[column])
        else:
            missed = int((raw.str.strip_chars().fill_null("").ne("") & events[column].is_null()).sum())
        if missed:
            notes.append(f"{raw_column}: {missed} value(s) that are not {_WHAT_IS_READ[column]}: left empty")


_WHAT_IS_READ = {
    "inter1": "an ACLED actor type (a code 1-8 or its words)",
    "inter2": "an ACLED actor type (a code 1-8 or its words)",
    "geo_precision": "a precision code",
}


def to_float(raw: pl.Expr) -> pl.Expr:
    return raw.cast(pl.Float64, strict=False)


def to_whole_number(raw: pl.Expr) -> pl.Expr:
    """Null unless the text is a whole number that fits 64 bits: 'inf' or '1e19' is a bad row, not a failed file."""
    number = raw.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite() & (number == number.floor())).then(number.cast(pl.Int64, strict=False))


def to_unix_seconds(raw: pl.Series) -> pl.Series:
    """ACLED timestamps: Unix seconds, or (in some exports) a date-time; the slow date-time parse only where needed."""
    seconds = raw.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    missed = seconds.is_null() & raw.is_not_null()
    if missed.any():
        rescued = raw.filter(missed).str.to_datetime(strict=False, time_unit="us").dt.epoch("s")
        seconds = seconds.scatter(missed.arg_true(), rescued)
    return seconds


def record_json(events: pl.DataFrame) -> pl.Expr:
    """The row as JSON, with the raw text of parsed columns, so nothing of a quarantined row is lost."""
    keep = [c for c in CANONICAL_COLUMNS if c not in ("source_file", "source_row") and c in events.columns]
    keep += [c for c in RAW_TEXT_COLUMNS.values() if c in events.columns]
    return pl.struct([pl.col(c).cast(pl.String) for c in keep]).struct.json_encode()


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema={**CANONICAL_SCHEMA, **{raw: pl.String() for raw in RAW_TEXT_COLUMNS.values()}})
