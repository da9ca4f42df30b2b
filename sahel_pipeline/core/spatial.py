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

import math

import polars as pl

from sahel_pipeline.core.actors import StateUnits
from sahel_pipeline.core.groups import Ambiguity, Role, attribute_events
from sahel_pipeline.core.months import month_index_expr
from sahel_pipeline.core.places import EARTH_RADIUS_KM, capitals, haversine_km
from sahel_pipeline.core.series import UNIT_KEY

RADII_KM = (25, 50, 100)
ENTERED_QUIET_MONTHS = 12  # an admin2 area is entered when the unit had no event there in this many months before
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
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
}


def precise_location() -> pl.Expr:
    """Whether an event's point can be measured from: coordinates present and not a region's centroid (ACLED
    geo_precision 3, UCDP where_prec 4-7). A source that gives no precision is taken at its word."""
    imprecise = ((pl.col("source") == "UCDP") & (pl.col("geo_precision") >= 4)) | (
        (pl.col("source") != "UCDP") & (pl.col("geo_precision") >= 3)
    )
    return pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null() & ~imprecise.fill_null(False)


def unit_events(
    events: pl.LazyFrame | pl.DataFrame,
    aliases: pl.DataFrame,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    units: StateUnits = "fold",
) -> pl.DataFrame:
    """One row per event and unit (each group the panels attribute it to, and its country): UNIT_KEY, month,
    latitude, longitude, admin2, fatalities, precise."""
    carried = ["month", "latitude", "longitude", "admin2", "fatalities", "precise"]
    located = (
        events.lazy()
        .select(SPATIAL_EVENT_COLUMNS)
        .with_columns(month=pl.col("event_date").dt.month_start(), precise=precise_location())
        .collect()
    )
    groups = attribute_events(located.lazy(), aliases, role, ambiguous, carry=carried, units=units).groups
    return pl.concat(
        [
            groups.select(*UNIT_KEY[:1], level=pl.lit("group"), group_id="group_id", country="country", *carried),
            located.select(
                "source", level=pl.lit("country"), group_id=pl.lit(None, pl.String), country="country", *carried
            ),
        ]
    )


def buffer_counts(unit_rows: pl.DataFrame, places: pl.DataFrame, radii: tuple[int, ...] = RADII_KM) -> pl.DataFrame:
    """Events and fatalities of each unit within each radius of each place of its country, per month (BUFFER_SCHEMA;
    only months with events there), with the nearest event's distance."""
    reach = max(radii)
    band = reach / KM_PER_DEGREE  # degrees of latitude a ring spans either side of its place
    # Each place is listed under every whole-degree latitude band its largest ring reaches; an event joins the places
    # listed under its own band, i.e. only places less than a band away.
    listed = places.select(
        "country", "place_id", plat="latitude", plon="longitude",
        band=pl.int_ranges(
            (pl.col("latitude") - band).floor().cast(pl.Int32), (pl.col("latitude") + band).floor().cast(pl.Int32) + 1
        ),
    ).explode("band")  # fmt: skip
    points = unit_rows.lazy().filter("precise").with_columns(band=pl.col("latitude").floor().cast(pl.Int32))
    near = (
        points.join(listed.lazy(), on=["country", "band"])
        .with_columns(km=haversine_km(pl.col("latitude"), pl.col("longitude"), pl.col("plat"), pl.col("plon")))
        .filter(pl.col("km") <= reach)
    )
    per_radius = [
        near.filter(pl.col("km") <= radius)
        .group_by(*UNIT_KEY, "place_id", "month")
        .agg(events=pl.len(), fatalities=pl.col("fatalities").sum(), nearest_km=pl.col("km").min())
        .with_columns(radius_km=pl.lit(radius, pl.Int32))
        for radius in radii
    ]
    return pl.concat(per_radius).select(list(BUFFER_SCHEMA)).collect().cast(BUFFER_SCHEMA)  # type: ignore[arg-type]


def where_events_are(unit_rows: pl.DataFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Per unit and month with events (SPATIAL_SCHEMA): distances to the capital, spread, admin2 areas entered."""
    rows = unit_rows.lazy().join(capitals(places).lazy(), on="country", how="left")
    precise = pl.col("precise")
    km = haversine_km(pl.col("latitude"), pl.col("longitude"), pl.col("capital_lat"), pl.col("capital_lon"))
    lat, lon = pl.col("latitude").filter(precise), pl.col("longitude").filter(precise)
    mean_lat = lat.mean()
    # Standard distance: the root mean square distance from the mean centre, on the local plane (km per degree of
    # longitude shrinks with the cosine of latitude); rings of 100 km are small enough for the plane.
    dx = (lon - lon.mean()) * (mean_lat * math.pi / 180).cos() * KM_PER_DEGREE
    dy = (lat - mean_lat) * KM_PER_DEGREE
    measured = (
        rows.with_columns(km=pl.when(precise).then(km))
        .group_by(*UNIT_KEY, "month")
        .agg(
            events_located=precise.sum().cast(pl.UInt32),
            events_imprecise=(~precise).sum().cast(pl.UInt32),
            capital=pl.col("capital").first(),
            nearest_capital_km=pl.col("km").min(),
            p10_capital_km=pl.col("km").quantile(0.1, interpolation="linear"),
            median_capital_km=pl.col("km").median(),
            centre_latitude=mean_lat,
            centre_longitude=lon.mean(),
            standard_distance_km=(dx**2 + dy**2).mean().sqrt(),
        )
    )
    return (
        measured.join(admin2_entered(unit_rows).lazy(), on=[*UNIT_KEY, "month"], how="left", nulls_equal=True)
        .with_columns(pl.col("admin2_areas", "admin2_entered").fill_null(0))
        .select(list(SPATIAL_SCHEMA))
        .collect()
        .cast(SPATIAL_SCHEMA)  # type: ignore[arg-type]
    )


def admin2_entered(unit_rows: pl.DataFrame, quiet: int = ENTERED_QUIET_MONTHS) -> pl.DataFrame:
    """Per unit and month: admin2 areas with (precisely located) events, and those entered: an event there and none
    in the `quiet` months before, counted once the unit has been in the data for `quiet` months (before that every
    area would look new)."""
    areas = (
        unit_rows.lazy()
        .filter(pl.col("precise"), pl.col("admin2").is_not_null())
        .select(*UNIT_KEY, "admin2", m=month_index_expr("month"), month="month")
        .unique()
        .sort(*UNIT_KEY, "admin2", "m", nulls_last=True)
        .with_columns(
            before=pl.col("m").shift(1).over([*UNIT_KEY, "admin2"]),
            unit_first=pl.col("m").min().over(UNIT_KEY),
        )
        .with_columns(
            entered=(pl.col("m") - pl.col("unit_first") >= quiet)
            & (pl.col("before").is_null() | (pl.col("m") - pl.col("before") > quiet))
        )
    )
    return (
        areas.group_by(*UNIT_KEY, "month")
        .agg(admin2_areas=pl.len().cast(pl.UInt32), admin2_entered=pl.col("entered").sum().cast(pl.UInt32))
        .collect()
    )
