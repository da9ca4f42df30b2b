"""CSV text: every record of a file as text, with the records of the wrong shape set aside as quarantine rows."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from sahel_pipeline.core.schema import (
    QUARANTINE_SCHEMA,
    empty_quarantine,
)
from sahel_pipeline.core.sources.layouts import KNOWN_COLUMNS, SourceError, detect_layout


@dataclass
class RawTable:
    """A CSV's records as text, before any meaning is given to them."""

    header: list[str]
    frame: pl.DataFrame  # one String column per header name, plus source_row
    bad_rows: pl.DataFrame  # records that do not have the header's number of fields, as quarantine rows
    notes: list[str] = field(default_factory=list)
    layout: str = "empty"  # recognised from the header (detect_layout)


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

    regular = _regular_records(path, header)
    if regular is not None:
        numbered = regular.with_columns(source_row=_good_row_numbers(regular.height, []))
        return RawTable(header, numbered, empty_quarantine(), notes, layout)
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


def _regular_records(path: Path, names: list[str]) -> pl.DataFrame | None:
    """Every record as text, by Polars' own reader, when the file is regular: valid UTF-8, no record with more fields
    than the header (Polars refuses those) and none with fewer (Polars fills them with nulls, so a file whose last
    column holds an empty value anywhere is read again by `_read_records`, which finds short records). Otherwise None.

    Polars' reader makes the frame itself: on the benchmark's 1.15 GB export, 2.0 s (user 2.2, system 1.5) against
    2.6-2.9 s (user 3.1-3.7, system 1.9-2.0) for pyarrow's parse and its conversion to Polars' string views. The
    values are pyarrow's: the same missing-value texts, quoted or not, are null.
    """
    try:
        frame = pl.read_csv(
            path,
            has_header=False,
            skip_rows=1,
            schema={name: pl.String() for name in names},
            null_values=MISSING_VALUE_TEXTS,
            infer_schema=False,
        )
    except pl.exceptions.PolarsError:
        return None
    return frame if frame[names[-1]].null_count() == 0 else None


# The texts pyarrow reads as missing in a column that can be null (its defaults, which `_read_records` keeps): both
# readers give a file the same missing values.
MISSING_VALUE_TEXTS: list[str] = pacsv.ConvertOptions().null_values


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

    def parse_blocks(use_threads: bool, newlines_in_values: bool) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
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
            memory_pool=parsing_pool(),
        )
        return table, bad

    table, bad = parse(use_threads=True, newlines_in_values=False)
    if bad:
        table, bad = parse(use_threads=True, newlines_in_values=True)
    if bad:
        table, bad = parse(use_threads=False, newlines_in_values=True)
    return table, bad


@functools.cache
def parsing_pool() -> pa.MemoryPool:
    """pyarrow's jemalloc pool where the wheel has it, else its default. The default, mimalloc, writes a free list
    into every fresh page it takes, so the kernel zeroes (huge) pages for it as the parse goes: on the benchmark's
    1.15 GB export, 4.6-5.5 s of system time and 8.4-10.0 s of wall for the parse, against 1.8-1.9 s and 5.3-6.3 s
    with jemalloc (interleaved runs; the process's peak 0.12 GiB higher while the parse's buffers are kept)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


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
