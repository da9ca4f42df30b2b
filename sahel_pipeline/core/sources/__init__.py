"""Source adapters: read one ACLED or UCDP CSV, recognise its layout from the header, normalise it to the canonical
schema.

Reading is strict about the file's shape (every record must have as many fields as the header) and lenient about its
values: a value that does not parse becomes null next to its raw text, so that validation can quarantine the row with
the value that failed instead of the run crashing or the row vanishing.

One module per seam: `csv_text` (records as text), `layouts` (which export a header is), `acled` and `ucdp`
(normalising each source), `removals` (deletions and replacements), `duplicates` (within one file), `values` (text to
values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sahel_pipeline.core.schema import empty_quarantine
from sahel_pipeline.core.sources.acled import normalise_acled
from sahel_pipeline.core.sources.csv_text import read_csv_text
from sahel_pipeline.core.sources.duplicates import collapse_actor_rows, resolve_duplicate_ids
from sahel_pipeline.core.sources.layouts import REMOVAL_LAYOUTS, SourceError
from sahel_pipeline.core.sources.removals import normalise_deletions
from sahel_pipeline.core.sources.ucdp import normalise_ucdp
from sahel_pipeline.core.sources.values import empty_events

__all__ = ["SourceError", "SourceFile", "read_source_file"]


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


def _empty_deletions() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"event_id": pl.String(), "deleted_at": pl.Int64(), "source_row": pl.Int64(), "source_file": pl.String()}
    )


def _empty_source(name: str, layout: str, notes: list[str]) -> SourceFile:
    return SourceFile(name, layout, 0, empty_events(), _empty_deletions(), empty_quarantine(), notes)
