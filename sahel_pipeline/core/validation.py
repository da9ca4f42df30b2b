"""Validation of canonical events: row rules that quarantine bad rows, and the Great Expectations suite that guards
the table.

Each rule is written once and used twice. Its Polars form names, for every row, the problem that sends the row to
quarantine (with the file, row number, column, value and reason). Its Great Expectations form is run on the table
that is left, as the structural guard that blocks downstream assets if anything got through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sahel_pipeline.core.imports import import_in_background, wait_for_import
from sahel_pipeline.core.reference import ACLED_COUNTRIES, EVENT_TYPES
from sahel_pipeline.core.schema import CANONICAL_COLUMNS, CANONICAL_SCHEMA, RAW_TEXT_COLUMNS, SOURCES, empty_quarantine
from sahel_pipeline.core.sources.values import record_json
from sahel_pipeline.core.text import markdown_text

if TYPE_CHECKING:
    import great_expectations as gx

FIRST_EVENT_DATE = dt.date(1997, 1, 1)  # ACLED's coverage starts in 1997
GX_DATE_COLUMN = "event_date_yyyymmdd"  # GX checks dates as integers: 5x faster than strftime-format expectations
LOW_CARDINALITY = ("country", "event_type", "source")


@dataclass(frozen=True)
class Rule:
    column: str
    problem: Callable[[dt.date], pl.Expr]  # a reason for rows that break the rule, null for rows that keep it
    expectations: Callable[[dt.date], list[dict[str, Any]]]  # the same rule for GX: expectation type and kwargs


def _raw(column: str) -> pl.Expr:
    return pl.col(RAW_TEXT_COLUMNS[column])


def _coordinate_problem(axis: str, bound: int, today: dt.date) -> pl.Expr:
    return (
        pl.when(pl.col(axis).is_null() & _raw(axis).is_not_null())
        .then(pl.lit(f"{axis} is not a number"))
        .when(pl.col(axis).abs() > bound)
        .then(pl.lit(f"{axis} outside -{bound}..{bound}"))
    )


def _coordinate_expectations(axis: str, bound: int, today: dt.date) -> list[dict[str, Any]]:
    return [{"type": "ExpectColumnValuesToBeBetween", "column": axis, "min_value": -bound, "max_value": bound}]


def _unparsed(column: str, what: str) -> pl.Expr:
    """Reason for a value that was missing or did not parse."""
    return (
        pl.when(pl.col(column).is_null() & _raw(column).is_null())
        .then(pl.lit(f"missing {what}"))
        .when(pl.col(column).is_null())
        .then(pl.lit(f"{what} does not parse"))
    )


def _yyyymmdd(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


RULES: list[Rule] = [
    Rule(
        "event_id",
        lambda today: pl.when(pl.col("event_id").is_null()).then(pl.lit("missing event id")),
        lambda today: [
            {"type": "ExpectColumnValuesToNotBeNull", "column": "event_id"},
            {"type": "ExpectColumnValuesToBeUnique", "column": "event_id"},
        ],
    ),
    Rule(
        "event_date",
        lambda today: pl.coalesce(
            _unparsed("event_date", "date"),
            pl.when(pl.col("event_date") < FIRST_EVENT_DATE).then(pl.lit(f"date before {FIRST_EVENT_DATE}")),
            pl.when(pl.col("event_date") > today).then(pl.lit(f"date in the future (after {today})")),
        ),
        lambda today: [
            {"type": "ExpectColumnValuesToNotBeNull", "column": GX_DATE_COLUMN},
            {
                "type": "ExpectColumnValuesToBeBetween",
                "column": GX_DATE_COLUMN,
                "min_value": _yyyymmdd(FIRST_EVENT_DATE),
                "max_value": _yyyymmdd(today),
            },
        ],
    ),
    Rule(
        "fatalities",
        lambda today: pl.coalesce(
            pl.when(pl.col("fatalities").is_null() & _raw("fatalities").is_not_null()).then(
                pl.lit("fatalities is not a whole number")
            ),
            pl.when(pl.col("fatalities").is_null()).then(pl.lit("missing fatalities")),
            pl.when(pl.col("fatalities") < 0).then(pl.lit("negative fatalities")),
        ),
        lambda today: [
            {"type": "ExpectColumnValuesToNotBeNull", "column": "fatalities"},
            {"type": "ExpectColumnValuesToBeInTypeList", "column": "fatalities", "type_list": ["int64", "Int64"]},
            {"type": "ExpectColumnValuesToBeBetween", "column": "fatalities", "min_value": 0},
        ],
    ),
    Rule(
        "country",
        lambda today: (
            pl.when(pl.col("country").is_null())
            .then(pl.lit("missing country"))
            .when(~pl.col("country").is_in(sorted(ACLED_COUNTRIES)))
            .then(pl.lit("unknown country name"))
        ),
        lambda today: [
            {"type": "ExpectColumnValuesToNotBeNull", "column": "country"},
            {"type": "ExpectColumnValuesToBeInSet", "column": "country", "value_set": sorted(ACLED_COUNTRIES)},
        ],
    ),
    *[
        Rule(axis, partial(_coordinate_problem, axis, bound), partial(_coordinate_expectations, axis, bound))
        for axis, bound in (("latitude", 90), ("longitude", 180))
    ],
    Rule(
        "event_type",
        lambda today: (
            pl.when(pl.col("event_type").is_null())
            .then(pl.lit("missing event type"))
            .when(~pl.col("event_type").is_in(sorted(EVENT_TYPES)))
            .then(pl.lit("event type not in ACLED's taxonomy"))
        ),
        lambda today: [
            {"type": "ExpectColumnValuesToNotBeNull", "column": "event_type"},
            {"type": "ExpectColumnValuesToBeInSet", "column": "event_type", "value_set": sorted(EVENT_TYPES)},
        ],
    ),
    Rule(
        "source",
        lambda today: pl.when(~pl.col("source").is_in(list(SOURCES))).then(pl.lit("unknown source")),
        lambda today: [{"type": "ExpectColumnValuesToBeInSet", "column": "source", "value_set": list(SOURCES)}],
    ),
]


def quarantine_invalid_rows(events: pl.DataFrame, today: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split events into the rows that keep every rule (all their columns kept) and quarantine rows, one per broken
    rule."""
    if events.height == 0:
        return events, empty_quarantine()
    checked = events.with_columns(
        pl.struct(column=pl.lit(rule.column), reason=rule.problem(today)).alias(f"_problem_{i}")
        for i, rule in enumerate(RULES)
    )
    problem_columns = [f"_problem_{i}" for i in range(len(RULES))]
    broken = pl.any_horizontal(pl.col(c).struct.field("reason").is_not_null() for c in problem_columns)
    bad = checked.filter(broken)
    quarantine = (
        bad.with_columns(_record=record_json(bad), _problems=pl.concat_list(problem_columns))
        .explode("_problems")
        .unnest("_problems")
        .filter(pl.col("reason").is_not_null())
    )
    raw_value = pl.coalesce(
        *[pl.when(pl.col("column") == col).then(pl.col(raw)) for col, raw in RAW_TEXT_COLUMNS.items()],
        *[pl.when(pl.col("column") == col).then(pl.col(col).cast(pl.String)) for col in {r.column for r in RULES}],
    )
    quarantine = quarantine.select(
        "source_file", "source_row", "event_id", "column", value=raw_value, reason="reason", record="_record"
    )
    good = checked.filter(~broken).drop(problem_columns)
    return good, quarantine


# --- Great Expectations ---------------------------------------------------------------------------------------------


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str
    success: bool
    unexpected_count: int
    examples: list[Any]


@dataclass
class ValidationSummary:
    success: bool
    rows: int
    outcomes: list[ExpectationOutcome]

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_markdown(self) -> str:
        lines = ["| expectation | column | result | unexpected | examples |", "|---|---|---|---:|---|"]
        for o in self.outcomes:
            examples = ", ".join(markdown_text(e, limit=60) for e in o.examples[:3])  # values from the data
            lines.append(
                f"| {o.expectation} | {markdown_text(o.column)} | {'pass' if o.success else 'FAIL'} | "
                f"{o.unexpected_count} | {examples} |"
            )
        return "\n".join(lines)


def expectation_configs(today: dt.date) -> list[dict[str, Any]]:
    return [config for rule in RULES for config in rule.expectations(today)]


def gx_columns(today: dt.date) -> list[str]:
    """The only columns GX is given: converting the whole table to pandas costs seconds at millions of rows."""
    return sorted({config["column"] for config in expectation_configs(today)})


def validate_with_great_expectations(events: pl.LazyFrame | pl.DataFrame, today: dt.date) -> ValidationSummary:
    """Run the GX suites: the table's columns (on zero rows), then every rule's expectations on the columns they read.

    A LazyFrame is only collected for the columns GX needs.
    """
    wait_for_import("great_expectations")
    import great_expectations as gx

    lazy = events.lazy()
    schema = lazy.collect_schema()
    context = _gx_context()
    schema_suite = _suite(
        context,
        "canonical_events_schema",
        [{"type": "ExpectTableColumnsToMatchSet", "column_set": CANONICAL_COLUMNS, "exact_match": True}],
    )
    batches = [(schema_suite, pl.DataFrame(schema=schema).to_pandas())]
    rows = 0
    if set(CANONICAL_COLUMNS) <= set(schema.names()):  # otherwise the value expectations cannot be evaluated
        date = pl.col("event_date")
        values = (
            lazy.with_columns(
                (
                    date.dt.year().cast(pl.Int64) * 10000
                    + date.dt.month().cast(pl.Int64) * 100
                    + date.dt.day().cast(pl.Int64)
                ).alias(GX_DATE_COLUMN)
            )
            .select(gx_columns(today))
            # GX fingerprints every batch it is given by hashing all of it, and checks uniqueness by hashing again:
            # on millions of text ids that is most of its time. It gets the ids as 64-bit hashes (nulls kept), and
            # columns with few distinct values as categoricals. A hash collision could only fail the check, never
            # pass it; the ids it reports are then looked up in the text.
            .with_columns(
                pl.when(pl.col("event_id").is_not_null()).then(pl.col("event_id").hash(seed=0)).alias("event_id"),
                *(pl.col(c).cast(pl.Categorical) for c in LOW_CARDINALITY),
            )
            .collect()
        )
        rows = values.height
        batches.append((_suite(context, "canonical_events_values", expectation_configs(today)), values.to_pandas()))
    outcomes: list[ExpectationOutcome] = []
    success = True
    for suite, frame in batches:
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite.name, data=_batch_definition(context, suite.name), suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="BASIC")
        success &= bool(result.success)
        outcomes.extend(_outcome(r) for r in result.results)
    for outcome in outcomes:
        if outcome.expectation == "expect_column_values_to_be_unique" and not outcome.success:
            outcome.examples = (
                lazy.filter(pl.col("event_id").is_duplicated())
                .select("event_id")
                .unique()
                .head(20)
                .collect()["event_id"]
                .to_list()
            )
    dtype_problems = _dtype_problems(schema)
    outcomes.extend(
        ExpectationOutcome("polars dtype", column, False, 0, [problem]) for column, problem in dtype_problems.items()
    )
    return ValidationSummary(success and not dtype_problems, rows, outcomes)


def _dtype_problems(schema: pl.Schema) -> dict[str, str]:
    return {
        column: f"{schema[column]} instead of {dtype}"
        for column, dtype in CANONICAL_SCHEMA.items()
        if column in schema and schema[column] != dtype
    }


# Packages Great Expectations imports that other threads use too: Dagster's storage runs SQLAlchemy on the main thread
# while the ingest reads files. Imported before the background import starts, so that the two never meet inside
# SQLAlchemy (about 0.2 s of the main thread, which Great Expectations' import would spend anyway).
GX_SHARED_MODULES = ("sqlalchemy.orm",)


def warm_up_great_expectations() -> None:
    """Import Great Expectations (seconds) while the CSVs are read, so that it is ready when validation starts."""
    import_in_background("great_expectations", shared=GX_SHARED_MODULES)


@cache
def _gx_context() -> gx.data_context.AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("sahel_pipeline")
    return context


def _batch_definition(context: Any, name: str) -> Any:
    source = context.data_sources.get("sahel_pipeline")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
        asset.add_batch_definition_whole_dataframe("whole table")
    return asset.get_batch_definition("whole table")


def _suite(context: Any, name: str, configs: list[dict[str, Any]]) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for config in configs:
        kwargs = {k: v for k, v in config.items() if k != "type"}
        suite.add_expectation(getattr(gxe, config["type"])(**kwargs))
    return context.suites.add_or_update(suite)


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    return ExpectationOutcome(
        expectation=config.type,
        column=config.kwargs.get("column", "(table)"),
        success=bool(result.success),
        unexpected_count=int(details.get("unexpected_count") or 0),
        examples=list(details.get("partial_unexpected_list") or details.get("details", {}).get("mismatched", []) or []),
    )


# --- which files' events passed the suite, and when ---------------------------------------------------------------
# A weekly run reads only new or changed files, so the suite runs on their events; the events of unchanged files
# passed it in an earlier run. The record of those passes (by the file's SHA-256, so a changed file is validated
# again) lets the check say what it vouches for: the whole table, part validated now and part earlier, with when.

VALIDATION_RECORD_SCHEMA = pl.Schema(
    [("sha256", pl.String()), ("file", pl.String()), ("validated_at", pl.Datetime("us", "UTC"))]
)


def load_validation_record(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=VALIDATION_RECORD_SCHEMA)


def validated_earlier(manifest: pl.DataFrame, record: pl.DataFrame) -> pl.DataFrame:
    """The manifest's files whose content (SHA-256) passed the suite in an earlier run: file, sha256, validated_at."""
    return manifest.select("file", "sha256").join(record.select("sha256", "validated_at"), on="sha256", how="inner")


def save_validation_record(path: Path, earlier: pl.DataFrame, now: pl.DataFrame, when: dt.datetime) -> None:
    """Keep the files that passed: those validated earlier (with their time) and those validated now."""
    passed = pl.concat(
        [
            earlier.select(VALIDATION_RECORD_SCHEMA.names()),
            now.select("sha256", "file").with_columns(
                validated_at=pl.lit(when).cast(VALIDATION_RECORD_SCHEMA["validated_at"])
            ),
        ]
    ).unique("sha256", keep="first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    passed.write_parquet(tmp)
    tmp.replace(path)
