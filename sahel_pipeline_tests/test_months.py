"""The month's forms and the arithmetic between them, against the calendar counted by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from sahel_pipeline.core.months import (
    days_in_month,
    index_month,
    index_month_expr,
    is_month_key,
    month_index,
    month_index_expr,
    month_key,
    month_label,
    month_range,
    parse_month,
    shift_month,
    window_start,
    window_start_expr,
)


def test_the_forms_of_one_month():
    month = parse_month("2023-07")
    assert month == dt.date(2023, 7, 1)
    assert month_key(month) == "2023-07"
    assert month_label(month) == "July 2023"
    assert month_index(dt.date(1970, 1, 1)) == 0
    assert month_index(month) == 53 * 12 + 6  # 53 whole years since 1970, then January to June
    assert index_month(53 * 12 + 6) == month


@pytest.mark.parametrize("text, valid", [("2023-10", True), ("2000-01", True), ("2023-1", False), ("2023-13", False),
                                         ("2023-00", False), ("2023-10-01", False), ("23-10", False)])
def test_month_keys_are_four_digits_dash_two(text, valid):
    assert is_month_key(text) is valid


def test_shifts_and_windows_cross_year_ends():
    assert shift_month(dt.date(2024, 1, 1), -1) == dt.date(2023, 12, 1)
    assert shift_month(dt.date(2023, 11, 1), 3) == dt.date(2024, 2, 1)
    assert shift_month(dt.date(2024, 5, 17), 0) == dt.date(2024, 5, 1)  # any day of the month names the month
    assert window_start(dt.date(2024, 12, 1), 3) == dt.date(2024, 10, 1)  # October, November, December
    assert window_start(dt.date(2024, 2, 1), 39) == dt.date(2020, 12, 1)
    assert window_start(dt.date(2024, 2, 1), 1) == dt.date(2024, 2, 1)


def test_month_range_includes_both_ends():
    assert month_range(dt.date(2023, 11, 1), dt.date(2024, 2, 1)) == [
        dt.date(2023, 11, 1), dt.date(2023, 12, 1), dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    ]
    assert month_range(dt.date(2024, 2, 1), dt.date(2024, 2, 1)) == [dt.date(2024, 2, 1)]
    assert month_range(dt.date(2024, 3, 1), dt.date(2024, 2, 1)) == []


def test_days_in_month_knows_leap_years():
    assert [days_in_month(dt.date(y, 2, 1)) for y in (2023, 2024, 1900, 2000)] == [28, 29, 28, 29]
    assert days_in_month(dt.date(2024, 12, 1)) == 31


def test_the_expressions_agree_with_the_functions():
    months = [dt.date(1997, 1, 1), dt.date(1999, 12, 1), dt.date(2024, 2, 1), dt.date(2024, 12, 1)]
    frame = pl.DataFrame({"month": months})
    indexed = frame.select(index=month_index_expr("month"), back=index_month_expr(month_index_expr("month")),
                           start=window_start_expr("month", 3))
    assert indexed.schema["index"] == pl.Int64 and indexed.schema["back"] == pl.Date
    assert indexed["index"].to_list() == [month_index(m) for m in months]
    assert indexed["back"].to_list() == months
    assert indexed["start"].to_list() == [window_start(m, 3) for m in months]
