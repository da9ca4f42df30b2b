"""Ingest assets: raw CSVs -> canonical events and quarantined rows, guarded by Great Expectations checks."""

import datetime as dt

import dagster as dg
import polars as pl

from sahel_pipeline.core import vintages
from sahel_pipeline.core.ingest import ingest, raw_path_list
from sahel_pipeline.core.validation import validate_with_great_expectations, warm_up_great_expectations
from sahel_pipeline.defs.fetch import acled_pull, ucdp_pull
from sahel_pipeline.defs.io_manager import parquet_tables
from sahel_pipeline.defs.metadata import markdown_table, table_preview
from sahel_pipeline.defs.resources import PipelineSettings

GROUP = "ingest"
QUARANTINE_WARN_SHARE = 0.01


@dg.multi_asset(
    outs=parquet_tables(
        GROUP,
        raw_file_manifest="Every raw file read: its hash, layout, row counts, quarantined rows and notes.",
        canonical_events="One row per conflict event from every source, newest revision, deletions applied.",
        quarantined_events="Rows that broke a validation rule, with file, row, column, value and reason.",
        ingest_summary="One row of ingest figures for reports: files, rows read, events, quarantined, revised, "
        "deleted, the vintage of the data, and whether any input is synthetic.",
    ),
    deps=[acled_pull, ucdp_pull],
)
def ingested_events(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Read new or changed CSVs under the raw folders, then merge all of them into canonical events."""
    warm_up_great_expectations()
    scan = settings.raw_files(context.log.info)
    result = ingest(
        scan.files, settings.ingest_cache, settings.today(), log=context.log.info, unreadable=scan.unreadable,
        warn=context.log.warning,
    )
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
        value=result.events,
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


@dg.asset_check(
    asset="raw_file_manifest", blocking=True, description="Every CSV under the raw folders has a known layout."
)
def raw_files_are_readable(raw_file_manifest: pl.DataFrame) -> dg.AssetCheckResult:
    unreadable = raw_file_manifest.filter(pl.col("error").is_not_null())
    return dg.AssetCheckResult(
        passed=unreadable.height == 0,
        description="; ".join(unreadable["error"].to_list()) or None,
        metadata={"unreadable_files": unreadable.height, "files": raw_file_manifest.height},
    )


@dg.asset_check(
    asset="canonical_events",
    additional_ins={"raw_file_manifest": dg.AssetIn("raw_file_manifest")},
    blocking=True,
    description="Great Expectations suite on the events of the files read in this run: columns, unique non-null ids, "
    "dates 1997..today, fatalities, countries, coordinates and ACLED event types.",
)
def canonical_events_pass_great_expectations(
    context: dg.AssetCheckExecutionContext,
    canonical_events: pl.LazyFrame,
    raw_file_manifest: pl.DataFrame,
    settings: PipelineSettings,
) -> dg.AssetCheckResult:
    # Files unchanged since an earlier run were validated when they were read; the events of new or changed files
    # are validated now. Ids stay unique across files by construction (the merge keeps one row per id).
    fresh = raw_file_manifest.filter(pl.col("read_this_run"))["file"].to_list()
    summary = validate_with_great_expectations(
        canonical_events.filter(pl.col("source_file").is_in(fresh)), settings.today()
    )
    context.log.info(
        f"Great Expectations: {summary.rows:,} events of {len(fresh)} files read in this run; "
        f"{len(summary.failures())} of {len(summary.outcomes)} expectations failed"
    )
    return dg.AssetCheckResult(
        passed=summary.success,
        metadata={
            "rows_validated": summary.rows,
            "files_validated": len(fresh),
            "expectations": len(summary.outcomes),
            "failed_expectations": len(summary.failures()),
            "summary": dg.MetadataValue.md(summary.to_markdown()),
        },
    )


@dg.asset_check(
    asset="quarantined_events",
    additional_ins={"raw_file_manifest": dg.AssetIn("raw_file_manifest")},
    description=f"Warns when more than {QUARANTINE_WARN_SHARE:.0%} of the rows read were quarantined.",
)
def quarantine_share_is_small(quarantined_events: pl.DataFrame, raw_file_manifest: pl.DataFrame) -> dg.AssetCheckResult:
    rows_read = int(raw_file_manifest["rows"].sum())
    quarantined = quarantined_events.select("source_file", "source_row").unique().height
    share = quarantined / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        passed=share <= QUARANTINE_WARN_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": quarantined, "rows_read": rows_read, "share": round(share, 4)},
    )
