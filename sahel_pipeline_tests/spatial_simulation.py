"""Simulated groups with known movements, for the spatial alerts' known-truth tests: events drawn around a centre
that stays put, moves toward a country's capital, or spreads into new districts (admin2 areas are half-degree grid
cells)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from sahel_pipeline.core.months import shift_month
from sahel_pipeline.core.spatial import KM_PER_DEGREE

COUNTRY, CAPITAL_LAT, CAPITAL_LON = "Burkina Faso", 12.36566, -1.53388  # GeoNames' Ouagadougou
FIRST = dt.date(2018, 1, 1)
MONTHS = 48


@dataclass
class Simulated:
    unit_rows: pl.DataFrame  # spatial.unit_events' shape
    group_panel: pl.DataFrame
    country_panel: pl.DataFrame
    reach_month: dict[str, dt.date]  # mover -> the first month its centre is within 100 km of the target


def _point(target: tuple[float, float], bearing: float, km: float) -> tuple[float, float]:
    lat = target[0] + km * np.cos(bearing) / KM_PER_DEGREE
    lon = target[1] + km * np.sin(bearing) / (KM_PER_DEGREE * np.cos(np.radians(target[0])))
    return lat, lon


def simulate(
    seed: int,
    stayers: int = 20,
    movers: int = 10,
    spreaders: int = 0,
    move_start: int = 30,
    move_months: int = 6,
    target: tuple[float, float] = (CAPITAL_LAT, CAPITAL_LON),
    stay_km: tuple[float, float] = (30, 400),
) -> Simulated:
    """`stayers` keep their centre (`stay_km` from the `target`, the capital unless given; 3-20 events a month);
    `movers` sit 300-450 km away until `move_start`, then move straight toward the target over `move_months` to
    30-60 km and stay; `spreaders` keep a tight cluster until `move_start`, then scatter over a region five times as
    wide."""
    rng = np.random.default_rng(seed)
    rows, reach = [], {}
    for kind, count in (("stay", stayers), ("move", movers), ("spread", spreaders)):
        for g in range(count):
            name = f"{kind}-{g}"
            bearing = rng.uniform(0, 2 * np.pi)
            rate = rng.uniform(3, 20) if kind == "stay" else rng.uniform(8, 15)
            far = rng.uniform(*stay_km) if kind == "stay" else rng.uniform(300, 450)
            near = rng.uniform(30, 60)
            for m in range(MONTHS):
                month = shift_month(FIRST, m)
                km, scatter = far, 15.0
                if kind == "move" and m >= move_start:
                    km = far + (near - far) * min(1.0, (m - move_start + 1) / move_months)
                    if km <= 100 and name not in reach:
                        reach[name] = month
                if kind == "spread" and m >= move_start:
                    scatter = 75.0
                lat, lon = _point(target, bearing, km)
                n = rng.poisson(rate)
                dlat = rng.normal(0, scatter, n) / KM_PER_DEGREE
                dlon = rng.normal(0, scatter, n) / (KM_PER_DEGREE * np.cos(np.radians(lat)))
                days = rng.integers(0, 28, n)
                for a, b, d in zip(lat + dlat, lon + dlon, days, strict=True):
                    rows.append((name, month + dt.timedelta(days=int(d)), float(a), float(b), int(rng.poisson(1))))
    events = pl.DataFrame(rows, schema=["group_id", "event_date", "latitude", "longitude", "fatalities"], orient="row")
    unit_rows = events.select(
        source=pl.lit("ACLED"), level=pl.lit("group"), group_id="group_id", country=pl.lit(COUNTRY),
        month=pl.col("event_date").dt.month_start(), latitude="latitude", longitude="longitude",
        admin2=pl.format("cell {} {}", (pl.col("latitude") * 2).floor(), (pl.col("longitude") * 2).floor()),
        fatalities="fatalities", precise=pl.lit(True),
    )  # fmt: skip
    months = pl.DataFrame({"month": [shift_month(FIRST, m) for m in range(MONTHS)]})
    groups = unit_rows.select("group_id").unique().join(months, how="cross")
    counted = unit_rows.group_by("group_id", "month").agg(events=pl.len())
    group_panel = (
        groups.join(counted, on=["group_id", "month"], how="left").with_columns(
            source=pl.lit("ACLED"),
            country=pl.lit(COUNTRY),
            group_name="group_id",
            group_type=pl.lit("rebel group"),
            events=pl.col("events").fill_null(0),
            days_covered=pl.col("month").dt.month_end().dt.day().cast(pl.Int32),
        )  # fmt: skip
    )
    country_panel = group_panel.group_by("source", "country", "month").agg(
        pl.col("events").sum(), pl.col("days_covered").first()
    )
    return Simulated(unit_rows, group_panel, country_panel, reach)


def trend_rates(seeds: int, groups: int, first: int = 18) -> pl.DataFrame:
    """The distance trend toward every place of the country, measured (the README's figures): per place, movers
    toward it flagged `approach` within 2 months of reaching 100 km (of `seeds` x `groups`; the first alert's place),
    and the alerts of groups staying 20-100 km from it over months `first`..MONTHS-1 (spatial_alerts without ring
    scores: the trend and new_ground rules)."""
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.places import places_table
    from sahel_pipeline.core.spatial import buffer_counts, spatial_alerts, where_events_are

    places = places_table([COUNTRY])
    rows = []

    def alerts(sim: Simulated, start: int) -> pl.DataFrame:
        buffers, where = buffer_counts(sim.unit_rows, places), where_events_are(sim.unit_rows, places)
        found = [
            spatial_alerts(shift_month(FIRST, m), pl.DataFrame(), buffers, where, sim.unit_rows, places,
                           sim.group_panel, ModelConfig())
            for m in range(start, MONTHS)
        ]  # fmt: skip
        return pl.concat(found).with_columns(month=pl.col("month").str.to_date("%Y-%m"))

    for place in places.iter_rows(named=True):
        target, name = (place["latitude"], place["longitude"]), place["name"]
        for seed in range(seeds):
            moving = simulate(200 + seed, stayers=0, movers=groups, target=target)
            approach = alerts(moving, 30).filter(pl.col("kind") == "approach").sort("month")
            for group, reached in moving.reach_month.items():
                own = approach.filter(pl.col("group") == group, pl.col("month") <= shift_month(reached, 2))
                first_place = own["place"][0] if own.height else None
                rows.append({"place": name, "kind": "move", "alerts": own.height, "named": first_place == name})
            staying = simulate(100 + seed, stayers=groups, movers=0, target=target, stay_km=(20, 100))
            quiet = alerts(staying, first)
            for g in range(groups):
                count = quiet.filter(pl.col("group") == f"stay-{g}").height
                rows.append({"place": name, "kind": "stay", "alerts": count, "named": False})
    return pl.DataFrame(rows).group_by("place", "kind", maintain_order=True).agg(
        groups=pl.len(),
        flagged=(pl.col("alerts") > 0).sum(),
        named_target=pl.col("named").sum(),
        alerts=pl.col("alerts").sum(),
        series_years=pl.len() * (MONTHS - first) / 12,
    )


if __name__ == "__main__":  # python -m sahel_pipeline_tests.spatial_simulation SEEDS GROUPS
    import sys

    pl.Config.set_tbl_rows(50)
    print(trend_rates(int(sys.argv[1]), int(sys.argv[2])))
