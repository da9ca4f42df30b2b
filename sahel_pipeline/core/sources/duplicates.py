"""Duplicates within one file: monadic rows collapsed into events, repeated ids resolved or quarantined.
"""

from __future__ import annotations

import polars as pl

from sahel_pipeline.core.schema import (
    CONTENT_COLUMNS,
    empty_quarantine,
)
from sahel_pipeline.core.sources.values import record_json

_ACTOR_COLUMNS = ("actor1", "assoc_actor_1", "actor2", "assoc_actor_2", "inter1", "inter2", "civilian_targeting")


def collapse_actor_rows(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Monadic exports list an event once per actor: the first row's actor is actor1, the next ones actor2 and beyond.

    Rows of one event must agree on everything but the actor; when they do not, all of them are quarantined.
    """
    without_id = events.filter(pl.col("event_id").is_null())  # quarantined by validation, not merged here
    events = events.filter(pl.col("event_id").is_not_null())
    shared = [c for c in CONTENT_COLUMNS if c not in _ACTOR_COLUMNS] + ["revision"]
    per_event = events.group_by("event_id", maintain_order=True).agg(
        pl.struct(shared).n_unique().alias("_versions"),
        pl.len().alias("_rows"),
    )
    conflicting = per_event.filter(pl.col("_versions") > 1)
    bad = events.join(conflicting.select("event_id"), on="event_id", how="semi")
    good = events.join(conflicting.select("event_id"), on="event_id", how="anti")
    others = [c for c in good.columns if c not in _ACTOR_COLUMNS and c != "event_id"]
    actors, assocs = pl.col("_actors"), pl.col("_assocs")
    collapsed = (
        good.group_by("event_id", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in others],
            _actors=pl.col("actor1"),
            _assocs=pl.col("assoc_actor_1"),
            _inters=pl.col("inter1"),
        )
        .with_columns(
            actor1=actors.list.get(0),
            assoc_actor_1=assocs.list.get(0),
            actor2=actors.list.get(1, null_on_oob=True),
            # each row's inter1 is its own actor's type: the second row's is actor2's
            inter1=pl.col("_inters").list.get(0),
            inter2=pl.col("_inters").list.get(1, null_on_oob=True),
            assoc_actor_2=pl.concat_list(assocs.list.slice(1, 1), actors.list.slice(2), assocs.list.slice(2))
            .list.drop_nulls()
            .list.join("; "),
        )
        .with_columns(assoc_actor_2=pl.when(pl.col("assoc_actor_2") != "").then(pl.col("assoc_actor_2")))
        .with_columns(
            civilian_targeting=(pl.col("event_type") == "Violence against civilians")
            | pl.col("actor2").str.starts_with("Civilians").fill_null(False),
        )
        .select(good.columns)
    )
    notes = [f"monadic export: {good.height} actor rows collapsed into {collapsed.height} events"]
    if bad.height:
        notes.append(f"{bad.height} rows of {conflicting.height} events disagree on more than the actor: quarantined")
    collapsed = pl.concat([collapsed, without_id])
    return collapsed, _conflict_quarantine(bad, "its rows disagree on more than the actor"), notes


def resolve_duplicate_ids(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """One id twice in one file: exact repeats collapse, a newer revision wins, a same-revision conflict is
    quarantined."""
    without_id = events.filter(pl.col("event_id").is_null())  # quarantined by validation, not merged here
    events = events.filter(pl.col("event_id").is_not_null())
    if events["event_id"].n_unique() == events.height:
        return pl.concat([events, without_id]), empty_quarantine(), []
    content_hash = pl.struct(CONTENT_COLUMNS).hash()
    ranked = events.with_columns(
        _newest=pl.col("revision").fill_null(-1) == pl.col("revision").fill_null(-1).max().over("event_id"),
        _hash=content_hash,
    )
    newest = ranked.filter(pl.col("_newest"))
    versions = newest.group_by("event_id").agg(pl.col("_hash").n_unique().alias("_versions"))
    conflicting = versions.filter(pl.col("_versions") > 1).select("event_id")
    bad = newest.join(conflicting, on="event_id", how="semi").drop("_newest", "_hash")
    kept = (
        newest.join(conflicting, on="event_id", how="anti")
        .unique("event_id", keep="first", maintain_order=True)
        .drop("_newest", "_hash")
    )
    notes = []
    if superseded := events.height - newest.height:
        notes.append(f"{superseded} older revisions of events re-published in the same file: superseded")
    if repeats := newest.height - bad.height - kept.height:
        notes.append(f"{repeats} exact repeats of a row: counted once")
    if bad.height:
        notes.append(f"{bad.height} rows share an event id and revision but differ: quarantined")
    return (
        pl.concat([kept, without_id]),
        _conflict_quarantine(bad, "same event id and revision, different content"),
        notes,
    )


def _conflict_quarantine(bad: pl.DataFrame, why: str) -> pl.DataFrame:
    if bad.height == 0:
        return empty_quarantine()
    return bad.select(
        source_file=pl.col("source_file"),
        source_row=pl.col("source_row"),
        event_id=pl.col("event_id"),
        column=pl.lit("event_id"),
        value=pl.col("event_id"),
        reason=pl.format("event id appears {} times in this file: {}", pl.len().over("event_id"), pl.lit(why)),
        record=record_json(bad),
    )
