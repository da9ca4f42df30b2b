"""The month, in each of the forms the pipeline meets it, and the arithmetic between them.

* the **key** 'YYYY-MM': partition keys, file names (alerts/2024-12.csv), the command line, known episodes;
* the **date** of its first day: the `month` column of every panel, score and alert;
* the **index**, months since January 1970: how a series numbers its months (consecutive integers);
* the **label** 'December 2024': what a sentence or a report heading says.

Windows are counted inclusively: the 3-month window ending at December 2024 starts in October 2024.

The models import this module in the fitting worker processes, which never need Polars: the expressions import it
when first built, so that the workers' fork server does not load it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

KEY_FORMAT = "%Y-%m"
_KEY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def is_month_key(text: str) -> bool:
    """'2023-10' is a key; '2023-1', '2023-13' and '2023-10-01' are not."""
    return bool(_KEY.match(text))


def parse_month(key: str) -> dt.date:
    """The first day of a 'YYYY-MM' key."""
    return dt.datetime.strptime(key, KEY_FORMAT).date()


def month_key(month: dt.date) -> str:
    return f"{month:{KEY_FORMAT}}"


def month_label(month: dt.date) -> str:
    return f"{month:%B %Y}"


def month_index(month: dt.date) -> int:
    """Months since January 1970: how series number their months."""
    return (month.year - 1970) * 12 + month.month - 1


def index_month(index: int) -> dt.date:
    """The first day of the month with this index (the inverse of month_index)."""
    return dt.date(1970 + index // 12, index % 12 + 1, 1)


def shift_month(month: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after (negative: before) the month of `month`."""
    return index_month(month_index(month) + months)


def window_start(month: dt.date, months: int) -> dt.date:
    """The first month of the `months`-month window that ends with (and includes) `month`."""
    return shift_month(month, 1 - months)


def month_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month from `first` to `last`, both included (empty when `first` is later)."""
    return [index_month(i) for i in range(month_index(first), month_index(last) + 1)]


def days_in_month(month: dt.date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def month_index_expr(column: str | pl.Expr) -> pl.Expr:
    """month_index of a date column, as an Int64 expression."""
    import polars as pl

    date = pl.col(column) if isinstance(column, str) else column
    return (date.dt.year().cast(pl.Int64) - 1970) * 12 + date.dt.month().cast(pl.Int64) - 1


def index_month_expr(column: str | pl.Expr) -> pl.Expr:
    """index_month of an integer column, as a Date expression."""
    import polars as pl

    index = pl.col(column) if isinstance(column, str) else column
    return pl.date(1970 + index // 12, index % 12 + 1, 1)


def window_start_expr(column: str | pl.Expr, months: int) -> pl.Expr:
    """window_start of a column of first-of-month dates, as a Date expression."""
    import polars as pl

    date = pl.col(column) if isinstance(column, str) else column
    return date.dt.offset_by(f"{1 - months}mo")
