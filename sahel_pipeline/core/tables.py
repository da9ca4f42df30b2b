"""Tables as Markdown and as HTML, for the report, the evaluation's methods page and the Dagster UI's metadata."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from sahel_pipeline.core.text import html_text, markdown_text

Cell = Callable[[object], str]


def plain(value: object) -> str:
    return "" if value is None else str(value)


def markdown_table(frame: pl.DataFrame, cell: Cell = plain, max_rows: int | None = None) -> str:
    """A Markdown table; with max_rows, the rows left out are counted under it.

    Text (names from the raw files) is escaped by `text.markdown_text`; numbers, formatted by `cell`, hold no syntax.
    """
    if frame.height == 0:
        return "_(none)_"
    shown = frame if max_rows is None else frame.head(max_rows)
    lines = ["| " + " | ".join(markdown_text(c) for c in shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(_markdown_cell(cell, v) for v in row) + " |" for row in shown.iter_rows()]
    if frame.height > shown.height:
        lines.append(f"\n_{frame.height - shown.height:,} more rows_")
    return "\n".join(lines)


def _markdown_cell(cell: Cell, value: object) -> str:
    return cell(value) if isinstance(value, int | float) else markdown_text(cell(value))


def html_table(frame: pl.DataFrame, cell: Cell = plain) -> str:
    if frame.height == 0:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{html_text(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(cell(v))}</td>" for v in row) + "</tr>" for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
