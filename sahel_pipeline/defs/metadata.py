"""Metadata that reads well in the Dagster UI: small Markdown tables and previews."""

import dagster as dg
import polars as pl

from sahel_pipeline.core.text import markdown_text


def markdown_table(frame: pl.DataFrame, max_rows: int = 25) -> str:
    if frame.height == 0:
        return "_(none)_"
    shown = frame.head(max_rows)
    cells = [[_cell(v) for v in row] for row in shown.iter_rows()]
    lines = ["| " + " | ".join(_cell(c) for c in shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows:,} more rows_")
    return "\n".join(lines)


def table_preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, max_rows=rows))


def _cell(value: object) -> str:
    """A value as literal text in a cell (data can hold Markdown, HTML, line breaks: text.markdown_text)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return markdown_text(value, limit=80)
