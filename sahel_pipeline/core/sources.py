"""Source adapters: read one ACLED or UCDP CSV, recognise its layout from the header, normalise it to the canonical
schema.

Reading is strict about the file's shape (every record must have as many fields as the header) and lenient about its
values: a value that does not parse becomes null next to its raw text, so that validation can quarantine the row with
the value that failed instead of the run crashing or the row vanishing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from sahel_pipeline.core.actors import read_inter, ucdp_side_type, unrecognised_inter
from sahel_pipeline.core.reference import UCDP_VIOLENCE_TYPES, acled_country_name, country_from_file_name
from sahel_pipeline.core.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    CONTENT_COLUMNS,
    QUARANTINE_SCHEMA,
    RAW_TEXT_COLUMNS,
    empty_quarantine,
)


class SourceError(ValueError):
    """A file that cannot be read at all; the message names the file and what was expected of it."""


# Layouts, recognised from lower-cased header names. Order matters: the first layout whose columns are present wins.
ACLED_EVENT_COLUMNS = ("event_date", "event_type", "actor1", "fatalities")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "acled_deletions": ("event_id_cnty", "deleted_timestamp"),
    "ucdp_replacements": ("id", "replaced_by", "replaced_at"),
    "ucdp_ged": ("id", "date_start", "side_a", "side_b", "type_of_violence"),
    "acled": ("event_id_cnty", *ACLED_EVENT_COLUMNS, "actor2"),
    "acled_monadic": ("event_id_cnty", *ACLED_EVENT_COLUMNS),
    "acled_extract": ACLED_EVENT_COLUMNS,
}
UCDP_DEATHS = {"best", "best_est"}
# Every column name an ACLED or UCDP file is known to have: an error message names these and no other header text.
KNOWN_COLUMNS = frozenset(
    {c for columns in LAYOUTS.values() for c in columns}
    | {
        "year", "time_precision", "disorder_type", "sub_event_type", "assoc_actor_1", "inter1", "assoc_actor_2",
        "inter2", "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
        "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes", "tags", "timestamp",
        "relid", "active_year", "code_status", "conflict_dset_id", "conflict_new_id", "conflict_name",
        "dyad_dset_id", "dyad_new_id", "dyad_name", "side_a_dset_id", "side_a_new_id", "side_b_dset_id",
        "side_b_new_id", "number_of_sources", "source_article", "source_office", "source_date", "source_headline",
        "source_original", "where_prec", "where_coordinates", "where_description", "adm_1", "adm_2", "geom_wkt",
        "priogrid_gid", "country_id", "event_clarity", "date_prec", "date_end", "deaths_a", "deaths_b",
        "deaths_civilians", "deaths_unknown", "high", "low", "gwnoa", "gwnob", *UCDP_DEATHS,
    }
)
LAYOUT_DESCRIPTIONS = {
    "acled": "an ACLED export",
    "acled_monadic": "an ACLED monadic export (one row per actor)",
    "acled_extract": "an ACLED extract without event ids",
    "ucdp_ged": "a UCDP GED file (and a deaths column: best or best_est)",
    "acled_deletions": "an ACLED deletions file",
    "ucdp_replacements": "a UCDP replacements file (written by `sahel fetch ucdp`)",
}
# Files that remove events rather than add them: layout -> (id column, timestamp column, id prefix, what a row is).
REMOVAL_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "acled_deletions": ("event_id_cnty", "deleted_timestamp", "ACLED:", "deletion"),
    "ucdp_replacements": ("id", "replaced_at", "UCDP:", "replacement"),
}

ACLED_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%d-%m-%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%B-%Y")
UCDP_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y")
# Formats that read the same text as different dates: never fall back from one to the other.
_AMBIGUOUS_TWINS = {"%d/%m/%Y": "%m/%d/%Y", "%m/%d/%Y": "%d/%m/%Y"}
_TIME_OF_DAY = r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$"
_ADMIN_SUFFIX = r"(?i)\s+(region|province|prefecture|department|governorate|state|district)$"


@dataclass
class RawTable:
    """A CSV's records as text, before any meaning is given to them."""

    header: list[str]
    frame: pl.DataFrame  # one String column per header name, plus source_row
    bad_rows: pl.DataFrame  # records that do not have the header's number of fields, as quarantine rows
    notes: list[str] = field(default_factory=list)
    layout: str = "empty"  # recognised from the header (detect_layout)


@dataclass
class SourceFile:
    """One file read and normalised: canonical events, deletions, and the rows it could not take."""

    path: str
    layout: str
    rows: int  # data records in the file
    events: pl.DataFrame  # canonical columns plus raw text of parsed columns
    deletions: pl.DataFrame  # event_id, deleted_at (only for deletions files)
    quarantine: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def read_source_file(path: str | Path, display_name: str | None = None) -> SourceFile:
    """Read, recognise and normalise one CSV. Raises SourceError when the file has no usable layout."""
    path = Path(path)
    name = display_name or path.name
    raw = read_csv_text(path, name)
    if not raw.header:
        return _empty_source(name, "empty", raw.notes)
    layout = raw.layout
    columns = {h.lower(): h for h in raw.header}
    frame = raw.frame.rename({orig: low for low, orig in columns.items() if orig != low})
    if frame.height == 0:
        raw.notes.append("header only: no data rows")
    if layout in REMOVAL_LAYOUTS:
        deletions, quarantine = normalise_deletions(frame, name, layout)
        return SourceFile(
            name,
            layout,
            raw.frame.height + raw.bad_rows.height,
            empty_events(),
            deletions,
            pl.concat([raw.bad_rows, quarantine]),
            raw.notes,
        )
    if layout == "ucdp_ged":
        events = normalise_ucdp(frame, name, raw.notes)
    else:
        events = normalise_acled(frame, name, layout, raw.notes)
    collapse = collapse_actor_rows if layout == "acled_monadic" else resolve_duplicate_ids
    events, conflicts, duplicate_notes = collapse(events)
    raw.notes.extend(duplicate_notes)
    return SourceFile(
        name,
        layout,
        raw.frame.height + raw.bad_rows.height,
        events,
        _empty_deletions(),
        pl.concat([raw.bad_rows, conflicts]),
        raw.notes,
    )


# --- reading text -------------------------------------------------------------------------------------------------


def read_csv_text(path: Path, name: str) -> RawTable:
    """Every record of a CSV as text. Records with the wrong number of fields become quarantine rows, not errors."""
    notes: list[str] = []
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(b"\xef\xbb\xbf"):
        notes.append("UTF-8 byte-order mark removed")
        head = head[3:]
    if not head.strip():
        notes.append("empty file: no header and no rows")
        return RawTable([], pl.DataFrame(), empty_quarantine(), notes)
    header_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header_text = header_line.decode("utf-8")
    except UnicodeDecodeError:
        header_text = header_line.decode("latin-1")
    header = [h.strip() for h in next(csv.reader([header_text]))]
    lower = [h.lower() for h in header]
    if len(set(lower)) != len(header):
        repeated = sorted({h for h in lower if lower.count(h) > 1})
        known = [h for h in repeated if h in KNOWN_COLUMNS]  # only names a layout uses: the rest may be private text
        raise SourceError(
            f"{name}: the header repeats {len(repeated)} column name(s)" + (f": {', '.join(known)}" if known else "")
        )
    # Recognised from the header before any record is parsed: a file that is not an export (a link to some private
    # file) is refused on its column names alone, and nothing of its content reaches a message or the quarantine.
    layout = detect_layout(header, name)

    source: str | io.BytesIO = str(path)
    try:
        table, bad = _read_records(source, header)
    except pa.ArrowInvalid as err:
        if "UTF8" not in str(err):
            raise SourceError(f"{name}: cannot be parsed as CSV ({_without_content(err)})") from err
        source, encoding = _reencode(path.read_bytes())
        notes.append(f"not UTF-8 ({str(err).split(':')[0]}): decoded as {encoding}")
        table, bad = _read_records(source, header)
    extra = _uniform_trailing_extra(bad, len(header), table.num_rows)
    if extra:
        # UCDP GED downloads end every data row with a separator the header lacks: an empty, nameless field.
        padded = header + [f"_unnamed_{i}" for i in range(extra)]
        table, bad = _read_records(source, padded)
        unnamed = cast(pl.DataFrame, pl.from_arrow(table.select(padded[len(header) :])))
        if unnamed.select(pl.any_horizontal(pl.all().is_not_null()).any()).item():
            raise SourceError(
                f"{name}: every row has {len(padded)} fields but the header names {len(header)}, and the extra "
                f"fields are not empty, so the columns cannot be matched to the header"
            )
        table = table.drop_columns(padded[len(header) :])
        notes.append(f"every row ends with {extra} empty field(s) the header does not name: ignored")
    frame = pl.from_arrow(table)
    del table  # the Polars copy is all that is kept: two copies of a large file would double the peak memory
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(source_row=_good_row_numbers(frame.height, bad))
    return RawTable(header, frame, _bad_record_quarantine(bad, header, name), notes, layout)


def _reencode(data: bytes) -> tuple[io.BytesIO, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return io.BytesIO(data.decode("cp1252").encode("utf-8")), "Windows-1252"
    except UnicodeDecodeError:
        return io.BytesIO(data.decode("latin-1").encode("utf-8")), "Latin-1"


def _read_records(source: str | io.BytesIO, names: list[str]) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
    """Parse records with pyarrow; the ones with a wrong field count are returned apart with their record number.

    The first pass assumes no line break inside a quoted value, which lets pyarrow split the file into blocks on
    both cores at twice the speed. A quoted line break that falls on a block boundary shows up as rows with the wrong
    number of fields; then the file is parsed again allowing line breaks in values, and once more on one thread if
    rows are still wrong, because only then does pyarrow know their record numbers.
    """

    block_size = DEFAULT_BLOCK_SIZE

    def parse(use_threads: bool, newlines_in_values: bool) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
        nonlocal block_size
        while True:
            try:
                return parse_blocks(use_threads, newlines_in_values)
            except pa.ArrowInvalid as err:
                # A value longer than a block (a notes field of megabytes) cannot be split across blocks: larger
                # blocks then, as large as the file if need be.
                if "straddl" not in str(err) or block_size >= min(MAX_BLOCK_SIZE, _size(source)):
                    raise
                block_size = min(block_size * 4, MAX_BLOCK_SIZE)

    def parse_blocks(
        use_threads: bool, newlines_in_values: bool
    ) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
        bad: list[tuple[int | None, int, str]] = []

        def keep_aside(row: pacsv.InvalidRow) -> str:
            bad.append((row.number, row.actual_columns, row.text))
            return "skip"

        if isinstance(source, io.BytesIO):
            source.seek(0)
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, use_threads=use_threads, block_size=block_size
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=newlines_in_values, invalid_row_handler=keep_aside),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.large_string() for n in names},
                strings_can_be_null=True,  # an empty field is a missing value
                quoted_strings_can_be_null=True,
            ),
        )
        return table, bad

    table, bad = parse(use_threads=True, newlines_in_values=False)
    if bad:
        table, bad = parse(use_threads=True, newlines_in_values=True)
    if bad:
        table, bad = parse(use_threads=False, newlines_in_values=True)
    return table, bad


DEFAULT_BLOCK_SIZE = 1 << 20  # pyarrow's: a value longer than this needs larger blocks (_read_records)
MAX_BLOCK_SIZE = 1 << 30  # pyarrow's block size is a 32-bit count


def _size(source: str | io.BytesIO) -> int:
    return source.getbuffer().nbytes if isinstance(source, io.BytesIO) else Path(source).stat().st_size


def _without_content(err: Exception) -> str:
    """pyarrow's parse error without the record it quotes (the file's content stays out of messages)."""
    return re.sub(r"(got \d+)\s*:.*$", r"\1", str(err).strip().splitlines()[0])[:200]


def _uniform_trailing_extra(bad: list[tuple[int | None, int, str]], n_header: int, n_good: int) -> int:
    if not bad or n_good:
        return 0
    extras = {actual - n_header for _, actual, _ in bad}
    return extras.pop() if len(extras) == 1 and next(iter(extras)) > 0 else 0


def _good_row_numbers(n_good: int, bad: list[tuple[int | None, int, str]]) -> pl.Series:
    # Record numbers count the header as row 1; rows set aside leave gaps in the numbering of the good ones.
    skipped = np.array(sorted(number for number, _, _ in bad if number is not None), dtype=np.int64)
    numbers = np.arange(2, n_good + len(skipped) + 2, dtype=np.int64)
    return pl.Series("source_row", np.setdiff1d(numbers, skipped, assume_unique=True)[:n_good])


def _bad_record_quarantine(bad: list[tuple[int | None, int, str]], header: list[str], name: str) -> pl.DataFrame:
    rows = []
    for number, actual, text in bad:
        n = len(header)
        if actual < n:
            column = header[actual] if actual >= 0 else header[0]
            reason = (
                f"row has {actual} fields, the header has {n}: it stops before column '{column}' "
                "(truncated line or missing separator)"
            )
        else:
            column = f"(after {header[-1]})"
            reason = f"row has {actual} fields, the header has {n}: {actual - n} unexpected extra field(s)"
        rows.append(
            {
                "source_file": name,
                "source_row": number,
                "event_id": None,
                "column": column,
                "value": text[:500],
                "reason": reason,
                "record": json.dumps({"raw_line": text}, ensure_ascii=False),
            }
        )
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA) if rows else empty_quarantine()


# --- layouts -------------------------------------------------------------------------------------------------------


def detect_layout(header: list[str], name: str) -> str:
    """The layout whose columns the header has (LAYOUTS, in order). Otherwise a SourceError that names the file and
    only the columns it recognises (the header of a file that is not an export may be private text): that the
    delimiter seems to be another one, or which columns the nearest layout lacks, or what each layout expects."""
    lower = {h.lower() for h in header}
    for layout, required in LAYOUTS.items():
        if set(required) <= lower and (layout != "ucdp_ged" or lower & UCDP_DEATHS):
            return layout
    raise SourceError(f"{name}: {_why_unrecognised(header)}")


def _why_unrecognised(header: list[str]) -> str:
    lower = [h.lower() for h in header]
    joined = ",".join(lower)
    for separator, said in ((";", "`;`"), ("\t", "a tab"), ("|", "`|`")):
        parts = [p.strip().strip('"') for p in joined.split(separator)]
        if len(parts) >= 3 and sum(p in KNOWN_COLUMNS for p in parts) >= 3:
            return (
                f"the delimiter seems to be {said}, not a comma (its header splits on it into known columns): "
                "save it as a comma-separated CSV"
            )
    wanted = {layout: [*required, *(["best"] if layout == "ucdp_ged" else [])] for layout, required in LAYOUTS.items()}
    present = {layout: [c for c in columns if c in lower or (c == "best" and set(lower) & UCDP_DEATHS)]
               for layout, columns in wanted.items()}
    nearest = max(LAYOUTS, key=lambda layout: len(present[layout]))  # ties: the first in LAYOUTS
    missing = [c for c in wanted[nearest] if c not in present[nearest]]
    if len(present[nearest]) >= 2 and len(missing) <= 2:
        named = ", ".join(f"`{c}`" + (" (or `best_est`)" if c == "best" else "") for c in missing)
        return f"it looks like {LAYOUT_DESCRIPTIONS[nearest]} but is missing column{'s' * (len(missing) > 1)} {named}"
    known = [h for h in header if h.lower() in KNOWN_COLUMNS]
    others = len(header) - len(known)
    found = ", ".join(known) if known else "none"
    expected = "; ".join(f"{LAYOUT_DESCRIPTIONS[k]}: {', '.join(v)}" for k, v in LAYOUTS.items())
    return (
        f"unrecognised layout. Columns recognised: {found}"
        + (f" (and {others} other column{'s' * (others > 1)}, not shown)" if others else "")
        + f". Expected one of -- {expected}"
    )


def normalise_acled(frame: pl.DataFrame, name: str, layout: str, notes: list[str]) -> pl.DataFrame:
    """ACLED export, monadic export or id-less extract -> canonical columns."""
    present = set(frame.columns)
    text = _text_reader(frame, notes)
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
        latitude=_to_float(text("latitude")),
        longitude=_to_float(text("longitude")),
        geo_precision=_to_small_int(text("geo_precision")),
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
        fatalities=_to_whole_number(text("fatalities")),
        notes=text("notes"),
        revision=text("timestamp"),
        source_file=pl.lit(name),
        source_row=pl.col("source_row"),
        **{raw: text(col) for col, raw in RAW_TEXT_COLUMNS.items()},
    )
    events = events.with_columns(
        parse_dates(events["_raw_event_date"], ACLED_DATE_FORMATS), revision=to_unix_seconds(events["revision"])
    )
    _note_unread_values(frame, events, notes, {c: c for c in ("inter1", "inter2", "geo_precision")})
    if layout == "acled_extract":
        events = events.with_columns(event_id=derive_event_ids(events))
    return events


def normalise_ucdp(frame: pl.DataFrame, name: str, notes: list[str]) -> pl.DataFrame:
    """UCDP GED -> canonical columns: sides become actors, type_of_violence becomes ACLED's event types."""
    deaths = "best" if "best" in frame.columns else "best_est"
    violence = pl.col("type_of_violence").str.strip_chars()
    countries = frame["country"].drop_nulls().unique()
    country_map = {c: acled_country_name(c) for c in countries}
    text = _text_reader(frame, notes)

    events = frame.select(
        event_id=pl.lit("UCDP:") + pl.col("id").str.strip_chars(),
        event_id_derived=pl.lit(False),
        source=pl.lit("UCDP"),
        event_date=pl.lit(None, pl.Date),  # parsed below, from the raw text
        country=pl.col("country").str.strip_chars().replace(country_map),
        admin1=text("adm_1").str.replace(_ADMIN_SUFFIX, ""),
        admin2=text("adm_2").str.replace(_ADMIN_SUFFIX, ""),
        location=text("where_coordinates"),
        latitude=_to_float(text("latitude")),
        longitude=_to_float(text("longitude")),
        geo_precision=_to_small_int(text("where_prec")),
        disorder_type=pl.lit("Political violence"),
        event_type=violence.replace_strict({k: v[0] for k, v in UCDP_VIOLENCE_TYPES.items()}, default=None),
        sub_event_type=violence.replace_strict({k: v[1] for k, v in UCDP_VIOLENCE_TYPES.items()}, default=None),
        actor1=text("side_a"),
        assoc_actor_1=pl.lit(None, pl.String),
        actor2=text("side_b"),
        assoc_actor_2=pl.lit(None, pl.String),
        # sides name governments in UCDP's spelling of the country, which is compared before it is mapped to ACLED's
        inter1=ucdp_side_type(text("side_a"), pl.col("country").str.strip_chars(), pl.lit(False)),
        inter2=ucdp_side_type(text("side_b"), pl.col("country").str.strip_chars(), (violence == "3").fill_null(False)),
        civilian_targeting=(violence == "3").fill_null(False),
        fatalities=_to_whole_number(text(deaths)),
        notes=text("source_headline"),
        revision=pl.lit(None, pl.Int64),
        source_file=pl.lit(name),
        source_row=pl.col("source_row"),
        _raw_event_date=text("date_start"),
        _raw_fatalities=text(deaths),
        _raw_latitude=text("latitude"),
        _raw_longitude=text("longitude"),
    )
    _note_unread_values(frame, events, notes, {"where_prec": "geo_precision"})
    return events.with_columns(parse_dates(events["_raw_event_date"], UCDP_DATE_FORMATS))


def normalise_deletions(
    frame: pl.DataFrame, name: str, layout: str = "acled_deletions"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """ACLED deletions or UCDP replacements -> (event_id, deleted_at); rows without a usable id or
    timestamp are quarantined."""
    id_column, time_column, prefix, kind = REMOVAL_LAYOUTS[layout]
    parsed = frame.select(
        event_id=pl.lit(prefix) + pl.col(id_column).str.strip_chars(),
        deleted_at=pl.col(time_column).str.strip_chars(),
        source_row=pl.col("source_row"),
        _raw=pl.col(time_column),
    )
    parsed = parsed.with_columns(deleted_at=to_unix_seconds(parsed["deleted_at"]))
    bad = parsed.filter(pl.col("event_id").is_null() | pl.col("deleted_at").is_null())
    quarantine = bad.select(
        source_file=pl.lit(name),
        source_row=pl.col("source_row"),
        event_id=pl.col("event_id"),
        column=pl.when(pl.col("event_id").is_null()).then(pl.lit(id_column)).otherwise(pl.lit(time_column)),
        value=pl.col("_raw"),
        reason=pl.when(pl.col("event_id").is_null())
        .then(pl.lit(f"{kind} without an event id"))
        .otherwise(pl.lit(f"{time_column} is not a Unix time or a date")),
        record=pl.struct(pl.col("event_id"), pl.col("_raw").alias(time_column)).struct.json_encode(),
    )
    good = parsed.filter(pl.col("event_id").is_not_null() & pl.col("deleted_at").is_not_null())
    return good.select("event_id", "deleted_at", "source_row").with_columns(source_file=pl.lit(name)), quarantine


# --- values --------------------------------------------------------------------------------------------------------


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


def _text_reader(frame: pl.DataFrame, notes: list[str]) -> Callable[[str], pl.Expr]:
    """Column by name, stripped of surrounding blanks when it has any (checking costs a quarter of stripping at
    millions of rows), which the file's notes record; a null column when the file lacks it. Free text (notes) is not
    checked: it is most of a file's bytes and nothing is matched on it."""
    checked = [c for c in frame.columns if frame.schema[c] == pl.String and c not in _FREE_TEXT]
    padded_flags = (
        frame.select(
            [
                (
                    pl.col(c).str.starts_with(" ")
                    | pl.col(c).str.ends_with(" ")
                    | pl.col(c).str.contains("\t", literal=True)
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


def _disorder_from_event_type(event_type: pl.Expr) -> pl.Expr:
    return (
        pl.when(event_type.is_in(["Protests", "Riots"]))
        .then(pl.lit("Demonstrations"))
        .when(event_type == "Strategic developments")
        .then(pl.lit("Strategic developments"))
        .when(event_type.is_not_null())
        .then(pl.lit("Political violence"))
    )


def _to_small_int(raw: pl.Expr) -> pl.Expr:
    """A precision code (1-7) as given; text that is not one is null, and counted in the file's notes."""
    return raw.str.strip_chars().cast(pl.Int8, strict=False)


def _note_unread_values(frame: pl.DataFrame, events: pl.DataFrame, notes: list[str], read: dict[str, str]) -> None:
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


def _to_float(raw: pl.Expr) -> pl.Expr:
    return raw.cast(pl.Float64, strict=False)


def _to_whole_number(raw: pl.Expr) -> pl.Expr:
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


# --- duplicates within one file ------------------------------------------------------------------------------------

_ACTOR_COLUMNS = ("actor1", "assoc_actor_1", "actor2", "assoc_actor_2", "inter1", "inter2", "civilian_targeting")


def collapse_actor_rows(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Monadic exports list an event once per actor: the first row's actor is actor1, the next ones actor2 and beyond.

    Rows of one event must agree on everything but the actor; when they do not, all of them are quarantined.
    """
    without_id = events.filter(pl.col("event_id").is_null())  # quarantined by validation, not merged here
    events = events.filter(pl.col("event_id").is_not_null())
    shared = [c for c in CONTENT_COLUMNS if c not in _ACTOR_COLUMNS] + ["revision"]
    per_event = events.group_by("event_id", maintain_order=True).agg(
        pl.struct(shared).n_unique().alias("_versions"),
        pl.len().alias("_rows"),
    )
    conflicting = per_event.filter(pl.col("_versions") > 1)
    bad = events.join(conflicting.select("event_id"), on="event_id", how="semi")
    good = events.join(conflicting.select("event_id"), on="event_id", how="anti")
    others = [c for c in good.columns if c not in _ACTOR_COLUMNS and c != "event_id"]
    actors, assocs = pl.col("_actors"), pl.col("_assocs")
    collapsed = (
        good.group_by("event_id", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in others],
            _actors=pl.col("actor1"),
            _assocs=pl.col("assoc_actor_1"),
            _inters=pl.col("inter1"),
        )
        .with_columns(
            actor1=actors.list.get(0),
            assoc_actor_1=assocs.list.get(0),
            actor2=actors.list.get(1, null_on_oob=True),
            # each row's inter1 is its own actor's type: the second row's is actor2's
            inter1=pl.col("_inters").list.get(0),
            inter2=pl.col("_inters").list.get(1, null_on_oob=True),
            assoc_actor_2=pl.concat_list(assocs.list.slice(1, 1), actors.list.slice(2), assocs.list.slice(2))
            .list.drop_nulls()
            .list.join("; "),
        )
        .with_columns(assoc_actor_2=pl.when(pl.col("assoc_actor_2") != "").then(pl.col("assoc_actor_2")))
        .with_columns(
            civilian_targeting=(pl.col("event_type") == "Violence against civilians")
            | pl.col("actor2").str.starts_with("Civilians").fill_null(False),
        )
        .select(good.columns)
    )
    notes = [f"monadic export: {good.height} actor rows collapsed into {collapsed.height} events"]
    if bad.height:
        notes.append(f"{bad.height} rows of {conflicting.height} events disagree on more than the actor: quarantined")
    collapsed = pl.concat([collapsed, without_id])
    return collapsed, _conflict_quarantine(bad, "its rows disagree on more than the actor"), notes


def resolve_duplicate_ids(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """One id twice in one file: exact repeats collapse, a newer revision wins, a same-revision conflict is
    quarantined."""
    without_id = events.filter(pl.col("event_id").is_null())  # quarantined by validation, not merged here
    events = events.filter(pl.col("event_id").is_not_null())
    if events["event_id"].n_unique() == events.height:
        return pl.concat([events, without_id]), empty_quarantine(), []
    content_hash = pl.struct(CONTENT_COLUMNS).hash()
    ranked = events.with_columns(
        _newest=pl.col("revision").fill_null(-1) == pl.col("revision").fill_null(-1).max().over("event_id"),
        _hash=content_hash,
    )
    newest = ranked.filter(pl.col("_newest"))
    versions = newest.group_by("event_id").agg(pl.col("_hash").n_unique().alias("_versions"))
    conflicting = versions.filter(pl.col("_versions") > 1).select("event_id")
    bad = newest.join(conflicting, on="event_id", how="semi").drop("_newest", "_hash")
    kept = (
        newest.join(conflicting, on="event_id", how="anti")
        .unique("event_id", keep="first", maintain_order=True)
        .drop("_newest", "_hash")
    )
    notes = []
    if superseded := events.height - newest.height:
        notes.append(f"{superseded} older revisions of events re-published in the same file: superseded")
    if repeats := newest.height - bad.height - kept.height:
        notes.append(f"{repeats} exact repeats of a row: counted once")
    if bad.height:
        notes.append(f"{bad.height} rows share an event id and revision but differ: quarantined")
    return (
        pl.concat([kept, without_id]),
        _conflict_quarantine(bad, "same event id and revision, different content"),
        notes,
    )


def _conflict_quarantine(bad: pl.DataFrame, why: str) -> pl.DataFrame:
    if bad.height == 0:
        return empty_quarantine()
    return bad.select(
        source_file=pl.col("source_file"),
        source_row=pl.col("source_row"),
        event_id=pl.col("event_id"),
        column=pl.lit("event_id"),
        value=pl.col("event_id"),
        reason=pl.format("event id appears {} times in this file: {}", pl.len().over("event_id"), pl.lit(why)),
        record=record_json(bad),
    )


def record_json(events: pl.DataFrame) -> pl.Expr:
    """The row as JSON, with the raw text of parsed columns, so nothing of a quarantined row is lost."""
    keep = [c for c in CANONICAL_COLUMNS if c not in ("source_file", "source_row") and c in events.columns]
    keep += [c for c in RAW_TEXT_COLUMNS.values() if c in events.columns]
    return pl.struct([pl.col(c).cast(pl.String) for c in keep]).struct.json_encode()


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema={**CANONICAL_SCHEMA, **{raw: pl.String() for raw in RAW_TEXT_COLUMNS.values()}})


def _empty_deletions() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"event_id": pl.String(), "deleted_at": pl.Int64(), "source_row": pl.Int64(), "source_file": pl.String()}
    )


def _empty_source(name: str, layout: str, notes: list[str]) -> SourceFile:
    return SourceFile(name, layout, 0, empty_events(), _empty_deletions(), empty_quarantine(), notes)
