"""Spatial indicators: where a group's events are, measured against the places table (capitals, cities, analysts'
sites), per group x country x month and per country x month.

* **Buffer counts**: events and fatalities within 25, 50 and 100 km (`RADII_KM`) of every place of the event's
  country, and the nearest of them. Long: one row per unit, place, radius and month with events there.
* **Where the events are**: the nearest event's distance to the capital, the 10th percentile and the median of the
  distances, the standard distance around the month's mean centre (the events' spread), the admin2 areas with events
  and those entered (an event there and none in the 12 months before, for a unit active in the data for 12 months).
* Events whose location is imprecise (ACLED geo_precision 3: a region's centroid; UCDP where_prec 4 or more) or that
  have no coordinates are left out of every distance and counted apart (`events_imprecise`), and out of the admin2
  areas too (an imprecise event's admin2 is as much a guess as its point).

Events are attributed to groups exactly as the panels attribute them (`groups.attribute_events`), so a group's buffer
series and its count series count the same events. Distances are haversine (places.haversine_km) in Polars
expressions; the buffers join each event only to the places of its country whose latitude band it is in, so the work
grows with events x nearby places, not events x places.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import polars as pl
from scipy import special  # not scipy.stats: its import is a second of every run's start

from sahel_pipeline.core.actors import StateUnits
from sahel_pipeline.core.alerts import (
    ALERT_SCHEMA,
    SPATIAL_KINDS,
    TREND_INDICATOR,
    apply_alert_rule,
    benjamini_hochberg,
    count_text,
    finite_or_none,
    percent,
    spatial_reasons,
)
from sahel_pipeline.core.groups import Ambiguity, Role, attribute_events
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import (
    index_month_expr,
    month_index,
    month_index_expr,
    month_key,
    month_label,
    shift_month,
    window_start,
)
from sahel_pipeline.core.places import CAPITAL, CITY, KM_PER_DEGREE, capitals, haversine_km
from sahel_pipeline.core.scoring import FittingPool, Log, MonthScores, score_tasks, series_tasks
from sahel_pipeline.core.series import SERIES_COLUMNS, UNIT_KEY, long_series

RADII_KM = (25, 50, 100)
ENTRY_KEY_LIMIT = 2**64  # attributed_parts' entries sort one integer key when units x areas x months fit in it
ENTERED_QUIET_MONTHS = 12  # an admin2 area is entered when the unit had no event there in this many months before
SPATIAL_EVENT_COLUMNS = [
    "source", "event_date", "country", "admin2", "latitude", "longitude", "geo_precision", "fatalities",
    "actor1", "assoc_actor_1", "actor2", "assoc_actor_2", "inter1", "inter2",
]  # fmt: skip
BUFFER_SCHEMA: dict[str, pl.DataType] = {
    **{k: pl.String() for k in UNIT_KEY},
    "place_id": pl.String(),
    "radius_km": pl.Int32(),
    "month": pl.Date(),
    "events": pl.UInt32(),
    "fatalities": pl.Int64(),
    "nearest_km": pl.Float64(),
}
AREA_SCHEMA: dict[str, pl.DataType] = {**{k: pl.String() for k in UNIT_KEY}, "admin2": pl.String(), "month": pl.Date()}
SPATIAL_SCHEMA: dict[str, pl.DataType] = {
    **{k: pl.String() for k in UNIT_KEY},
    "month": pl.Date(),
    "events_located": pl.UInt32(),  # with a precise location: the distances below are theirs
    "events_imprecise": pl.UInt32(),  # left out of the distances (and of admin2 areas)
    "capital": pl.String(),
    "nearest_capital_km": pl.Float64(),
    "p10_capital_km": pl.Float64(),
    "median_capital_km": pl.Float64(),
    "centre_latitude": pl.Float64(),
    "centre_longitude": pl.Float64(),
    "standard_distance_km": pl.Float64(),
    "admin2_areas": pl.UInt32(),
    "admin2_entered": pl.UInt32(),
    "admin2_entered_names": pl.String(),  # '; '-separated, in order
}

MEASURE_COLUMNS = [c for c in SPATIAL_SCHEMA if not c.startswith("admin2")]  # where_measures: a month's own
MEASURE_SCHEMA = {k: SPATIAL_SCHEMA[k] for k in MEASURE_COLUMNS}


def precise_location() -> pl.Expr:
    """Whether an event's point can be measured from: coordinates present and not a region's centroid (ACLED
    geo_precision 3, UCDP where_prec 4-7). A source that gives no precision is taken at its word."""
    imprecise = ((pl.col("source") == "UCDP") & (pl.col("geo_precision") >= 4)) | (
        (pl.col("source") != "UCDP") & (pl.col("geo_precision") >= 3)
    )
    return pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null() & ~imprecise.fill_null(False)


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
UNIT_ROW_COLUMNS = ["month", "latitude", "longitude", "admin2", "fatalities", "precise"]


def unit_events(
    events: pl.LazyFrame | pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    units: StateUnits = "fold",
) -> pl.DataFrame:
    """One row per event and unit (each group the panels attribute it to, and its country): UNIT_KEY, month,
    latitude, longitude, admin2, fatalities, precise. (The panels make the same rows from their own attribution.)"""
    located = (
        events.lazy()
        .select(SPATIAL_EVENT_COLUMNS)
        .with_columns(month=pl.col("event_date").dt.month_start(), precise=precise_location())
        .collect()
    )
    attribution = attribute_events(located.lazy(), aliases, role, ambiguous, carry=UNIT_ROW_COLUMNS, units=units)
    return unit_rows(attribution.groups, located)


def unit_rows(attributed: Frame, events: Frame) -> Frame:
    """The rows the spatial panels measure: each event once for every group it is attributed to (`attributed`:
    groups.attribute_events' groups, carrying UNIT_ROW_COLUMNS) and once for its country. Lazy frames give a lazy
    query: the panels measure from it without holding its rows (6.2 M rows, about 0.4 GiB, at 2.5 M events)."""
    return pl.concat(
        [
            attributed.select("source", pl.lit("group").alias("level"), "group_id", "country", *UNIT_ROW_COLUMNS),
            events.select("source", pl.lit("country").alias("level"), pl.lit(None, pl.String).alias("group_id"),
                          "country", *UNIT_ROW_COLUMNS),
        ]
    )  # fmt: skip


def buffer_counts(
    unit_rows: pl.DataFrame | pl.LazyFrame, places: pl.DataFrame, radii: tuple[int, ...] = RADII_KM
) -> pl.DataFrame:
    """Events and fatalities of each unit within each radius of each place of its country, per month (BUFFER_SCHEMA;
    only months with events there), with the nearest event's distance."""
    near = _near_places(unit_rows.lazy(), places, max(radii))
    per_radius = [_ring_counts(near, UNIT_KEY, radius) for radius in radii]
    return pl.concat(per_radius).select(list(BUFFER_SCHEMA)).collect().cast(BUFFER_SCHEMA)  # type: ignore[arg-type]


def _near_places(rows: pl.LazyFrame, places: pl.DataFrame, reach: float) -> pl.LazyFrame:
    """The precisely located `rows` (latitude, longitude, country, ...) joined to the places of their country within
    `reach` km: the rows' columns, place_id and km."""
    band = reach / KM_PER_DEGREE  # degrees of latitude a ring spans either side of its place
    # ... and of longitude, which shrink with the cosine of latitude (taken at the ring's poleward edge)
    across = band / (pl.col("latitude").abs() + band).radians().cos().clip(0.01, 1.0)
    # Each place is listed under every whole-degree cell (latitude band x longitude band) its largest ring reaches;
    # an event joins the places listed under its own cell, i.e. only places less than a cell away (latitude bands
    # alone joined every point to the places across its whole country: 9.1 M pairs for 6.1 M points). Longitude
    # bands are taken modulo 360, so that a ring across the antimeridian finds the events on its other side.
    listed = (
        places.select(
            "country", "place_id", plat="latitude", plon="longitude",
            band=pl.int_ranges(
                (pl.col("latitude") - band).floor().cast(pl.Int32),
                (pl.col("latitude") + band).floor().cast(pl.Int32) + 1,
            ),
            lon_band=pl.int_ranges(
                (pl.col("longitude") - across).floor().cast(pl.Int32),
                (pl.col("longitude") + across).floor().cast(pl.Int32) + 1,
            ),
        )
        .explode("band")
        .explode("lon_band")
        .with_columns(lon_band=pl.col("lon_band") % 360)
        .unique(["country", "place_id", "band", "lon_band"])  # a ring wider than the globe lists a cell once
    )  # fmt: skip
    points = rows.filter("precise").with_columns(
        band=pl.col("latitude").floor().cast(pl.Int32), lon_band=pl.col("longitude").floor().cast(pl.Int32) % 360
    )
    return (
        points.join(listed.lazy(), on=["country", "band", "lon_band"])
        .with_columns(km=haversine_km(pl.col("latitude"), pl.col("longitude"), pl.col("plat"), pl.col("plon")))
        .filter(pl.col("km") <= reach)
    )


def _ring_counts(near: pl.LazyFrame, unit: list[str], radius: int, by_month: bool = True) -> pl.LazyFrame:
    """Per unit (the `unit` columns), place and month (unless `unit` tells the month): the events, fatalities and
    nearest distance within `radius`."""
    return (
        near.filter(pl.col("km") <= radius)
        .group_by(*unit, "place_id", *(["month"] if by_month else []))
        .agg(events=pl.len(), fatalities=pl.col("fatalities").sum(), nearest_km=pl.col("km").min())
        .with_columns(radius_km=pl.lit(radius, pl.Int32))
    )


def month_parts(unit_rows: pl.DataFrame | pl.LazyFrame, places: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """What the spatial panels are made of, each month's from its own events (so that a run keeps the months whose
    events did not change, as the count panels do: panels.MonthlyCounts): the measures, the rings' counts and the
    admin2 areas with events."""
    return {
        "measures": where_measures(unit_rows, places),
        "buffers": buffer_counts(unit_rows, places),
        "areas": admin2_areas(unit_rows),
    }


def attributed_parts(
    attributed: pl.DataFrame,
    group_ids: pl.DataFrame,
    events: pl.DataFrame,
    places: pl.DataFrame,
    entries: bool = False,
) -> dict[str, pl.DataFrame]:
    """month_parts(unit_rows(attributed, events), places), the same frames, with what is the same for every unit an
    event is attributed to worked out once per event: its distance to its country's capital, the places near it,
    its admin2 area. `attributed` are groups.attribute_events' groups of `events` (`_event`: an event's row in
    `events`; `_group`: a group's code, `group_ids` its group_id), with no carried columns; `events` have
    UNIT_ROW_COLUMNS. A unit row is an event's row number and one integer for the unit and month (`_um`: of the
    group's code, the event's source and country and its month), so that the grouping, the uniques and the joins
    work on integers, and the units' text keys are joined to the results (a few hundred thousand unit-months)
    instead of being carried over the unit rows (6.2 M at 2.57 M events). With `entries`, also `admin2_entered` of
    the areas ("entered", as when every month is counted), worked out on the same integer codes."""
    capital = capitals(places)
    precise = pl.col("precise")
    lat, lon = pl.when(precise).then(pl.col("latitude")), pl.when(precise).then(pl.col("longitude"))

    def code(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.Categorical).to_physical().cast(pl.UInt64)

    def of_capital(column: str) -> pl.Expr:  # a lookup: joining the events' columns to the capitals cost 0.7 s
        return pl.col("country").replace_strict(
            capital["country"], capital[column], default=None, return_dtype=pl.Float64
        )

    # The source x country pairs numbered 1.. (a few hundred: a lookup, where a dense rank sorts every event)
    pairs = events.select(_pair=code("source") * 2**32 + code("country"))["_pair"]
    distinct = pairs.unique().sort()
    per_event = (
        events.lazy()
        .select(
            "source", "country", "month", "precise", "fatalities", "latitude", "longitude",
            lat=lat, lon=lon, km=haversine_km(lat, lon, of_capital("capital_lat"), of_capital("capital_lon")),
            admin2=pl.when(precise).then(pl.col("admin2").cast(pl.Categorical)),
            _m=month_index_expr("month"),
            _sc=pairs.replace_strict(distinct, pl.int_range(1, distinct.len() + 1, dtype=pl.UInt64, eager=True)),
        )
        .collect()
    )  # fmt: skip
    # A country's unit code is its _sc, a group's (_group + 1) x n_sc + _sc; a unit's month is unit x months + the
    # month's offset from the first.
    n_sc = cast(int, per_event["_sc"].max() or 0) + 1
    first = cast(int, per_event["_m"].min() or 0)
    months = cast(int, per_event["_m"].max() or 0) - first + 1
    if (cast(int, attributed["_group"].max() or 0) + 2) * n_sc * months >= 2**64:
        raise ValueError("too many groups, countries and months for a 64-bit unit-month code")
    sc = per_event["_sc"]
    unit = pl.concat([(attributed["_group"].cast(pl.UInt64) + 1) * n_sc + sc.gather(attributed["_event"]), sc])
    event = pl.concat([attributed["_event"], pl.int_range(events.height, dtype=pl.UInt32, eager=True)])
    # In the order of unit_rows (the groups' rows, then the events'): the means and variances sum in that order.
    # (Sorted by unit-month, a grouping takes each unit-month as a slice and the measures cost a third, but Polars'
    # variance over slices is not the same to the last bit from run to run: the spread of some countries' months
    # changed between two runs of the same events.)
    rows = (
        per_event.select("precise", "lat", "lon", "km", "admin2", "_m")[event]
        .with_columns(_event=event, _um=unit * months + (pl.col("_m") - first).cast(pl.UInt64))
        .drop("_m")
    )
    place_of = per_event.select("_sc", "source", "country").unique("_sc")
    is_country = pl.col("_unit") < n_sc
    keys = (
        rows.lazy()
        .select(pl.col("_um").unique())
        .with_columns(_unit=pl.col("_um") // months, month=index_month_expr(pl.col("_um") % months + first))
        .with_columns(_sc=pl.col("_unit") % n_sc, _group=pl.when(~is_country).then(pl.col("_unit") // n_sc - 1))
        .join(place_of.lazy(), on="_sc")
        .join(group_ids.lazy(), on="_group", how="left")
        .select(
            "_um", "source", level=pl.when(is_country).then(pl.lit("country")).otherwise(pl.lit("group")),
            group_id="group_id", country="country", month="month",
        )
        .collect()
    )  # fmt: skip
    measured = _measured(rows.lazy(), ["_um"])
    measures = (
        measured.join(keys.lazy(), on="_um")
        .join(capital.lazy().select("country", "capital"), on="country", how="left")
        .select(MEASURE_COLUMNS)
        .collect()
        .cast(MEASURE_SCHEMA)  # type: ignore[arg-type]
    )
    # The rings: each event joined to the places near it once, then to its units.
    near = _near_places(
        per_event.lazy().with_row_index("_event").select(
            "_event", "country", "precise", "latitude", "longitude", "fatalities"
        ),
        places,
        max(RADII_KM),
    ).select("_event", "place_id", "km", "fatalities")  # fmt: skip
    paired = rows.lazy().select("_event", "_um").join(near, on="_event").collect().lazy()  # once for the 3 rings
    buffers = (
        pl.concat([_ring_counts(paired, ["_um"], radius, by_month=False) for radius in RADII_KM])
        .join(keys.lazy(), on="_um")
        .select(list(BUFFER_SCHEMA))
        .collect()
        .cast(BUFFER_SCHEMA)  # type: ignore[arg-type]
    )
    # Each unit's admin2 areas per month. A row's area is its admin2's code (Polars' for the name), and with its unit
    # and month one 64-bit key ordered by unit, area and month: the uniques are of one integer, and the entries' rows
    # (below) are that key's order, where an area's month before is its neighbour's (at 2.57 M events 0.9-1.4 s of
    # CPU against 1.0-1.6 with a window over the area). When the key cannot hold them, the uniques are of the unit-month
    # and the code, and the entries take the window over a hash of unit x area.
    area_code = pl.col("admin2").to_physical().cast(pl.UInt64)
    with_area = rows.lazy().filter(pl.col("admin2").is_not_null())
    names = with_area.select(pl.col("admin2").unique()).with_columns(_code=area_code).collect()
    codes = cast(int, names["_code"].max() or 0) + 1
    ordered = (cast(int, rows["_um"].max() or 0) // months + 1) * codes * months < ENTRY_KEY_LIMIT
    if ordered:
        keyed = (
            with_area.select(_key=((pl.col("_um") // months) * codes + area_code) * months + pl.col("_um") % months)
            .unique()
            .collect()
        )
        located = keyed.lazy().select(
            _um=pl.col("_key") // months // codes * months + pl.col("_key") % months,
            _code=pl.col("_key") // months % codes,
        )  # fmt: skip
    else:
        located = with_area.select("_um", _code=area_code).unique().collect().lazy()
    areas = (
        located.join(keys.lazy(), on="_um")
        .join(names.lazy(), on="_code")
        .select(*UNIT_KEY, pl.col("admin2").cast(pl.String), "month")
        .collect()
        .cast(AREA_SCHEMA)  # type: ignore[arg-type]
    )
    parts = {"measures": measures, "buffers": buffers, "areas": areas}
    if entries:
        if ordered:
            coded = keyed.lazy().sort("_key").select(
                _unit=pl.col("_key") // months // codes, _area=pl.col("_key") // months,
                m=(pl.col("_key") % months).cast(pl.Int64) + first, _code=pl.col("_key") // months % codes,
            )  # fmt: skip
        else:
            coded = located.select(
                "_code", _unit=pl.col("_um") // months, m=(pl.col("_um") % months).cast(pl.Int64) + first,
            ).with_columns(_area=pl.struct("_unit", "_code").hash())  # fmt: skip
        coded = coded.join(names.lazy(), on="_code", how="left", maintain_order="left").with_columns(
            unit_first=pl.col("m").min().over("_unit")
        )
        parts["entered"] = (
            _entries(coded, ENTERED_QUIET_MONTHS, ordered)
            .with_columns(_um=pl.col("_unit") * months + (pl.col("m") - first).cast(pl.UInt64))
            .join(keys.lazy(), on="_um")
            .select(*UNIT_KEY, "month", "admin2_areas", "admin2_entered", "admin2_entered_names")
            .collect()
        )
    return parts


def where_events_are(unit_rows: pl.DataFrame | pl.LazyFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Per unit and month with events (SPATIAL_SCHEMA): distances to the capital, spread, admin2 areas entered."""
    return spatial_month(where_measures(unit_rows, places), admin2_entered(admin2_areas(unit_rows)))


def spatial_month(measures: pl.DataFrame, entered: pl.DataFrame) -> pl.DataFrame:
    """The spatial panel (SPATIAL_SCHEMA) from the month's measures (`where_measures`) and the units' admin2 areas
    and entries per month (`admin2_entered`: entering an area depends on the months before)."""
    return (
        measures.lazy()
        .join(entered.lazy(), on=[*UNIT_KEY, "month"], how="left", nulls_equal=True)
        .with_columns(
            pl.col("admin2_areas", "admin2_entered").fill_null(0), pl.col("admin2_entered_names").fill_null("")
        )
        .select(list(SPATIAL_SCHEMA))
        .collect()
        .cast(SPATIAL_SCHEMA)  # type: ignore[arg-type]
    )


def where_measures(unit_rows: pl.DataFrame | pl.LazyFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Per unit and month with events: events located and imprecise, distances to the capital, the mean centre and
    the standard distance (MEASURE_COLUMNS). Each month's from its own events only."""
    precise = pl.col("precise")
    # Coordinates of imprecise events are nulled rather than filtered in the aggregation: plain aggregations over a
    # column stay on Polars' fast path, where a filter or a nested aggregation inside `agg` is evaluated group by
    # group (48 s instead of a few at 2.5 M events).
    lat, lon = pl.when(precise).then(pl.col("latitude")), pl.when(precise).then(pl.col("longitude"))
    unit = pl.struct(UNIT_KEY).hash()  # grouping on one integer: half the cost of four text keys
    rows = (
        unit_rows.lazy()
        .join(capitals(places).lazy(), on="country", how="left")
        .select(
            "month", "precise",
            lat=lat, lon=lon,
            km=haversine_km(lat, lon, pl.col("capital_lat"), pl.col("capital_lon")),
            _unit=unit,
        )
    )  # fmt: skip
    # The units' keys and capital are joined to the monthly figures rather than aggregated from every row: the text
    # columns held over millions of rows were 0.74 GiB of the peak at 2.5 M events.
    keys = (
        unit_rows.lazy()
        .select(UNIT_KEY)
        .unique()
        .join(capitals(places).lazy().select("country", "capital"), on="country", how="left")
        .with_columns(_unit=unit)
    )
    return _measured(rows).join(keys, on="_unit").select(MEASURE_COLUMNS).collect().cast(MEASURE_SCHEMA)  # type: ignore[arg-type]


def _measured(rows: pl.LazyFrame, by: list[str] | None = None, quantiles: bool = True) -> pl.LazyFrame:
    """where_measures' figures per unit and month (`by`: _unit and month), from rows of precise, lat and lon (null
    when imprecise) and km (to the capital); without the p10 and the median unless `quantiles`."""
    precise = pl.col("precise")
    # Standard distance: the root mean square distance from the mean centre, on the local plane (km per degree of
    # longitude shrinks with the cosine of latitude): K * sqrt(cos^2(mean latitude) Var(lon) + Var(lat)). Rings of
    # 100 km are small enough for the plane.
    spread = KM_PER_DEGREE * (
        (pl.col("centre_latitude") * math.pi / 180).cos() ** 2 * pl.col("_lon_var") + pl.col("_lat_var")
    ).sqrt()
    return (
        rows.group_by(by or ["_unit", "month"])
        .agg(
            *(
                [pl.col("km").quantile(0.1, interpolation="linear").alias("p10_capital_km"),
                 pl.col("km").median().alias("median_capital_km")]
                if quantiles else []
            ),
            events_located=precise.sum().cast(pl.UInt32),
            events_imprecise=(~precise).sum().cast(pl.UInt32),
            nearest_capital_km=pl.col("km").min(),
            centre_latitude=pl.col("lat").mean(),
            centre_longitude=pl.col("lon").mean(),
            _lat_var=pl.col("lat").var(ddof=0),
            _lon_var=pl.col("lon").var(ddof=0),
        )
        .with_columns(standard_distance_km=spread)
    )


def admin2_areas(unit_rows: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The admin2 areas each unit had precisely located events in, per month (AREA_SCHEMA: one row each)."""
    return (
        unit_rows.lazy()
        .filter(pl.col("precise"), pl.col("admin2").is_not_null())
        .select(*UNIT_KEY, "admin2", "month")
        .unique()  # on the columns themselves: at 2.5 M events 40% less CPU than on a hash of them
        .collect()
        .cast(AREA_SCHEMA)  # type: ignore[arg-type]
    )


def admin2_entered(
    areas: pl.DataFrame, quiet: int = ENTERED_QUIET_MONTHS, first_months: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per unit and month: admin2 areas with (precisely located) events, and those entered: an event there and none
    in the `quiet` months before, counted once the unit has been in the data for `quiet` months (before that every
    area would look new). `areas` are `admin2_areas`' rows; `first_months` (UNIT_KEY, first), each unit's first
    month with areas when `areas` hold only the later months (`entered_since`)."""
    # Units and unit x area pairs as 64-bit hashes: sorting and comparing neighbours on one integer instead of
    # windows over five string keys (a collision would only merge two areas' histories, at odds of 2^-64 a pair).
    rows = areas.lazy()
    units = rows.select(*UNIT_KEY, _unit=pl.struct(UNIT_KEY).hash()).unique("_unit")
    hashed = rows.select(
        "admin2", m=month_index_expr("month"), _unit=pl.struct(UNIT_KEY).hash(),
        _area=pl.struct(*UNIT_KEY, "admin2").hash(),
    )  # fmt: skip
    if first_months is None:
        hashed = hashed.with_columns(unit_first=pl.col("m").min().over("_unit"))
    else:
        first = first_months.lazy().select(_unit=pl.struct(UNIT_KEY).hash(), unit_first=month_index_expr("first"))
        hashed = hashed.join(first, on="_unit")
    return (
        _entries(hashed, quiet)
        .join(units, on="_unit")
        .select(
            *UNIT_KEY, month=index_month_expr("m"), admin2_areas="admin2_areas", admin2_entered="admin2_entered",
            admin2_entered_names="admin2_entered_names",
        )
        .collect()
    )  # fmt: skip


def _entries(coded: pl.LazyFrame, quiet: int, ordered: bool = False) -> pl.LazyFrame:
    """admin2_entered's figures per `_unit` and month index `m`, from one row per unit, area and month with areas:
    _unit, _area (the unit's area), m, admin2 (the area's name, String or Categorical) and unit_first (the unit's
    first month)."""
    marked = (
        # the area's month before, in a window over the area (a sort on the two keys cost twice as much CPU)
        coded.with_columns(
            before=pl.when(pl.col("_area") == pl.col("_area").shift(1)).then(pl.col("m").shift(1))
            if ordered
            else pl.col("m").shift(1).over("_area", order_by="m")
        )
        .with_columns(
            entered=(pl.col("m") - pl.col("unit_first") >= quiet)
            & (pl.col("before").is_null() | (pl.col("m") - pl.col("before") > quiet))
        )
        .collect()
    )  # fmt: skip
    counted = marked.lazy().group_by("_unit", "m").agg(
        admin2_areas=pl.len().cast(pl.UInt32), admin2_entered=pl.col("entered").sum().cast(pl.UInt32)
    )
    # The names only of the areas entered: few rows, where joining text over every area-month is most of the cost.
    # Sorted once before the grouping, which keeps each group's rows in order: a sort in the aggregation ran group by
    # group (at 2.57 M events 150,000 unit-months with entries, 0.26 s against 0.10).
    named = (
        marked.lazy()
        .filter("entered")
        .select("_unit", "m", pl.col("admin2").cast(pl.String))
        .sort("admin2")
        .group_by("_unit", "m")
        .agg(admin2_entered_names=pl.col("admin2"))
        .with_columns(pl.col("admin2_entered_names").list.join("; "))
    )
    return counted.join(named, on=["_unit", "m"], how="left").with_columns(
        pl.col("admin2_entered_names").fill_null("")
    )


def entered_since(
    areas: pl.DataFrame, kept: pl.DataFrame, since: dt.date | None, quiet: int = ENTERED_QUIET_MONTHS
) -> pl.DataFrame:
    """`admin2_entered` of every month of `areas`, worked out again only from `since` (the first month whose events
    changed; None: none did): `kept` is an earlier run's `admin2_entered`, whose months before `since` stand. A
    month's entries depend on the `quiet` months before it and on the unit's first month, which the kept rows give
    for the months before `since` (a kept row is a unit's month with areas). In a weekly update, ACLED's revisions
    reach a few months back: the areas of the last year and a half are read, not all of them (3.7 s -> 0.3 s at 2.5 M
    events)."""
    if since is None:
        return kept
    before, window = kept.filter(pl.col("month") < since), areas.filter(pl.col("month") >= shift_month(since, -quiet))
    first = (
        pl.concat([before.select(*UNIT_KEY, "month"), window.select(*UNIT_KEY, "month")])
        .group_by(UNIT_KEY)
        .agg(first=pl.col("month").min())
    )
    fresh = admin2_entered(window, quiet, first).filter(pl.col("month") >= since)
    return pl.concat([before, fresh])


# --- buffer series: ordinary count series, scored by the series models ---------------------------------------------

BUFFER_MARK = "@"  # a buffer series' indicator: 'events_100km@BF:Ouagadougou'


def buffer_indicator(radius: pl.Expr, place_id: pl.Expr) -> pl.Expr:
    return pl.format("events_{}km" + BUFFER_MARK + "{}", radius, place_id)


def parse_buffer_indicator(indicator: pl.Expr) -> dict[str, pl.Expr]:
    """radius_km and place_id back from a buffer series' indicator."""
    parts = indicator.str.split_exact(BUFFER_MARK, 1)
    return {
        "radius_km": parts.struct.field("field_0").str.extract(r"(\d+)km").cast(pl.Int32),
        "place_id": parts.struct.field("field_1"),
    }


def alert_radius_km(indicator: pl.Expr) -> pl.Expr:
    """The radius around its place an `approach` alert is about: its ring's (`events_25km`), the largest ring for a
    distance trend."""
    return indicator.str.extract(r"^events_(\d+)km$").cast(pl.Int32).fill_null(max(RADII_KM))


def buffer_series(
    buffers: pl.DataFrame | pl.LazyFrame,
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    month: dt.date,
    config: ModelConfig,
    series: pl.DataFrame,
) -> pl.LazyFrame:
    """The given unit x place x radius `series` (buffer_candidates) as long count series (SERIES_COLUMNS, month,
    count, days_covered), zero-filled over the months the unit's panel series covers."""
    first = window_start(month, config.history_months)
    months = long_series(
        group_panel, country_panel, ["events"], first=first, last=month,
        carry=("group_name", "group_type", "days_covered"),
    ).drop("indicator", "count")  # fmt: skip
    wanted = series.lazy().select(*UNIT_KEY, "place_id", "radius_km")
    counts = buffers.lazy().filter(pl.col("month").is_between(first, month))
    return (
        months.join(wanted, on=UNIT_KEY, nulls_equal=True)
        .join(counts, on=[*UNIT_KEY, "place_id", "radius_km", "month"], how="left", nulls_equal=True)
        .select(
            *[c for c in SERIES_COLUMNS if c != "indicator"],
            "month",
            "days_covered",
            indicator=buffer_indicator(pl.col("radius_km"), pl.col("place_id")),
            count=pl.col("events").fill_null(0).cast(pl.Int64),
        )
    )


def score_buffers(
    buffers: pl.DataFrame | pl.LazyFrame,
    where: pl.DataFrame | pl.LazyFrame,
    group_panel: pl.DataFrame | pl.LazyFrame,
    country_panel: pl.DataFrame | pl.LazyFrame,
    month: dt.date,
    config: ModelConfig,
    pool: FittingPool | None = None,
    log: Log = print,
) -> MonthScores:
    """Scores at `month` of the buffer series that can raise an `approach` alert (buffer_candidates), by the same
    models and rule as every count series. Series skipped as sparse are not listed."""
    window = pl.col("month").is_between(window_start(month, config.window_months), month)
    recent_buffers = buffers.lazy().filter(window).collect()
    candidates = buffer_candidates(month, recent_buffers, where.lazy().filter(window).collect(), config)
    series = buffer_series(buffers, group_panel, country_panel, month, config, candidates)
    tasks, skipped = series_tasks(series, month, config)
    log(f"{month_key(month)}: {len(tasks):,} buffer series to fit (their ring's share of the unit's events rose), "
        f"{skipped.height:,} skipped as sparse")  # fmt: skip
    scored = score_tasks(tasks, config, pool, log)
    scored.scores = scored.scores.with_columns(month=pl.lit(month))
    return scored


# --- alerts ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpatialRule:
    """Thresholds of the `approach` trend test and of `new_ground`."""

    trend_months: int = 12  # the window of the distance trend test
    trend_min_months: int = 6  # months with located events in that window
    trend_min_events: int = 10
    trend_p: float = 0.01  # Mann-Kendall, one-sided (distances shrinking)
    trend_min_shrink: float = 0.5  # the Theil-Sen line's end at most this share of its start
    trend_within_km: float = 150.0  # the month's median distance at most this: closing in, not just closer
    entered_min: int = 3  # admin2 areas entered in the month
    spread_months: int = 24  # the usual range of the standard distance: these months before
    spread_min_months: int = 6  # with at least `spread_min_events` located events each
    spread_min_events: int = 10
    spread_ratio: float = 1.5  # the month's standard distance at least this times the usual (median) one
    spread_mads: float = 3.0  # and above the median by this many scaled MADs

    def trend_window(self, month: dt.date) -> tuple[dt.date, dt.date]:
        """The first and last months of events the distance trends ending in `month` and in the month before
        read (spatial_alerts' `unit_rows`)."""
        return window_start(shift_month(month, -1), self.trend_months), month


SPATIAL_ALERT_SCHEMA = {k: v for k, v in ALERT_SCHEMA.items() if k != "synthetic"}  # alert_table marks them
ALERT_UNIT = [*UNIT_KEY, "group_name", "group_type"]


def spatial_alerts(
    month: dt.date,
    buffer_scores: pl.DataFrame,
    buffers: pl.DataFrame,
    where: pl.DataFrame,
    unit_rows: pl.DataFrame,
    places: pl.DataFrame,
    group_panel: pl.DataFrame | pl.LazyFrame,
    config: ModelConfig,
    rule: SpatialRule = SpatialRule(),
) -> pl.DataFrame:
    """The month's `approach` and `new_ground` alerts (SPATIAL_ALERT_SCHEMA: alert_table adds them), at most one per
    unit and kind and month. Groups of a type not alerted are left out, as for counts. `unit_rows` (unit_events')
    cover at least the distance trends' windows ending in the month and in the month before (`trend_window`)."""
    names = (
        group_panel.lazy()
        .select("source", "group_id", "country", "group_name", pl.col("group_type").cast(pl.String))
        .unique(["source", "group_id", "country"])
        .collect()
    )
    where = where.join(names, on=["source", "group_id", "country"], how="left", nulls_equal=True).filter(
        (pl.col("level") == "country") | pl.col("group_type").is_in(list(config.alerted_types))
    )
    nearest = nearest_by_month(buffers, where, places, month)
    # One approach alert per unit and month, the count rule's before the trend's (places near each other share
    # their rings' events: one rise would otherwise be alerted once per town).
    approach = [
        *approach_count_alerts(month, buffer_scores, buffers, where, nearest, places, config),
        *approach_trend_alerts(month, where, place_distances(unit_rows, places, month, rule), nearest, places, rule),
    ]
    seen: set[tuple] = set()
    rows = []
    for row in [*approach, *new_ground_alerts(month, where, rule)]:
        key = (row["kind"], row["source"], row["group"], row["country"])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return pl.DataFrame(rows, schema=SPATIAL_ALERT_SCHEMA) if rows else pl.DataFrame(schema=SPATIAL_ALERT_SCHEMA)


def nearest_by_month(buffers: pl.DataFrame, where: pl.DataFrame, places: pl.DataFrame, month: dt.date) -> pl.DataFrame:
    """The nearest event to each place per unit and month: within the largest ring from the buffers, and to the
    capital at any distance from the spatial panel; for the units and places with events in `month` only (the
    alerts' sentences compare that month's with the earlier ones: _closest)."""
    unit = pl.struct(UNIT_KEY).hash()  # one integer, not four text keys, to filter and group on
    ringed = buffers.filter(pl.col("radius_km") == pl.col("radius_km").max()).select(
        *UNIT_KEY, "place_id", "month", "nearest_km", _unit=unit
    )
    capital = where.filter(pl.col("nearest_capital_km").is_not_null()).select(
        *UNIT_KEY, "month", nearest_km="nearest_capital_km", _unit=unit
    )
    now = pl.concat([frame.filter(pl.col("month") == month)["_unit"] for frame in (ringed, capital)]).unique()
    capital = capital.filter(pl.col("_unit").is_in(now.implode())).join(
        capitals(places).select("country", place_id="capital_id"), on="country"
    )
    return (
        pl.concat([capital, ringed.filter(pl.col("_unit").is_in(now.implode()))], how="diagonal")
        .group_by("_unit", "place_id", "month")
        .agg(pl.col(UNIT_KEY).first(), pl.col("nearest_km").min())
        .select(*UNIT_KEY, "place_id", "month", "nearest_km")
    )


def _closest(nearest: pl.DataFrame, unit: dict, place_id: str, month: dt.date, kind: str) -> str:
    """'the nearest 38 km from the city, the closest since March 2021' (or 'the closest in the data' when none was
    as close); an analyst's place is named by its kind: 'from the mine'."""
    keyed = nearest.filter(
        *[(pl.col(k) == unit[k]) if unit[k] is not None else pl.col(k).is_null() for k in UNIT_KEY],
        pl.col("place_id") == place_id,
    )
    now = keyed.filter(pl.col("month") == month)["nearest_km"]
    if now.is_empty():
        return ""
    km = float(now[0])
    earlier = keyed.filter(pl.col("month") < month, pl.col("nearest_km") <= km)["month"]
    since = f"the closest since {month_label(earlier.max())}" if len(earlier) else "the closest in the data"  # type: ignore[arg-type]
    return f"; the nearest {km:.0f} km from the {'city' if kind in (CAPITAL, CITY) else kind}, {since}"


def _who(row: dict) -> str:
    return f"{row['group_name'] or row['group_id']} in {row['country']}" if row["group_id"] else row["country"]


def _alert_row(row: dict, month: dt.date, kind: str, **fields) -> dict:
    """An alert table row (alerts.ALERT_SCHEMA): the rule and the severity's reason in the table's words."""
    alert = {
        "month": month_key(month),
        "kind": kind,
        "source": row["source"],
        "country": row["country"],
        "group": row["group_id"] or "",
        "group_name": row.get("group_name") or "",
        "group_type": row.get("group_type") or "",
        "expected": None, "upper": None, "p_value": None, "q_value": None,
        "rate_ratio": None, "rate_ratio_low": None, "rate_ratio_high": None,
        "place": "",
        **fields,
    }  # fmt: skip
    rules, reason = spatial_reasons(kind, alert["indicator"], alert["place"], alert["severity"])
    return alert | {"indicators": alert["indicator"], "rules": ", ".join(rules), "severity_reason": reason}


def ring_shares(month: dt.date, buffers: pl.DataFrame, where: pl.DataFrame, config: ModelConfig) -> pl.DataFrame:
    """Per unit, place and radius with events in the ring in `month`: those events (`ring_now`), the ring's events
    over the recent window, the unit's located events in the month, the share of its located events within the ring
    over the baseline window (the models' baseline: the months before the recent ones), and `share_p`, the binomial
    test that the ring holds a larger share of the unit's events now than then."""
    start, end = window_start(month, config.window_months), window_start(month, config.recent_months)
    before = pl.col("month").is_between(start, end, closed="left")
    located = where.group_by(UNIT_KEY).agg(
        located_now=pl.col("events_located").filter(pl.col("month") == month).sum(),
        located_before=pl.col("events_located").filter(before).sum(),
    )
    ringed = (
        buffers.filter(pl.col("month").is_between(start, month))
        .group_by(*UNIT_KEY, "place_id", "radius_km")
        .agg(
            ring_before=pl.col("events").filter(before).sum(),
            ring_recent=pl.col("events").filter(pl.col("month") >= end).sum(),
            ring_now=pl.col("events").filter(pl.col("month") == month).sum(),
        )
        .filter(pl.col("ring_now") > 0)
    )
    shares = ringed.join(located, on=UNIT_KEY, nulls_equal=True).select(
        *UNIT_KEY, "place_id", "radius_km", "ring_now", "ring_recent", "located_now",
        share_before=(pl.col("ring_before") / pl.col("located_before")).fill_nan(0.0).fill_null(0.0),
    )  # fmt: skip
    share_p = at_least(*(shares[c].to_numpy() for c in ("ring_now", "located_now", "share_before")))
    return shares.with_columns(share_p=pl.Series(share_p, dtype=pl.Float64))


def at_least(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ Binomial(n, p), elementwise: the regularized incomplete beta I_p(k, n - k + 1)."""
    k, n, p = (np.asarray(a, dtype=float) for a in (k, n, p))
    inside = (k >= 1) & (k <= n)
    tail = special.betainc(np.where(inside, k, 1.0), np.where(inside, n - k + 1, 1.0), p)
    return np.where(k <= 0, 1.0, np.where(k > n, 0.0, tail))


def buffer_candidates(month: dt.date, buffers: pl.DataFrame, where: pl.DataFrame, config: ModelConfig) -> pl.DataFrame:
    """The unit x place x radius series that can raise an `approach` alert in `month`: their ring holds a larger
    share of the unit's events than in its baseline (share_p), and the recent window holds the minimum count (both
    rules of the count rule need it). Only these are fitted: at 2.5 M events most of the ten thousand series with
    events in a ring fail the share test, and fitting each would cost more than the rest of the stage."""
    min_count = config.min_count(BUFFER_MARK)  # a buffer series' indicator: the count rule's default minimum
    return ring_shares(month, buffers, where, config).filter(
        pl.col("share_p") < config.alert_p, pl.col("ring_recent") >= min_count
    )


def approach_count_alerts(
    month: dt.date,
    scores: pl.DataFrame,
    buffers: pl.DataFrame,
    where: pl.DataFrame,
    nearest: pl.DataFrame,
    places: pl.DataFrame,
    config: ModelConfig,
) -> list[dict]:
    """Buffer series the alert rule flags whose ring also holds a larger share of the unit's events than before, one
    per unit and place (its most significant radius, the smallest on a tie)."""
    if scores.height == 0 or "p_value" not in scores.columns:
        return []
    flagged = apply_alert_rule(scores, config).filter(pl.col("alert"))
    if flagged.height == 0:
        return []
    flagged = (
        flagged.with_columns(**parse_buffer_indicator(pl.col("indicator")))
        .join(places.select("place_id", place="name", place_kind="kind"), on="place_id")
        .join(ring_shares(month, buffers, where, config), on=[*UNIT_KEY, "place_id", "radius_km"], nulls_equal=True)
    )
    # Closer, not only busier: the ring holds a larger share of the unit's located events than in its baseline (a
    # binomial test at the alert level). A group that stays put and grows more active is the count alerts' business.
    flagged = (
        flagged.filter(pl.col("share_p") < config.alert_p)
        .sort("p_value", pl.col("place_kind") != CAPITAL, "radius_km")
        .unique([*UNIT_KEY, "place_id"], keep="first", maintain_order=True)
    )
    rows = []
    for row in flagged.iter_rows(named=True):
        text = (
            f"{_who(row)} ({row['source']}): {row['observed']} events within {row['radius_km']} km of "
            f"{row['place']} in {month_label(month)} against {count_text(row['expected'])} expected "
            f"({percent(config.bound_quantile)} bound {row['upper']})"
            f"{_closest(nearest, row, row['place_id'], month, row['place_kind'])}."
        )
        rows.append(
            _alert_row(
                row, month, "approach",
                indicator=f"events_{row['radius_km']}km", observed=row["observed"],
                expected=round(row["expected"], 2), upper=row["upper"], p_value=row["p_value"], q_value=row["q_value"],
                rate_ratio=finite_or_none(row["rate_ratio"]), rate_ratio_low=finite_or_none(row["rate_ratio_low"]),
                rate_ratio_high=finite_or_none(row["rate_ratio_high"]), severity=row["severity"], status=row["status"],
                explanation=text, place=row["place"],
            )
        )  # fmt: skip
    return rows


TREND_KEY = [*UNIT_KEY, "place_id"]  # one distance trend: a unit and a place of its country


def window_unit_rows(
    events: pl.LazyFrame,
    aliases: pl.DataFrame,
    first: dt.date,
    last: dt.date,
    countries: list[str] | None = None,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    units: StateUnits = "fold",
) -> pl.DataFrame:
    """unit_events' rows of the events from month `first` to month `last` (of the given countries only, when
    given), attributed as the panels attribute them."""
    window = events.filter(pl.col("event_date").dt.month_start().is_between(first, last))
    if countries is not None:
        window = window.filter(pl.col("country").is_in(countries))
    return unit_events(window, aliases, role, ambiguous, units)


def place_distances(unit_rows: pl.DataFrame, places: pl.DataFrame, month: dt.date, rule: SpatialRule) -> pl.DataFrame:
    """The distance trends' series: per unit, place of its country and month (TREND_KEY, month), its precisely
    located events and their median distance to the place (`median_km`), over the trend windows ending in `month`
    and in the month before (the status needs the month before's flags). Only pairs whose median lies within
    `trend_within_km` in one of those two months are measured over the window: no other pair can be flagged, and
    measuring every event against every place of its country over a year would cost the most."""
    located = unit_rows.lazy().filter(pl.col("precise"), pl.col("month").is_between(*rule.trend_window(month)))
    targets = places.lazy().select("country", "place_id", plat="latitude", plon="longitude")

    def medians(rows: pl.LazyFrame) -> pl.LazyFrame:
        return (
            rows.with_columns(km=haversine_km(pl.col("latitude"), pl.col("longitude"), pl.col("plat"), pl.col("plon")))
            .group_by(*TREND_KEY, "month")
            .agg(events_located=pl.len().cast(pl.UInt32), median_km=pl.col("km").median())
        )

    ends = located.filter(pl.col("month") >= shift_month(month, -1)).join(targets, on="country")
    near = medians(ends).filter(pl.col("median_km") <= rule.trend_within_km).select(TREND_KEY).unique()
    pairs = near.join(targets, on=["country", "place_id"])
    window = located.join(near.select(UNIT_KEY).unique(), on=UNIT_KEY, how="semi", nulls_equal=True)
    return medians(window.join(pairs, on=UNIT_KEY, nulls_equal=True)).collect()


def distance_trends(distances: pl.DataFrame, month: dt.date, rule: SpatialRule) -> pl.DataFrame:
    """Per unit and place (TREND_KEY): Theil-Sen slope (km a month) and one-sided Mann-Kendall p-value of the
    monthly median distance to the place (place_distances) over the `trend_months` up to `month`, from every pair
    of months (at most 66 per unit and place), for the pairs with the minimum months and events."""
    window = distances.filter(pl.col("month").is_between(window_start(month, rule.trend_months), month)).select(
        *TREND_KEY, "month", "events_located", x=month_index_expr("month"), y="median_km"
    )
    summary = window.group_by(TREND_KEY).agg(
        n=pl.len(),
        events=pl.col("events_located").sum(),
        last_x=pl.col("x").max(),
        first_x=pl.col("x").min(),
        y_now=pl.col("y").filter(pl.col("month") == month).first(),
        first_month=pl.col("month").min(),
    )
    summary = summary.filter(
        pl.col("n") >= rule.trend_min_months,
        pl.col("events") >= rule.trend_min_events,
        pl.col("last_x") == month_index(month),
    )
    if summary.height == 0:
        return summary.with_columns(s=pl.lit(0), slope=pl.lit(0.0), p_value=pl.lit(1.0), start=0.0, end=0.0)
    pairs = (
        window.join(summary.select(TREND_KEY), on=TREND_KEY, nulls_equal=True)
        .join(window.select(*TREND_KEY, x2="x", y2="y"), on=TREND_KEY, nulls_equal=True)
        .filter(pl.col("x2") > pl.col("x"))
        .group_by(TREND_KEY)
        .agg(
            s=(pl.col("y2") - pl.col("y")).sign().sum(),
            slope=((pl.col("y2") - pl.col("y")) / (pl.col("x2") - pl.col("x"))).median(),
        )
    )
    fitted = summary.join(pairs, on=TREND_KEY, nulls_equal=True)
    intercepts = (
        window.join(fitted.select(*TREND_KEY, "slope"), on=TREND_KEY, nulls_equal=True)
        .group_by(TREND_KEY)
        .agg(intercept=(pl.col("y") - pl.col("slope") * pl.col("x")).median())
    )
    fitted = fitted.join(intercepts, on=TREND_KEY, nulls_equal=True).with_columns(
        start=pl.col("intercept") + pl.col("slope") * pl.col("first_x"),
        end=pl.col("intercept") + pl.col("slope") * pl.col("last_x"),
    )
    n = fitted["n"].to_numpy().astype(float)
    variance = n * (n - 1) * (2 * n + 5) / 18
    # One-sided (shrinking): P(S <= s) under no trend, with the continuity correction.
    z = (fitted["s"].to_numpy() + 1) / np.sqrt(variance)
    return fitted.with_columns(p_value=pl.Series(special.ndtr(z)))


def _trend_flags(distances: pl.DataFrame, month: dt.date, rule: SpatialRule) -> pl.DataFrame:
    """The trends that flag, with the multiple-testing guard across places as the count rule has across rules and
    series (alerts.benjamini_hochberg): a unit is tested once per place whose median lies within `trend_within_km`,
    so its p-value is multiplied by that number (Bonferroni within the unit, `unit_p`) before the threshold, and
    `q_value` is the Benjamini-Hochberg q-value of `unit_p` among the month's tests."""
    tested = distance_trends(distances, month, rule).filter(pl.col("y_now") <= rule.trend_within_km)
    tested = tested.with_columns(
        places_tested=pl.len().over(UNIT_KEY),
        unit_p=(pl.col("p_value") * pl.len().over(UNIT_KEY)).clip(upper_bound=1.0),
    )
    tested = tested.with_columns(q_value=benjamini_hochberg(tested.select(p_value="unit_p")))
    return tested.filter(pl.col("unit_p") < rule.trend_p, pl.col("end") <= rule.trend_min_shrink * pl.col("start"))


def approach_trend_alerts(
    month: dt.date,
    where: pl.DataFrame,
    distances: pl.DataFrame,
    nearest: pl.DataFrame,
    places: pl.DataFrame,
    rule: SpatialRule,
) -> list[dict]:
    """Unit x place pairs whose events' median distance to the place shrank significantly over the trend window
    and now lies within `trend_within_km` of it, the nearest place of each unit first: a group heading for a city
    closes in on its neighbours too, and which of the tiny p-values is tinier says less than where its events now
    are. `distances` are place_distances' rows; `where` names the units alerted (groups of an alerted type)."""
    flagged = _trend_flags(distances, month, rule)
    if flagged.height == 0:
        return []
    before = _trend_flags(distances, shift_month(month, -1), rule).select(TREND_KEY).with_columns(continuing=True)
    names = where.select(ALERT_UNIT).unique(UNIT_KEY)
    flagged = (
        flagged.join(names, on=UNIT_KEY, nulls_equal=True)
        .join(before, on=TREND_KEY, how="left", nulls_equal=True)
        .join(places.select("place_id", place="name", place_kind="kind"), on="place_id")
        .sort("y_now", "unit_p", "place")
    )
    rows = []
    for row in flagged.iter_rows(named=True):
        several = row["places_tested"] > 1
        tested = f", {row['unit_p']:.2g} for the {row['places_tested']} places tested" if several else ""
        text = (
            f"{_who(row)} ({row['source']}): its events came closer to {row['place']} over the "
            f"{rule.trend_months} months to {month_label(month)}: the median distance from about {row['start']:.0f} km "
            f"in {month_label(row['first_month'])} to {row['y_now']:.0f} km ({row['slope']:.0f} km a month, "
            f"Theil-Sen; Mann-Kendall p = {row['p_value']:.2g}{tested}, {row['events']} located events)"
            f"{_closest(nearest, row, row['place_id'], month, row['place_kind'])}."
        )
        rows.append(
            _alert_row(
                row, month, "approach", indicator=TREND_INDICATOR, observed=round(row["y_now"]),
                p_value=row["unit_p"], q_value=row["q_value"], severity="medium",
                status="continuing" if row["continuing"] else "new", explanation=text, place=row["place"],
            )
        )  # fmt: skip
    return rows


def _new_ground_flags(where: pl.DataFrame, month: dt.date, rule: SpatialRule) -> pl.DataFrame:
    """Units that entered at least `entered_min` admin2 areas in the month, more than in any of the year before, or
    whose standard distance left its usual range (rule `spread`)."""
    history = where.filter(pl.col("month").is_between(window_start(month, rule.spread_months), month))
    previous_year = pl.col("month").is_between(window_start(month, 13), shift_month(month, -1))
    usual = pl.col("standard_distance_km").filter(
        pl.col("month") < month, pl.col("events_located") >= rule.spread_min_events
    )
    per_unit = history.group_by(UNIT_KEY).agg(
        pl.col("group_name", "group_type").first(),
        entered=pl.col("admin2_entered").filter(pl.col("month") == month).first(),
        entered_names=pl.col("admin2_entered_names").filter(pl.col("month") == month).first(),
        entered_before=pl.col("admin2_entered").filter(previous_year).max(),
        spread=pl.col("standard_distance_km").filter(pl.col("month") == month).first(),
        located=pl.col("events_located").filter(pl.col("month") == month).first(),
        usual=usual.median(),
        mad=(usual - usual.median()).abs().median() * 1.4826,
        usual_months=usual.len(),
    )
    entered = (pl.col("entered") >= rule.entered_min) & (pl.col("entered") > pl.col("entered_before").fill_null(0))
    spread = (
        (pl.col("located") >= rule.spread_min_events)
        & (pl.col("usual_months") >= rule.spread_min_months)
        & (pl.col("spread") >= rule.spread_ratio * pl.col("usual"))
        & (pl.col("spread") > pl.col("usual") + rule.spread_mads * pl.col("mad"))
    )
    return per_unit.with_columns(by_entered=entered.fill_null(False), by_spread=spread.fill_null(False)).filter(
        pl.col("by_entered") | pl.col("by_spread")
    )


def new_ground_alerts(month: dt.date, where: pl.DataFrame, rule: SpatialRule) -> list[dict]:
    """One `new_ground` alert per unit and month: by the admin2 areas entered when that holds, else by the spread."""
    flagged = _new_ground_flags(where, month, rule)
    if flagged.height == 0:
        return []
    before = _new_ground_flags(where, shift_month(month, -1), rule).select(UNIT_KEY).with_columns(continuing=True)
    flagged = flagged.join(before, on=UNIT_KEY, how="left", nulls_equal=True)
    rows = []
    for row in flagged.iter_rows(named=True):
        status = "continuing" if row["continuing"] else "new"
        if row["by_entered"]:
            text = (
                f"{_who(row)} ({row['source']}): events in {row['entered']} admin2 areas new to it in "
                f"{month_label(month)} (none there in the {ENTERED_QUIET_MONTHS} months before; at most "
                f"{row['entered_before'] or 0} in a month over the past year): {row['entered_names']}."
            )
            fields = {"indicator": "admin2_entered", "observed": row["entered"], "expected": None}
        else:
            text = (
                f"{_who(row)} ({row['source']}): its events spread over {row['spread']:.0f} km (standard distance) in "
                f"{month_label(month)} against {row['usual']:.0f} km usually ({row['usual_months']} months of the "
                f"past {rule.spread_months})."
            )
            fields = {
                "indicator": "standard_distance_km", "observed": round(row["spread"]), "expected": row["usual"],
            }  # fmt: skip
        severity = "medium" if row["by_entered"] and row["by_spread"] else "low"
        rows.append(_alert_row(row, month, "new_ground", severity=severity, status=status, explanation=text, **fields))
    return rows


# --- the map of an alert (the report draws it: issue 16) -------------------------------------------------------------


@dataclass(frozen=True)
class MapPlace:
    """A place the map labels: the alert's place, the country's capital and cities, the analysts' places."""

    place_id: str
    name: str
    kind: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class MapEvent:
    """One precisely located event of the alerted unit."""

    month: dt.date
    latitude: float
    longitude: float
    fatalities: int


@dataclass(frozen=True)
class AlertMap:
    """What a map of one alert shows: the unit's located events in the baseline window and in the recent one, the
    rings around the alert's place (an `approach` alert's; the capital's for the other kinds), and the country's
    places to label. Imprecisely located events are not points on a map: they are counted apart."""

    month: dt.date
    kind: str
    source: str
    country: str
    group: str  # "" for a country-level alert
    place: MapPlace | None  # the ringed place; None when the country has no capital in the places table
    rings_km: tuple[int, ...]
    places: tuple[MapPlace, ...]  # the country's, capital first
    baseline: tuple[MapEvent, ...]  # the baseline window: the months before the recent ones
    recent: tuple[MapEvent, ...]  # the recent window, up to the alert's month
    imprecise: int  # the unit's events of both windows left off the map


def alert_maps(
    alerts: pl.DataFrame, unit_rows: pl.DataFrame, places: pl.DataFrame, config: ModelConfig
) -> list[AlertMap]:
    """One map record per alert row, in the table's order. `unit_rows` are unit_events' rows covering the alerts'
    units over the model window (more is fine: the rest is left out)."""
    # Each alert's unit is taken from rows split by unit once: a Polars query per alert and window cost more than
    # the maps' own work (a report has tens of maps).
    group = pl.col("group").fill_null("")
    alerted = alerts.select(
        "source", level=pl.when(group != "").then(pl.lit("group")).otherwise(pl.lit("country")),
        group_id=pl.when(group != "").then(group), country="country",
    )  # fmt: skip
    months = [dt.date.fromisoformat(f"{m}-01") for m in alerts["month"]]
    earliest = window_start(min(months), config.window_months) if months else dt.date.max
    by_unit = (
        unit_rows.filter(pl.col("month") >= earliest)
        .join(alerted.unique(), on=UNIT_KEY, nulls_equal=True, how="semi")
        .partition_by(UNIT_KEY, as_dict=True)
    )
    marks_of = {
        country: tuple(MapPlace(**p) for p in frame.select(list(MapPlace.__dataclass_fields__)).iter_rows(named=True))
        for (country,), frame in places.partition_by("country", as_dict=True, maintain_order=True).items()
    }
    maps = []
    for alert, key, month in zip(alerts.iter_rows(named=True), alerted.rows(), months, strict=True):
        unit = by_unit.get(key, unit_rows.clear()).filter(
            pl.col("month").is_between(window_start(month, config.window_months), month)
        )
        located = unit.filter("precise")
        recent = located["month"] >= window_start(month, config.recent_months)
        marks = marks_of.get(alert["country"], ())
        ringed = next((p for p in marks if p.name == alert["place"]), None) if alert["place"] else None
        maps.append(
            AlertMap(
                month=month,
                kind=alert["kind"],
                source=alert["source"],
                country=alert["country"],
                group=alert["group"] or "",
                place=ringed or next((p for p in marks if p.kind == CAPITAL), None),
                rings_km=RADII_KM,
                places=marks,
                baseline=_map_events(located.filter(~recent)),
                recent=_map_events(located.filter(recent)),
                imprecise=unit.height - located.height,
            )
        )
    return maps


def spatial_alert_maps(
    alerts: pl.DataFrame,
    events: pl.LazyFrame,
    aliases: pl.DataFrame,
    places: pl.DataFrame,
    config: ModelConfig,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    units: StateUnits = "fold",
) -> tuple[AlertMap, ...]:
    """The map records of a month's spatial alerts (the report's maps of their cards), from the events of their
    countries over the model window, attributed as the panels attribute them."""
    spatial = alerts.filter(pl.col("kind").is_in(SPATIAL_KINDS))
    if spatial.height == 0:
        return ()
    month = dt.date.fromisoformat(str(spatial["month"].max()) + "-01")
    rows = window_unit_rows(
        events, aliases, window_start(month, config.window_months), month, spatial["country"].unique().to_list(),
        role, ambiguous, units,
    )  # fmt: skip
    return tuple(alert_maps(spatial, rows, places, config))


def _map_events(rows: pl.DataFrame) -> tuple[MapEvent, ...]:
    columns = list(MapEvent.__dataclass_fields__)
    rows = rows.with_columns(pl.col("fatalities").fill_null(0))
    return tuple(MapEvent(**e) for e in rows.sort(columns).select(columns).iter_rows(named=True))
