"""Delivery assets: the month's alerts as a feed and a map layer, and as messages to the people who follow them."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from sahel_pipeline.core.cards import alert_cards
from sahel_pipeline.core.delivery import (
    Ledger,
    LedgerEntry,
    Planned,
    channel_target,
    deliver,
    plan,
    render,
    subscriber_targets,
)
from sahel_pipeline.core.feeds import (
    alert_geojson,
    atom_feed,
    geojson_problems,
    hot_spots,
    recent_alert_events,
    write_text,
)
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import any_synthetic
from sahel_pipeline.core.messages import report_link
from sahel_pipeline.core.months import month_label, parse_month
from sahel_pipeline.core.report.selection import admin1_history, alert_series
from sahel_pipeline.core.subscriptions import SubscriptionError, load_subscriptions
from sahel_pipeline.defs.metadata import markdown_table
from sahel_pipeline.defs.partitions import MONTHS
from sahel_pipeline.defs.resources import DeliverySettings, ModelSettings, PipelineSettings

GROUP = "delivery"


@dg.asset(
    partitions_def=MONTHS,
    group_name=GROUP,
    kinds={"atom", "geojson"},
    ins={
        "escalation_alerts": dg.AssetIn(),
        "canonical_events": dg.AssetIn(),
        "admin1_month_panel": dg.AssetIn(),
        "ingest_summary": dg.AssetIn(),
        "spatial_month_panel": dg.AssetIn(),
        "places": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "alert_geojson_follows_rfc_7946",
            asset="alert_feeds",
            description="The GeoJSON file is RFC 7946: types, longitude-latitude positions in range, no crs.",
        ),
    ],
)
def alert_feeds(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    models: ModelSettings,
    delivery: DeliverySettings,
    escalation_alerts: pl.DataFrame,
    canonical_events: pl.LazyFrame,
    admin1_month_panel: pl.LazyFrame,
    ingest_summary: pl.DataFrame,
    spatial_month_panel: pl.LazyFrame,
    places: pl.DataFrame,
):
    """The month's alerts as an Atom feed and a GeoJSON layer of their recent events (a spatial alert's: those
    behind it in the month) and admin1 hot spots, written beside the alert files (alerts/YYYY-MM.atom,
    alerts/YYYY-MM.geojson)."""
    key, month = context.partition_key, parse_month(context.partition_key)
    config = models.config()
    synthetic = any_synthetic(ingest_summary)
    cards = alert_cards(escalation_alerts)
    folder = settings.output_path / "alerts"
    atom_path, geojson_path = folder / f"{key}.atom", folder / f"{key}.geojson"
    previous = atom_path.read_text(encoding="utf-8") if atom_path.exists() else None
    write_text(
        atom_path,
        atom_feed(
            cards,
            month=key,
            month_name=month_label(month),
            synthetic=synthetic,
            generated=dt.datetime.now(dt.UTC),
            link=report_link(delivery.setting("report_url"), key),
            previous=previous,
        ),
    )
    aliases = load_alias_table(settings.alias_table)
    events = recent_alert_events(
        canonical_events, aliases, escalation_alerts, month, config,
        settings.group_role, settings.ambiguous_attribution, settings.state_units,
        places=places, spatial_month=spatial_month_panel.filter(pl.col("month") == month).collect(),
    )
    admin1 = admin1_history(admin1_month_panel, alert_series(escalation_alerts), month, config)
    spots = hot_spots(escalation_alerts, admin1, events, month, config)
    document = alert_geojson(events, spots, month=key, synthetic=synthetic)
    write_text(geojson_path, json.dumps(document, ensure_ascii=False))
    unlocated = events.filter(pl.col("latitude").is_null() | pl.col("longitude").is_null()).height
    context.log.info(
        f"feeds for {key}: {len(cards)} alerts, {events.height - unlocated} events and {spots.height} "
        f"hot spots mapped: {atom_path}, {geojson_path}"
    )
    problems = geojson_problems(json.loads(geojson_path.read_text(encoding="utf-8")))
    yield dg.MaterializeResult(
        metadata={
            "atom": dg.MetadataValue.path(str(atom_path)),
            "geojson": dg.MetadataValue.path(str(geojson_path)),
            "entries": len(cards),
            "events_mapped": events.height - unlocated,
            "events_without_coordinates": unlocated,
            "hot_spots": spots.height,
            "synthetic": synthetic,
        }
    )
    yield dg.AssetCheckResult(
        check_name="alert_geojson_follows_rfc_7946",
        passed=not problems,
        description="; ".join(problems[:5]) or None,
        metadata={"problems": len(problems), "features": len(document["features"])},
    )


@dg.asset(
    partitions_def=MONTHS,
    group_name=GROUP,
    kinds={"email", "slack", "teams"},
    ins={"escalation_alerts": dg.AssetIn(), "ingest_summary": dg.AssetIn()},
    deps=["alert_report"],
    check_specs=[
        dg.AssetCheckSpec(
            "notifications_were_delivered",
            asset="alert_notifications",
            description="Every message due was delivered (or, in a dry run, written to the outbox); "
            "the channels and the subscriptions file could be used.",
        ),
    ],
)
def alert_notifications(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    delivery: DeliverySettings,
    escalation_alerts: pl.DataFrame,
    ingest_summary: pl.DataFrame,
):
    """The month's alerts sent to the people who follow them (e-mail digests by subscription, Slack, Teams), each
    alert once until its severity rises; recorded in notifications/ledger.jsonl. Never fails the run: what could not
    be delivered is reported here and tried again next run."""
    key = context.partition_key
    month_name = month_label(parse_month(key))
    synthetic = any_synthetic(ingest_summary)
    cards = alert_cards(escalation_alerts, settings.output_path / "reports" / key)
    dry_run = delivery.is_dry_run()
    if settings.as_of and not dry_run:
        # A past vintage is recomputed into a folder of its own, whose ledger is empty: sending from it would repeat
        # that week's alerts to everyone.
        context.log.info(f"as of vintage {settings.as_of}: a dry run, nothing is sent for a recomputed past week")
        dry_run = True
    channels, problems = delivery.channels()
    targets = []
    try:
        targets += subscriber_targets(load_subscriptions(delivery.subscriptions), delivery.subscriptions)
    except SubscriptionError as err:  # the other channels still go out
        problems.append(str(err))
    targets += [channel_target("slack", delivery.slack_min_severity)] if channels.slack else []
    targets += [channel_target("teams", delivery.teams_min_severity)] if channels.teams else []
    folder = settings.output_path / "notifications"
    ledger = Ledger(folder / "ledger.jsonl")
    entries: list[LedgerEntry] = []
    planned: list[Planned] = []

    def record(entry: LedgerEntry) -> None:
        ledger.append(entry)
        entries.append(entry)

    try:
        with ledger.locked():
            planned = plan(cards, targets, ledger.entries(), dt.datetime.now(dt.UTC), delivery.cooldown_months)
            link = report_link(delivery.setting("report_url"), key)
            messages = [
                render(p, month_name=month_name, synthetic=synthetic, sender=channels.sender, link=link)
                for p in planned
                if p.due and not p.held
            ]
            deliver(
                messages,
                channels,
                month=key,
                synthetic=synthetic,
                dry_run=dry_run,
                outbox=folder / key / "outbox",
                attempts=delivery.attempts,
                delay=delivery.retry_delay_seconds,
                now=lambda: dt.datetime.now(dt.UTC),
                record=record,
            )
    except Exception as err:  # whatever stops the delivery must not fail the run: it is reported instead
        context.log.exception(f"notifications for {key} stopped")
        problems.append(f"notifications stopped after {len(entries)} messages: {type(err).__name__}: {err}")
    if ledger.unreadable_lines:
        problems.append(f"{ledger.path}: {ledger.unreadable_lines} unreadable lines skipped")
    failed = [e for e in entries if e.outcome == "failed"]
    problems += [f"{e.channel} to {e.recipient}: {e.error}" for e in failed]
    for problem in problems:
        context.log.warning(f"notifications for {key}: {problem}")
    summary = _summary(planned, entries, dry_run)
    context.log.info(f"notifications for {key}: {summary}")
    yield dg.MaterializeResult(
        metadata={
            "dry_run": dry_run,
            "synthetic": synthetic,
            "summary": summary,
            "sent": sum(e.outcome == "sent" for e in entries),
            "failed": len(failed),
            "dry_run_messages": sum(e.outcome == "dry_run" for e in entries),
            "held_for_weekly_digest": sum(p.held for p in planned),
            "alerts_not_repeated": sum(len(p.repeated) for p in planned),
            "ledger": dg.MetadataValue.path(str(ledger.path)),
            **({"outbox": dg.MetadataValue.path(str(folder / key / "outbox"))} if dry_run else {}),
            "messages": dg.MetadataValue.md(markdown_table(_message_table(planned, entries), max_rows=40)),
        }
    )
    yield dg.AssetCheckResult(
        check_name="notifications_were_delivered",
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems[:5]) or None,
        metadata={"problems": len(problems), "failed": len(failed)},
    )


def _summary(planned: list[Planned], entries: list[LedgerEntry], dry_run: bool) -> str:
    counts = {o: sum(e.outcome == o for e in entries) for o in ("sent", "failed", "dry_run")}
    written = f"{counts['dry_run']} message{'' if counts['dry_run'] == 1 else 's'}"
    parts = (
        [f"{written} written to the outbox (dry run, nothing sent)"]
        if dry_run
        else [f"{counts['sent']} sent", f"{counts['failed']} failed"]
    )
    held = sum(p.held for p in planned)
    repeated = sum(len(p.repeated) for p in planned)
    parts += [f"{held} held for the weekly digest"] if held else []
    parts += [f"{repeated} alert deliveries left out by the cool-down"] if repeated else []
    return ", ".join(parts)


def _message_table(planned: list[Planned], entries: list[LedgerEntry]) -> pl.DataFrame:
    outcome = {(e.channel, e.recipient): e for e in entries}
    rows = []
    for p in planned:
        entry = outcome.get((p.target.channel, p.target.recipient))
        rows.append(
            {
                "channel": p.target.channel,
                "recipient": p.target.recipient,
                "due": len(p.due),
                "not repeated": len(p.repeated),
                "outcome": entry.outcome if entry else ("held (weekly)" if p.held else "nothing due"),
                "attempts": entry.attempts if entry else 0,
                "error": entry.error if entry else "",
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "channel": pl.String,
            "recipient": pl.String,
            "due": pl.Int64,
            "not repeated": pl.Int64,
            "outcome": pl.String,
            "attempts": pl.Int64,
            "error": pl.String,
        },
    )
