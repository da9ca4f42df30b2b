"""UCDP GED -> canonical columns.
"""

from __future__ import annotations

import polars as pl

from sahel_pipeline.core.actors import ucdp_side_type
from sahel_pipeline.core.reference import UCDP_VIOLENCE_TYPES, acled_country_name
from sahel_pipeline.core.sources.values import (
    note_unread_values,
    parse_dates,
    text_reader,
    to_float,
    to_small_int,
    to_whole_number,
)

UCDP_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y")


_ADMIN_SUFFIX = r"(?i)\s+(region|province|prefecture|department|governorate|state|district)$"


def normalise_ucdp(frame: pl.DataFrame, name: str, notes: list[str]) -> pl.DataFrame:
    """UCDP GED -> canonical columns: sides become actors, type_of_violence becomes ACLED's event types."""
    deaths = "best" if "best" in frame.columns else "best_est"
    violence = pl.col("type_of_violence").str.strip_chars()
    countries = frame["country"].drop_nulls().unique()
    country_map = {c: acled_country_name(c) for c in countries}
    text = text_reader(frame, notes)

    events = frame.select(
        event_id=pl.lit("UCDP:") + pl.col("id").str.strip_chars(),
        event_id_derived=pl.lit(False),
        source=pl.lit("UCDP"),
        event_date=pl.lit(None, pl.Date),  # parsed below, from the raw text
        country=pl.col("country").str.strip_chars().replace(country_map),
        admin1=text("adm_1").str.replace(_ADMIN_SUFFIX, ""),
        admin2=text("adm_2").str.replace(_ADMIN_SUFFIX, ""),
        location=text("where_coordinates"),
        latitude=to_float(text("latitude")),
        longitude=to_float(text("longitude")),
        geo_precision=to_small_int(text("where_prec")),
        disorder_type=pl.lit("Political violence"),
        event_type=violence.replace_strict({k: v[0] for k, v in UCDP_VIOLENCE_TYPES.items()}, default=None),
        sub_event_type=violence.replace_strict({k: v[1] for k, v in UCDP_VIOLENCE_TYPES.items()}, default=None),
        actor1=text("side_a"),
        assoc_actor_1=pl.lit(None, pl.String),
        actor2=text("side_b"),
        assoc_actor_2=pl.lit(None, pl.String),
        # sides name governments in UCDP's spelling of the country, which is compared before it is mapped to ACLED's
        inter1=ucdp_side_type(text("side_a"), pl.col("country").str.strip_chars(), pl.lit(False)),
        inter2=ucdp_side_type(text("side_b"), pl.col("country").str.strip_chars(), (violence == "3").fill_null(False)),
        civilian_targeting=(violence == "3").fill_null(False),
        fatalities=to_whole_number(text(deaths)),
        notes=text("source_headline"),
        revision=pl.lit(None, pl.Int64),
        source_file=pl.lit(name),
        source_row=pl.col("source_row"),
        _raw_event_date=text("date_start"),
        _raw_fatalities=text(deaths),
        _raw_latitude=text("latitude"),
        _raw_longitude=text("longitude"),
    )
    note_unread_values(frame, events, notes, {"where_prec": "geo_precision"})
    return events.with_columns(parse_dates(events["_raw_event_date"], UCDP_DATE_FORMATS))
