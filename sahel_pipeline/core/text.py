"""Data as text in what the pipeline writes: documents, spreadsheets, terminals and plots.

Names and values come from the raw files, and a file can hold anything: HTML and scripts, Markdown syntax, line
breaks, terminal escape sequences, spreadsheet formulas, TeX, text that reverses the direction of what follows it.
The data are kept as written (the canonical table, the JSON and Parquet alerts); each kind of output is made inert
where the data meet it:

* `plain_text`: control characters (line breaks, tabs, NUL, escape sequences) become spaces or go, and the Unicode
  controls that reorder the rest of a line (bidirectional embeddings, overrides and isolates) go. Terminals get this;
  the others start from it.
* `markdown_text`: plain text with every character Markdown (CommonMark, GitHub's tables, strikethrough and maths)
  could read as syntax escaped with a backslash, and the characters that start a block escaped at the start.
* `html_text`: plain text, HTML-escaped (quotes too, for attributes).
* `spreadsheet_safe`: text cells that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab
  or a carriage return) get a leading `'`, as OWASP recommends against CSV injection; numeric columns are untouched,
  so a negative number stays a number.
* `plot_text`: plain text, shortened; the plot sets it with matplotlib's maths parsing off (`$\\alpha$` is shown as
  typed).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line prints through this module and starts without Polars
    import polars as pl

# C0 and C1 controls and DEL; and the bidirectional controls that reorder what follows them (LRE, RLE, PDF, LRO,
# RLO, LRI, RLI, FSI, PDI). Marks (LRM, RLM) and zero-width joiners are kept: scripts such as Persian need them.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACING = re.compile("[\t\n\v\f\r\x85]+")
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_\[\]<>#|~$&{}!])")
_BLOCK_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain_text(value: object, limit: int | None = None) -> str:
    """`value` as one line without control characters; cut to `limit` characters (with an ellipsis) when given."""
    text = _CONTROLS.sub("", _SPACING.sub(" ", "" if value is None else str(value)))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def markdown_text(value: object, limit: int | None = None) -> str:
    """`value` as literal text in Markdown, inline or in a table cell (cut before escaping, so no escape is split)."""
    if isinstance(value, int | float):  # a number holds no syntax: -1.5 stays as written
        return str(value)
    text = _MARKDOWN_SYNTAX.sub(r"\\\1", plain_text(value, limit))
    return _BLOCK_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)


def html_text(value: object) -> str:
    return html.escape(plain_text(value), quote=True)


def terminal_text(value: object, limit: int | None = None) -> str:
    return plain_text(value, limit)


PLOT_TITLE_CHARACTERS = 110  # about the width of a plot's title line


def plot_text(value: object) -> str:
    return plain_text(value, PLOT_TITLE_CHARACTERS)


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every text cell a spreadsheet would evaluate prefixed with `'` (for CSV files)."""
    import polars as pl

    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.String]

    def safe(column: str) -> pl.Expr:
        value = pl.col(column)
        risky = pl.any_horizontal([value.str.starts_with(start) for start in FORMULA_STARTS])
        return pl.when(risky).then(pl.concat_str([pl.lit("'"), value])).otherwise(value).alias(column)

    return frame.with_columns([safe(column) for column in text_columns]) if text_columns else frame
