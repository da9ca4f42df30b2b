"""Armed-group resolution: raw actor names -> canonical group ids through an alias table analysts can edit.

ACLED renames groups over time ("Islamic State (Greater Sahara)" became "Islamic State (Sahel)"), UCDP names them
differently again ("IS"), and a group's units appear under their own names ("Katiba Macina" for JNIM). The alias table
(`data/actor_aliases.csv`) maps each spelling to one short, stable id. An alias can be limited to one source and to
some countries: UCDP's "IS" is ISSP in the central Sahel but ISWAP around Lake Chad.

State actors (`Military Forces of Niger (2023-) Gendarmerie`) not in the table become one group per country and kind
by the rule in `actors.py`; an alias row for the raw or the normalised name wins over the rule. Other actors that are
not in the table keep their own name as their group, so nothing disappears. "X and/or Y" labels, where ACLED could
not attribute an event, resolve each side and by default become their own series ("JNIM/ISSP").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from sahel_pipeline.core.actor_types import GROUP_TYPES, check_types
from sahel_pipeline.core.actors import INTER_DTYPE, StateUnits, state_group_name

Role = Literal["perpetrator", "any"]
Ambiguity = Literal["separate", "each"]

ROLE_COLUMNS: dict[str, list[str]] = {
    "perpetrator": ["actor1", "assoc_actor_1"],
    "any": ["actor1", "assoc_actor_1", "actor2", "assoc_actor_2"],
}
ALIAS_COLUMNS = ["alias", "group_id", "group_name", "source", "countries"]  # and optionally `type`
# The inter column that gives an actor column's type: an associated actor takes its primary actor's.
INTER_OF = {"actor1": "inter1", "assoc_actor_1": "inter1", "actor2": "inter2", "assoc_actor_2": "inter2"}
AMBIGUOUS_SEPARATOR = " and/or "
ANY = "*"


class AliasTableError(ValueError):
    """The alias table cannot be used; the message names the file, line and what is wrong."""


def load_alias_table(path: str | Path) -> pl.DataFrame:
    """Read and check the alias table: one lookup row per (alias, source, country), `*` meaning any."""
    path = Path(path)
    table = pl.read_csv(path, infer_schema=False)
    missing = [c for c in ALIAS_COLUMNS if c not in table.columns]
    if missing:
        raise AliasTableError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(ALIAS_COLUMNS)}")
    table = table.with_row_index("line", offset=2)
    blank = table.filter(pl.col("alias").is_null() | pl.col("group_id").is_null())
    if blank.height:
        raise AliasTableError(f"{path}: line {blank['line'][0]} has no alias or no group_id")
    if "type" not in table.columns:
        table = table.with_columns(type=pl.lit(None, pl.String))
    table = table.with_columns(pl.col("type").str.strip_chars().str.to_lowercase())
    typed = table.filter(pl.col("type").is_not_null())
    for line, value in typed.select("line", "type").iter_rows():
        if value not in GROUP_TYPES:
            check_types([value], f"{path}: line {line}, column type")
    clashing = (
        typed.group_by("group_id").agg(pl.col("type").n_unique(), pl.col("line").min()).filter(pl.col("type") > 1)
    )
    if clashing.height:
        raise AliasTableError(
            f"{path}: group {clashing['group_id'][0]} has more than one type (first at line {clashing['line'][0]})"
        )
    lookup = (
        table.select(
            "line",
            alias_key=pl.col("alias").str.strip_chars().str.to_lowercase(),
            group_id=pl.col("group_id").str.strip_chars(),
            group_name=pl.coalesce(pl.col("group_name").str.strip_chars(), pl.col("group_id").str.strip_chars()),
            source=pl.coalesce(pl.col("source").str.strip_chars().str.to_uppercase(), pl.lit(ANY)),
            country=pl.coalesce(pl.col("countries").str.split(";"), pl.lit([ANY])),
            type=pl.col("type"),
        )
        .explode("country")
        .with_columns(pl.col("country").str.strip_chars())
    )
    clashes = lookup.group_by("alias_key", "source", "country").agg(pl.col("group_id").n_unique(), pl.col("line"))
    clashes = clashes.filter(pl.col("group_id") > 1)
    if clashes.height:
        row = clashes.row(0, named=True)
        raise AliasTableError(
            f"{path}: lines {', '.join(map(str, sorted(row['line'])))} map '{row['alias_key']}' to different groups "
            f"for source {row['source']} and country {row['country']}"
        )
    names = lookup.group_by("group_id").agg(pl.col("group_name").n_unique().alias("n"), pl.col("line").min())
    if names.filter(pl.col("n") > 1).height:
        row = names.filter(pl.col("n") > 1).row(0, named=True)
        raise AliasTableError(
            f"{path}: group {row['group_id']} has more than one group_name (first at line {row['line']})"
        )
    return lookup.drop("line").unique()


def alias_types(aliases: pl.DataFrame) -> pl.DataFrame:
    """group_id -> type, for the groups the alias table gives a type."""
    return aliases.filter(pl.col("type").is_not_null()).select("group_id", "type").unique()


def actor_mentions(events: pl.LazyFrame, role: Role, carry: list[str] | None = None) -> pl.LazyFrame:
    """One row per (event, actor name) for the actor columns of the role, with the event columns in `carry`, the
    actor type the event gives the column (`inter`: inter1 for actor1 and its associated actors, inter2 for actor2's)
    and whether the name is an associated actor.

    Associated actors are split on '; '. `_event` numbers the events, a cheaper key than their text ids.
    """
    indexed = events.with_row_index("_event")
    keep = ["_event", "source", "country", *(carry or [])]
    present = set(indexed.collect_schema().names())

    def inter(column: str) -> pl.Expr:
        code = INTER_OF[column]
        return pl.col(code) if code in present else pl.lit(None, INTER_DTYPE)

    # One frame per actor column, stacked: a third of the cost of one list per event holding every column's names.
    per_column = [
        indexed.select(
            *keep,
            actor=pl.col(column).cast(pl.String).str.split("; "),
            inter=inter(column),
            associated=pl.lit(column.startswith("assoc")),
        )
        .filter(pl.col("actor").is_not_null())
        .explode("actor")
        for column in ROLE_COLUMNS[role]
    ]
    return pl.concat(per_column).with_columns(pl.col("actor").str.strip_chars()).filter(pl.col("actor") != "")


def resolve_names(
    names: pl.DataFrame, aliases: pl.DataFrame, ambiguous: Ambiguity = "separate", units: StateUnits = "fold"
) -> pl.DataFrame:
    """(actor, source, country) -> group_id, group_name, whether the name was resolved (alias table or state rule),
    ambiguity.

    Works on distinct names (thousands), not on mentions (millions). An alias limited to a source or to countries wins
    over a general one; an alias of the raw name, then of the state rule's name, wins over the rule. With
    ambiguous="each" an "X and/or Y" name gives one row per group it names.
    """
    parts = (
        names.with_columns(
            _parts=pl.col("actor").str.split(AMBIGUOUS_SEPARATOR),
            is_ambiguous=pl.col("actor").str.contains(AMBIGUOUS_SEPARATOR, literal=True),
        )
        .explode("_parts")
        .with_columns(pl.col("_parts").str.strip_chars())
    )
    parts = parts.with_columns(
        _key=pl.col("_parts").str.to_lowercase(), _state=state_group_name(pl.col("_parts"), units)
    )
    parts = parts.with_columns(_state_key=pl.col("_state").str.to_lowercase())
    resolved = _alias_lookup(_alias_lookup(parts, "_key", aliases, "raw"), "_state_key", aliases, "state")
    alias_id = pl.coalesce(pl.col("raw_id"), pl.col("state_id"))
    resolved = resolved.with_columns(
        _part_known=alias_id.is_not_null() | pl.col("_state").is_not_null(),
        _part_id=pl.coalesce(alias_id, pl.col("_state"), pl.col("_parts")),
        _part_name=pl.coalesce(pl.col("raw_name"), pl.col("state_name"), pl.col("_state"), pl.col("_parts")),
    )
    if ambiguous == "each":
        return resolved.select(
            "actor",
            "source",
            "country",
            "is_ambiguous",
            group_id=pl.col("_part_id"),
            group_name=pl.col("_part_name"),
            known=pl.col("_part_known"),
        ).unique()
    return (
        resolved.group_by("actor", "source", "country")
        .agg(
            pl.col("_part_id").unique().sort().alias("_ids"),
            pl.col("_part_known").all().alias("known"),
            pl.col("_part_name").first().alias("_single_name"),
        )
        .with_columns(
            group_id=pl.col("_ids").list.join("/"),
            group_name=pl.when(pl.col("_ids").list.len() > 1)
            .then(pl.col("_ids").list.join(" and/or ") + pl.lit(" (unattributed)"))
            .otherwise(pl.col("_single_name")),
            # "Katiba Macina and/or JNIM" is simply JNIM: only several distinct groups make a label ambiguous
            is_ambiguous=pl.col("_ids").list.len() > 1,
        )
        .drop("_ids", "_single_name")
    )


def _alias_lookup(parts: pl.DataFrame, key: str, aliases: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """`<prefix>_id` and `<prefix>_name` of the alias row matching `key`, from the most specific row to the most
    general (limited to a source and countries, to a source, to countries, to neither); null without a match."""
    resolved = parts
    for i, (source_any, country_any) in enumerate(((False, False), (True, False), (False, True), (True, True))):
        candidates = aliases.filter(
            (pl.col("source") == ANY) if source_any else (pl.col("source") != ANY),
            (pl.col("country") == ANY) if country_any else (pl.col("country") != ANY),
        )
        on_left = [key] + ([] if source_any else ["source"]) + ([] if country_any else ["country"])
        on_right = ["alias_key"] + ([] if source_any else ["source"]) + ([] if country_any else ["country"])
        resolved = resolved.join(
            candidates.select(*on_right, pl.col("group_id").alias(f"_id{i}"), pl.col("group_name").alias(f"_name{i}")),
            left_on=on_left,
            right_on=on_right,
            how="left",
        )
    return resolved.with_columns(
        pl.coalesce([pl.col(f"_id{i}") for i in range(4)]).alias(f"{prefix}_id"),
        pl.coalesce([pl.col(f"_name{i}") for i in range(4)]).alias(f"{prefix}_name"),
    ).drop([f"_{what}{i}" for what in ("id", "name") for i in range(4)])


NAME_KEYS = ["actor", "source", "country"]  # what a name resolves by


@dataclass
class Attribution:
    """Events attributed to groups: one row per (event, group), and the distinct names they were resolved from.

    Both carry `_name` (a 64-bit code of the actor name and country) and `_group` (of the group id): counting on
    these codes and joining the text back afterwards is a third of the cost of counting on the text.
    """

    groups: pl.DataFrame  # the `carry` columns, actor, inter, associated, group_id, group_name, known, _name, _group
    names: pl.DataFrame  # _name, source, _group, actor, country, group_id, group_name, known, is_ambiguous


def attribute_events(
    events: pl.LazyFrame,
    aliases: pl.DataFrame,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    carry: list[str] | None = None,
    units: StateUnits = "fold",
) -> Attribution:
    """Each event's groups: an event by Katiba Macina with JNIM associated counts once for JNIM. Each row keeps the
    actor name that brought the group (the first in column order: actor1 before its associated actors), the type the
    event gives it (`inter`, `associated`), and whether the name was resolved."""
    mentions = actor_mentions(events, role, carry).collect()
    # The names are resolved once per distinct (actor, country, source) and joined back on a 64-bit key made of the
    # actor's and the country's categorical codes: at millions of mentions, a third of the cost of joining on text.
    keyed = mentions.with_columns(_name=_code("actor") * 2**32 + _code("country"))
    distinct = keyed.select("_name", *NAME_KEYS).unique(["_name", "source"])
    names = distinct.join(
        resolve_names(distinct.select(NAME_KEYS), aliases, ambiguous, units), on=NAME_KEYS, nulls_equal=True
    )
    names = names.with_columns(_group=pl.col("group_id").rank("dense").cast(pl.UInt64))
    groups = keyed.join(names.drop("actor", "country"), on=["_name", "source"], how="left", maintain_order="left")
    return Attribution(groups.filter(_first_of_each_event_and_group(groups)), names)


def _code(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Categorical).to_physical().cast(pl.UInt64)


def _first_of_each_event_and_group(groups: pl.DataFrame) -> pl.Series:
    """Rows to keep so that an event counts once per group (Katiba Macina with JNIM associated is one JNIM event):
    the first of each (event, group) in row order, found by a stable sort of one 64-bit key, three times as fast as
    hashing the pair."""
    key = groups.select(pl.col("_event").cast(pl.UInt64) * 2**32 + pl.col("_group")).to_series()
    order = key.to_frame().select(pl.arg_sort_by(key.name, maintain_order=True)).to_series()
    in_order = key.gather(order)
    repeats = order.filter(in_order == in_order.shift(1))
    return pl.repeat(True, groups.height, eager=True).scatter(repeats, False)
