"""Monthly panels: counts per armed group x country x month and per country x month, zero-filled, per source.

Sources are never added together (ACLED and UCDP count events differently), so `source` is a dimension of every
panel. A series runs over the months its data cover, and a month with no events is a row with zeros. What a country's
data cover is read from the files that hold it (their first and last event dates): a global export covers every
country over its whole span, a file for one country covers that country only, so that months before a file begins are
not read as zeros. The last month is usually still open: `days_covered` says how many of its days the data cover and
`partial` marks it, so that models scale their expectation instead of reading half a month as a drop.

Each group series carries its actor type (`group_type`, see `actors.py`), from the counts of the types the events give
its names. Protests and riots are counted per country (`demonstrations`): protesters and rioters are not groups.

The panels are sums of counts per (source, month), which a run can keep (`MonthlyCounts`, `save_counts`): the next
run recounts only the months whose events changed, found by a digest of each month's events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from sahel_pipeline.core.actors import GROUP_TYPE_DTYPE, StateUnits, group_types, group_variants, regime_periods
from sahel_pipeline.core.groups import Ambiguity, Role, alias_types, attribute_events
from sahel_pipeline.core.reference import VIOLENT_EVENT_TYPES
from sahel_pipeline.core.series import UNIT_KEY
from sahel_pipeline.core.storage import UNREADABLE, discarded, written_aside

if TYPE_CHECKING:
    from sahel_pipeline.core.models import Break

DEMONSTRATIONS = "demonstrations"  # events of ACLED's disorder type Demonstrations: protests and riots
INDICATORS = ["events", "violent_events", "fatalities", "civilian_targeting_events", DEMONSTRATIONS]
INDICATOR_LABELS = {
    "events": "events",
    "violent_events": "violent events",
    "fatalities": "fatalities",
    "civilian_targeting_events": "events targeting civilians",
    DEMONSTRATIONS: "demonstrations (protests and riots)",
}
# Judged per country only: protesters and rioters are crowds, not groups (the group panel still counts them).
COUNTRY_ONLY_INDICATORS = frozenset({DEMONSTRATIONS})
EVENT_COLUMNS = [
    "event_id", "source", "event_date", "country", "admin1", "disorder_type", "event_type", "fatalities",
    "civilian_targeting", "actor1", "assoc_actor_1", "actor2", "assoc_actor_2", "inter1", "inter2", "source_file",
]
GROUP_KEYS = ["source", "group_id", "country"]
UNKNOWN_ADMIN1 = "(unknown)"  # the admin1 panel's name for events without an admin1
COUNTRY_KEYS = ["source", "country"]


PANEL_VERSION = "4"  # bump when counting changes, so that counts kept from an earlier run are not reused
MONTH_KEYS = ["source", "month"]
# Read when the spatial panels are counted with the others (core/spatial.py), from the same attribution of the events:
# not carried through it, but looked up by the attributed rows' event numbers (spatial.attributed_parts).
LOCATION_COLUMNS = ["admin2", "latitude", "longitude", "geo_precision"]
NOT_DIGESTED = ("event_id", "source_file", "month")  # a month's counts depend on every other column read
DIGEST_SEED = 20_240_726
# the frames of MonthlyCounts kept between runs; the last four are the spatial panels' (empty without places)
COUNT_PARTS = ("admin1", "actors", "names", "digests", "measures", "buffers", "areas", "entered")
ACTOR_KEYS = ["source", "group_id", "country", "month", "actor", "known", "inter", "associated"]


@dataclass
class MonthlyCounts:
    """What the panels are summed from, per (source, month): the counts of each group and of the whole country per
    admin1, each group's names with the types the events gave them, the groups' display names, and a digest of the
    events each month was counted from. Kept between runs, so that a weekly run recounts only the months whose events
    changed."""

    admin1: pl.DataFrame  # source, level (group | country), group_id, country, admin1, month, indicators
    actors: pl.DataFrame  # ACTOR_KEYS, mentions, first_seen, last_seen: one row per name, month and type given
    names: pl.DataFrame  # group_id, group_name
    digests: pl.DataFrame  # source, month, digest, rows
    key: str  # the alias table, the attribution settings and the places the counts were made with
    recounted_months: int = 0  # (source, month) pairs counted in this run; the others were kept
    measures: pl.DataFrame = field(default_factory=pl.DataFrame)  # spatial.where_measures, per unit and month
    buffers: pl.DataFrame = field(default_factory=pl.DataFrame)  # spatial.buffer_counts
    areas: pl.DataFrame = field(default_factory=pl.DataFrame)  # spatial.admin2_areas
    entered: pl.DataFrame = field(default_factory=pl.DataFrame)  # spatial.admin2_entered, of every month's areas


@dataclass
class Panels:
    # source, group_id, group_name, group_type, country, month, indicators, days_covered, partial
    group_month: pl.DataFrame
    country_month: pl.DataFrame  # source, country, month, indicators, days_covered, partial
    admin1_month: pl.DataFrame  # source, level, group_id, country, admin1, month, indicators (months with events only)
    coverage: pl.DataFrame  # source, country, first_month, last_day
    unmapped: pl.DataFrame  # actors neither the alias table nor the state rule resolves
    group_types: pl.DataFrame  # source, group_id, country, group_type, typed_by
    variants: pl.DataFrame  # groups known under several names: source, group_id, names, mentions, variants
    regime_periods: pl.DataFrame  # actors.REGIME_PERIOD_SCHEMA
    counts: MonthlyCounts
    spatial_month: pl.DataFrame | None = None  # spatial.SPATIAL_SCHEMA, when counted with places
    buffer_month: pl.DataFrame | None = None  # spatial.BUFFER_SCHEMA, when counted with places


def counted_by(indicator: str) -> pl.Expr:
    """Whether an event counts towards the indicator (for fatalities: whether it has any)."""
    return {
        "events": pl.lit(True),
        "violent_events": pl.col("event_type").is_in(sorted(VIOLENT_EVENT_TYPES)),
        "fatalities": pl.col("fatalities") > 0,
        "civilian_targeting_events": pl.col("civilian_targeting"),
        DEMONSTRATIONS: pl.col("disorder_type") == "Demonstrations",
    }[indicator]


def indicator_sums() -> list[pl.Expr]:
    return [
        pl.len().alias("events"),
        counted_by("violent_events").sum().alias("violent_events"),
        pl.col("fatalities").sum().alias("fatalities"),
        counted_by("civilian_targeting_events").sum().alias("civilian_targeting_events"),
        counted_by(DEMONSTRATIONS).sum().alias(DEMONSTRATIONS),
    ]


def data_coverage(events: pl.LazyFrame) -> pl.DataFrame:
    """Per source and country, the span of the files that hold the country: first month and last day."""
    file_spans = events.group_by("source", "source_file").agg(
        file_first_day=pl.col("event_date").min(), file_last_day=pl.col("event_date").max()
    )
    return (
        events.select("source", "country", "source_file")
        .unique()
        .join(file_spans, on=["source", "source_file"])
        .group_by("source", "country")
        .agg(first_month=pl.col("file_first_day").min().dt.month_start(), last_day=pl.col("file_last_day").max())
        .sort("source", "country")
        .collect()
    )


def build_panels(
    events: pl.LazyFrame | pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    previous: MonthlyCounts | None = None,
    units: StateUnits = "fold",
    breaks: Sequence[Break] = (),
    places: pl.DataFrame | None = None,
) -> Panels:
    """All panels from canonical events; with the counts of an earlier run, only the months that changed are
    recounted (the result is the same as counting everything, which the tests hold it to). `breaks` are the
    configured break dates a new regime period is matched to. With `places` (places.places_table), the spatial
    panels too, from the same attribution of the events and kept between runs the same way."""
    # Read once: every panel below starts from these columns.
    columns = [*EVENT_COLUMNS, *(LOCATION_COLUMNS if places is not None else [])]
    events = events.lazy().select(columns).with_columns(month=pl.col("event_date").dt.month_start()).collect()
    coverage = data_coverage(events.lazy())
    counts = update_counts(events, aliases, role, ambiguous, previous, units, places)
    evidence = counts.actors.group_by([k for k in ACTOR_KEYS if k != "month"]).agg(
        pl.col("mentions").sum(), pl.col("first_seen").min(), pl.col("last_seen").max()
    )
    types = group_types(evidence, alias_types(aliases))

    def monthly(level: str, keys: list[str], attributes: pl.LazyFrame | None = None) -> pl.DataFrame:
        """One level's counts summed over admin1, zero-filled."""
        summed = (
            counts.admin1.lazy().filter(pl.col("level") == level).group_by(*keys, "month").agg(pl.col(INDICATORS).sum())
        )
        return zero_filled(summed, keys, coverage, attributes)

    # A series' name and type are joined to its key before the months are filled in: one row per series, not per month.
    series = (
        types.lazy()
        .select(*GROUP_KEYS, pl.col("group_type").cast(GROUP_TYPE_DTYPE))
        .join(counts.names.lazy(), on="group_id", how="left")
    )
    group_month = monthly("group", GROUP_KEYS, series)
    group_month = group_month.select(
        *GROUP_KEYS[:2], "group_name", "group_type", *GROUP_KEYS[2:], "month", *INDICATORS, "days_covered", "partial"
    )
    return Panels(
        group_month=group_month,  # in key order (zero_filled), as the country panel
        country_month=monthly("country", COUNTRY_KEYS),
        admin1_month=counts.admin1.with_columns(pl.col("admin1").fill_null(UNKNOWN_ADMIN1)),
        coverage=coverage,
        unmapped=unmapped_actors(counts.actors.lazy().filter(~pl.col("known"))),
        group_types=types,
        variants=group_variants(evidence),
        regime_periods=regime_periods(evidence, breaks),
        counts=counts,
        **(_spatial_panels(counts) if places is not None else {}),
    )


def _spatial_panels(counts: MonthlyCounts) -> dict[str, pl.DataFrame]:
    from sahel_pipeline.core.spatial import spatial_month  # spatial imports alerts, which imports this module

    return {"spatial_month": spatial_month(counts.measures, counts.entered), "buffer_month": counts.buffers}


def update_counts(
    events: pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role,
    ambiguous: Ambiguity,
    previous: MonthlyCounts | None,
    units: StateUnits = "fold",
    places: pl.DataFrame | None = None,
) -> MonthlyCounts:
    """The monthly counts of these events: the previous run's for months whose events are unchanged, counted anew for
    the others (all of them without previous counts, or when the alias table, the settings or the places changed)."""
    key = counts_key(aliases, role, ambiguous, units, places)
    digests = month_digests(events)
    if previous is None or previous.key != key:
        admin1, actors, names, located = count_months(events, aliases, role, ambiguous, units, places, entries=True)
        return MonthlyCounts(admin1, actors, names, digests, key, digests.height, **_with_entries(located))
    # A month changed when its digest or row count differs, or when it exists on one side only (new, or emptied).
    compared = digests.join(previous.digests, on=MONTH_KEYS, how="full", coalesce=True, suffix="_before")
    changed = compared.filter(
        (pl.col("digest") != pl.col("digest_before")).fill_null(True)
        | (pl.col("rows") != pl.col("rows_before")).fill_null(True)
    ).select(MONTH_KEYS)
    recounted = in_months(changed)
    admin1, actors, names, located = count_months(
        events.filter(recounted), aliases, role, ambiguous, units, places
    )

    def unchanged(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(~recounted)

    admin1 = pl.concat([unchanged(previous.admin1), admin1])
    present = admin1.filter(pl.col("level") == "group").select("group_id").unique()
    return MonthlyCounts(
        admin1=admin1,
        actors=pl.concat([unchanged(previous.actors), actors]),
        names=pl.concat([names, previous.names])
        .unique("group_id", keep="first", maintain_order=True)
        .join(present, on="group_id", how="semi"),
        digests=digests,
        key=key,
        recounted_months=changed.height,
        **_with_entries(
            {part: pl.concat([unchanged(getattr(previous, part)), frame]) for part, frame in located.items()},
            previous.entered,
            changed["month"].min(),  # type: ignore[arg-type]
        ),
    )


def in_months(months: pl.DataFrame) -> pl.Expr:
    """Whether a row's (source, month) is one of `months`'. A filter, not a join on the two keys: a join hashes every
    row's source text, and the weekly update's kept counts (millions of rows) were filtered five times so (0.5 s,
    against 0.07)."""
    by_source = months.group_by("source").agg("month").rows()
    return pl.any_horizontal(
        pl.lit(False), *((pl.col("source") == source) & pl.col("month").is_in(dates) for source, dates in by_source)
    ).fill_null(False)


def _with_entries(
    located: dict[str, pl.DataFrame], kept: pl.DataFrame | None = None, since: dt.date | None = None
) -> dict[str, pl.DataFrame]:
    """The spatial parts with the admin2 areas' entries of every month (none without places): worked out from all
    the areas (or with them, by count_months), or, with an earlier run's (`kept`), again only from the first changed
    month (`since`)."""
    if not located or "entered" in located:
        return located
    from sahel_pipeline.core.spatial import admin2_entered, entered_since  # it imports this module

    areas = located["areas"]
    entered = admin2_entered(areas) if kept is None else entered_since(areas, kept, since)
    return {**located, "entered": entered}


def count_months(
    events: pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role,
    ambiguous: Ambiguity,
    units: StateUnits = "fold",
    places: pl.DataFrame | None = None,
    entries: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, pl.DataFrame]]:
    """Sparse counts per admin1 and month (for each group and the whole country), each group's names per month with
    the types the events gave them, and the groups' display names, of the given events; with `places`, the spatial
    panels' parts of the same events (spatial.month_parts' measures, buffers and areas), from the same
    attribution (spatial.attributed_parts); with `entries`, the admin2 entries of these months too (`entered`: when
    they are all the months)."""
    carried = ["month", "event_date", "admin1", "disorder_type", "event_type", "fatalities", "civilian_targeting"]
    if places is not None:
        from sahel_pipeline.core.spatial import attributed_parts, precise_location  # it imports this module

        events = events.with_columns(precise=precise_location())
    attribution = attribute_events(events.lazy(), aliases, role, ambiguous, carry=carried, units=units)
    attributed, names = attribution.groups.lazy(), attribution.names.lazy()
    group_ids = names.select("_group", "group_id").unique()
    # Counted per admin1; the country-wide panels are sums over admin1, a third of the rows of the attributed events.
    # Groups are counted by their codes and named after (see Attribution).
    admin1 = pl.concat(
        [
            attributed.group_by("source", "_group", "country", "admin1", "month")
            .agg(indicator_sums())
            .join(group_ids, on="_group")
            .with_columns(level=pl.lit("group")),
            events.lazy()
            .group_by(*COUNTRY_KEYS, "admin1", "month")
            .agg(indicator_sums())
            .with_columns(level=pl.lit("country"), group_id=pl.lit(None, pl.String)),
        ],
        how="diagonal",
    ).select(*UNIT_KEY, "admin1", "month", *INDICATORS)
    actors = (
        attributed.group_by("source", "_name", "_group", "month", "inter", "associated")
        .agg(mentions=pl.len(), first_seen=pl.col("event_date").min(), last_seen=pl.col("event_date").max())
        .join(
            names.select("_name", "source", "_group", "actor", "country", "group_id", "known"),
            on=["_name", "source", "_group"],
        )
        .select(*ACTOR_KEYS, "mentions", "first_seen", "last_seen")
    )
    display = names.group_by("group_id").agg(pl.col("group_name").first())
    admin1_counts, actor_counts, display_names = pl.collect_all([admin1, actors, display])
    located = {}
    if places is not None:
        codes = attribution.names.select("_group", "group_id").unique("_group")
        located = attributed_parts(attribution.groups, codes, events, places, entries)
    return admin1_counts, actor_counts, display_names, located


def month_digests(events: pl.DataFrame) -> pl.DataFrame:
    """Per (source, month): the number of events and an order-free digest of their content (the wrapping sum of the
    rows' 64-bit hashes). Equal digests, equal counts."""
    return (
        events.lazy()
        .group_by(MONTH_KEYS)
        .agg(
            digest=pl.struct([c for c in events.columns if c not in NOT_DIGESTED]).hash(seed=DIGEST_SEED).sum(),
            rows=pl.len(),
        )
        .collect()
    )


def counts_key(
    aliases: pl.DataFrame,
    role: Role,
    ambiguous: Ambiguity,
    units: StateUnits = "fold",
    places: pl.DataFrame | None = None,
) -> str:
    """Identifies what counts depend on besides the events: the alias table, the role, ambiguity and unit settings,
    the places the spatial panels measure from, and the versions of this code and of Polars (whose hashes the digests
    are, stable within a version only)."""
    table = aliases.sort(aliases.columns).write_csv().encode()
    if places is not None:
        table += places.sort("place_id").write_csv().encode()
    settings = f"{PANEL_VERSION}|{pl.__version__}|{role}|{ambiguous}|{units}|".encode()
    return hashlib.blake2b(settings + table, digest_size=12).hexdigest()


def save_counts(counts: MonthlyCounts, folder: Path) -> None:
    """Keep the counts for the next run: written into a new subfolder, then pointed to by `current.json` (replaced
    in one step), so a run that stops half-way leaves the previous counts in use."""
    folder.mkdir(parents=True, exist_ok=True)
    state = f"counts-{uuid.uuid4().hex[:12]}"
    (folder / state).mkdir()
    with written_aside() as aside:
        for part in COUNT_PARTS:
            getattr(counts, part).write_parquet(aside(folder / state / f"{part}.parquet"), compression="lz4")
        aside(folder / "current.json").write_text(json.dumps({"state": state, "key": counts.key}))
    for old in folder.glob("counts-*"):
        if old.name != state:
            shutil.rmtree(old, ignore_errors=True)


def load_counts(folder: Path, warn: Callable[[str], None] = print) -> MonthlyCounts | None:
    """The counts a previous run kept, or None when there are none (then every month is counted), or when a file of
    them cannot be read: then they are discarded with a warning naming it, and every month is counted again."""
    pointer = folder / "current.json"
    if not pointer.exists():
        return None
    reading = pointer
    try:
        saved = json.loads(pointer.read_text())
        state = folder / saved["state"]
        frames: dict[str, Any] = {}
        for part in COUNT_PARTS:
            reading = state / f"{part}.parquet"
            frames[part] = pl.read_parquet(reading)
        return MonthlyCounts(**frames, key=str(saved["key"]))
    except UNREADABLE as err:
        discarded(reading, err, "the kept panel counts are dropped and every month is counted again", warn)
        pointer.unlink(missing_ok=True)
        return None


def last_complete_month(country_month_panel: pl.DataFrame) -> dt.date:
    """The latest month that some source covers in full (a month still open in the data is not complete)."""
    complete = country_month_panel.filter(~pl.col("partial"))
    return cast(dt.date, complete.group_by("source").agg(pl.col("month").max())["month"].max())


def zero_filled(
    counts: pl.LazyFrame, keys: list[str], coverage: pl.DataFrame, attributes: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Every series gets every month its data cover; months without events are zeros. `attributes` (keyed by `keys`)
    are columns each series carries on every month. The rows come in the order of `keys` and the month: the series
    (thousands) are sorted and the joins keep that order, which costs far less than sorting the panel (millions)."""
    months = (
        coverage.lazy()
        .select(
            "source",
            "country",
            "last_day",
            month=pl.date_ranges("first_month", pl.col("last_day").dt.month_start(), interval="1mo"),
        )
        .explode("month")
        .sort("source", "country", "month")
    )
    series = counts.select(keys).unique().sort(keys)
    if attributes is not None:
        series = series.join(attributes, on=keys, how="left", maintain_order="left")
    grid = series.join(months, on=["source", "country"], maintain_order="left_right")
    days_in_month = pl.col("month").dt.month_end().dt.day()
    is_last = pl.col("month") == pl.col("last_day").dt.month_start()
    return (
        grid.join(counts, on=[*keys, "month"], how="left", maintain_order="left")
        .with_columns(pl.col(INDICATORS).fill_null(0))
        .with_columns(
            days_covered=pl.when(is_last).then(pl.col("last_day").dt.day()).otherwise(days_in_month).cast(pl.Int32)
        )
        .with_columns(partial=pl.col("days_covered") < days_in_month)
        .drop("last_day")
        .collect()
    )


def unmapped_actors(monthly: pl.LazyFrame) -> pl.DataFrame:
    """Actor names neither the alias table nor the state rule resolves, with their events and when they were first
    and last seen, from their counts per country and month (MonthlyCounts.actors)."""
    return (
        monthly.group_by("actor", "source")
        .agg(
            events=pl.col("mentions").sum(),
            countries=pl.col("country").unique().sort().str.join("; "),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
        )
        .sort("events", "actor", descending=[True, False])
        .collect()
    )
