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
