"""The alert rule (severity, status) and the sentences analysts read."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from sahel_pipeline.core.alerts import apply_alert_rule, explain
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_range, window_start

CONFIG = ModelConfig()
BASE = {
    "indicator": "events", "observed": 20, "expected": 6.0, "upper": 14, "p_value": 0.5, "recent_sum": 40,
    "recent_active_months": 3, "rate_ratio": 1.0, "rate_ratio_low": 0.7, "rate_ratio_high": 1.4,
    "previous_exceedances": 0,
}


def rule(**changes) -> dict:
    return apply_alert_rule(pl.DataFrame([{**BASE, **changes}]), CONFIG).row(0, named=True)


@pytest.mark.parametrize(
    "changes, alert, severity",
    [
        ({}, False, None),
        ({"p_value": 0.005}, True, "low"),  # above the 99% bound
        ({"p_value": 0.0005}, True, "medium"),  # and above the 99.9% bound
        ({"rate_ratio_low": 1.6}, True, "low"),  # sustained rise only
        ({"p_value": 0.005, "rate_ratio_low": 1.6}, True, "medium"),
        ({"p_value": 0.0005, "rate_ratio_low": 1.6}, True, "high"),
        ({"p_value": 0.0005, "rate_ratio_low": 3.2}, True, "high"),
        ({"p_value": 0.005, "observed": 4}, False, None),  # below the minimum count: 0 -> 1 is not an alert
        ({"rate_ratio_low": 1.6, "recent_active_months": 1}, False, None),  # one month's burst is not sustained
        ({"rate_ratio_low": 1.6, "observed": 5}, False, None),  # the rise is ebbing: this month is below expected
        ({"indicator": "fatalities", "observed": 9, "p_value": 0.001}, False, None),  # fatalities need 10
    ],
)
def test_alert_rule_and_severity(changes, alert, severity):
    row = rule(**changes)
    assert row["alert"] is alert
    assert row["severity"] == severity


def test_status_continues_when_a_previous_month_exceeded_too():
    assert rule(p_value=0.001, previous_exceedances=1)["status"] == "continuing"
    assert rule(p_value=0.001, previous_exceedances=0)["status"] == "new"
    assert rule(previous_exceedances=2)["status"] is None  # no alert, no status


def test_sentence_for_a_group_with_a_break_and_where_the_rise_is():
    row = {
        **BASE, "group_id": "ISSP", "group_name": "Islamic State Sahel Province (ISSP)", "country": "Niger",
        "source": "ACLED", "month": dt.date(2024, 1, 1), "partial": False, "rate_ratio": 2.94, "rate_ratio_low": 1.83,
        "rate_ratio_high": 4.61, "rate_ratio_method": "glm", "break_label": "the July 2023 coup",
        "break_month": dt.date(2023, 7, 1), "break_rate_ratio": 2.9, "break_low": 1.8, "break_high": 4.6,
        "where": "Tillaberi (+27)", "recent_sum": 40,
    }
    assert explain(row, CONFIG) == (
        "Islamic State Sahel Province (ISSP) in Niger (ACLED): 20 events in January 2024 against 6.0 expected "
        "(99% bound 14); the last three months run at 2.9x [1.8-4.6] the baseline rate. Since the July 2023 coup the "
        "rate is 2.9x [1.8-4.6] the rate before. Most of the rise is in Tillaberi (+27), against the baseline rate "
        "over those three months."
    )


def test_sentence_for_a_country_a_partial_month_and_an_empty_baseline():
    row = {
        **BASE, "group_id": None, "group_name": None, "country": "Mali", "source": "UCDP", "indicator": "fatalities",
        "month": dt.date(2024, 3, 1), "partial": True, "days_covered": 14, "observed": 12, "expected": 0.0123,
        "upper": 1, "rate_ratio": math.inf, "rate_ratio_low": 7.3, "rate_ratio_high": math.inf,
        "rate_ratio_method": "exact", "recent_sum": 15,
    }
    assert explain(row, CONFIG) == (
        "Mali (UCDP): 12 fatalities in the first 14 days of March 2024 against 0.01 expected (99% bound 1); the last "
        "three months hold 15 fatalities against none in the 36 months before."
    )
    short_history = {**row, "baseline_months": 20}
    assert explain(short_history, CONFIG).endswith("hold 15 fatalities against none in the 20 months before.")


def test_the_sentence_and_the_report_table_name_the_same_rise():
    """Three units over a 36-month baseline and a 3-month recent window, counted by hand: Tillaberi 1 a month then
    10 a month (30 against 3 at the baseline rate: +27), Dosso 12 then 4 (+3), Tahoua 72 then 2 (-4)."""
    from sahel_pipeline.core.alerts import rise_locations
    from sahel_pipeline.core.report import admin1_table

    month = dt.date(2024, 12, 1)
    months = month_range(window_start(month, 39), month)  # 36 baseline months, then 3 recent
    per_unit = {
        "Tillaberi": [1] * 36 + [10] * 3,
        "Dosso": [1] * 12 + [0] * 24 + [2, 1, 1],
        "Tahoua": [2] * 36 + [1, 0, 1],
    }
    unit = {"source": "ACLED", "level": "group", "group_id": "ISSP", "country": "Niger"}
    admin1 = pl.DataFrame(
        [
            {**unit, "admin1": name, "month": m, "events": n}
            for name, counts in per_unit.items()
            for m, n in zip(months, counts, strict=True)
        ]
    )
    alert = pl.DataFrame([{**unit, "indicator": "events", "month": month}])
    sentence = rise_locations(alert, admin1, CONFIG)["where"].to_list()
    assert sentence == ["Tillaberi (+27)"]  # 27 of the 30 events of positive rise: half is reached with one unit
    long = admin1.unpivot(index=[*unit, "admin1", "month"], variable_name="indicator", value_name="count")
    table = admin1_table(long, month, CONFIG)
    assert table.rows() == [("Tillaberi", 30, 3.0, 27.0), ("Dosso", 4, 1.0, 3.0), ("Tahoua", 2, 6.0, -4.0)]
