"""Metadata that reads well in the Dagster UI: small Markdown tables, previews and table schemas."""

import dagster as dg
import polars as pl


def markdown_table(frame: pl.DataFrame, max_rows: int = 25) -> str:
    if frame.height == 0:
        return "_(none)_"
    shown = frame.head(max_rows)
    cells = [[_cell(v) for v in row] for row in shown.iter_rows()]
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows:,} more rows_")
    return "\n".join(lines)


def table_preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, max_rows=rows))


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")  # never cut: an alert sentence ends with its numbers


def column_schema(schema: pl.Schema) -> dg.TableSchema:
    """The `dagster/column_schema` of a stored table: the UI's Columns tab."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()])
