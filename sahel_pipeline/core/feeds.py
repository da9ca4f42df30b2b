"""Alerts as files other tools read: an Atom feed (RFC 4287) and a GeoJSON map layer (RFC 7946).

* `alerts/YYYY-MM.atom`: one entry per alert (title with severity and status, the sentence as summary, severity,
  status, country and group as categories). Ids are stable (`urn:uuid:` derived from the month and the series) and an
  entry keeps its `updated` time while its text is unchanged, so that a feed reader shows an alert again only when it
  changed.
* `alerts/YYYY-MM.geojson`: a FeatureCollection in WGS 84 longitude/latitude (RFC 7946 has no `crs` member) of the
  alerted series' recent-window events (points: date, place, event type, fatalities, the alerted indicators that
  count them; a spatial alert's are the events behind it in its month: spatial_alert_events) and of their admin1 hot
  spots (a point at the mean location of the unit's recent events, with the recent count, what the baseline rate
  gives and the rise). Foreign members `month` and `synthetic` say what it is.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sahel_pipeline.core.actors import StateUnits
from sahel_pipeline.core.alerts import SEVERITY_ORDER, SPATIAL_KINDS, admin1_rise
from sahel_pipeline.core.cards import SYNTHETIC_LABEL, SYNTHETIC_NOTICE, AlertCard
from sahel_pipeline.core.groups import Ambiguity, Role, attribute_events
from sahel_pipeline.core.messages import headline, summary_line
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_key, window_start
from sahel_pipeline.core.panels import INDICATORS, UNKNOWN_ADMIN1, counted_by
from sahel_pipeline.core.places import haversine_km
from sahel_pipeline.core.report.selection import alert_series
from sahel_pipeline.core.series import SERIES_KEY, UNIT_KEY
from sahel_pipeline.core.spatial import alert_radius_km, precise_location
from sahel_pipeline.core.storage import written_aside

ATOM = "http://www.w3.org/2005/Atom"
FEED_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/sahel-pipeline/alerts")
COORDINATE_DIGITS = 5  # about a metre: ACLED's coordinates have four decimals
EVENT_COLUMNS = [
    "event_id",
    "event_date",
    "admin1",
    "location",
    "latitude",
    "longitude",
    "disorder_type",  # demonstrations are counted by it
    "event_type",
    "fatalities",
    "civilian_targeting",
]


# --- Atom -----------------------------------------------------------------------------------------------------------


def atom_feed(
    cards: list[AlertCard],
    *,
    month: str,
    month_name: str,
    synthetic: bool,
    generated: dt.datetime,
    link: str = "",
    previous: str | None = None,
) -> str:
    """The month's feed as XML text. `previous` is the feed written before for the month, whose entries' `updated`
    times are kept where an entry's title and summary are unchanged."""
    ET.register_namespace("", ATOM)
    previous_updated, kept = _previous_entries(previous)
    now = _timestamp(generated)
    entries = []
    for card in cards:
        label = f"[{SYNTHETIC_LABEL}] " if synthetic else ""
        title = f"{label}[{card.severity}, {card.status}] {card.title} ({card.source})"
        summary = (f"{SYNTHETIC_NOTICE} " if synthetic else "") + card.sentence
        entry_id = _urn(f"alert/{month}/" + "/".join(card.series))
        before = kept.get(entry_id)
        same = before is not None and before[1:] == (title, summary)
        entries.append(_Entry(entry_id, title, summary, before[0] if before is not None and same else now, card, same))
    unchanged = bool(previous_updated) and {e.id for e in entries} == set(kept) and all(e.same for e in entries)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", _urn(f"feed/{month}"))
    _sub(feed, "title", headline(month_name, synthetic))
    _sub(feed, "subtitle", (f"{SYNTHETIC_NOTICE} " if synthetic else "") + summary_line(cards))
    _sub(feed, "updated", previous_updated if unchanged else now)
    author = _sub(feed, "author")
    _sub(author, "name", "sahel_pipeline")
    _sub(feed, "generator", "sahel_pipeline")
    if link:
        ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=link)
    for item in entries:
        card = item.card
        entry = _sub(feed, "entry")
        _sub(entry, "id", item.id)
        _sub(entry, "title", item.title)
        _sub(entry, "updated", item.updated)
        _sub(entry, "summary", item.summary)
        if link:
            ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=link)
        for scheme, term in (
            ("severity", card.severity),
            ("status", card.status),
            ("country", card.country),
            ("group", card.group),
            ("indicator", card.indicator),
            ("source", card.source),
        ):
            if term:
                ET.SubElement(entry, f"{{{ATOM}}}category", scheme=f"urn:sahel-pipeline:{scheme}", term=term)
    ET.indent(feed)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"


@dataclass(frozen=True)
class _Entry:
    id: str
    title: str
    summary: str
    updated: str
    card: AlertCard
    same: bool  # as in the feed written before


def _previous_entries(previous: str | None) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """A feed written before: its `updated` and its entries' id -> (updated, title, summary); nothing when there is
    none or it does not parse."""
    if not previous:
        return "", {}
    try:
        root = ET.fromstring(previous)
    except ET.ParseError:
        return "", {}
    found = {}
    for entry in root.iter(f"{{{ATOM}}}entry"):
        values = [entry.findtext(f"{{{ATOM}}}{name}", "") for name in ("id", "updated", "title", "summary")]
        found[values[0]] = (values[1], values[2], values[3])
    return root.findtext(f"{{{ATOM}}}updated", ""), found


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{name}")
    if text is not None:
        element.text = text
    return element


def _urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(FEED_NAMESPACE, name)}"


def _timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the events behind the alerts -----------------------------------------------------------------------------------


def recent_alert_events(
    events: pl.LazyFrame,
    aliases: pl.DataFrame,
    alerts: pl.DataFrame,
    month: dt.date,
    config: ModelConfig,
    role: Role = "perpetrator",
    ambiguous: Ambiguity = "separate",
    state_units: StateUnits = "fold",
    months: int | None = None,
    extra: tuple[str, ...] = (),
    *,
    places: pl.DataFrame,
    spatial_month: pl.DataFrame,
) -> pl.DataFrame:
    """The events of the alerted units (UNIT_KEY: a group in a country, or a whole country) in the recent window up
    to `month` (or the `months` up to it: the report's maps show the baseline's too), one row per event and unit,
    attributed to groups as the panels are (the same alias table, role, ambiguity and state-unit settings), with the
    alerted indicators that count the event and the most severe of their alerts; `extra` columns of the events are
    carried too (the report's notes). A spatial alert's events are those behind it in the month
    (spatial_alert_events: `places` and the spatial panel `spatial_month` say where they are)."""
    keyed = _keyed(alerts)
    carried = [*EVENT_COLUMNS, *extra]
    located = [*carried, *(c for c in ("admin2", "geo_precision") if c not in carried)]  # the spatial alerts' too
    window = events.filter(
        pl.col("event_date").dt.month_start().is_between(window_start(month, months or config.recent_months), month)
    ).join(keyed.select("source", "country").unique().lazy(), on=["source", "country"], how="semi")
    units = [
        window.select(
            "source",
            pl.lit("country").alias("level"),
            pl.lit(None, pl.String).alias("group_id"),
            "country",
            *located,
        )
    ]
    if keyed.filter(pl.col("level") == "group").height:
        units.append(
            attribute_events(window, aliases, role, ambiguous, carry=located, units=state_units)
            .groups.lazy()
            .select("source", pl.lit("group").alias("level"), "group_id", "country", *located)
            .join(keyed.select(UNIT_KEY).unique().lazy(), on=UNIT_KEY, how="semi", nulls_equal=True)
        )
    unit_events = pl.concat(units)
    series_events = unit_events.join(keyed.lazy(), on=UNIT_KEY, nulls_equal=True)
    counted = pl.concat(
        frame.select(*UNIT_KEY, "group_name", *carried, "indicator", "severity")
        for frame in [
            *(
                series_events.filter(pl.col("indicator") == indicator, counted_by(indicator))
                for indicator in INDICATORS
            ),
            spatial_alert_events(unit_events, alerts, month, places, spatial_month),
        ]
    )
    return (
        counted.with_columns(_rank=pl.col("severity").replace_strict(SEVERITY_ORDER, return_dtype=pl.Int8))
        .group_by(*UNIT_KEY, "event_id")
        .agg(
            pl.col("group_name", *carried[1:]).first(),
            indicators=pl.col("indicator").unique().sort(),
            severity=pl.col("severity").sort_by("_rank").first(),
        )
        .sort(*UNIT_KEY, "event_date", "event_id", nulls_last=False)
        .collect()
    )


def spatial_alert_events(
    unit_events: pl.LazyFrame, alerts: pl.DataFrame, month: dt.date, places: pl.DataFrame, spatial_month: pl.DataFrame
) -> pl.LazyFrame:
    """The events behind each spatial alert of `month` (the unit's, precisely located, in that month), with the
    alert's indicator and severity: for `approach`, those within the alert's radius of its place (the ring's; the
    largest ring for a distance trend); for `new_ground`, those in the admin2 areas it entered (the spatial panel's
    names), or all of them when its spread flagged it."""
    spatial = alert_series(alerts).filter(pl.col("kind").is_in(SPATIAL_KINDS), pl.col("month") == month_key(month))
    keyed = spatial.select(*UNIT_KEY, "group_name", "kind", "indicator", "severity", "place")
    entered = spatial_month.filter(pl.col("month") == month).select(
        *UNIT_KEY, entered=pl.col("admin2_entered_names").str.split("; ")
    )
    rings = places.select("country", place="name", plat="latitude", plon="longitude")
    rows = (
        unit_events.filter(pl.col("event_date").dt.month_start() == month, precise_location())
        .join(keyed.lazy(), on=UNIT_KEY, nulls_equal=True)
        .join(rings.lazy(), on=["country", "place"], how="left")
        .join(entered.lazy(), on=UNIT_KEY, how="left", nulls_equal=True)
    )
    km = haversine_km(pl.col("latitude"), pl.col("longitude"), pl.col("plat"), pl.col("plon"))
    behind = (
        pl.when(pl.col("kind") == "approach")
        .then(km <= alert_radius_km(pl.col("indicator")))
        .when(pl.col("indicator") == "admin2_entered")
        .then(pl.col("entered").list.contains(pl.col("admin2")))
        .otherwise(True)
    )
    return rows.filter(behind.fill_null(False)).drop("kind", "place", "plat", "plon", "entered")


def hot_spots(
    alerts: pl.DataFrame, admin1: pl.DataFrame, located: pl.DataFrame, month: dt.date, config: ModelConfig
) -> pl.DataFrame:
    """The admin1 units where each alert's series rose (admin1_rise: the recent window above the baseline rate),
    each placed at the mean location of its recent events that the alert's indicator counts. `admin1` is the panel's
    history of the alerted series (report.admin1_history); `located` is recent_alert_events. Units without a located
    event or an admin1 name are left out."""
    recent = pl.col("month") >= window_start(month, config.recent_months)
    rises = admin1_rise(admin1, SERIES_KEY, recent, config).filter(
        pl.col("rise") > 0, pl.col("admin1") != UNKNOWN_ADMIN1
    )
    places = (
        located.filter(pl.col("latitude").is_not_null(), pl.col("longitude").is_not_null())
        .explode("indicators")
        .rename({"indicators": "indicator"})
        .group_by(*SERIES_KEY, "admin1")
        .agg(latitude=pl.col("latitude").mean(), longitude=pl.col("longitude").mean(), events_located=pl.len())
    )
    return (
        rises.join(places, on=[*SERIES_KEY, "admin1"], nulls_equal=True)
        .join(_keyed(alerts), on=SERIES_KEY, nulls_equal=True)
        # units whose rises tie are listed by name, as in the alert sentence and the report: the joins' order is not
        # the same from run to run
        .sort(*SERIES_KEY, "rise", "admin1", descending=[False] * len(SERIES_KEY) + [True, False], nulls_last=False)
    )


def _keyed(alerts: pl.DataFrame) -> pl.DataFrame:
    """Each alert's series key (SERIES_KEY), group name and severity."""
    return alert_series(alerts).select(*SERIES_KEY, "group_name", "severity")


# --- GeoJSON --------------------------------------------------------------------------------------------------------


def alert_geojson(events: pl.DataFrame, spots: pl.DataFrame, *, month: str, synthetic: bool) -> dict:
    """The FeatureCollection of recent_alert_events (those with coordinates) and hot_spots."""
    group = [pl.col("group_id").fill_null("").alias("group"), pl.col("group_name").fill_null("")]
    located = events.filter(pl.col("latitude").is_not_null(), pl.col("longitude").is_not_null()).select(
        "longitude",
        "latitude",
        pl.lit("event").alias("kind"),
        "event_id",
        pl.col("event_date").dt.strftime("%Y-%m-%d").alias("date"),
        *group,
        *("source", "country", "admin1", "location", "event_type", "fatalities", "indicators", "severity"),
    )
    places = spots.select(
        "longitude",
        "latitude",
        pl.lit("hot_spot").alias("kind"),
        *group,
        *("source", "country", "admin1", "indicator", "severity", "recent", "events_located"),
        pl.col("at_baseline_rate").round(1),
        pl.col("rise").round(1),
    )
    features = [_point(row) for frame in (located, places) for row in frame.to_dicts()]
    return {"type": "FeatureCollection", "month": month, "synthetic": synthetic, "features": features}


def _point(properties: dict) -> dict:
    position = [
        round(properties.pop("longitude"), COORDINATE_DIGITS),
        round(properties.pop("latitude"), COORDINATE_DIGITS),
    ]
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": position}, "properties": properties}


GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}


def geojson_problems(document: object) -> list[str]:
    """What makes a document not RFC 7946 GeoJSON: object types and members, positions of two or three finite
    numbers with longitude in -180..180 and latitude in -90..90, enough positions for lines and rings, closed rings,
    bounding boxes, and no `crs` member (removed from the format). Empty when it is valid."""
    problems: list[str] = []
    if not isinstance(document, dict):
        return ["the document is not a JSON object"]
    _object(document, "$", problems)
    return problems


def _object(obj: dict, where: str, problems: list[str]) -> None:
    kind = obj.get("type")
    if "crs" in obj:
        problems.append(f"{where}: has a 'crs' member; RFC 7946 coordinates are always WGS 84 longitude, latitude")
    if "bbox" in obj:
        _bbox(obj["bbox"], f"{where}.bbox", problems)
    if kind == "FeatureCollection":
        _members(obj, "features", where, problems, lambda m: m.get("type") == "Feature", _object, "Feature object")
    elif kind == "Feature":
        if "geometry" not in obj or "properties" not in obj:
            problems.append(f"{where}: a Feature needs geometry and properties members (either may be null)")
        if obj.get("properties") is not None and not isinstance(obj["properties"], dict):
            problems.append(f"{where}.properties: not an object or null")
        if "id" in obj and not isinstance(obj["id"], (str, int, float)):
            problems.append(f"{where}.id: not a string or a number")
        if isinstance(obj.get("geometry"), dict):
            _object(obj["geometry"], f"{where}.geometry", problems)
        elif obj.get("geometry") is not None:
            problems.append(f"{where}.geometry: not an object or null")
    elif kind in GEOMETRY_TYPES:
        _geometry(obj, where, problems)
    else:
        problems.append(f"{where}.type: {kind!r} is not a GeoJSON type")


def _members(container: dict, key: str, where: str, problems: list[str], is_member, check, what: str) -> None:
    """The members array of a FeatureCollection or a GeometryCollection, each checked."""
    members = container.get(key)
    if not isinstance(members, list):
        problems.append(f"{where}.{key}: a {container['type']} needs a {key} array")
        return
    for i, member in enumerate(members):
        if isinstance(member, dict) and is_member(member):
            check(member, f"{where}.{key}[{i}]", problems)
        else:
            problems.append(f"{where}.{key}[{i}]: not a {what}")


def _geometry(geometry: dict, where: str, problems: list[str]) -> None:
    kind = geometry["type"]
    if kind == "GeometryCollection":
        _members(
            geometry, "geometries", where, problems, lambda m: m.get("type") in GEOMETRY_TYPES, _geometry, "geometry"
        )
        return
    coordinates = geometry.get("coordinates")
    at = f"{where}.coordinates"
    depth = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}[kind]
    if not _nested(coordinates, depth, at, problems) or not isinstance(coordinates, list):
        return
    if kind == "LineString":
        _line(coordinates, at, 2, problems)
    elif kind == "MultiLineString":
        for i, line in enumerate(coordinates):
            _line(line, f"{at}[{i}]", 2, problems)
    elif kind == "Polygon":
        _rings(coordinates, at, problems)
    elif kind == "MultiPolygon":
        for i, polygon in enumerate(coordinates):
            _rings(polygon, f"{at}[{i}]", problems)


def _nested(value: object, depth: int, where: str, problems: list[str]) -> bool:
    """Arrays `depth` deep ending in valid positions."""
    if depth == 0:
        return _position(value, where, problems)
    if not isinstance(value, list):
        problems.append(f"{where}: not an array")
        return False
    return all([_nested(v, depth - 1, f"{where}[{i}]", problems) for i, v in enumerate(value)])


def _position(value: object, where: str, problems: list[str]) -> bool:
    if not isinstance(value, list) or len(value) not in (2, 3):
        problems.append(f"{where}: a position is an array of two or three numbers, got {value!r}")
        return False
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        problems.append(f"{where}: {value!r} holds something other than finite numbers")
        return False
    longitude, latitude = value[0], value[1]
    ok = True
    if not -180 <= longitude <= 180:
        problems.append(f"{where}: longitude {longitude} outside -180..180 (positions are longitude, latitude)")
        ok = False
    if not -90 <= latitude <= 90:
        problems.append(f"{where}: latitude {latitude} outside -90..90 (positions are longitude, latitude)")
        ok = False
    return ok


def _line(line: list, where: str, minimum: int, problems: list[str]) -> None:
    if len(line) < minimum:
        problems.append(f"{where}: {len(line)} positions, at least {minimum} needed")


def _rings(rings: list, where: str, problems: list[str]) -> None:
    for i, ring in enumerate(rings):
        _line(ring, f"{where}[{i}]", 4, problems)
        if ring and ring[0] != ring[-1]:
            problems.append(f"{where}[{i}]: a linear ring must end where it starts")


def _bbox(bbox: object, where: str, problems: list[str]) -> None:
    if not isinstance(bbox, list) or len(bbox) not in (4, 6) or not all(isinstance(v, (int, float)) for v in bbox):
        problems.append(f"{where}: a bbox is an array of 4 or 6 numbers")
        return
    half = len(bbox) // 2
    if bbox[1] > bbox[1 + half]:
        problems.append(f"{where}: its southern latitude is north of its northern one")


def write_text(path: Path, text: str) -> None:
    """Written aside and renamed (storage.written_aside), so that a feed reader never fetches half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_aside() as aside:
        aside(path).write_text(text, encoding="utf-8")
