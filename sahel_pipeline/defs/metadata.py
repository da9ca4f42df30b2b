"""Metadata that reads well in the Dagster UI: small Markdown tables, previews and table schemas."""

import dagster as dg
import polars as pl

from sahel_pipeline.core import tables


def markdown_table(frame: pl.DataFrame, max_rows: int = 25) -> str:
    return tables.markdown_table(frame, _cell, max_rows)


def table_preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, max_rows=rows))


def _cell(value: object) -> str:
    """A value's text in a cell, never cut (an alert sentence ends with its numbers); tables.markdown_table makes it
    literal (text.markdown_text)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def column_schema(schema: pl.Schema) -> dg.TableSchema:
    """The `dagster/column_schema` of a stored table: the UI's Columns tab."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()])
