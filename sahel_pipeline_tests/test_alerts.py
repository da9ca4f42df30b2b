"""The alert rule (severity, status) and the sentences analysts read."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from sahel_pipeline.core.alerts import (
    ALERT_COLUMNS,
    alert_table,
    apply_alert_rule,
    benjamini_hochberg,
    chance_alerts,
    explain,
    new_actor_alert,
    new_actors,
)
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_range, window_start

CONFIG = ModelConfig()
BASE = {
    "indicator": "events", "observed": 20, "expected": 6.0, "upper": 14, "p_value": 0.5, "recent_sum": 40,
    "recent_active_months": 3, "window_p_value": 0.5, "rate_ratio": 1.0, "rate_ratio_low": 0.7,
    "rate_ratio_high": 1.4, "previous_exceedances": 0,
}


def rule(**changes) -> dict:
    return apply_alert_rule(pl.DataFrame([{**BASE, **changes}]), CONFIG).row(0, named=True)


@pytest.mark.parametrize(
    "changes, alert, severity",
    [
        ({}, False, None),
        ({"p_value": 0.004}, True, "low"),  # above the 99.5% bound
        ({"p_value": 0.006}, False, None),  # above the 99% bound only
        ({"p_value": 0.0005}, True, "medium"),  # and above the 99.9% bound
        ({"window_p_value": 0.0012}, True, "low"),  # sustained rise only
        ({"window_p_value": 0.002}, False, None),  # the window's level is 0.15%, not the month's 0.5%
        ({"window_p_value": 0.0005}, True, "medium"),  # a steep sustained rise
        ({"p_value": 0.004, "window_p_value": 0.0012}, True, "medium"),
        ({"p_value": 0.0005, "window_p_value": 0.0012}, True, "high"),
        ({"p_value": 0.0005, "window_p_value": 0.0005}, True, "high"),
        ({"p_value": 0.004, "observed": 4}, False, None),  # below the minimum count: 0 -> 1 is not an alert
        # whichever rule fires: a sustained rise needs the minimum count in the month too
        ({"window_p_value": 1e-6, "observed": 4, "expected": 2.0}, False, None),
        ({"window_p_value": 0.0012, "recent_active_months": 1}, False, None),  # one month's burst is not sustained
        ({"window_p_value": 0.0012, "observed": 5}, False, None),  # the rise is ebbing: this month is below expected
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
        "break_before": 12, "break_p_value": 0.02, "recent_sum": 40,
    }
    ruled = apply_alert_rule(pl.DataFrame([row], infer_schema_length=None), CONFIG).row(0, named=True)
    assert explain({**ruled, "where": "Tillaberi (+27)"}, CONFIG) == (
        "Islamic State Sahel Province (ISSP) in Niger (ACLED): 20 events in January 2024 against 6.0 expected "
        "(99.5% bound 14); the last three months run at 2.9x [1.8-4.6] the baseline rate. Since the July 2023 coup: "
        "2.9x [1.8-4.6] the rate of the 12 months before. Most of the rise is in Tillaberi (+27), against the baseline "
        "rate over those three months."
    )


def test_sentence_for_a_country_a_partial_month_and_an_empty_baseline():
    row = {
        **BASE, "group_id": None, "group_name": None, "country": "Mali", "source": "UCDP", "indicator": "fatalities",
        "month": dt.date(2024, 3, 1), "partial": True, "days_covered": 14, "observed": 12, "expected": 0.0123,
        "upper": 1, "rate_ratio": math.inf, "rate_ratio_low": 7.3, "rate_ratio_high": math.inf,
        "rate_ratio_method": "exact", "recent_sum": 15,
    }
    assert explain(row, CONFIG) == (
        "Mali (UCDP): 12 fatalities in the first 14 days of March 2024 against 0.01 expected (99.5% bound 1); the last "
        "three months hold 15 fatalities against none in the 36 months before."
    )
    short_history = {**row, "baseline_months": 20}
    assert explain(short_history, CONFIG).endswith("hold 15 fatalities against none in the 20 months before.")


def test_the_sentence_and_the_report_table_name_the_same_rise():
    """Three units over a 36-month baseline and a 3-month recent window, counted by hand: Tillaberi 1 a month then
    10 a month (30 against 3 at the baseline rate: +27), Dosso 12 then 4 (+3), Tahoua 72 then 2 (-4)."""
    from sahel_pipeline.core.alerts import rise_locations
    from sahel_pipeline.core.report.selection import admin1_table

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


# --- groups new in a country ----------------------------------------------------------------------------------------


def group_panel(
    counts: dict[str, list[int]], first: dt.date = dt.date(2022, 1, 1), group_type: str = "rebel group"
) -> pl.DataFrame:
    """Zero-filled monthly events (and twice as many fatalities) of groups in Niger from `first`, the last month
    last."""
    months = pl.date_range(first, first.replace(year=first.year + 5), "1mo", eager=True)
    rows = [
        {
            "source": "ACLED",
            "group_id": group,
            "group_name": f"{group} (name)",
            "group_type": group_type,
            "country": "Niger",
            "month": months[i],
            "events": n,
            "fatalities": 2 * n,
        }
        for group, series in counts.items()
        for i, n in enumerate(series)
    ]
    return pl.DataFrame(rows)


def admin1_of(panel: pl.DataFrame) -> pl.DataFrame:
    return panel.filter(pl.col("events") > 0).select(
        "source", "group_id", "country", "month", "events", level=pl.lit("group"), admin1=pl.lit("Tillaberi")
    )


def newcomers_at(panel: pl.DataFrame, config: ModelConfig = CONFIG) -> pl.DataFrame:
    month = panel["month"].max()
    return new_actors(panel, admin1_of(panel), month, config)


def test_a_group_first_seen_in_a_country_gets_a_new_actor_alert_not_a_rate_ratio():
    panel = group_panel({"NEW": [0] * 20 + [6], "OLD": [1] * 20 + [6], "SMALL": [0] * 20 + [3]})
    newcomers = newcomers_at(panel)
    assert newcomers["group_id"].to_list() == ["NEW", "SMALL"]  # OLD had events in the 12 months before
    alerts = alert_table(pl.DataFrame(), pl.DataFrame(), CONFIG, newcomers)
    assert alerts.select("kind", "group", "observed", "severity", "status").rows() == [
        ("new_actor", "NEW", 6, "medium", "new")
    ]
    row = alerts.row(0, named=True)
    assert row["expected"] is None and row["rate_ratio"] is None and row["p_value"] is None
    assert (
        row["explanation"]
        == "NEW (name) (ACLED): first seen in Niger in September 2023: 6 events, 12 fatalities; in Tillaberi (6)."
    )


def test_a_new_group_is_new_while_its_first_month_is_in_the_recent_window():
    panel = group_panel({"NEW": [0] * 18 + [2, 4, 1]})
    newcomers = newcomers_at(panel)
    assert newcomers.select("first_month", "events_since", "qualifies").row(0) == (dt.date(2023, 7, 1), 7, True)
    row = new_actor_alert(newcomers.row(0, named=True), CONFIG)
    assert row["status"] == "continuing"  # it already had five events the month before
    assert row["explanation"].startswith(
        "NEW (name) (ACLED): first seen in Niger in July 2023: 7 events, 14 fatalities since, 1 of"
    )
    assert newcomers_at(group_panel({"NEW": [0] * 17 + [2, 4, 1, 3]})).height == 0  # its first month left the window
    silent = newcomers_at(group_panel({"NEW": [0] * 18 + [3, 4, 0]}))
    assert silent["qualifies"].to_list() == [False]  # quiet this month: alerted when it was, not again


def test_a_group_back_after_a_year_without_events_is_new_again_and_said_so():
    panel = group_panel({"BACK": [3] * 3 + [0] * 17 + [8]})
    row = new_actor_alert(newcomers_at(panel).row(0, named=True), CONFIG)
    assert "back in Niger in September 2023 after 17 months without an event there: 8 events" in row["explanation"]


def test_a_country_whose_data_begin_recently_has_no_newcomers_and_the_threshold_is_a_setting():
    assert newcomers_at(group_panel({"NEW": [0] * 8 + [9]})).height == 0  # eight months of data: too short to tell
    strict = ModelConfig(new_actor_min_events=10)
    assert newcomers_at(group_panel({"NEW": [0] * 20 + [9]}), strict)["qualifies"].to_list() == [False]
    assert (
        newcomers_at(group_panel({"NEW": [0] * 20 + [9]}, group_type="protesters")).height == 0
    )  # not an alerted type


def test_a_new_groups_count_alerts_give_way_to_its_new_actor_alert():
    scores = pl.DataFrame(
        [
            {
                **BASE,
                "source": "ACLED",
                "level": "group",
                "group_id": "NEW",
                "group_name": "NEW (name)",
                "group_type": "rebel group",
                "country": "Niger",
                "month": dt.date(2023, 9, 1),
                "p_value": 1e-9,
                "expected": 0.01,
                "rate_ratio": math.inf,
                "rate_ratio_method": "exact",
                "partial": False,
            },
        ]
    )
    assert alert_table(scores, pl.DataFrame(schema=ADMIN1_SCHEMA), CONFIG)["kind"].to_list() == ["count"]
    panel = group_panel({"NEW": [0] * 20 + [6]})
    assert alert_table(scores, pl.DataFrame(schema=ADMIN1_SCHEMA), CONFIG, newcomers_at(panel))["kind"].to_list() == [
        "new_actor"
    ]


ADMIN1_SCHEMA = {
    "source": pl.String,
    "level": pl.String,
    "group_id": pl.String,
    "country": pl.String,
    "admin1": pl.String,
    "month": pl.Date,
    "events": pl.Int64,
}


@pytest.mark.parametrize(
    "changes, alert, severity, rules",
    [
        ({"break_p_value": 0.002}, True, "low", "break"),  # the months since a break, at 0.25%
        ({"break_p_value": 0.003}, False, None, None),
        ({"break_p_value": 0.0005, "p_value": 0.004}, True, "high", "month, break"),
        ({"break_p_value": 1e-6, "observed": 4, "expected": 1.0}, False, None, None),  # the minimum count, again
    ],
)
def test_the_break_rule(changes, alert, severity, rules):
    row = rule(**changes)
    assert (row["alert"], row["severity"], row["rules"]) == (alert, severity, rules)


def test_high_needs_a_small_q_value_among_the_months_series():
    # One series at p 0.0005 on two tests is high alone; among 400 series with uniform p-values its q-value is
    # 0.0005 x 2 x 400 = 0.4, and it is medium, saying why.
    rng = np.random.default_rng(1)
    crowd = [{**BASE, "p_value": p, "window_p_value": w} for p, w in rng.uniform(0.01, 1, (399, 2))]
    strong = {**BASE, "p_value": 0.0005, "window_p_value": 0.0005}
    alone = apply_alert_rule(pl.DataFrame([strong]), CONFIG).row(0, named=True)
    among = apply_alert_rule(pl.DataFrame([strong, *crowd]), CONFIG).row(0, named=True)
    assert alone["severity"] == "high" and alone["q_value"] == pytest.approx(0.001)
    assert among["q_value"] == pytest.approx(0.4)
    assert among["severity"] == "medium" and "not high (high needs < 0.05)" in among["severity_reason"]
    assert among["severity_reason"].startswith("medium: the month above its 99.9% bound, the last three months' total")


def test_the_severity_reason_gives_a_tiny_q_value_as_a_reader_reads_it():
    # A month of 179 deaths against an expectation of 0.03 had a q-value of 1.1e-128, whose shortest decimal after
    # rounding to two figures is 1.0999999999999997e-128: what the report printed.
    tiny = apply_alert_rule(pl.DataFrame([{**BASE, "p_value": 1.1e-128, "window_p_value": 1e-130}]), CONFIG)
    assert tiny["severity_reason"][0].endswith("; q-value < 0.001 among the month's series")
    crowd = [{**BASE, "p_value": p} for p in np.linspace(0.02, 1, 29)]
    plain = apply_alert_rule(pl.DataFrame([{**BASE, "p_value": 0.0004}, *crowd]), CONFIG)
    # 0.0004 x 2 tests x 30 series
    assert plain["severity_reason"][0].endswith("; q-value 0.024 among the month's series")


def test_q_values_are_benjamini_hochbergs_within_each_month():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    scores = pl.DataFrame({"p_value": p, "month": [dt.date(2024, 1, 1)] * 5})
    # sorted 0.005, 0.01, 0.03, 0.04, 0.5 -> x5/rank 0.025, 0.025, 0.05, 0.05, 0.5, made monotone from the top
    assert benjamini_hochberg(scores).to_list() == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    two_months = pl.concat([scores, scores.with_columns(month=pl.lit(dt.date(2024, 2, 1)))])
    assert benjamini_hochberg(two_months).to_list() == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5] * 2)
    # stable series: about 5% of q-values below 0.05 would be a failure of the adjustment; none should be
    rng = np.random.default_rng(7)
    null = pl.DataFrame({"p_value": rng.uniform(size=2000)})
    assert (benjamini_hochberg(null).to_numpy() < 0.05).sum() <= 2


def test_one_alert_per_group_and_month_strongest_indicator_first():
    rows = [
        {**BASE, "source": "ACLED", "level": "group", "group_id": "G", "group_name": "G", "country": "Niger",
         "month": dt.date(2024, 1, 1), "partial": False, "rate_ratio_method": "glm", "indicator": indicator,
         "p_value": p}
        for indicator, p in (("events", 0.004), ("fatalities", 1e-6), ("violent_events", 0.0001))
    ]
    scores = pl.DataFrame(rows, infer_schema_length=None)
    admin1 = pl.DataFrame(schema={"source": pl.String, "level": pl.String, "group_id": pl.String,
                                  "country": pl.String, "month": pl.Date, "admin1": pl.String})
    alerts = alert_table(scores, admin1, CONFIG)
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert (row["indicator"], row["indicators"]) == ("fatalities", "fatalities, violent_events, events")
    assert row["rules"] == "month" and row["severity"] == "medium"
    assert row["explanation"].endswith("The rise shows too in violent events, events.")
    assert alerts.columns == ALERT_COLUMNS


def test_the_alerts_expected_by_chance_sum_the_rules_levels_over_the_judged_series():
    judged = [{**BASE, "p_value": 0.5}] * 100 + [{**BASE, "p_value": 0.001}] * 3
    ruled = apply_alert_rule(pl.DataFrame(judged), CONFIG)
    assert chance_alerts(ruled, CONFIG) == (103, 3, pytest.approx(103 * (0.005 + 0.0015)))
