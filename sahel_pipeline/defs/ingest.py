"""Ingest assets: raw CSVs -> canonical events and quarantined rows, guarded by Great Expectations checks."""

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import dagster as dg
import polars as pl

from sahel_pipeline.core import vintages
from sahel_pipeline.core.ingest import IngestResult, ingest, raw_path_list
from sahel_pipeline.core.validation import (
    load_validation_record,
    save_validation_record,
    validate_with_great_expectations,
    validated_earlier,
    warm_up_great_expectations,
)
from sahel_pipeline.defs.fetch import acled_pull, ucdp_pull
from sahel_pipeline.defs.io_manager import StoredParts, parquet_tables
from sahel_pipeline.defs.metadata import markdown_table, table_preview
from sahel_pipeline.defs.resources import PipelineSettings

GROUP = "ingest"
QUARANTINE_WARN_SHARE = 0.01


# ACLED publishes weekly: ten days without a new materialization of the events means a weekly run was missed.
EVENTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=21), warn_window=dt.timedelta(days=10))


CHECKS = [
    dg.AssetCheckSpec(
        "raw_files_are_readable", asset="raw_file_manifest", blocking=True,
        description="Every CSV under the raw folders has a known layout.",
    ),
    dg.AssetCheckSpec(
        "canonical_events_pass_great_expectations", asset="canonical_events", blocking=True,
        description="Great Expectations suite on the whole table: columns, unique non-null ids, dates 1997..today, "
        "fatalities, countries, coordinates and ACLED event types. Events of new or changed files are validated in "
        "the run; those of files that passed in an earlier run, unchanged since, are counted with when. Fails on an "
        "empty table.",
    ),
    dg.AssetCheckSpec(
        "quarantine_share_is_small", asset="quarantined_events",
        description=f"Warns when more than {QUARANTINE_WARN_SHARE:.0%} of the rows read were quarantined.",
    ),
]


# The checks run in the asset's own step: as separate steps, each waited for a process of its own in a run launched
# from the UI, for checks that take a fraction of a second (the Great Expectations suite apart).
@dg.multi_asset(
    outs=parquet_tables(
        GROUP,
        freshness={"canonical_events": EVENTS_FRESHNESS},
        raw_file_manifest="Every raw file read: its hash, layout, row counts, quarantined rows and notes.",
        canonical_events="One row per conflict event from every source, newest revision, deletions applied.",
        quarantined_events="Rows that broke a validation rule, with file, row, column, value and reason.",
        ingest_summary="One row of ingest figures for reports: files, rows read, events, quarantined, revised, "
        "deleted, the vintage of the data, and whether any input is synthetic.",
    ),
    deps=[acled_pull, ucdp_pull],
    check_specs=CHECKS,
)
def ingested_events(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Read new or changed CSVs under the raw folders, then merge all of them into canonical events."""
    warm_up_great_expectations()
    scan = settings.raw_files(context.log.info)
    result = ingest(
        scan.files, settings.ingest_cache, settings.today(), log=context.log.info, unreadable=scan.unreadable,
        warn=context.log.warning,
    )
    # The suite runs on a thread while the tables are written and described: it is Python and pandas, the writes are
    # Polars, which leaves the interpreter to it. What it says is logged once it is done, by the step's own thread.
    said: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="great-expectations") as validating:
        validated = validating.submit(
            canonical_events_pass_great_expectations, result.events.lazy(), result.manifest, settings, said.append
        )
        yield from _materializations(context, settings, result)
        yield raw_files_are_readable(result.manifest)
        checked = validated.result()
    for line in said:
        context.log.info(line)
    yield checked
    yield quarantine_share_is_small(result.quarantine, result.manifest)


def _materializations(
    context: dg.AssetExecutionContext, settings: PipelineSettings, result: IngestResult
) -> Iterator[dg.MaterializeResult]:
    stats = result.stats
    yield dg.MaterializeResult(
        asset_key="raw_file_manifest",
        value=result.manifest,
        metadata={
            "files": stats["files"],
            "files_read_this_run": stats["files_read_this_run"],
            "unreadable_files": result.unreadable_files().height,
            "synthetic_files": stats["synthetic_files"],
            "unreadable_paths": stats["unreadable_paths"],
            "vanished_files": stats["vanished_files"],
            "files_table": dg.MetadataValue.md(
                markdown_table(
                    result.manifest.select(
                        "file", "layout", "rows", "events", "quarantined_rows", "synthetic", "notes", "error"
                    )
                )
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key="canonical_events",
        value=StoredParts(tuple(result.events_parts), result.events.schema)
        if result.events_parts is not None
        else result.events,
        metadata={
            "dagster/row_count": result.events.height,
            "rows_read": stats["rows_read"],
            "quarantined_rows": stats["quarantined_rows"],
            "revised_events": stats["revised_events"],
            "superseded_versions": stats["superseded_versions"],
            "deleted_events": stats["deleted_events"],
            "replaced_ucdp_events": stats["replaced_ucdp_events"],
            "overlapping_extract_rows": stats["overlapping_rows"],
            "events_by_source": dg.MetadataValue.md(
                markdown_table(result.events.group_by("source", "country").len("events").sort("source", "country"))
            ),
            "preview": table_preview(result.events.drop("notes")),
        },
    )
    yield dg.MaterializeResult(
        asset_key="quarantined_events",
        value=result.quarantine,
        metadata={
            "dagster/row_count": result.quarantine.height,
            "quarantined_rows": stats["quarantined_rows"],
            "reasons": dg.MetadataValue.md(
                markdown_table(result.quarantine.group_by("column", "reason").len("rows").sort("rows", descending=True))
            ),
            "preview": table_preview(result.quarantine.drop("record")),
        },
    )
    if stats["synthetic_files"]:
        context.log.warning(f"{stats['synthetic_files']} of {stats['files']} input files are synthetic, not real data: "
                            "every alert, report and notification of this run says so")
    ingested = dict(result.manifest.select("file", "sha256").iter_rows())
    vintage = settings.as_of or vintages.identify(raw_path_list(settings.raw_paths), ingested) or ""
    digest = vintages.input_digest(ingested)
    context.log.info(f"data vintage: {vintage or 'none recorded (files not all from one pull)'}; input digest {digest}")
    summary = pl.DataFrame([{
        **stats, "vintage": vintage, "input_digest": digest, "synthetic": stats["synthetic_files"] > 0,
        "ingested_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }])
    yield dg.MaterializeResult(asset_key="ingest_summary", value=summary, metadata={
        "vintage": vintage, "input_digest": digest, "figures": table_preview(summary),
    })


def raw_files_are_readable(raw_file_manifest: pl.DataFrame) -> dg.AssetCheckResult:
    unreadable = raw_file_manifest.filter(pl.col("error").is_not_null())
    return dg.AssetCheckResult(
        asset_key="raw_file_manifest",
        check_name="raw_files_are_readable",
        passed=unreadable.height == 0,
        description="; ".join(unreadable["error"].to_list()) or None,
        metadata={"unreadable_files": unreadable.height, "files": raw_file_manifest.height},
    )


def canonical_events_pass_great_expectations(
    canonical_events: pl.LazyFrame,
    raw_file_manifest: pl.DataFrame,
    settings: PipelineSettings,
    log: Callable[[str], None],
) -> dg.AssetCheckResult:
    # Ids stay unique across files by construction (the merge keeps one row per id), so files can be validated apart.
    record_path = settings.ingest_cache / "great_expectations_passed.parquet"
    earlier = validated_earlier(raw_file_manifest, load_validation_record(record_path))
    now = raw_file_manifest.filter(~pl.col("sha256").is_in(earlier["sha256"].implode()))
    summary = validate_with_great_expectations(
        canonical_events.filter(pl.col("source_file").is_in(now["file"].implode())), settings.today()
    )
    per_file = canonical_events.group_by("source_file").agg(pl.len().alias("events")).collect()
    table_rows = int(per_file["events"].sum())
    earlier_rows = int(per_file.filter(pl.col("source_file").is_in(earlier["file"].implode()))["events"].sum())
    passed = summary.success and table_rows > 0
    if passed:
        save_validation_record(record_path, earlier, now, dt.datetime.now(dt.UTC))
    when = _span(earlier["validated_at"]) if earlier.height else ""
    described = (
        "canonical_events is empty: there is nothing to validate"
        if table_rows == 0
        else f"{table_rows:,} events: {summary.rows:,} validated now ({now.height} files), {earlier_rows:,} validated "
        f"earlier and unchanged since ({earlier.height} files{', validated ' + when if when else ''}); "
        f"{len(summary.failures())} of {len(summary.outcomes)} expectations failed"
    )
    log(f"Great Expectations: {described}")
    return dg.AssetCheckResult(
        asset_key="canonical_events",
        check_name="canonical_events_pass_great_expectations",
        passed=passed,
        description=described,
        metadata={
            "rows_in_table": table_rows,
            "rows_validated_now": summary.rows,
            "files_validated_now": now.height,
            "rows_validated_earlier": earlier_rows,
            "files_validated_earlier": earlier.height,
            **({"validated_earlier": when} if when else {}),
            "expectations": len(summary.outcomes),
            "failed_expectations": len(summary.failures()),
            "summary": dg.MetadataValue.md(summary.to_markdown()),
        },
    )


def _span(times: pl.Series) -> str:
    start, end = (f"{cast(dt.datetime, t):%Y-%m-%d %H:%M}" for t in (times.min(), times.max()))
    return f"{start} UTC" if start == end else f"{start} to {end} UTC"


def quarantine_share_is_small(quarantined_events: pl.DataFrame, raw_file_manifest: pl.DataFrame) -> dg.AssetCheckResult:
    rows_read = int(raw_file_manifest["rows"].sum())
    quarantined = quarantined_events.select("source_file", "source_row").unique().height
    share = quarantined / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        asset_key="quarantined_events",
        check_name="quarantine_share_is_small",
        passed=share <= QUARANTINE_WARN_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": quarantined, "rows_read": rows_read, "share": round(share, 4)},
    )
