"""Actors: who a state actor is across regimes, and what type of actor each group is.

ACLED names state actors after the regime they serve and splits them into units: `Military Forces of Niger
(2021-2023)`, `Military Forces of Niger (2023-) Gendarmerie`, `Government of Niger (2011-2021)`. One rule on that
form (kind, country, period suffix, unit), not a list of names, gives one actor per country and kind (`Military
Forces of Niger`), with units folded in by default. `Mutiny of ...` and `Former ...` keep their qualifier: mutineers
and former officials are actors of their own. Names that merely end like a period (`G5S: G5 Sahel Force (2017-)`,
`MINUSMA: ... (2013-2020)`) do not have the form and are left alone.

The day a new regime period's name first appears for a country's own state forces is a dated break (or the
configured break date near it, such as a coup): recorded in the `regime_periods` table, given to the models as a
break, never alerted as an escalation.

Types come, in this order, from the alias table's `type` column; ACLED's "Unidentified Armed Group" form; the inter
codes of the group's own mentions (actor1/inter1, actor2/inter2; UCDP's sides); the name of a civilian or
participant group (`Women (Burkina Faso)`, `Fulani Ethnic Group (Mali)`: a social category and a country); the codes
of the actors it was associated with (an associated actor takes its primary actor's code); the name alone (state
forces, militias, protesters, rioters, civilians). What is left is `unknown`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import polars as pl

from sahel_pipeline.core.actor_types import (
    GROUP_TYPES,
    INTER_READINGS,
    INTER_TYPES,
    NO_ACTOR_CODE,
    UNIDENTIFIED_ARMED_GROUP,
    UNKNOWN,
)
from sahel_pipeline.core.reference import ACLED_COUNTRIES

if TYPE_CHECKING:
    from sahel_pipeline.core.models import Break

StateUnits = Literal["fold", "separate"]
INTER_DTYPE = pl.Enum(list(INTER_TYPES))
GROUP_TYPE_DTYPE = pl.Enum(list(GROUP_TYPES))  # the group panel's group_type: one byte a row, not a string

# `Military Forces of Burkina Faso (2015-2022) Special Forces`: qualifier, kind, country, period (start-end), unit.
STATE_ACTOR = (
    r"^(?P<qualifier>(?:Mutiny of|Former) )?(?P<kind>Military Forces|Police Forces|Government) of (?P<country>.+?) "
    r"\((?P<period>(?P<start>\d{4})-(?P<end>\d{4})?)\)(?: (?P<unit>\S.*))?$"
)
STATE_KIND_PREFIX = (
    r"^(?:(?:Mutiny of|Former) )?(?:Military Forces|Police Forces|Government) of (?P<country>.+?)(?: \(.*)?$"
)

# A configured break date this close to the day a new period first appears is taken as that change (a coup).
REGIME_BREAK_MATCH_DAYS = 92

_COUNTRY_ALTERNATION = "|".join(re.escape(c) for c in sorted(ACLED_COUNTRIES, key=len, reverse=True))
# ACLED's civilian and participant groups: a social category and a country (or "International"), e.g. "Women
# (Burkina Faso)", "Refugees/IDPs (Mali)", "Fulani Ethnic Group (Mali)", "Aid Workers (International)".
PARTICIPANT_NAME = rf"^[^:;]+ \((?:International|{_COUNTRY_ALTERNATION})\)$"
ARMED_WORDS = (
    r"(?i)\b(?:militias?|armed|forces?|military|police|gangs?|rebels?|army|mutiny|soldiers|fighters|separatists?"
    r"|insurgents?|jihadists?)\b"
)


# --- reading the types sources give ------------------------------------------------------------------------------


def read_inter(raw: pl.Expr) -> pl.Expr:
    """ACLED's inter1/inter2, as a code (1-8) or a word ("State forces", "External/Other forces"), in one vocabulary;
    0 (no such actor) and anything else are null (count the latter with `unrecognised_inter`)."""
    return (
        raw.str.strip_chars().str.to_lowercase().replace_strict(INTER_READINGS, default=None, return_dtype=INTER_DTYPE)
    )


def unrecognised_inter(raw: pl.Series, read: pl.Series) -> int:
    """Values that are there but name no type (0 means no actor, not a bad value)."""
    present = raw.is_not_null() & (raw.str.strip_chars() != NO_ACTOR_CODE) & (raw.str.strip_chars() != "")
    return int((present & read.is_null()).sum())


def ucdp_side_type(side: pl.Expr, country: pl.Expr, civilians: pl.Expr) -> pl.Expr:
    """UCDP's sides: `Government of X` is the state (X's own forces, or external ones), `Civilians` in one-sided
    violence are civilians, any other side is a non-state armed group (UCDP's organised actors: rebel group)."""
    governed = side.str.extract(r"^Government of (.+)$", 1).str.strip_prefix("the ")
    return (
        pl.when(side.is_null())
        .then(pl.lit(None, INTER_DTYPE))
        .when(governed.is_not_null())
        .then(pl.when(governed == country).then(pl.lit("state forces")).otherwise(pl.lit("external forces")))
        .when(civilians | side.str.starts_with("Civilians"))
        .then(pl.lit("civilians"))
        .otherwise(pl.lit("rebel group"))
        .cast(INTER_DTYPE)
    )


# --- state actors -------------------------------------------------------------------------------------------------


def state_group_name(name: pl.Expr, units: StateUnits = "fold") -> pl.Expr:
    """The actor a state name stands for, without its regime period (and without its unit, unless kept apart):
    `Military Forces of Burkina Faso (2022-) Special Forces` -> `Military Forces of Burkina Faso`. Null for a name
    that does not have the form."""
    parts = name.str.extract_groups(STATE_ACTOR)
    base = pl.concat_str(
        [
            parts.struct.field("qualifier").fill_null(""),
            parts.struct.field("kind"),
            pl.lit(" of "),
            parts.struct.field("country"),
        ]
    )
    if units == "separate":
        return (
            pl.when(parts.struct.field("unit").is_not_null())
            .then(base + pl.lit(" ") + parts.struct.field("unit"))
            .otherwise(base)
        )
    return base


def regime_names(names: pl.DataFrame) -> pl.DataFrame:
    """Of (actor, country) names, those of the country's own state forces with a regime period: `period` as written
    ("2015-2022", or "2015-" in an export made before it ended) and `start` (its first year, which identifies it)."""
    parts = names.with_columns(_p=pl.col("actor").str.extract_groups(STATE_ACTOR)).unnest("_p")
    own = parts.filter(
        pl.col("kind").is_not_null(),
        pl.col("qualifier").is_null(),  # mutineers and former officials do not mark a regime
        pl.col("country").str.strip_prefix("the ") == pl.col("event_country"),
    )
    return own.select("actor", "event_country", "period", start=pl.col("start").cast(pl.Int32))


def regime_periods(
    evidence: pl.DataFrame, configured: Sequence[Break] = (), match_days: int = REGIME_BREAK_MATCH_DAYS
) -> pl.DataFrame:
    """Regime periods seen in the names of each country's own state forces, and the break each one after the first
    implies: the configured break date within `match_days` of the day it first appears (a coup), else that day.

    `evidence` has source, country, actor, mentions, first_seen, last_seen (per month or summed).
    """
    names = evidence.select("actor", event_country=pl.col("country")).unique()
    state = regime_names(names)
    if state.height == 0:
        return pl.DataFrame(schema=REGIME_PERIOD_SCHEMA)
    periods = (
        evidence.join(state, left_on=["actor", "country"], right_on=["actor", "event_country"])
        .group_by("source", "country", "start")
        .agg(
            # a closed period ("2015-2022") is the later name of an open one ("2015-"): the later name is shown; of two
            # closed ones (an export's "2018-2018", the next week's "2018-2024"), the one seen last, then the later
            # end. Every tie is broken: the label is part of the break, which the fits' cache keys hash.
            period=pl.col("period")
            .sort_by(pl.col("period").str.len_chars(), pl.col("last_seen"), pl.col("period"), maintain_order=True)
            .last(),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
            mentions=pl.col("mentions").sum(),
            names=pl.col("actor").unique().sort().str.join("; "),
        )
        .sort("source", "country", "first_seen")
    )
    rows = []
    for (_, country), group in periods.group_by(["source", "country"], maintain_order=True):
        for n, row in enumerate(group.iter_rows(named=True)):
            date = label = origin = None
            if n > 0:  # the data begin inside the first period: its start is not in them
                date, label, origin = _implied_break(country, row["period"], row["first_seen"], configured, match_days)
            rows.append({**row, "break_date": date, "break_label": label, "break_origin": origin})
    return pl.DataFrame(rows, schema=REGIME_PERIOD_SCHEMA)


REGIME_PERIOD_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "country": pl.String(),
    "start": pl.Int32(),
    "period": pl.String(),
    "first_seen": pl.Date(),
    "last_seen": pl.Date(),
    "mentions": pl.UInt32(),
    "names": pl.String(),
    "break_date": pl.Date(),
    "break_label": pl.String(),
    "break_origin": pl.String(),
}


def _implied_break(
    country: str, period: str, first_seen: dt.date, configured: Sequence[Break], match_days: int
) -> tuple[dt.date, str, str]:
    near = [b for b in configured if b.country == country and abs((b.date - first_seen).days) <= match_days]
    if near:
        chosen = min(near, key=lambda b: abs((b.date - first_seen).days))
        return chosen.date, chosen.label, "configured"
    return (
        first_seen,
        f"the change of government of {first_seen:%B %Y} (ACLED's state-force period {period})",
        "regime period",
    )


# --- types --------------------------------------------------------------------------------------------------------


def name_type(actor: pl.Expr, country: pl.Expr) -> pl.Expr:
    """The type a name alone says, when it says one (null otherwise)."""
    state_country = actor.str.extract(STATE_KIND_PREFIX, 1).str.strip_prefix("the ")
    return (
        pl.when(actor.str.starts_with("Unidentified Armed Group"))
        .then(pl.lit(UNIDENTIFIED_ARMED_GROUP))
        .when(actor.str.starts_with("Protesters ("))
        .then(pl.lit("protesters"))
        .when(actor.str.starts_with("Rioters ("))
        .then(pl.lit("rioters"))
        .when(actor.str.starts_with("Civilians ("))
        .then(pl.lit("civilians"))
        .when(state_country.is_not_null())
        .then(pl.when(state_country == country).then(pl.lit("state forces")).otherwise(pl.lit("external forces")))
        .when(actor.str.contains(r"(?i)\b(?:communal|ethnic|clan) militia\b"))
        .then(pl.lit("identity militia"))
        .when(actor.str.contains(r"(?i)\bmilitia\b"))
        .then(pl.lit("political militia"))
        .when(is_participant_name(actor))
        .then(pl.lit("civilians"))
    )


def is_participant_name(actor: pl.Expr) -> pl.Expr:
    """A civilian or participant group's name: a category and a country, without a word that says armed."""
    return actor.str.contains(PARTICIPANT_NAME) & ~actor.str.contains(ARMED_WORDS)


GROUP_KEYS = ["source", "group_id", "country"]
TYPE_ORDER = {t: i for i, t in enumerate(INTER_TYPES)}  # ties between codes go to the first in ACLED's order
TYPE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "group_id": pl.String(),
    "country": pl.String(),
    "group_type": pl.String(),
    "typed_by": pl.String(),
}


def group_types(evidence: pl.DataFrame, alias_types: pl.DataFrame) -> pl.DataFrame:
    """One type per (source, group, country), and what gave it (`typed_by`).

    `evidence`: source, group_id, country, actor, inter, associated, mentions (summed over months or not);
    `alias_types`: group_id, type (the alias table's `type` column, where filled in).
    """
    if evidence.height == 0:
        return pl.DataFrame(schema=TYPE_SCHEMA)

    def majority(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        coded = frame.filter(pl.col("inter").is_not_null()).group_by(*GROUP_KEYS, "inter").agg(pl.col("mentions").sum())
        ranked = coded.with_columns(
            _order=pl.col("inter").cast(pl.String).replace_strict(TYPE_ORDER, return_dtype=pl.Int8)
        )
        return (
            ranked.sort("mentions", "_order", descending=[True, False])
            .unique(GROUP_KEYS, keep="first")
            .select(*GROUP_KEYS, pl.col("inter").cast(pl.String).alias(name))
        )

    # The name a group is most often mentioned by speaks for it (a group's names are one kind of actor).
    by_name = evidence.group_by(*GROUP_KEYS, "actor").agg(pl.col("mentions").sum())
    main_name = by_name.sort("mentions", "actor", descending=[True, False]).unique(GROUP_KEYS, keep="first")
    main_name = main_name.with_columns(_name_type=name_type(pl.col("actor"), pl.col("country")))
    typed = (
        main_name.select(*GROUP_KEYS, "_name_type")
        .join(majority(evidence.filter(~pl.col("associated")), "_own"), on=GROUP_KEYS, how="left")
        .join(majority(evidence.filter(pl.col("associated")), "_associated"), on=GROUP_KEYS, how="left")
        .join(alias_types.select("group_id", _alias=pl.col("type")), on="group_id", how="left")
    )
    steps = [
        (pl.col("_alias").is_not_null(), pl.col("_alias"), "alias table"),
        (pl.col("_name_type") == UNIDENTIFIED_ARMED_GROUP, pl.col("_name_type"), "name pattern"),
        (pl.col("_own").is_not_null(), pl.col("_own"), "source code"),
        # a civilian or participant name (Women (Mali)) over the code of the protest or attack it was associated with
        (pl.col("_name_type") == "civilians", pl.col("_name_type"), "name pattern"),
        (pl.col("_associated").is_not_null(), pl.col("_associated"), "associated actor's code"),
        (pl.col("_name_type").is_not_null(), pl.col("_name_type"), "name pattern"),
    ]
    # The first step that holds gives both: each step's value is non-null exactly where its condition holds.
    return typed.select(
        *GROUP_KEYS,
        group_type=pl.coalesce([pl.when(condition).then(value) for condition, value, _ in steps] + [pl.lit(UNKNOWN)]),
        typed_by=pl.coalesce(
            [pl.when(condition).then(pl.lit(origin)) for condition, _, origin in steps] + [pl.lit("nothing")]
        ),
    )


def typing_summary(types: pl.DataFrame) -> pl.DataFrame:
    """How many groups each origin typed; groups typed by inference are those not typed by a source code."""
    return types.group_by("typed_by").agg(groups=pl.len()).sort("groups", "typed_by", descending=[True, False])


def group_variants(evidence: pl.DataFrame, top: int = 8) -> pl.DataFrame:
    """Groups known under more than one name, with their names and how often each was used (most used first)."""
    by_name = evidence.group_by("source", "group_id", "actor").agg(pl.col("mentions").sum())
    return (
        by_name.sort("mentions", "actor", descending=[True, False])
        .group_by("source", "group_id", maintain_order=True)
        .agg(
            names=pl.len(),
            mentions=pl.col("mentions").sum(),
            variants=pl.format("{} ({})", "actor", "mentions").head(top).str.join("; "),
        )
        .filter(pl.col("names") > 1)
        .sort("mentions", descending=True)
    )
