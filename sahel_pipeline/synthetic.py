"""Synthetic conflict events in ACLED's export layout: the bundled sample and the global-scale benchmark data.

Nothing here comes from ACLED: counts are drawn from overdispersed (gamma-Poisson) monthly series with a persistent
random level, and escalations are planted where the tests and the README say they are. Group names are the public
names analysts know (ACLED's spellings, so that the alias table is exercised); every note says SYNTHETIC.

    python -m sahel_pipeline.synthetic sample [--out data/sample]
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

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
        ("Battles", "Armed clash", 0.38, 4.0, "state"),
        ("Violence against civilians", "Attack", 0.30, 2.5, "civilians"),
        ("Explosions/Remote violence", "Remote explosive/landmine/IED", 0.14, 2.0, "state"),
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
INTER_CODES = {"state": 1, "jihadist": 2, "militia": 4, "protesters": 6, "rioters": 5, "civilians": 7, "unidentified": 3, "police": 1}


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
    dispersion: float = 4.0  # gamma shape of month-to-month noise (negative-binomial alpha = 1/shape); lower is burstier
    plants: list[tuple[str, str, float, str | None]] = field(default_factory=list)  # (from, to, factor, admin1)


SAHEL = {
    c.name: c
    for c in [
        Country("Mali", 466, "MLI", "MLI", "Western Africa",
                ("Mopti", "Segou", "Gao", "Menaka", "Timbuktu", "Kidal", "Koulikoro", "Bamako", "Kayes", "Sikasso"),
                (11.0, 19.5), (-11.0, 3.5), "Bamako"),
        Country("Burkina Faso", 854, "BFA", "BFO", "Western Africa",
                ("Sahel", "Est", "Nord", "Centre-Nord", "Boucle du Mouhoun", "Centre", "Hauts-Bassins", "Cascades", "Centre-Est"),
                (10.0, 15.0), (-5.0, 2.0), "Centre"),
        Country("Niger", 562, "NER", "NIG", "Western Africa",
                ("Tillaberi", "Tahoua", "Diffa", "Dosso", "Maradi", "Zinder", "Agadez", "Niamey"),
                (12.0, 22.0), (0.5, 15.5), "Niamey"),
    ]
}

ISSP_NAMES = [
    ("2017-01", "Islamic State (Greater Sahara)"),
    ("2019-04", "Islamic State (West Africa) - Greater Sahara Faction"),
    ("2022-03", "Islamic State (Sahel)"),
    ("2024-01", "Islamic State Sahel Province (ISSP)"),
]
JNIM = "JNIM: Group for Support of Islam and Muslims"


def sahel_actors() -> list[Actor]:
    """The sample's actors. Planted escalations: ISSP in Niger x3 from 2024-10 (Tillaberi), JNIM in Niger 0 -> 9 in 2024-01."""
    actors: list[Actor] = []
    for country, rate in (("Mali", 9.0), ("Burkina Faso", 7.0), ("Niger", 5.0)):
        plants = [("2024-10", "2024-12", 3.0, "Tillaberi")] if country == "Niger" else []
        admins = {"Niger": {"Tillaberi": 0.6, "Tahoua": 0.3, "Dosso": 0.1},
                  "Mali": {"Menaka": 0.5, "Gao": 0.4, "Timbuktu": 0.1},
                  "Burkina Faso": {"Sahel": 0.7, "Est": 0.2, "Centre-Nord": 0.1}}[country]
        steady = 10.0 if country == "Niger" else 4.0  # the planted series is steadier, so its rise is unambiguous
        actors.append(Actor(ISSP_NAMES, "jihadist", country, rate, admins, dispersion=steady, plants=plants))
    for country, rate in (("Mali", 22.0), ("Burkina Faso", 20.0), ("Niger", 0.15)):
        admins = {"Mali": {"Mopti": 0.5, "Segou": 0.3, "Timbuktu": 0.2},
                  "Burkina Faso": {"Nord": 0.3, "Boucle du Mouhoun": 0.3, "Centre-Nord": 0.2, "Est": 0.2},
                  "Niger": {"Tillaberi": 0.8, "Dosso": 0.2}}[country]
        plants = [("2024-01", "2024-01", 60.0, "Tillaberi")] if country == "Niger" else []
        actors.append(Actor([("2017-01", JNIM)], "jihadist", country, rate, admins, plants=plants))
    actors += [
        Actor([("2017-01", "Katiba Macina")], "jihadist", "Mali", 6.0, {"Mopti": 0.8, "Segou": 0.2}, assoc=JNIM),
        Actor([("2017-01", "Ansaroul Islam")], "jihadist", "Burkina Faso", 3.0, {"Sahel": 0.6, "Nord": 0.4}),
        Actor([("2017-01", f"{JNIM} and/or Islamic State (Sahel)")], "jihadist", "Burkina Faso", 2.0, {"Sahel": 1.0}),
        Actor([("2017-01", "Islamic State (West Africa)")], "jihadist", "Niger", 3.0, {"Diffa": 1.0}),
        Actor([("2017-01", "Boko Haram - Jamaatu Ahli is-Sunnah lid-Dawati wal-Jihad")], "jihadist", "Niger", 2.0, {"Diffa": 1.0}),
        Actor([("2017-01", "Dozo Communal Militia (Mali)")], "militia", "Mali", 3.0, {"Mopti": 0.7, "Segou": 0.3}),
        Actor([("2020-01", "VDP: Volunteers for the Defense of the Homeland")], "militia", "Burkina Faso", 4.0, active_from="2020-01"),
    ]
    for country, forces, rate in (("Mali", "Military Forces of Mali (2021-)", 14.0),
                                  ("Burkina Faso", "Military Forces of Burkina Faso (2022-)", 12.0),
                                  ("Niger", "Military Forces of Niger (2023-)", 5.0)):
        actors += [
            Actor([("2017-01", forces)], "state", country, rate),
            Actor([("2017-01", f"Protesters ({country})")], "protesters", country, 6.0,
                  {SAHEL[country].capital_admin1: 0.7, SAHEL[country].admin1[0]: 0.3}),
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
        for first, last, factor, _ in actor.plants:
            # a planted rise multiplies the series' level, without the month-to-month noise that could hide it
            planted = slice(month_index[first], month_index[last] + 1)
            means[i, planted] = rates[i, planted] * factor
    return rng.poisson(means)


def events_frame(
    actors: list[Actor], countries: dict[str, Country], months: list[str], counts: np.ndarray,
    rng: np.random.Generator, first_timestamp: int,
) -> pl.DataFrame:
    """Expand monthly counts into one row per event, in ACLED's export columns (values still typed)."""
    actor_idx, month_idx = np.nonzero(counts)
    reps = counts[actor_idx, month_idx]
    a = np.repeat(actor_idx, reps)
    mo = np.repeat(month_idx, reps)
    n = a.size
    month_start = np.array([np.datetime64(f"{m}-01") for m in months])
    days_in = ((month_start.astype("datetime64[M]") + 1).astype("datetime64[D]") - month_start).astype(int)
    dates = month_start[mo] + rng.integers(0, days_in[mo]).astype("timedelta64[D]")

    kinds = np.array([x.kind for x in actors])[a]
    actor_country = np.array([x.country for x in actors])[a]
    names = np.empty(n, dtype=object)
    for i, actor in enumerate(actors):
        rows = np.nonzero(a == i)[0]
        for first, name in actor.names:
            names[rows[np.array(months)[mo[rows]] >= first]] = name

    event_type = np.empty(n, dtype=object)
    sub_type = np.empty(n, dtype=object)
    mean_deaths = np.zeros(n)
    other_side = np.empty(n, dtype=object)
    for kind, mix in EVENT_MIX.items():
        rows = np.nonzero(kinds == kind)[0]
        if rows.size == 0:
            continue
        pick = rng.choice(len(mix), size=rows.size, p=np.array([x[2] for x in mix]) / sum(x[2] for x in mix))
        for j, (etype, stype, _, deaths, other) in enumerate(mix):
            chosen = rows[pick == j]
            event_type[chosen], sub_type[chosen], mean_deaths[chosen], other_side[chosen] = etype, stype, deaths, other
    fatalities = rng.poisson(rng.gamma(0.5, np.maximum(mean_deaths, 1e-9) / 0.5)) * (mean_deaths > 0)

    admin1 = np.empty(n, dtype=object)
    planted = np.zeros(n, dtype=bool)
    for i, actor in enumerate(actors):
        rows = np.nonzero(a == i)[0]
        country = countries[actor.country]
        weights = actor.admin_weights or {u: 1.0 for u in country.admin1}
        units = list(weights)
        p = np.array(list(weights.values()))
        admin1[rows] = np.array(units, dtype=object)[rng.choice(len(units), size=rows.size, p=p / p.sum())]
        for first, last, factor, unit in actor.plants:
            if unit is None:
                continue
            in_plant = rows[(np.array(months)[mo[rows]] >= first) & (np.array(months)[mo[rows]] <= last)]
            # the surplus of a planted rise happens where the plant says, so the report can point at it
            surplus = in_plant[rng.random(in_plant.size) < (1 - 1 / factor)]
            admin1[surplus] = unit
            planted[surplus] = True

    state_name = {c: next((x.names[-1][1] for x in actors if x.kind == "state" and x.country == c), f"Military Forces of {c}") for c in countries}
    actor2 = np.empty(n, dtype=object)
    for side, label in (("state", None), ("civilians", "Civilians ({})"), ("unidentified", "Unidentified Armed Group ({})"), ("police", "Police Forces of {}")):
        rows = np.nonzero(other_side == side)[0]
        actor2[rows] = [state_name[c] if label is None else label.format(c) for c in actor_country[rows]]
    inter1 = np.array([INTER_CODES[k] for k in kinds])
    inter2 = np.array([INTER_CODES.get(s, 0) if s != "none" else 0 for s in other_side])

    country_info = [countries[c] for c in actor_country]
    lat = np.array([c.lat[0] for c in country_info]) + rng.random(n) * np.array([c.lat[1] - c.lat[0] for c in country_info])
    lon = np.array([c.lon[0] for c in country_info]) + rng.random(n) * np.array([c.lon[1] - c.lon[0] for c in country_info])
    frame = pl.DataFrame(
        {
            "event_date": dates.astype("datetime64[D]"),
            "disorder_type": np.where(np.isin(event_type, ["Protests", "Riots"]), "Demonstrations",
                                      np.where(event_type == "Strategic developments", "Strategic developments", "Political violence")),
            "event_type": event_type.astype(str),
            "sub_event_type": sub_type.astype(str),
            "actor1": names.astype(str),
            "assoc_actor_1": np.array([x.assoc or "" for x in actors], dtype=object)[a].astype(str),
            "inter1": inter1,
            "actor2": np.where(actor2 == None, "", actor2).astype(str),  # noqa: E711 - numpy elementwise
            "inter2": inter2,
            "assoc_actor_2": np.where((other_side == "civilians") & (rng.random(n) < 0.2),
                                      np.char.add(np.char.add("Fulani Ethnic Group (", actor_country.astype(str)), ")"), ""),
            "civilian_targeting": np.where(other_side == "civilians", "Civilian targeting", ""),
            "country": actor_country.astype(str),
            "admin1": admin1.astype(str),
            "latitude": np.round(lat, 4),
            "longitude": np.round(lon, 4),
            "fatalities": fatalities.astype(np.int64),
            "_planted": planted,
        }
    ).with_columns(pl.col(c).replace("", None) for c in ("assoc_actor_1", "actor2", "assoc_actor_2", "civilian_targeting"))
    frame = frame.sort("event_date", "country", "actor1", maintain_order=True)
    codes = pl.col("country").replace_strict({c.name: c.code for c in countries.values()})
    return frame.with_columns(
        event_id_cnty=codes + pl.int_range(1, pl.len() + 1).over("country").cast(pl.String),
        year=pl.col("event_date").dt.year(),
        time_precision=pl.lit(1),
        interaction=pl.min_horizontal("inter1", "inter2") * 10 + pl.max_horizontal("inter1", "inter2"),
        iso=pl.col("country").replace_strict({c.name: c.iso for c in countries.values()}),
        region=pl.col("country").replace_strict({c.name: c.region for c in countries.values()}),
        admin2=pl.col("admin1") + pl.lit(" Cercle"),
        admin3=pl.lit(None, pl.String),
        location=pl.col("admin1") + pl.lit(" village ") + (pl.int_range(pl.len()) % 17).cast(pl.String),
        geo_precision=pl.lit(2),
        source=pl.lit("Synthetic Wire; Synthetic Radio"),
        source_scale=pl.lit("National"),
        tags=pl.lit(None, pl.String),
        timestamp=pl.lit(first_timestamp, pl.Int64) + (pl.col("event_date") - pl.date(1997, 1, 1)).dt.total_days().cast(pl.Int64) * 60,
    )


def to_export(frame: pl.DataFrame, date_format: str) -> pl.DataFrame:
    """Typed events -> the text columns of an ACLED export, dates written the way the export writes them."""
    notes = pl.format(
        "SYNTHETIC EVENT, not real. On {}, {} and {} were involved in an event of type '{}' in {} ({}); {} fatalities. "
        "Made up to test the pipeline.",
        pl.col("event_date").dt.strftime("%-d %B %Y"), pl.col("actor1"), pl.col("actor2").fill_null("no other actor"),
        pl.col("sub_event_type"), pl.col("admin1"), pl.col("country"), pl.col("fatalities"),
    )
    return frame.with_columns(notes=notes, event_date=pl.col("event_date").dt.strftime(date_format)).select(ACLED_EXPORT_COLUMNS)


def month_range(first: str, last: str) -> list[str]:
    start = np.datetime64(first, "M")
    stop = np.datetime64(last, "M")
    return [str(m) for m in np.arange(start, stop + 1)]


def write_sample(out: Path, seed: int = 20241231) -> dict[str, int]:
    """The bundled sample: an ACLED export to 2024-12-20, a weekly update (new events and revisions), a deletions file."""
    rng = np.random.default_rng(seed)
    months = month_range("2017-01", "2024-12")
    actors = sahel_actors()
    counts = simulate_counts(actors, months, rng)
    events = events_frame(actors, SAHEL, months, counts, rng, first_timestamp=1_500_000_000)
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
    deleted = export.filter(pl.col("event_date") >= dt.date(2024, 11, 1), pl.col("_planted").not_()).tail(5)
    files = {
        "acled_sahel_2017-2024_SYNTHETIC.csv": to_export(export, "%d %B %Y"),
        "acled_sahel_update_2024-12-31_SYNTHETIC.csv": to_export(pl.concat([revised, update_new]), "%Y-%m-%d"),
    }
    for name, frame in files.items():
        frame.write_csv(out / name, quote_style="non_numeric", null_value="")
    pl.DataFrame(
        {"event_id_cnty": deleted["event_id_cnty"], "deleted_timestamp": [1_735_800_000] * deleted.height}
    ).write_csv(out / "acled_sahel_deletions_2024-12-31_SYNTHETIC.csv")
    return {"events": events.height - deleted.height, "revised": revised.height, "deleted": deleted.height}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sample = sub.add_parser("sample", help="write the bundled synthetic sample")
    sample.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "sample")
    args = parser.parse_args(argv)
    if args.what == "sample":
        print(write_sample(args.out))


if __name__ == "__main__":
    main()
