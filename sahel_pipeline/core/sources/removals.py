"""Files that remove events (ACLED deletions, UCDP replacements) -> (event_id, deleted_at).
"""

from __future__ import annotations

import polars as pl

from sahel_pipeline.core.sources.layouts import REMOVAL_LAYOUTS
from sahel_pipeline.core.sources.values import to_unix_seconds


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
