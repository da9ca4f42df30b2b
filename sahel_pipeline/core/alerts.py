"""Escalation alerts: the alert rule applied to model scores, one alert per group (or country) and month, and one
plain sentence per alert.

The rule (thresholds in `ModelConfig`), three tests of each series, every one needing the month itself to reach the
indicator's minimum count (5 events, 10 fatalities):

* `month`: the month's count against the series' recent level as it stood before the recent window
  (`detection.judge_last`): P(count >= observed) below 0.5% (the count is above the 99.5% bound);
* `window`: the last three months' total against that level, below 0.25%, with events in at least two of the months
  (one month's burst is the first test's business) and the month at or above its expected count (a rise that is
  already ebbing is not flagged again);
* `break`: in the twelve months after a dated break (a configured coup, a new regime period of the state forces),
  the months since it against the twelve before it, below 0.25% (`models._break_ratio`).

One point per test passed, one more per test passed at 0.1%. Severity is low (1 point), medium (2) or high (3 or
more, and a Benjamini-Hochberg q-value below `high_q` among the month's series: with thousands of series, a 0.1%
month alone is expected by chance several times a month). An alert is **continuing** when one of the two previous
months also exceeded its bound, else **new**. A group's (or country's) indicators that pass a test in the same month
are one alert, the strongest's, with the others listed (`indicators`).

A zero or near-zero baseline is judged by the model's probability and the minimum count, not by a percentage change:
0 -> 1 is never an alert, 0 -> 8 can be.

A group **new in a country** (no event there in the 12 months before it appeared, as ACLED's Emerging Actor Tracker
counts) has no baseline to compare with: while its first month is in the recent window it is judged by one rule
only, a `new_actor` alert once it has the minimum number of events there ("first seen in Niger in March 2024: 6
events, 23 fatalities, in Tillaberi"), never by a rate ratio against nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl

from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_index, month_key, month_label, window_start, window_start_expr
from sahel_pipeline.core.panels import INDICATOR_LABELS, UNKNOWN_ADMIN1
from sahel_pipeline.core.scoring import SCORE_SCHEMA
from sahel_pipeline.core.series import SERIES_KEY, long_admin1
from sahel_pipeline.core.storage import written_aside
from sahel_pipeline.core.text import spreadsheet_safe

# a rise of a series against its model; a group new in a country; a group closing in on a place (core/spatial.py);
# a group entering admin2 areas new to it or spreading out
ALERT_KINDS = ("count", "new_actor", "approach", "new_ground")
SPATIAL_KINDS = ("approach", "new_ground")
TREND_INDICATOR = "distance_to_place"  # an `approach` alert by the distance trend (its `place` names the place)
ALERT_COLUMNS = [
    "month", "kind", "source", "country", "group", "group_name", "group_type", "indicator", "indicators", "place",
    "observed", "expected", "upper", "p_value", "q_value", "rate_ratio", "rate_ratio_low", "rate_ratio_high",
    "severity", "status", "rules", "severity_reason", "explanation", "synthetic",
]
ALERT_SCHEMA: dict[str, pl.DataType] = {
    "month": pl.String(), "kind": pl.String(), "source": pl.String(), "country": pl.String(), "group": pl.String(),
    "group_name": pl.String(), "group_type": pl.String(), "indicator": pl.String(), "indicators": pl.String(),
    "place": pl.String(), "observed": pl.Int64(), "expected": pl.Float64(), "upper": pl.Int64(),
    "p_value": pl.Float64(), "q_value": pl.Float64(), "rate_ratio": pl.Float64(), "rate_ratio_low": pl.Float64(),
    "rate_ratio_high": pl.Float64(), "severity": pl.String(), "status": pl.String(), "rules": pl.String(),
    "severity_reason": pl.String(), "explanation": pl.String(), "synthetic": pl.Boolean(),
}
# one alert per group (or country) and month, and per place for an `approach` alert (core/spatial.py)
ALERT_UNIT = ["month", "kind", "source", "country", "group", "place"]
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


RULES = ("month", "window", "break")  # the rules, as the `rules` column names them
BREAK_COLUMNS = {name: dtype for name, dtype in SCORE_SCHEMA.items() if name.startswith("break_")}
RULE_COLUMNS: dict[str, pl.DataType] = {
    "alert": pl.Boolean(), "severity": pl.String(), "status": pl.String(), "rules": pl.String(),
    "severity_reason": pl.String(), "break_sentence": pl.String(), "q_value": pl.Float64(),
}


def apply_alert_rule(scores: pl.DataFrame, config: ModelConfig) -> pl.DataFrame:
    """Scores with the rule's columns (RULE_COLUMNS): `alert`, `severity`, `status`, `rules` (those that fired),
    `severity_reason`, `break_sentence` (the months since a break against those before it, when the country had one)
    and `q_value` (the series' Benjamini-Hochberg q-value among the month's scored series). Series that were not
    modelled never alert."""
    if "p_value" not in scores.columns:
        return scores.with_columns(pl.lit(False).alias("alert")).with_columns(
            pl.lit(None, dtype).alias(name) for name, dtype in RULE_COLUMNS.items() if name != "alert"
        )
    # the break columns typed (a frame of rows without any break has them as nulls)
    scores = scores.with_columns(
        (pl.col(name).cast(dtype) if name in scores.columns else pl.lit(None, dtype)).alias(name)
        for name, dtype in BREAK_COLUMNS.items()
    )
    min_count = pl.col("indicator").replace_strict(config.min_counts, default=5)
    # every rule needs the month itself to reach the indicator's minimum count
    enough_now = pl.col("observed") >= min_count
    window_holds = (pl.col("recent_active_months") >= 2) & (pl.col("observed") >= pl.col("expected"))
    tests = {"month": pl.col("p_value"), "window": pl.col("window_p_value"), "break": pl.col("break_p_value")}
    levels = {"month": config.alert_p, "window": config.sustained_p, "break": config.break_p}
    conditions = {"month": enough_now, "window": enough_now & window_holds, "break": enough_now}
    fired = {r: (conditions[r] & (tests[r] < levels[r])).fill_null(False) for r in RULES}
    strong = {r: (fired[r] & (tests[r] < config.strong_p)).fill_null(False) for r in RULES}
    # one point per rule that fired, one more where it fired at strong_p
    points = pl.sum_horizontal(*(fired[r].cast(pl.Int8) + strong[r].cast(pl.Int8) for r in RULES))
    alert = pl.any_horizontal(*fired.values())
    high = (points >= 3) & (pl.col("q_value") < config.high_q)
    severity = (
        pl.when(~alert).then(pl.lit(None, pl.String))
        .when(high).then(pl.lit("high"))
        .when(points >= 2).then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    window = f"the last {_words(config.recent_months)} months' total"
    wording = {
        "month": (f"the month above its {percent(1 - config.strong_p)} bound",
                  f"the month above its {percent(config.bound_quantile)} bound"),
        "window": (f"{window} at p < {config.strong_p:g}", f"{window} at p < {config.sustained_p:g}"),
        "break": (f"the months since the break at p < {config.strong_p:g}",
                  f"the months since the break at p < {config.break_p:g}"),
    }
    said = [pl.when(strong[r]).then(pl.lit(wording[r][0])).when(fired[r]).then(pl.lit(wording[r][1])) for r in RULES]
    # Below 0.001 the figure says nothing more to a reader, and its shortest decimal can be 1.0999999999999997e-128.
    q_text = (
        pl.when(pl.col("q_value") < 0.001).then(pl.lit("< 0.001"))
        .otherwise(pl.col("q_value").round_sig_figs(2).cast(pl.String))
    )
    caveat = (
        pl.when((points >= 3) & ~high)
        .then(pl.format("; q-value {} among the month's series, not high (high needs {})", q_text,
                        pl.lit(f"< {config.high_q:g}")))
        .otherwise(pl.format("; q-value {} among the month's series", q_text))
    )
    return (
        scores.with_columns(q_value=benjamini_hochberg(scores))
        .with_columns(
            alert=alert,
            severity=severity,
            status=pl.when(~alert)
            .then(pl.lit(None, pl.String))
            .when(pl.col("previous_exceedances") > 0)
            .then(pl.lit("continuing"))
            .otherwise(pl.lit("new")),
            rules=pl.when(alert).then(
                pl.concat_list(pl.when(fired[r]).then(pl.lit(r)) for r in RULES).list.drop_nulls().list.join(", ")
            ),
            severity_reason=pl.when(alert).then(
                pl.format("{}: {}{}", severity, pl.concat_list(said).list.drop_nulls().list.join(", "), caveat)
            ),
            break_sentence=_break_sentence(),
        )
    )


def chance_alerts(ruled: pl.DataFrame, config: ModelConfig) -> tuple[int, int, float]:
    """(series judged, series that crossed a rule, how many would cross one by chance): the rules' nominal levels
    summed over the series each judged (a union bound: alert_p + sustained_p is 0.006 a month, 0.072 per
    series-year; the evaluation's stable series alerted 0.086 times per series-year, the tests' discreteness and the
    level's uncertainty beyond it)."""
    if "p_value" not in ruled.columns:
        return 0, 0, 0.0
    judged = ruled.filter(pl.col("p_value").is_not_null())
    with_break = judged.filter(pl.col("break_p_value").is_not_null()).height if "break_p_value" in judged.columns else 0
    chance = judged.height * (config.alert_p + config.sustained_p) + with_break * config.break_p
    return judged.height, judged.filter(pl.col("alert")).height, chance


def benjamini_hochberg(scores: pl.DataFrame) -> pl.Series:
    """Each series' Benjamini-Hochberg q-value among the scores of its month (all of them when there is no month
    column): of its rules' p-values the smallest, times the number of rules it was judged by (Bonferroni within the
    series), then adjusted across the month's series. NaN for series not judged."""
    tests = [c for c in ("p_value", "window_p_value", "break_p_value") if c in scores.columns]
    p = scores.select(
        pl.min_horizontal(tests) * pl.sum_horizontal(pl.col(c).is_not_null() for c in tests)
    ).to_series().fill_null(np.nan).to_numpy().astype(float)
    months = scores["month"].to_numpy() if "month" in scores.columns else np.zeros(len(p))
    q = np.full(len(p), np.nan)
    for month in np.unique(months):
        rows = np.flatnonzero((months == month) & np.isfinite(p))
        if rows.size:
            order = rows[np.argsort(p[rows], kind="stable")]
            raw = np.minimum(p[order] * rows.size / np.arange(1, rows.size + 1), 1.0)
            q[order] = np.minimum.accumulate(raw[::-1])[::-1]
    return pl.Series("q_value", q)


def _break_sentence() -> pl.Expr:
    """'since the July 2023 coup: 2.4x [1.7-3.3] the rate of the 12 months before', for series whose country had a
    break the break rule still judges (at most `break_before_months` old: its p-value given); null otherwise. A
    ratio over years since an old break says nothing about this month's rise ("since January 2016: 16x" on a
    February 2019 alert)."""
    ratio = pl.col("break_rate_ratio")
    dated = pl.when(pl.col("break_label").str.contains(pl.col("break_month").dt.strftime("%B %Y"), literal=True)).then(
        pl.col("break_label")
    ).otherwise(pl.format("{} ({})", pl.col("break_label"), pl.col("break_month").dt.strftime("%B %Y")))
    judged = pl.col("break_p_value").is_not_null()
    return pl.when(pl.col("break_label").is_not_null() & judged & ratio.is_not_null() & ratio.is_finite()).then(
        pl.format("since {}: {}x [{}-{}] the rate of the {} months before", dated, _ratio_expr(ratio),
                  _ratio_expr(pl.col("break_low")), _ratio_expr(pl.col("break_high")), pl.col("break_before"))
    )


def _ratio_expr(value: pl.Expr) -> pl.Expr:
    """ratio_text as an expression: two significant figures below 1, one decimal below 10, none above."""
    return (
        pl.when(~value.is_finite()).then(pl.lit("inf"))
        .when(value < 1).then(value.round_sig_figs(2).cast(pl.String))
        .when(value < 10).then(value.round(1).cast(pl.String))
        .otherwise(value.round(0).cast(pl.Int64).cast(pl.String))
    )


def admin1_rise(rows: pl.DataFrame, by: list[str], recent: pl.Expr, config: ModelConfig) -> pl.DataFrame:
    """Per admin1 unit (and `by`): its count over the recent window, what the baseline rate gives over as many
    months, and the rise, their difference. `rows` are long admin1 counts over the baseline and recent windows, and
    `recent` marks those of the recent window.

    The alert sentence ("Most of the rise is in ...") and the report's table of where the rise is both come from
    here, so that they name the same units with the same rise.
    """
    return (
        rows.group_by(*by, "admin1")
        .agg(
            recent=pl.col("count").filter(recent).sum(),
            at_baseline_rate=pl.col("count").filter(~recent).sum() * config.recent_months / config.baseline_months,
        )
        .with_columns(rise=pl.col("recent") - pl.col("at_baseline_rate"))
    )


def rise_locations(alerts: pl.DataFrame, admin1: pl.DataFrame, config: ModelConfig, top: int = 3) -> pl.DataFrame:
    """Admin1 units that hold most of each alert's rise (admin1_rise), as "Tillaberi (+7), Dosso (+2)".

    Units are taken by largest rise until they hold half of the total positive rise (at most `top`).
    """
    keys = [*SERIES_KEY, "month"]
    if alerts.height == 0:
        return pl.DataFrame(schema={**{k: alerts.schema[k] for k in keys}, "where": pl.String()})
    months = (
        alerts.select(keys)
        .unique()
        .with_columns(
            recent_start=window_start_expr("month", config.recent_months),
            baseline_start=window_start_expr("month", config.window_months),
        )
    )
    long = long_admin1(admin1).rename({"month": "admin1_month"})
    joined = months.join(long, on=SERIES_KEY, nulls_equal=True).filter(
        pl.col("admin1_month").is_between(pl.col("baseline_start"), pl.col("month"))
    )
    per_unit = (
        admin1_rise(joined, keys, pl.col("admin1_month") >= pl.col("recent_start"), config)
        .filter(pl.col("rise") > 0)
        # ties in rise go by name, so that the same data always name the same units in the same order
        .sort(*keys, "rise", "admin1", descending=[False] * len(keys) + [True, False], nulls_last=True)
        .with_columns(
            share_before=(pl.col("rise").cum_sum() - pl.col("rise")).over(keys) / pl.col("rise").sum().over(keys),
            rank=pl.int_range(pl.len()).over(keys),
        )
        .filter((pl.col("share_before") < 0.5) & (pl.col("rank") < top))
    )
    return per_unit.group_by(keys).agg(
        where=pl.format("{} (+{})", pl.col("admin1"), pl.col("rise").round(0).cast(pl.Int64)).str.join(", ")
    )


def alert_table(
    scores: pl.DataFrame,
    admin1: pl.DataFrame,
    config: ModelConfig,
    newcomers: pl.DataFrame | None = None,
    spatial: pl.DataFrame | None = None,
    synthetic: bool = False,
) -> pl.DataFrame:
    """The analysts' table: one row per alert, columns in ALERT_COLUMNS order, most severe first. `synthetic` marks
    every row when any input file was synthetic, so that an alert copied out of the table still says so.

    `newcomers` (from `new_actors`) are the groups new in a country this month: they get a `new_actor` alert once
    they have enough events, and no count alert (their baseline is empty by definition). `spatial` holds the month's
    `approach` and `new_ground` alerts (spatial.spatial_alerts: ALERT_SCHEMA without `synthetic`), ranked with the
    others.
    """
    return ruled_alert_table(apply_alert_rule(scores, config), admin1, config, newcomers, spatial, synthetic)


def ruled_alert_table(
    ruled: pl.DataFrame,
    admin1: pl.DataFrame,
    config: ModelConfig,
    newcomers: pl.DataFrame | None = None,
    spatial: pl.DataFrame | None = None,
    synthetic: bool = False,
) -> pl.DataFrame:
    """`alert_table` of scores the rule was applied to (`apply_alert_rule`), for a caller that needs the ruled scores
    too (the report): the rule is applied once."""
    alerts = ruled.filter(pl.col("alert"))
    if newcomers is not None and newcomers.height and alerts.height:
        alerts = alerts.join(newcomers.select(NEWCOMER_KEYS), on=NEWCOMER_KEYS, how="anti")
    rows = []
    if alerts.height:
        alerts = alerts.join(
            rise_locations(alerts, admin1, config),
            on=[*SERIES_KEY, "month"],
            how="left",
            nulls_equal=True,
        )
        rows += [
            {
                "month": month_key(row["month"]),
                "kind": "count",
                "source": row["source"],
                "country": row["country"],
                "group": row["group_id"] or "",
                "group_name": row["group_name"] or "",
                "group_type": row.get("group_type") or "",
                "indicator": row["indicator"],
                "indicators": row["indicator"],
                "place": "",
                "observed": row["observed"],
                "expected": round(row["expected"], 2),
                "upper": row["upper"],
                "p_value": row["p_value"],
                "q_value": row["q_value"],
                "rate_ratio": finite_or_none(row["rate_ratio"]),
                "rate_ratio_low": finite_or_none(row["rate_ratio_low"]),
                "rate_ratio_high": finite_or_none(row["rate_ratio_high"]),
                "severity": row["severity"],
                "status": row["status"],
                "rules": row["rules"],
                "severity_reason": row["severity_reason"],
                "explanation": explain(row, config),
                "synthetic": synthetic,
            }
            for row in alerts.iter_rows(named=True)
        ]
    if newcomers is not None:
        rows += [
            new_actor_alert(row, config) | {"synthetic": synthetic}
            for row in newcomers.filter(pl.col("qualifies")).iter_rows(named=True)
        ]
    if spatial is not None:
        rows += [row | {"synthetic": synthetic} for row in spatial.iter_rows(named=True)]
    if not rows:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    return one_per_unit(pl.DataFrame(rows, schema=ALERT_SCHEMA))


def one_per_unit(rows: pl.DataFrame) -> pl.DataFrame:
    """One alert per group (or country) and month: the strongest indicator's (most severe, then smallest q-value),
    with the unit's alerted indicators listed strongest first in `indicators` and named in its sentence. Most severe
    alerts first; ties in a fixed order (same input, same file)."""
    ranked = rows.with_columns(_order=pl.col("severity").replace_strict(SEVERITY_ORDER, return_dtype=pl.Int8)).sort(
        "_order", "q_value", "p_value", "indicator", nulls_last=True
    )
    labels = pl.col("indicator").replace_strict(INDICATOR_LABELS, default=pl.col("indicator").str.replace_all("_", " "))
    units = ranked.group_by(ALERT_UNIT, maintain_order=True).agg(
        pl.all().exclude("indicators").first(),
        indicators=pl.col("indicator").str.join(", "),
        _others=labels.slice(1).str.join(", "),
    )
    also = pl.when(pl.col("_others") != "").then(pl.format(" The rise shows too in {}.", "_others")).otherwise(
        pl.lit("")
    )
    return (
        units.with_columns(explanation=pl.concat_str("explanation", also))
        .sort(
            "_order", "q_value", "p_value", "source", "country", "group", "kind", "indicator", "place", nulls_last=True
        )
        .select(ALERT_COLUMNS)
    )


def write_alert_files(
    alerts: pl.DataFrame, folder: Path, key: str, data: dict[str, str | None], synthetic: bool
) -> dict[str, Path]:
    """alerts/<key>.csv, .json and .parquet; a month without alerts still gets its files (header only), so that
    silence is visible. The JSON file says which data the alerts were computed on (`data`: vintage, input digest) and
    `synthetic` at its top, where a month without alerts can say it too. The three replace the earlier ones together,
    or not at all. The CSV's text cells are made safe for spreadsheets (text.spreadsheet_safe); the JSON and Parquet
    files keep the values as they are."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / f"{key}.csv", "json": folder / f"{key}.json", "parquet": folder / f"{key}.parquet"}
    document = {"month": key, **data, "synthetic": synthetic, "columns": ALERT_COLUMNS, "alerts": alerts.to_dicts()}
    with written_aside() as aside:
        spreadsheet_safe(alerts).write_csv(aside(paths["csv"]))
        alerts.write_parquet(aside(paths["parquet"]))
        aside(paths["json"]).write_text(
            json.dumps(document, indent=1, ensure_ascii=False, default=str), encoding="utf-8"
        )
    return paths


NEWCOMER_KEYS = ["source", "group_id", "country"]
NEWCOMER_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "group_id": pl.String(),
    "country": pl.String(),
    "group_name": pl.String(),
    "group_type": pl.String(),
    "month": pl.Date(),
    "first_month": pl.Date(),
    "observed": pl.Int64(),
    "events_since": pl.Int64(),
    "fatalities_since": pl.Int64(),
    "events_before_month": pl.Int64(),
    "previously_seen": pl.Date(),
    "qualifies": pl.Boolean(),
    "where": pl.String(),
}


def new_actors(
    group_panel: pl.LazyFrame | pl.DataFrame, admin1: pl.DataFrame, month: dt.date, config: ModelConfig
) -> pl.DataFrame:
    """Groups of an alerted type new in a country at `month`: their first month with events lies in the recent window,
    the `new_actor_quiet_months` before it hold no event and are covered by the data (a country whose data begin then
    has no newcomers yet). `qualifies` for an alert when it has the minimum number of events since and some in the
    month: a newcomer that fell silent is not alerted again."""
    quiet, keys = config.new_actor_quiet_months, NEWCOMER_KEYS
    recent_start = window_start(month, config.recent_months)
    panel = group_panel.lazy().filter(pl.col("group_type").is_in(list(config.alerted_types)), pl.col("month") <= month)
    window = (
        panel.filter(pl.col("month") >= window_start(month, config.recent_months + quiet))
        .select(*keys, "group_name", "group_type", "month", "events", "fatalities")
        .collect()
    )
    appeared = (
        window.filter(pl.col("month") >= recent_start, pl.col("events") > 0)
        .group_by(keys)
        .agg(first_month=pl.col("month").min())
    )
    if appeared.height == 0:
        return pl.DataFrame(schema=NEWCOMER_SCHEMA)
    quiet_months = (pl.col("month") < pl.col("first_month")) & (
        pl.col("month") >= pl.col("first_month").dt.offset_by(f"-{quiet}mo")
    )
    since = pl.col("month") >= pl.col("first_month")
    newcomers = (
        window.join(appeared, on=keys)
        .group_by(keys)
        .agg(
            pl.col("group_name", "group_type", "first_month").first(),
            _quiet_events=pl.col("events").filter(quiet_months).sum(),
            _quiet_months=quiet_months.sum(),
            observed=pl.col("events").filter(pl.col("month") == month).sum().cast(pl.Int64),
            events_since=pl.col("events").filter(since).sum().cast(pl.Int64),
            fatalities_since=pl.col("fatalities").filter(since).sum().cast(pl.Int64),
        )
        .filter(pl.col("_quiet_events") == 0, pl.col("_quiet_months") == quiet)
        .drop("_quiet_events", "_quiet_months")
    )
    if newcomers.height == 0:
        return pl.DataFrame(schema=NEWCOMER_SCHEMA)
    seen_before = (
        panel.join(newcomers.lazy().select(*keys, "first_month"), on=keys)
        .filter(pl.col("month") < pl.col("first_month"), pl.col("events") > 0)
        .group_by(keys)
        .agg(previously_seen=pl.col("month").max())
        .collect()
    )
    places = (
        admin1.filter(pl.col("level") == "group", pl.col("admin1") != UNKNOWN_ADMIN1)
        .join(newcomers.select(*keys, "first_month"), on=keys)
        .filter(pl.col("month").is_between(pl.col("first_month"), month))
    )
    where = (
        places.group_by(*keys, "admin1")
        .agg(pl.col("events").sum())
        .sort("events", "admin1", descending=[True, False])
        .group_by(keys, maintain_order=True)
        .agg(where=pl.format("{} ({})", "admin1", "events").head(3).str.join(", "))
    )
    return (
        newcomers.join(seen_before, on=keys, how="left")
        .join(where, on=keys, how="left")
        .with_columns(
            month=pl.lit(month),
            events_before_month=pl.col("events_since") - pl.col("observed"),
            qualifies=(pl.col("events_since") >= config.new_actor_min_events) & (pl.col("observed") > 0),
        )
        .select(list(NEWCOMER_SCHEMA))
        .sort(keys)
    )


def new_actor_alert(row: dict, config: ModelConfig) -> dict:
    """The alert row of a group new in a country: `high` once it has three times the minimum number of events, else
    `medium`; `continuing` when it already had the minimum before this month."""
    minimum = config.new_actor_min_events
    high = row["events_since"] >= 3 * minimum
    severity = "high" if high else "medium"
    reason = f"high needs {3 * minimum}" if not high else f"at least {3 * minimum}, three times the minimum"
    return {
        "month": month_key(row["month"]),
        "kind": "new_actor",
        "source": row["source"],
        "country": row["country"],
        "group": row["group_id"],
        "group_name": row["group_name"] or row["group_id"],
        "group_type": row["group_type"],
        "indicator": "events",
        "indicators": "events",
        "place": "",
        "observed": row["observed"],
        "expected": None,
        "upper": None,
        "p_value": None,
        "q_value": None,
        "rate_ratio": None,
        "rate_ratio_low": None,
        "rate_ratio_high": None,
        "severity": severity,
        "status": "continuing" if row["events_before_month"] >= minimum else "new",
        "rules": "new_actor",
        "severity_reason": f"{severity}: {row['events_since']} events since first seen ({reason})",
        "explanation": explain_new_actor(row),
    }


def explain_new_actor(row: dict) -> str:
    """'JNIM (ACLED): first seen in Niger in March 2024: 6 events, 23 fatalities; in Tillaberi (4), Dosso (2).'"""
    first, month = row["first_month"], row["month"]
    if row["previously_seen"] is None:
        head = f"first seen in {row['country']} in {month_label(first)}"
    else:
        gap = month_index(first) - month_index(row["previously_seen"]) - 1
        head = f"back in {row['country']} in {month_label(first)} after {gap} months without an event there"
    text = (
        f"{row['group_name'] or row['group_id']} ({row['source']}): {head}: {_counted(row['events_since'], 'event')}, "
    )
    text += f"{_counted(row['fatalities_since'], 'fatality', 'fatalities')}"
    if first != month:
        text += f" since, {row['observed']} of the events in {month_label(month)}"
    if row.get("where"):
        text += f"; in {row['where']}"
    return text + "."


def _counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def alert_subject(kind: str | None, indicator: str, place: str | None = None) -> str:
    """What an alert is about, for headings and titles: its indicator, that the group is new in the country, that
    it is closing in on a place, or that it is on new ground."""
    if kind == "new_actor":
        return "new in the country"
    if kind == "approach":
        return f"closing in on {place}"
    if kind == "new_ground":
        return "new ground"
    return INDICATOR_LABELS.get(indicator, indicator.replace("_", " "))


def spatial_reasons(kind: str, indicator: str, place: str, severity: str) -> tuple[tuple[str, ...], str]:
    """The rule a spatial alert (core/spatial.py) fired, as the `rules` column names it, and why it has its
    severity, in words (the `severity_reason` column)."""
    if kind == "approach" and indicator == TREND_INDICATOR:
        rule, words = "distance_trend", (
            f"its events' median distance to {place} shrank (Theil-Sen slope and a one-sided Mann-Kendall test); "
            "a distance trend is a slow signal, never high on its own"
        )
    elif kind == "approach":
        radius = indicator.removeprefix("events_")
        rule, words = "ring", (
            f"more events within {radius} of {place} than the ring's series expects and a larger share of the "
            "group's located events there than in its baseline; scored as the count rule scores the ring's series"
        )
    elif indicator == "admin2_entered":
        rule, words = "new_areas", (
            "events in admin2 areas new to the group, more than in any month of the year before; medium when its "
            "events' spread grew beyond its usual range as well, else low"
        )
    else:
        rule, words = "spread", "its events' spread (standard distance) grew beyond its usual range; alone, low"
    return (rule,), f"{severity}: {words}."


def explain(row: dict, config: ModelConfig) -> str:
    """One sentence an analyst can paste into a brief."""
    who = f"{row['group_name']} in {row['country']}" if row.get("group_id") else row["country"]
    label = INDICATOR_LABELS.get(row["indicator"], row["indicator"].replace("_", " "))
    month = row["month"]
    days = row.get("days_covered")
    when = f"the first {days} days of {month_label(month)}" if row.get("partial") else month_label(month)
    text = (
        f"{who} ({row['source']}): {row['observed']} {label} in {when} against {count_text(row['expected'])} expected "
        f"({percent(config.bound_quantile)} bound {row['upper']})"
    )
    window = f"the last {_words(config.recent_months)} months"
    if row["rate_ratio_method"] == "exact":  # a near-empty baseline: the counts say it, a ratio would not
        months = row.get("baseline_months") or config.baseline_months  # shorter for a series with a short history
        before = row.get("baseline_sum") or "none"
        text += f"; {window} hold {row['recent_sum']} {label} against {before} in the {months} months before."
    else:
        text += (
            f"; {window} run at {ratio_text(row['rate_ratio'])}x [{ratio_text(row['rate_ratio_low'])}-"
            f"{ratio_text(row['rate_ratio_high'])}] the baseline rate."
        )
    if row.get("break_sentence"):
        text += f" {row['break_sentence'][0].upper()}{row['break_sentence'][1:]}."
    if row.get("where"):
        months = _words(config.recent_months)
        text += f" Most of the rise is in {row['where']}, against the baseline rate over those {months} months."
    return text


def percent(q: float) -> str:
    """0.995 as "99.5%", 0.99 as "99%"."""
    return f"{q * 100:g}%"


def finite_or_none(value: float | None) -> float | None:
    """An infinite rate ratio (an empty baseline) as no value: the alert files hold numbers, not inf."""
    return value if value is not None and math.isfinite(value) else None


def ratio_text(value: float) -> str:
    """Rate ratios as a reader says them: 2.9, 0.45, 38, 1200 (two significant figures below 1, none above 10)."""
    if not math.isfinite(value):
        return "inf"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def count_text(value: float) -> str:
    """Expected and mean counts as a reader says them: 38, 2.4, 0.03, "< 0.001", 0. Below 0.1 one significant
    figure, so that one event in a 36-month baseline reads 0.03 a month, not 0.0."""
    if value == 0:
        return "0"
    if value < 0.001:
        return "< 0.001"
    if value < 0.1:
        return f"{value:.1g}"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _words(n: int) -> str:
    return {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(n, str(n))
