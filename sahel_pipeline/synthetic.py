"""Synthetic conflict events in ACLED's export layout: the bundled sample and the global-scale benchmark data.

Nothing here comes from ACLED: counts are drawn from overdispersed (gamma-Poisson) monthly series with a persistent
random level, and escalations are planted where the tests and the README say they are. Group names are the public
names analysts know (ACLED's spellings, so that the alias table is exercised); every note says SYNTHETIC.

State forces are named as ACLED names them, after the regime period they serve (`Military Forces of Mali
(2020-2021)`), with a unit on some events (`... (2021-) Gendarmerie`), in the proportions measured on the real files
in ../shared/data/real (PROVENANCE.md): a state-force actor in 26-35% of events, as actor1 in 7-18%, a unit on 16-25%
of those, three or four regime periods per country. Actor types are written as ACLED's newer exports write them (words,
the sample) or as its older ones (codes 1-8, the benchmark data).

    python -m sahel_pipeline.synthetic sample [--out data/sample]
    python -m sahel_pipeline.synthetic global [--events 2500000] [--out bench_data]
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from sahel_pipeline.core.months import month_key, month_range, parse_month
from sahel_pipeline.core.places import capitals, places_table
from sahel_pipeline.core.reference import ACLED_COUNTRIES

# Countries the global data may use: not the Sahel ones, whose geography the sample defines.
ACLED_COUNTRIES_FOR_SYNTHETIC = ACLED_COUNTRIES - {"Mali", "Burkina Faso", "Niger"}

# Columns of an ACLED export from the Data Export Tool (2023 onwards), in ACLED's order.
ACLED_EXPORT_COLUMNS = [
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type", "sub_event_type",
    "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2", "interaction", "civilian_targeting",
    "iso", "region", "country", "admin1", "admin2", "admin3", "location", "latitude", "longitude", "geo_precision",
    "source", "source_scale", "notes", "fatalities", "tags", "timestamp",
]

# Event-type mix per kind of actor: (event type, sub-event type, share, mean fatalities, who is on the other side).
EVENT_MIX: dict[str, list[tuple[str, str, float, float, str]]] = {
    "jihadist": [
        ("Battles", "Armed clash", 0.18, 4.0, "state"),
        ("Battles", "Armed clash", 0.16, 3.0, "communal"),
        ("Violence against civilians", "Attack", 0.30, 2.5, "civilians"),
        ("Explosions/Remote violence", "Remote explosive/landmine/IED", 0.10, 2.0, "state"),
        ("Violence against civilians", "Abduction/forced disappearance", 0.06, 0.0, "civilians"),
        ("Strategic developments", "Looting/property destruction", 0.12, 0.0, "civilians"),
    ],
    "state": [
        ("Battles", "Armed clash", 0.45, 3.0, "unidentified"),
        ("Explosions/Remote violence", "Air/drone strike", 0.20, 4.0, "unidentified"),
        ("Violence against civilians", "Attack", 0.20, 2.0, "civilians"),
        ("Strategic developments", "Arrests", 0.15, 0.0, "civilians"),
    ],
    "militia": [
        ("Violence against civilians", "Attack", 0.60, 2.0, "civilians"),
        ("Battles", "Armed clash", 0.40, 2.0, "unidentified"),
    ],
    "protesters": [
        ("Protests", "Peaceful protest", 0.85, 0.0, "none"),
        ("Protests", "Protest with intervention", 0.15, 0.0, "police"),
    ],
    "rioters": [
        ("Riots", "Violent demonstration", 0.7, 0.2, "none"),
        ("Riots", "Mob violence", 0.3, 0.5, "civilians"),
    ],
}
INTER_CODES = {
    "state": 1,
    "jihadist": 2,
    "militia": 4,
    "protesters": 6,
    "rioters": 5,
    "civilians": 7,
    "unidentified": 3,
    "police": 1,
    "communal": 4,
}
# ACLED's words for the codes 1-8 (exports from 2023 on write these instead of the codes).
INTER_WORDS = [
    "State forces", "Rebel group", "Political militia", "Identity militia", "Rioters", "Protesters", "Civilians",
    "External/Other forces",
]
UNIT_SHARE = 0.2  # of a state force's events, those by one of its units (16-25% in the real files)
MILITARY_UNITS = ("Gendarmerie", "Special Forces")
POLICE_UNITS = ("Gendarmerie", "National Guard")
# Associated actors of protests that are participants, not groups (ACLED's "Students (Mali)" and the like).
PARTICIPANTS = ("Students", "Women", "Labor Group")
PARTICIPANT_SHARE = 0.3


@dataclass(frozen=True)
class Country:
    name: str
    iso: int
    iso3: str
    code: str  # ACLED's three-letter event id prefix
    region: str
    admin1: tuple[str, ...]
    lat: tuple[float, float]
    lon: tuple[float, float]
    capital_admin1: str


@dataclass
class Actor:
    """One series: an actor active in one country. Names change over time the way ACLED's do."""

    names: list[tuple[str, str]]  # (first month 'YYYY-MM', name), in order
    kind: str
    country: str
    rate: float  # mean events per month
    admin_weights: dict[str, float] | None = None
    assoc: str | None = None
    active_from: str = "0000-00"
    active_until: str = "9999-12"  # last active month
    # gamma shape of month-to-month noise (negative-binomial alpha = 1/shape); lower is burstier
    dispersion: float = 4.0
    plants: Sequence[tuple[str, str, float, str | None]] = field(default_factory=list)  # (from, to, factor, admin1)
    units: tuple[str, ...] = ()  # a state force's units: UNIT_SHARE of its events name one


Regimes = dict[str, list[tuple[str, str]]]  # country -> (first month 'YYYY-MM', ACLED's period text), in order


def state_actor(kind: str, country: str, regimes: Regimes, rate: float, **options) -> Actor:
    """A state force named, month by month, after the regime period it serves: `Military Forces of Mali (2020-2021)`."""
    names = [(first, f"{kind} of {country} ({period})") for first, period in regimes[country]]
    units = MILITARY_UNITS if kind == "Military Forces" else POLICE_UNITS
    return Actor(names, "state", country, rate, units=units, **options)


def state_name_at(kind: str, country: str, regimes: Regimes, months: list[str], month_idx: np.ndarray) -> np.ndarray:
    """The state force's name at each of these months (for the other side of an event)."""
    firsts = np.array([months.index(first) if first in months else 0 for first, _ in regimes[country]])
    names = np.array([f"{kind} of {country} ({period})" for _, period in regimes[country]], dtype=object)
    return names[np.searchsorted(firsts, month_idx, side="right") - 1]


SAHEL = {
    c.name: c
    for c in [
        Country(
            "Mali",
            466,
            "MLI",
            "MLI",
            "Western Africa",
            ("Mopti", "Segou", "Gao", "Menaka", "Timbuktu", "Kidal", "Koulikoro", "Bamako", "Kayes", "Sikasso"),
            (11.0, 19.5),
            (-11.0, 3.5),
            "Bamako",
        ),
        Country(
            "Burkina Faso",
            854,
            "BFA",
            "BFO",
            "Western Africa",
            (
                "Sahel",
                "Est",
                "Nord",
                "Centre-Nord",
                "Boucle du Mouhoun",
                "Centre",
                "Hauts-Bassins",
                "Cascades",
                "Centre-Est",
            ),
            (10.0, 15.0),
            (-5.0, 2.0),
            "Centre",
        ),
        Country(
            "Niger",
            562,
            "NER",
            "NIG",
            "Western Africa",
            ("Tillaberi", "Tahoua", "Diffa", "Dosso", "Maradi", "Zinder", "Agadez", "Niamey"),
            (12.0, 22.0),
            (0.5, 15.5),
            "Niamey",
        ),
    ]
}

ISSP_NAMES = [
    ("2017-01", "Islamic State (Greater Sahara)"),
    ("2019-04", "Islamic State (West Africa) - Greater Sahara Faction"),
    ("2022-03", "Islamic State (Sahel)"),
    ("2024-01", "Islamic State Sahel Province (ISSP)"),
]
JNIM = "JNIM: Group for Support of Islam and Muslims"


# The regime periods ACLED gives these countries' state forces (a new one with each change of government).
SAHEL_REGIMES: Regimes = {
    "Mali": [("2017-01", "2013-2020"), ("2020-08", "2020-2021"), ("2021-06", "2021-")],
    "Burkina Faso": [("2017-01", "2015-2022"), ("2022-01", "2022-")],
    "Niger": [("2017-01", "2011-2021"), ("2021-04", "2021-2023"), ("2023-07", "2023-")],
}


def sahel_actors() -> list[Actor]:
    """The sample's actors. Planted escalations: ISSP in Niger x3 from 2024-10 (Tillaberi), JNIM in Niger 0 -> 9 in
    2024-01; and a group new in Niger from 2024-11 (Lakurawa, in Dosso)."""
    actors: list[Actor] = []
    for country, rate in (("Mali", 9.0), ("Burkina Faso", 7.0), ("Niger", 5.0)):
        plants = [("2024-10", "2024-12", 3.0, "Tillaberi")] if country == "Niger" else []
        admins = {
            "Niger": {"Tillaberi": 0.6, "Tahoua": 0.3, "Dosso": 0.1},
            "Mali": {"Menaka": 0.5, "Gao": 0.4, "Timbuktu": 0.1},
            "Burkina Faso": {"Sahel": 0.7, "Est": 0.2, "Centre-Nord": 0.1},
        }[country]
        steady = 10.0 if country == "Niger" else 4.0  # the planted series is steadier, so its rise is unambiguous
        actors.append(Actor(ISSP_NAMES, "jihadist", country, rate, admins, dispersion=steady, plants=plants))
    for country, rate in (("Mali", 22.0), ("Burkina Faso", 20.0), ("Niger", 0.15)):
        admins = {
            "Mali": {"Mopti": 0.5, "Segou": 0.3, "Timbuktu": 0.2},
            "Burkina Faso": {"Nord": 0.3, "Boucle du Mouhoun": 0.3, "Centre-Nord": 0.2, "Est": 0.2},
            "Niger": {"Tillaberi": 0.8, "Dosso": 0.2},
        }[country]
        plants = [("2024-01", "2024-01", 60.0, "Tillaberi")] if country == "Niger" else []
        actors.append(Actor([("2017-01", JNIM)], "jihadist", country, rate, admins, plants=plants))
    actors += [
        Actor([("2017-01", "Katiba Macina")], "jihadist", "Mali", 6.0, {"Mopti": 0.8, "Segou": 0.2}, assoc=JNIM),
        Actor([("2017-01", "Ansaroul Islam")], "jihadist", "Burkina Faso", 3.0, {"Sahel": 0.6, "Nord": 0.4}),
        Actor([("2017-01", f"{JNIM} and/or Islamic State (Sahel)")], "jihadist", "Burkina Faso", 2.0, {"Sahel": 1.0}),
        Actor([("2017-01", "Islamic State (West Africa)")], "jihadist", "Niger", 3.0, {"Diffa": 1.0}),
        Actor(
            [("2017-01", "Boko Haram - Jamaatu Ahli is-Sunnah lid-Dawati wal-Jihad")],
            "jihadist",
            "Niger",
            2.0,
            {"Diffa": 1.0},
        ),
        Actor([("2017-01", "Dozo Communal Militia (Mali)")], "militia", "Mali", 3.0, {"Mopti": 0.7, "Segou": 0.3}),
        Actor(
            [("2020-01", "VDP: Volunteers for the Defense of the Homeland")],
            "militia",
            "Burkina Faso",
            4.0,
            active_from="2020-01",
        ),
        Actor(
            [("2024-11", "Lakurawa")], "jihadist", "Niger", 7.0, {"Dosso": 0.7, "Tillaberi": 0.3},
            active_from="2024-11", dispersion=20.0,
        ),
    ]
    for country, rate in (("Mali", 6.0), ("Burkina Faso", 5.0), ("Niger", 2.0)):
        actors += [
            state_actor("Military Forces", country, SAHEL_REGIMES, rate),
            state_actor("Police Forces", country, SAHEL_REGIMES, rate / 4),
            Actor(
                [("2017-01", f"Protesters ({country})")],
                "protesters",
                country,
                6.0,
                {SAHEL[country].capital_admin1: 0.7, SAHEL[country].admin1[0]: 0.3},
            ),
            Actor([("2017-01", f"Rioters ({country})")], "rioters", country, 1.5),
        ]
    return actors


def simulate_counts(actors: list[Actor], months: list[str], rng: np.random.Generator) -> np.ndarray:
    """Monthly counts per actor: gamma-Poisson noise around a rate with a slowly wandering (AR(1)) level."""
    n, m = len(actors), len(months)
    level = np.zeros((n, m))
    shocks = rng.normal(0.0, 0.08, size=(n, m))
    for t in range(1, m):
        level[:, t] = 0.9 * level[:, t - 1] + shocks[:, t]
    rates = np.array([a.rate for a in actors])[:, None] * np.exp(level)
    shape = np.array([a.dispersion for a in actors])[:, None] * np.ones((1, m))
    means = rng.gamma(shape, rates / shape)
    month_index = {mo: i for i, mo in enumerate(months)}
    for i, actor in enumerate(actors):
        means[i, : month_index.get(actor.active_from, 0)] = 0.0
        if actor.active_until in month_index:
            means[i, month_index[actor.active_until] + 1 :] = 0.0
        for first, last, factor, _ in actor.plants:
            # a planted rise multiplies the series' level, without the month-to-month noise that could hide it
            planted = slice(month_index[first], month_index[last] + 1)
            means[i, planted] = rates[i, planted] * factor
    return rng.poisson(means)


def events_frame(
    actors: list[Actor],
    countries: dict[str, Country],
    months: list[str],
    counts: np.ndarray,
    rng: np.random.Generator,
    first_timestamp: int,
    regimes: Regimes,
) -> pl.DataFrame:
    """Expand monthly counts into one row per event, in ACLED's export columns (values still typed).

    Events come out grouped by actor and sorted by month within an actor, so each actor's events are one slice: the
    per-actor work is a loop over actors (thousands), never over events (millions).
    """
    actor_idx, month_idx = np.nonzero(counts)
    reps = counts[actor_idx, month_idx]
    a = np.repeat(actor_idx, reps)
    mo = np.repeat(month_idx, reps)
    n = a.size
    bounds = np.concatenate([[0], np.cumsum(counts.sum(axis=1))])
    month_start = np.array([np.datetime64(f"{m}-01") for m in months])
    days_in = ((month_start.astype("datetime64[M]") + 1).astype("datetime64[D]") - month_start).astype(int)
    dates = month_start[mo] + rng.integers(0, days_in[mo]).astype("timedelta64[D]")
    month_of = {m: i for i, m in enumerate(months)}

    country_names = list(countries)
    country_of_actor = np.array([country_names.index(x.country) for x in actors])
    c = country_of_actor[a]
    kind_names = list(EVENT_MIX)
    kinds = np.array([kind_names.index(x.kind) for x in actors])[a]

    names = np.empty(n, dtype=object)
    unit_of = np.full(n, "", dtype=object)
    admin1 = np.empty(n, dtype=object)
    planted = np.zeros(n, dtype=bool)
    for i, actor in enumerate(actors):
        lo, hi = bounds[i], bounds[i + 1]
        if lo == hi:
            continue
        actor_months = mo[lo:hi]
        for first, name in actor.names:
            names[lo + np.searchsorted(actor_months, month_of.get(first, 0)) : hi] = name
        if actor.units:
            by_unit = lo + np.nonzero(rng.random(hi - lo) < UNIT_SHARE)[0]
            unit_of[by_unit] = np.array(actor.units, dtype=object)[rng.integers(0, len(actor.units), by_unit.size)]
        weights = actor.admin_weights or {u: 1.0 for u in countries[actor.country].admin1}
        p = np.array(list(weights.values()))
        admin1[lo:hi] = np.array(list(weights), dtype=object)[rng.choice(len(weights), size=hi - lo, p=p / p.sum())]
        for first, last, factor, unit in actor.plants:
            in_plant = lo + np.nonzero((actor_months >= month_of[first]) & (actor_months <= month_of[last]))[0]
            # the surplus of a planted rise happens where the plant says, so the report can point at it
            surplus = in_plant[rng.random(in_plant.size) < (1 - 1 / factor)]
            admin1[surplus] = unit
            planted[surplus] = True

    event_type = np.empty(n, dtype=object)
    sub_type = np.empty(n, dtype=object)
    mean_deaths = np.zeros(n)
    other_side = np.empty(n, dtype=object)
    for k, mix in enumerate(EVENT_MIX.values()):
        rows = np.nonzero(kinds == k)[0]
        if rows.size == 0:
            continue
        pick = rng.choice(len(mix), size=rows.size, p=np.array([x[2] for x in mix]) / sum(x[2] for x in mix))
        for j, (etype, stype, _, deaths, other) in enumerate(mix):
            chosen = rows[pick == j]
            event_type[chosen], sub_type[chosen], mean_deaths[chosen], other_side[chosen] = etype, stype, deaths, other
    fatalities = rng.poisson(rng.gamma(0.5, np.maximum(mean_deaths, 1e-9) / 0.5)) * (mean_deaths > 0)

    names_by_side = {
        "civilians": np.array([f"Civilians ({name})" for name in country_names], dtype=object),
        "unidentified": np.array([f"Unidentified Armed Group ({name})" for name in country_names], dtype=object),
        "communal": np.array([f"Unidentified Communal Militia ({name})" for name in country_names], dtype=object),
    }
    actor2 = np.full(n, "", dtype=object)
    for side, by_country in names_by_side.items():
        rows = other_side == side
        actor2[rows] = by_country[c[rows]]
    # The state on the other side is named after the regime period of the event's month, as ACLED does, and some
    # of those events are by one of its units.
    for side, kind, units in (("state", "Military Forces", MILITARY_UNITS), ("police", "Police Forces", POLICE_UNITS)):
        for k, name in enumerate(country_names):
            rows = np.nonzero((other_side == side) & (c == k))[0]
            if rows.size:
                actor2[rows] = state_name_at(kind, name, regimes, months, mo[rows])
                by_unit = rows[rng.random(rows.size) < UNIT_SHARE]
                named = np.array(units, dtype=object)[rng.integers(0, len(units), by_unit.size)]
                actor2[by_unit] = actor2[by_unit] + " " + named
    inter1 = np.array([INTER_CODES[k] for k in kind_names])[kinds]
    side_codes = {s: INTER_CODES.get(s, 0) for s in set(other_side.tolist())}
    inter2 = pl.Series(other_side.astype(str)).replace_strict(side_codes, return_dtype=pl.Int64).to_numpy()
    is_protest = np.array([k == "protesters" for k in kind_names])[kinds]
    participant = np.full(n, "", dtype=object)
    joined = np.nonzero(is_protest & (rng.random(n) < PARTICIPANT_SHARE))[0]
    participant[joined] = np.array(PARTICIPANTS, dtype=object)[rng.integers(0, len(PARTICIPANTS), joined.size)]

    lat_lo, lat_span = (
        np.array([countries[x].lat[0] for x in country_names]),
        np.array([np.ptp(countries[x].lat) for x in country_names]),
    )
    lon_lo, lon_span = (
        np.array([countries[x].lon[0] for x in country_names]),
        np.array([np.ptp(countries[x].lon) for x in country_names]),
    )
    civilians = other_side == "civilians"
    frame = pl.DataFrame(
        {
            "event_date": dates.astype("datetime64[D]"),
            "disorder_type": np.where(
                np.isin(event_type, ["Protests", "Riots"]),
                "Demonstrations",
                np.where(event_type == "Strategic developments", "Strategic developments", "Political violence"),
            ),
            "event_type": event_type.astype(str),
            "sub_event_type": sub_type.astype(str),
            "actor1": names.astype(str),
            "_unit": unit_of.astype(str),
            "assoc_actor_1": np.array([x.assoc or "" for x in actors], dtype=object)[a].astype(str),
            "_participant": participant.astype(str),
            "inter1": inter1,
            "actor2": actor2.astype(str),
            "inter2": inter2,
            "assoc_actor_2": np.where(civilians & (rng.random(n) < 0.2), "Fulani Ethnic Group", ""),
            "civilian_targeting": np.where(civilians, "Civilian targeting", ""),
            "country": np.array(country_names)[c],
            "admin1": admin1.astype(str),
            "latitude": np.round(lat_lo[c] + rng.random(n) * lat_span[c], 4),
            "longitude": np.round(lon_lo[c] + rng.random(n) * lon_span[c], 4),
            "fatalities": fatalities.astype(np.int64),
            "_planted": planted,
        }
    ).with_columns(
        pl.col(col).replace("", None) for col in ("assoc_actor_1", "actor2", "assoc_actor_2", "civilian_targeting")
    )
    frame = (
        frame.with_columns(
            actor1=pl.when(pl.col("_unit") != "").then(pl.format("{} {}", "actor1", "_unit")).otherwise("actor1"),
            assoc_actor_1=pl.when(pl.col("_participant") != "")
            .then(pl.format("{} ({})", "_participant", "country"))
            .otherwise("assoc_actor_1"),
            assoc_actor_2=pl.when(pl.col("assoc_actor_2").is_not_null()).then(
                pl.format("{} ({})", "assoc_actor_2", "country")
            ),
        )
        .drop("_unit", "_participant")
        .sort("event_date", "country", "actor1", maintain_order=True)
    )
    codes = pl.col("country").replace_strict({x.name: x.code for x in countries.values()})
    return frame.with_columns(
        event_id_cnty=codes + pl.int_range(1, pl.len() + 1).over("country").cast(pl.String),
        year=pl.col("event_date").dt.year(),
        time_precision=pl.lit(1),
        interaction=pl.min_horizontal("inter1", "inter2") * 10 + pl.max_horizontal("inter1", "inter2"),
        iso=pl.col("country").replace_strict({x.name: x.iso for x in countries.values()}),
        region=pl.col("country").replace_strict({x.name: x.region for x in countries.values()}),
        admin2=pl.col("admin1") + pl.lit(" Cercle"),
        admin3=pl.lit(None, pl.String),
        location=pl.col("admin1") + pl.lit(" village ") + (pl.int_range(pl.len()) % 17).cast(pl.String),
        geo_precision=pl.lit(2),
        source=pl.lit("Synthetic Wire"),
        source_scale=pl.lit("National"),
        tags=pl.lit(None, pl.String),
        timestamp=pl.lit(first_timestamp, pl.Int64)
        + (pl.col("event_date") - pl.date(1997, 1, 1)).dt.total_days().cast(pl.Int64) * 60,
    )


def to_export(frame: pl.DataFrame, date_format: str, inter_words: bool = False) -> pl.DataFrame:
    """Typed events -> the text columns of an ACLED export, dates written the way the export writes them, actor types
    as codes (older exports) or as words (newer ones; no second actor, no word)."""
    notes = pl.format(
        "SYNTHETIC, not real. {}: {} in {}, {}; {} / {}; {} killed.",
        pl.col("event_date").dt.strftime("%-d %B %Y"),
        pl.col("sub_event_type"),
        pl.col("admin1"),
        pl.col("country"),
        pl.col("actor1"),
        pl.col("actor2").fill_null("no other actor"),
        pl.col("fatalities"),
    )
    words = {code: word for code, word in enumerate(INTER_WORDS, start=1)}
    inter = (
        {c: pl.col(c).replace_strict(words, default=None, return_dtype=pl.String) for c in ("inter1", "inter2")}
        if inter_words
        else {}
    )
    return frame.with_columns(notes=notes, event_date=pl.col("event_date").dt.strftime(date_format), **inter).select(
        ACLED_EXPORT_COLUMNS
    )


def month_keys(first: str, last: str) -> list[str]:
    return [month_key(m) for m in month_range(parse_month(first), parse_month(last))]


def write_sample(out: Path, seed: int = 20241231) -> dict[str, int]:
    """The bundled sample: an ACLED export to 2024-12-20, a weekly update (new events and revisions), a deletions
    file."""
    rng = np.random.default_rng(seed)
    months = month_keys("2017-01", "2024-12")
    actors = sahel_actors()
    counts = simulate_counts(actors, months, rng)
    events = events_frame(actors, SAHEL, months, counts, rng, first_timestamp=1_500_000_000, regimes=SAHEL_REGIMES)
    out.mkdir(parents=True, exist_ok=True)
    cutoff = dt.date(2024, 12, 20)
    export = events.filter(pl.col("event_date") <= cutoff)
    update_new = events.filter(pl.col("event_date") > cutoff)
    # ACLED re-publishes corrected events with a newer timestamp: a few December events get new fatality counts.
    revised = (
        export.filter(pl.col("event_date") >= dt.date(2024, 12, 1), pl.col("fatalities") > 0)
        .head(12)
        .with_columns(fatalities=pl.col("fatalities") + 1, timestamp=pl.lit(1_735_700_000, pl.Int64))
    )
    # ACLED deletes events of the last weeks; the export's last day keeps its events (a weekly pull re-reads them)
    recent = pl.col("event_date").is_between(dt.date(2024, 11, 1), cutoff - dt.timedelta(days=1))
    deleted = export.filter(recent, pl.col("_planted").not_()).tail(5)
    files = {
        "acled_sahel_2017-2024_SYNTHETIC.csv": to_export(export, "%d %B %Y", inter_words=True),
        "acled_sahel_update_2024-12-31_SYNTHETIC.csv": to_export(
            pl.concat([revised, update_new]), "%Y-%m-%d", inter_words=True
        ),
    }
    for name, frame in files.items():
        frame.write_csv(out / name, quote_style="non_numeric", null_value="")
    pl.DataFrame(
        {"event_id_cnty": deleted["event_id_cnty"], "deleted_timestamp": [1_735_800_000] * deleted.height}
    ).write_csv(out / "acled_sahel_deletions_2024-12-31_SYNTHETIC.csv")
    return {"events": events.height - deleted.height, "revised": revised.height, "deleted": deleted.height}


GLOBAL_END = dt.date(2026, 11, 14)  # the export's last day: November 2026 is still open
UPDATE_END = dt.date(2026, 11, 21)  # the weekly update adds the following week


def random_regimes(names: list[str], months: list[str], rng: np.random.Generator) -> Regimes:
    """Regime periods per country: one to several changes of government over the years (1 + Poisson(1.5), three or
    four periods on average, as in the real files), the first period begun before the data."""
    regimes: Regimes = {}
    for name in names:
        changes = np.sort(rng.choice(np.arange(12, len(months) - 1), size=1 + rng.poisson(1.5), replace=False))
        starts = [int(months[0][:4]) - int(rng.integers(1, 15)), *(int(months[i][:4]) for i in changes)]
        ends = [str(year) for year in starts[1:]] + [""]
        firsts = [months[0], *(months[i] for i in changes)]
        regimes[name] = [(first, f"{start}-{end}") for first, start, end in zip(firsts, starts, ends, strict=True)]
    return regimes


def global_world(
    n_countries: int, n_actors: int, target_events: int, months: list[str], rng: np.random.Generator
) -> tuple[dict[str, Country], list[Actor], Regimes]:
    """Countries (real names; each a box of 5 by 6 degrees around its real capital, so that the spatial panels'
    rings hold events as they do on real data), their regime periods, and actors with a skewed (Zipf) size
    distribution.

    Each country has state forces (military and police, named after the regime period), protesters and rioters, and
    its share of armed groups, some of which are active in a neighbouring country too. Groups appear and disappear
    over the years, as they do.
    """
    names = sorted(c for c in ACLED_COUNTRIES_FOR_SYNTHETIC)[
        :: max(1, len(ACLED_COUNTRIES_FOR_SYNTHETIC) // n_countries)
    ][:n_countries]
    capital_at = {
        row["country"]: (row["capital_lat"], row["capital_lon"]) for row in capitals(places_table(names)).to_dicts()
    }
    countries = {}
    for i, name in enumerate(names):
        lat0, lon0 = rng.uniform(-30, 45), rng.uniform(-15, 120)  # drawn for every country: the same draws after
        if name in capital_at:
            lat0, lon0 = capital_at[name][0] - 2.5, capital_at[name][1] - 3.0
        countries[name] = Country(
            name,
            100 + i,
            f"X{i:02d}",
            f"Z{i:02d}",
            "Synthetic",
            tuple(f"Region {k}" for k in range(1, 13)),
            (lat0, lat0 + 5),
            (lon0, lon0 + 6),
            "Region 1",
        )
    country_weight = rng.pareto(1.2, n_countries) + 0.2  # a few countries hold most of the events
    country_weight /= country_weight.sum()
    groups_per_country = np.maximum(1, np.round(country_weight * (n_actors - 4 * n_countries))).astype(int)
    regimes = random_regimes(names, months, rng)
    actors: list[Actor] = []
    for name, weight, n_groups in zip(names, country_weight, groups_per_country, strict=True):
        budget = weight * target_events / len(months)
        # State forces as actor1 in 16% of events (7-18% in the real files), on the other side of many more.
        actors += [
            state_actor("Military Forces", name, regimes, 0.12 * budget, dispersion=3.0),
            state_actor("Police Forces", name, regimes, 0.04 * budget, dispersion=3.0),
            Actor([("1997-01", f"Protesters ({name})")], "protesters", name, 0.22 * budget, dispersion=2.0),
            Actor([("1997-01", f"Rioters ({name})")], "rioters", name, 0.06 * budget, dispersion=2.0),
        ]
        shares = 1.0 / np.arange(1, n_groups + 1) ** 1.1
        shares = 0.56 * budget * shares / shares.sum()
        for share in shares:
            start = int(rng.integers(0, len(months) - 12))
            life = int(min(len(months) - start, rng.geometric(1 / 96) + 6))
            kind = "jihadist" if rng.random() < 0.6 else "militia"
            group_name = f"{'Armed Group' if kind == 'jihadist' else 'Communal Militia'} {len(actors):04d}"
            active = Actor(
                [(months[start], group_name)],
                kind,
                name,
                share * len(months) / life,
                active_from=months[start],
                active_until=months[min(start + life, len(months) - 1)],
                dispersion=float(rng.uniform(0.8, 4.0)),
            )
            actors.append(active)
            if rng.random() < 0.05:  # the same group across a border
                neighbour = names[(names.index(name) + 1) % len(names)]
                actors.append(
                    Actor(
                        active.names,
                        kind,
                        neighbour,
                        0.3 * active.rate,
                        active_from=active.active_from,
                        active_until=active.active_until,
                        dispersion=active.dispersion,
                    )
                )
    return countries, actors, regimes


ASSOCIATED_SHARE, SECOND_ASSOCIATE_SHARE = 0.6, 0.15  # of armed actors' events: a fifth of all rows, as in ACLED


def with_associated_actors(events: pl.DataFrame, actors: list[Actor], rng: np.random.Generator) -> pl.DataFrame:
    """Name an associated actor beside the first actor of about half the armed actors' events, some of them
    two joined by '; ', as ACLED does. Partners are drawn from the armed actors of the same country and month in
    proportion to their events: groups are associated with groups active beside them, not with long-gone ones."""
    armed = [actor for actor in actors if actor.kind in ("jihadist", "militia", "state")]
    armed_names = [
        f"{name} {unit}".strip() for actor in armed for _, name in actor.names for unit in ("", *actor.units)
    ]
    same_time = [pl.col("country"), pl.col("event_date").dt.truncate("1mo"), pl.col("_armed")]
    first_seed, second_seed = (int(x) for x in rng.integers(0, 2**32, 2))
    drawn = events.with_columns(_draw=pl.Series(rng.random(events.height)), _armed=pl.col("actor1").is_in(armed_names))
    drawn = drawn.with_columns(
        _first=pl.col("actor1").shuffle(seed=first_seed).over(same_time),
        _second=pl.col("actor1").shuffle(seed=second_seed).over(same_time),
    )
    two = (
        (pl.col("_draw") < SECOND_ASSOCIATE_SHARE)
        & (pl.col("_second") != pl.col("_first"))
        & (pl.col("_second") != pl.col("actor1"))
    )
    return drawn.with_columns(
        assoc_actor_1=pl.when(
            pl.col("_armed") & (pl.col("_draw") < ASSOCIATED_SHARE) & (pl.col("_first") != pl.col("actor1"))
        )
        .then(pl.when(two).then(pl.format("{}; {}", "_first", "_second")).otherwise(pl.col("_first")))
        .otherwise(pl.col("assoc_actor_1"))
    ).drop("_draw", "_armed", "_first", "_second")


# Changed whenever the benchmark's data change: `benchmark.generate_data` makes them again.
# 2: located around each country's real capital, ACLED's mix of location precisions, four admin2 areas per admin1.
GLOBAL_DATA_VERSION = 2
# Of ACLED's events in the real files: 55-71% located precisely (1), 27-43% near (2), 1-2% at a region's centroid (3).
GEO_PRECISION_SHARES = {1: 0.62, 2: 0.36, 3: 0.02}
ADMIN2_PER_ADMIN1 = 4


def with_global_locations(events: pl.DataFrame, countries: dict[str, Country], seed: int) -> pl.DataFrame:
    """The benchmark's events with ACLED's mix of location precisions and several admin2 areas per admin1 (bands of
    the country's longitude), so that the spatial panels leave some events out and count areas entered as on real
    data. Drawn apart from the events (the sample keeps its locations)."""
    rng = np.random.default_rng(seed + 1)
    precision = rng.choice(list(GEO_PRECISION_SHARES), events.height, p=list(GEO_PRECISION_SHARES.values()))
    west = pl.col("country").replace_strict({c.name: c.lon[0] for c in countries.values()}, return_dtype=pl.Float64)
    band = ((pl.col("longitude") - west) / 6.0 * ADMIN2_PER_ADMIN1).floor().clip(0, ADMIN2_PER_ADMIN1 - 1) + 1
    return events.with_columns(
        geo_precision=pl.Series(precision, dtype=pl.Int64),
        admin2=pl.format("{} Cercle {}", "admin1", band.cast(pl.Int32)),
    )


def write_global(
    out: Path,
    target_events: int = 2_500_000,
    n_countries: int = 60,
    n_actors: int = 3000,
    update_rows: int = 5_000,
    seed: int = 1997,
) -> dict[str, int]:
    """The benchmark data: a global export to GLOBAL_END, and a weekly update file (the next week and revisions)."""
    rng = np.random.default_rng(seed)
    months = month_keys("1997-01", month_key(UPDATE_END))
    countries, actors, regimes = global_world(n_countries, n_actors, target_events, months, rng)
    counts = simulate_counts(actors, months, rng)
    events = events_frame(actors, countries, months, counts, rng, first_timestamp=900_000_000, regimes=regimes)
    events = with_global_locations(with_associated_actors(events, actors, rng), countries, seed).filter(
        pl.col("event_date") <= UPDATE_END
    )
    export = events.filter(pl.col("event_date") <= GLOBAL_END)
    week = events.filter(pl.col("event_date") > GLOBAL_END)
    recent = export.filter(pl.col("event_date") > GLOBAL_END - dt.timedelta(days=90))
    revised = recent.sample(n=min(max(update_rows - week.height, 0), recent.height), seed=seed).with_columns(
        fatalities=pl.col("fatalities") + 1, timestamp=pl.lit(1_795_000_000, pl.Int64)
    )
    out.mkdir(parents=True, exist_ok=True)
    to_export(export, "%d %B %Y").write_csv(
        out / "acled_global_1997-2026-11-14_SYNTHETIC.csv", quote_style="non_numeric", null_value=""
    )
    to_export(pl.concat([revised, week]), "%Y-%m-%d").write_csv(
        out / "acled_global_update_2026-11-21_SYNTHETIC.csv", quote_style="non_numeric", null_value=""
    )
    return {
        "events": export.height,
        "actors": len(actors),
        "countries": len(countries),
        "update_new_events": week.height,
        "update_revisions": revised.height,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sample = sub.add_parser("sample", help="write the bundled synthetic sample")
    sample.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    world = sub.add_parser("global", help="write global-scale benchmark data")
    world.add_argument("--out", type=Path, default=Path("bench_data"))
    world.add_argument("--events", type=int, default=2_500_000)
    args = parser.parse_args(argv)
    if args.what == "sample":
        print(write_sample(args.out))
    else:
        print(write_global(args.out, args.events))


if __name__ == "__main__":
    main()
