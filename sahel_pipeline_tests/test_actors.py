"""Actors: state forces across regimes and units, actor types from codes, words and names, regime periods as breaks."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter

import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE
from sahel_pipeline.cli import main
from sahel_pipeline.core.actor_types import ARMED_TYPES, GROUP_TYPES, UNKNOWN
from sahel_pipeline.core.actors import regime_periods, state_group_name
from sahel_pipeline.core.groups import load_alias_table, resolve_names
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.models import Break, ModelConfig, with_regime_breaks
from sahel_pipeline.core.panels import build_panels
from sahel_pipeline.core.reference import ACLED_COUNTRIES
from sahel_pipeline.core.scoring import build_tasks
from sahel_pipeline.core.sources import read_source_file
from sahel_pipeline.defs.resources import ModelSettings
from sahel_pipeline_tests.fixtures import BAD_FILES, TESTS_DIR, TODAY, real_file, requires_real_data
from sahel_pipeline_tests.test_panels import events_frame

FILES = TESTS_DIR / "files"
BURKINA_EXTRACT = "acled_burkina_1997-2023_subset-columns.csv"
NIGER_COUP = Break("Niger", dt.date(2023, 7, 26), "the July 2023 coup")


@pytest.fixture(scope="module")
def aliases() -> pl.DataFrame:
    return load_alias_table(ALIAS_TABLE)


def groups_of(aliases, actor: str, country: str = "Burkina Faso", units: str = "fold", table=None) -> str:
    names = pl.DataFrame({"actor": [actor], "source": ["ACLED"], "country": [country]})
    return resolve_names(names, aliases if table is None else table, units=units)["group_id"].item()


# --- the state-actor rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, folded, apart",
    [
        # forms found in the real files (grep "Forces of" / "Government of" in ../shared/data/real)
        (
            "Military Forces of Burkina Faso (2015-2022)",
            "Military Forces of Burkina Faso",
            "Military Forces of Burkina Faso",
        ),
        (
            "Military Forces of Burkina Faso (2022-) Special Forces",
            "Military Forces of Burkina Faso",
            "Military Forces of Burkina Faso Special Forces",
        ),
        (
            "Police Forces of Burkina Faso (2015-) Gendarmerie",
            "Police Forces of Burkina Faso",
            "Police Forces of Burkina Faso Gendarmerie",
        ),
        (
            "Police Forces of Mali (2013-2020) Customs Agents",
            "Police Forces of Mali",
            "Police Forces of Mali Customs Agents",
        ),
        (
            "Military Forces of Mali (2013-2020) Operational Coordination Mechanism",
            "Military Forces of Mali",
            "Military Forces of Mali Operational Coordination Mechanism",
        ),
        ("Government of Niger (2011-2021)", "Government of Niger", "Government of Niger"),
        (
            "Military Forces of the Ivory Coast (2011-)",
            "Military Forces of the Ivory Coast",
            "Military Forces of the Ivory Coast",
        ),
        # mutineers and former forces are actors of their own, across periods too
        (
            "Mutiny of Military Forces of Burkina Faso (2015-2022)",
            "Mutiny of Military Forces of Burkina Faso",
            "Mutiny of Military Forces of Burkina Faso",
        ),
        (
            "Former Government of Burkina Faso (2022-)",
            "Former Government of Burkina Faso",
            "Former Government of Burkina Faso",
        ),
    ],
)
def test_state_names_lose_their_period_and_by_default_their_unit(aliases, name, folded, apart):
    assert groups_of(aliases, name) == folded
    assert groups_of(aliases, name, units="separate") == apart


@pytest.mark.parametrize(
    "name",
    [
        "G5S: G5 Sahel Force (2017-)",  # period-like suffixes on actors that are not a state's own forces
        "MINUSMA: United Nations Multidimensional Integrated Stabilization Mission in Mali (2013-2020)",
        "Koglweogo Militia",
        "Civilians (Mali)",
        "Unidentified Military Forces",
    ],
)
def test_names_that_only_look_like_state_names_are_left_alone(aliases, name):
    assert groups_of(aliases, name) == name
    assert pl.select(state_group_name(pl.lit(name))).item() is None


def test_the_alias_table_wins_over_the_rule_for_a_raw_or_a_normalised_name(aliases, tmp_path):
    table = tmp_path / "aliases.csv"
    table.write_text(
        "alias,group_id,group_name,type,source,countries\n"
        "Military Forces of Niger (2023-) Gendarmerie,NIGER_GENDARMERIE,Gendarmerie of Niger,state forces,ACLED,\n"
        "Military Forces of Mali,FAMA,Malian Armed Forces (FAMa),state forces,ACLED,\n"
    )
    custom = load_alias_table(table)
    assert (
        groups_of(aliases, "Military Forces of Niger (2023-) Gendarmerie", "Niger", table=custom) == "NIGER_GENDARMERIE"
    )
    assert groups_of(aliases, "Military Forces of Niger (2023-)", "Niger", table=custom) == "Military Forces of Niger"
    for name in ("Military Forces of Mali (2013-2020)", "Military Forces of Mali (2021-) Gendarmerie"):
        assert groups_of(aliases, name, "Mali", table=custom) == "FAMA"


def test_units_fold_into_their_parent_unless_kept_apart(aliases):
    names = [
        "Military Forces of Niger (2021-2023)",
        "Military Forces of Niger (2023-)",
        "Military Forces of Niger (2023-) Gendarmerie",
    ]
    events = events_frame(
        [
            {"event_id": f"E{i}", "event_date": dt.date(2023, 6 + i, 10), "actor1": name, "inter1": "state forces"}
            for i, name in enumerate(names)
        ]
    )
    folded = build_panels(events, aliases).group_month.filter(pl.col("group_id").str.contains("Forces"))
    assert folded.group_by("group_id").agg(pl.col("events").sum()).rows() == [("Military Forces of Niger", 3)]
    apart = build_panels(events, aliases, units="separate").group_month.filter(
        pl.col("group_id").str.contains("Forces")
    )
    assert sorted(apart.group_by("group_id").agg(pl.col("events").sum()).rows()) == [
        ("Military Forces of Niger", 2),
        ("Military Forces of Niger Gendarmerie", 1),
    ]
    assert set(apart["group_type"]) == {"state forces"}


def test_a_mutiny_is_not_counted_as_the_state_forces_and_does_not_mark_a_regime(aliases):
    events = events_frame(
        [
            {
                "event_id": "E1",
                "event_date": dt.date(2022, 1, 5),
                "country": "Burkina Faso",
                "actor1": "Military Forces of Burkina Faso (2015-2022)",
            },
            {
                "event_id": "E2",
                "event_date": dt.date(2022, 1, 23),
                "country": "Burkina Faso",
                "actor1": "Mutiny of Military Forces of Burkina Faso (2022-)",
            },
        ]
    )
    panels = build_panels(events, aliases)
    per_group = dict(panels.group_month.group_by("group_id").agg(pl.col("events").sum()).iter_rows())
    assert per_group == {"Military Forces of Burkina Faso": 1, "Mutiny of Military Forces of Burkina Faso": 1}
    assert panels.regime_periods["period"].to_list() == ["2015-2022"]  # the mutineers' "(2022-)" is not a new regime


# --- types ----------------------------------------------------------------------------------------------------------


def typed(path, aliases, tmp_path) -> dict[str, tuple[str, str]]:
    events = ingest(find_csv_files([path]), tmp_path / path.stem, TODAY, log=lambda _: None).events
    types = build_panels(events, aliases).group_types
    return {row["group_id"]: (row["group_type"], row["typed_by"]) for row in types.iter_rows(named=True)}


def test_actor_types_read_the_same_from_codes_and_from_words(aliases, tmp_path):
    codes = read_source_file(FILES / "acled_actor_types_codes.csv").events
    words = read_source_file(FILES / "acled_actor_types_words.csv").events
    assert codes.select("event_id", "inter1", "inter2").equals(words.select("event_id", "inter1", "inter2"))
    assert codes["inter1"].to_list()[:3] == ["state forces", "rebel group", "protesters"]
    assert codes["inter2"].to_list()[2] is None  # code 0 (no second actor), and no word, are no type
    by_codes = typed(FILES / "acled_actor_types_codes.csv", aliases, tmp_path)
    assert by_codes == typed(FILES / "acled_actor_types_words.csv", aliases, tmp_path)
    assert {group: t for group, (t, _) in by_codes.items()} == {
        "Military Forces of Mali": "state forces",
        "JNIM": "rebel group",
        "Protesters (Mali)": "protesters",
        "Students (Mali)": "civilians",  # participants beside protesters: never a group that is alerted
        "Women (Mali)": "civilians",
        "Rioters (Mali)": "rioters",
        "Dozo Communal Militia (Mali)": "identity militia",
        "Military Forces of France": "external forces",
        "Unidentified Armed Group (Mali)": "unidentified armed group",  # coded political militia (3) by ACLED
        "Mutiny of Military Forces of Mali": "state forces",
        "Ansar Dine": "rebel group",
    }
    assert by_codes["JNIM"][1] == "alias table" and by_codes["Military Forces of Mali"][1] == "source code"


def test_without_type_columns_types_are_inferred_from_the_alias_table_and_names(aliases, tmp_path):
    with_codes = typed(FILES / "acled_actor_types_codes.csv", aliases, tmp_path)
    inferred = typed(FILES / "acled_actor_types_absent.csv", aliases, tmp_path)
    assert {g: t for g, (t, _) in inferred.items() if g != "Ansar Dine"} == {
        g: t for g, (t, _) in with_codes.items() if g != "Ansar Dine"
    }
    assert inferred["Ansar Dine"] == (UNKNOWN, "nothing")  # no code, not in the alias table, a name that says nothing
    assert {by for _, by in inferred.values()} == {"alias table", "name pattern", "nothing"}


def test_a_value_that_is_no_actor_type_is_left_empty_and_noted(tmp_path):
    source = read_source_file(BAD_FILES / "unknown_actor_type.csv")
    assert source.events["inter1"].to_list() == ["state forces", None]
    assert source.events["inter2"].to_list() == ["rebel group", None]
    assert source.events["geo_precision"].to_list() == [2, None]
    assert source.events.height == 2  # nothing is lost for a descriptive column
    notes = "; ".join(source.notes)
    assert "inter1: 1 value(s) that are not an ACLED actor type" in notes
    assert "inter2: 1 value(s)" in notes and "geo_precision: 1 value(s) that are not a precision code" in notes


@requires_real_data
def test_ucdp_sides_are_government_civilians_or_non_state():
    events = read_source_file(real_file("ucdp_ged_burkina_2016-2023.csv")).events
    sides = pl.concat(
        [events.select(actor="actor1", type="inter1"), events.select(actor="actor2", type="inter2")]
    ).unique()
    types = dict(
        sides.filter(pl.col("actor").is_in(["Government of Burkina Faso", "JNIM", "IS", "Civilians"])).iter_rows()
    )
    assert types == {
        "Government of Burkina Faso": "state forces",
        "JNIM": "rebel group",
        "IS": "rebel group",
        "Civilians": "civilians",
    }


@requires_real_data
def test_geo_precision_is_kept_as_each_source_gives_it():
    path = real_file("acled_burkina_1997-2020.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        by_hand = Counter(int(row["geo_precision"]) for row in csv.DictReader(fh))
    events = read_source_file(path).events
    assert dict(events.group_by("geo_precision").len().iter_rows()) == by_hand
    ucdp = read_source_file(real_file("ucdp_ged_burkina_2016-2023.csv")).events
    assert (
        set(ucdp["geo_precision"].drop_nulls()) <= set(range(1, 8)) and ucdp["geo_precision"].max() > 3
    )  # where_prec 1-7
    assert read_source_file(real_file(BURKINA_EXTRACT)).events["geo_precision"].null_count() > 0  # no such column: null


# --- regime periods and breaks --------------------------------------------------------------------------------------


def niger_events() -> pl.DataFrame:
    """Niger's state forces under three regime periods, and France's under two (which are not Niger's regimes)."""
    rows = [
        ("2021-02-10", "Military Forces of Niger (2011-2021)"),
        ("2021-04-03", "Military Forces of Niger (2021-2023)"),
        ("2021-04-20", "Police Forces of Niger (2021-2023) National Guard"),
        ("2023-07-28", "Military Forces of Niger (2023-)"),
        ("2023-08-02", "Military Forces of Niger (2023-) Gendarmerie"),
        ("2021-01-05", "Military Forces of France (2017-2021)"),
        ("2022-06-01", "Military Forces of France (2022-)"),
    ]
    return events_frame(
        [{"event_id": f"E{i}", "event_date": dt.date.fromisoformat(d), "actor1": a} for i, (d, a) in enumerate(rows)]
    )


def test_each_new_regime_period_is_a_break_dated_by_its_first_appearance_or_a_coup_near_it(aliases):
    periods = build_panels(niger_events(), aliases, breaks=(NIGER_COUP,)).regime_periods
    assert periods.select("country", "period", "first_seen", "break_date", "break_origin").rows() == [
        ("Niger", "2011-2021", dt.date(2021, 2, 10), None, None),  # the data begin inside it
        ("Niger", "2021-2023", dt.date(2021, 4, 3), dt.date(2021, 4, 3), "regime period"),
        ("Niger", "2023-", dt.date(2023, 7, 28), dt.date(2023, 7, 26), "configured"),  # the coup, two days before
    ]
    breaks = with_regime_breaks((NIGER_COUP,), periods.to_dicts())
    assert [(b.date, b.origin) for b in breaks] == [
        (dt.date(2023, 7, 26), "configured"),
        (dt.date(2021, 4, 3), "regime period"),
    ]
    assert "April 2021" in breaks[1].label and "2021-2023" in breaks[1].label
    # without configured dates each change is dated by the data alone
    alone = build_panels(niger_events(), aliases).regime_periods
    assert alone.filter(pl.col("period") == "2023-")["break_date"].item() == dt.date(2023, 7, 28)


def test_a_closed_period_and_its_earlier_open_name_are_one_period(aliases):
    """An export made in 2020 says "(2015-)", one made in 2023 "(2015-2022)": the same regime."""
    rows = [
        ("2016-01-10", "Military Forces of Burkina Faso (2015-)"),
        ("2016-03-10", "Military Forces of Burkina Faso (2015-2022)"),
        ("2022-02-01", "Military Forces of Burkina Faso (2022-)"),
    ]
    events = events_frame(
        [
            {"event_id": f"E{i}", "event_date": dt.date.fromisoformat(d), "country": "Burkina Faso", "actor1": a}
            for i, (d, a) in enumerate(rows)
        ]
    )
    periods = regime_periods(build_panels(events, aliases).counts.actors, ())
    assert periods.select("period", "first_seen", "mentions").rows() == [
        ("2015-2022", dt.date(2016, 1, 10), 2),
        ("2022-", dt.date(2022, 2, 1), 1),
    ]


def test_a_period_renamed_between_files_is_named_after_its_latest_name_whatever_the_rows_order(aliases):
    """A week's export says "(2018-2018)", the next week's update "(2018-2024)" of the same regime: the later name is
    the period's, in whatever order the rows come (it was the one of the two that the group's order gave, so a run
    could refit a country's series the run before had kept)."""
    rows = [
        ("2018-03-10", "Military Forces of Brunei (2018-2018)"),
        ("2018-06-10", "Military Forces of Brunei (2018-2024)"),
        ("2019-02-01", "Military Forces of Brunei (2018-2024)"),
    ]
    for ordered in (rows, rows[::-1], rows[1:] + rows[:1]):
        events = events_frame(
            [
                {"event_id": f"E{i}", "event_date": dt.date.fromisoformat(d), "country": "Brunei", "actor1": a}
                for i, (d, a) in enumerate(ordered)
            ]
        )
        periods = regime_periods(build_panels(events, aliases).counts.actors, ())
        assert periods.select("period", "first_seen", "mentions").rows() == [("2018-2024", dt.date(2018, 3, 10), 3)]


PERIOD = re.compile(r"\(\d{4}-(\d{4})?\)")


@requires_real_data
def test_burkina_state_forces_are_one_series_across_the_2022_coups(aliases, tmp_path):
    path = real_file(BURKINA_EXTRACT)
    variant = re.compile(r"^Military Forces of Burkina Faso \((\d{4})-(\d{4})?\)( .+)?$")
    by_hand: Counter[dt.date] = Counter()
    variants: set[str] = set()
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            names = {row["ACTOR1"], *row["ASSOC_ACTOR_1"].split("; ")} - {""}
            named = {n for n in names if variant.match(n)}
            if named:  # an event by two of its names is one event of the series
                variants |= named
                day = dt.date.fromisoformat(row["EVENT_DATE"])
                by_hand[day.replace(day=1)] += 1
    assert {
        "Military Forces of Burkina Faso (2015-2022)",
        "Military Forces of Burkina Faso (2022-)",
        "Military Forces of Burkina Faso (2022-) Special Forces",
    } <= variants
    events = ingest(find_csv_files([path]), tmp_path / "cache", TODAY, log=lambda _: None).events
    panels = build_panels(
        events, aliases, breaks=(Break("Burkina Faso", dt.date(2022, 1, 24), "the January 2022 coup"),)
    )
    series = panels.group_month.filter(pl.col("group_id") == "Military Forces of Burkina Faso")
    counted = {month: n for month, n in series.select("month", "events").iter_rows() if n}
    assert counted == dict(by_hand)
    assert series["group_type"].unique().to_list() == ["state forces"]
    suffixed = panels.group_month.filter(pl.col("group_id").str.contains(PERIOD.pattern))["group_id"].unique()
    assert suffixed.to_list() == ["G5S: G5 Sahel Force (2017-)"]  # no state force keeps a period, a mission does
    # 2021-2023: the months across the coups are all there, none from nothing
    across = series.filter(pl.col("month").is_between(dt.date(2021, 6, 1), dt.date(2023, 3, 1)))
    assert across.height == 22 and (across["events"] > 0).all()
    periods = panels.regime_periods.filter(pl.col("country") == "Burkina Faso")
    assert periods["period"].to_list() == ["1987-2014", "2014-2015", "2015-2022", "2022-"]
    coup = periods.filter(pl.col("period") == "2022-").row(0, named=True)
    assert (coup["break_date"], coup["break_origin"]) == (dt.date(2022, 1, 24), "configured")
    assert abs((coup["first_seen"] - coup["break_date"]).days) <= 92
    variants_listed = panels.variants.filter(pl.col("group_id") == "Military Forces of Burkina Faso")["variants"].item()
    assert "Military Forces of Burkina Faso (2022-) Special Forces" in variants_listed


def test_every_group_type_is_in_the_vocabulary_and_armed_types_are_a_part_of_it():
    assert set(ARMED_TYPES) < set(GROUP_TYPES)
    assert not {"protesters", "rioters", "civilians", UNKNOWN} & set(ARMED_TYPES)


# --- what is alerted ------------------------------------------------------------------------------------------------


def protest_country(aliases) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three years of Niger: the army fighting every month, protests and riots some months."""
    rows = []
    for m in range(36):
        month = dt.date(2022 + m // 12, m % 12 + 1, 1)
        rows.append(
            {
                "event_id": f"A{m}",
                "event_date": month,
                "actor1": "Military Forces of Niger (2021-2023)",
                "inter1": "state forces",
                "fatalities": 1,
            }
        )
        for k in range(m % 3 * 3):
            kind, actor = ("Protests", "Protesters (Niger)") if k % 2 else ("Riots", "Rioters (Niger)")
            rows.append(
                {
                    "event_id": f"D{m}-{k}",
                    "event_date": month.replace(day=10),
                    "event_type": kind,
                    "actor1": actor,
                    "assoc_actor_1": "Students (Niger)",
                    "disorder_type": "Demonstrations",
                    "inter1": "protesters" if k % 2 else "rioters",
                }
            )
    panels = build_panels(events_frame(rows), aliases)
    return panels.group_month, panels.country_month


def test_demonstrations_are_counted_per_country_and_crowds_are_not_modelled_as_groups(aliases):
    group_month, country_month = protest_country(aliases)
    assert country_month["demonstrations"].sum() == sum(m % 3 * 3 for m in range(36))
    assert country_month["events"].sum() == 36 + country_month["demonstrations"].sum()
    tasks, skipped = build_tasks(group_month, country_month, dt.date(2024, 12, 1), ModelConfig())
    modelled = {(t.key[2], t.indicator) for t in tasks}
    assert (None, "demonstrations") in modelled
    assert not [key for key in modelled if key[0] is not None and key[1] == "demonstrations"]  # never per group
    assert {g for g, _ in modelled if g} == {"Military Forces of Niger"}
    reasons = dict(
        skipped.filter(pl.col("level") == "group", pl.col("note").str.starts_with("type"))
        .select("group_id", "note")
        .unique()
        .iter_rows()
    )
    assert reasons == {
        "Protesters (Niger)": "type not alerted: protesters",
        "Rioters (Niger)": "type not alerted: rioters",
        "Students (Niger)": "type not alerted: civilians",
    }


def test_the_alerted_types_are_a_setting(aliases):
    group_month, country_month = protest_country(aliases)
    config = ModelSettings(alerted_types=[*ARMED_TYPES, "protesters"]).config()
    tasks, _ = build_tasks(group_month, country_month, dt.date(2024, 12, 1), config)
    assert {t.key[2] for t in tasks} == {None, "Military Forces of Niger", "Protesters (Niger)"}
    with pytest.raises(ValueError, match="unknown actor type.*'armed men'"):
        ModelSettings(alerted_types=["armed men"]).config()


# --- the real Burkina Faso run across the 2022 coups -----------------------------------------------------------------

NOT_PERPETRATORS = re.compile(r"(?i)\b(protesters|rioters|civilians|refugees|idps|women|miners|students)\b")
STATE_FORM = re.compile(r"^(?:(?:Mutiny of|Former) )?(?:Military Forces|Police Forces|Government) of (?P<rest>.+)$")


def artefacts(alerts: pl.DataFrame) -> pl.DataFrame:
    """Alerts that name an actor the way ACLED spells it rather than the group (a period suffix, a unit), or a crowd,
    victims or participants as a group, or a group of a type that is not armed."""
    groups = alerts.filter(pl.col("group").is_not_null() & (pl.col("group") != ""))

    def wrong(row: dict) -> bool:
        names = f"{row['group']} {row['group_name']}"
        state = STATE_FORM.match(row["group"])
        unit = state is not None and state["rest"].removeprefix("the ") not in ACLED_COUNTRIES
        return bool(
            PERIOD.search(names) or unit or NOT_PERPETRATORS.search(names) or row["group_type"] not in ARMED_TYPES
        )

    return groups.filter(pl.Series([wrong(row) for row in groups.iter_rows(named=True)], dtype=pl.Boolean))


@pytest.mark.slow
@requires_real_data
def test_burkina_alerts_2021_to_2023_name_armed_groups_only(tmp_path, capsys):
    out = tmp_path / "out"
    raw = real_file(BURKINA_EXTRACT)
    assert (
        main(["run", "--raw", str(raw), "--from", "2021-06", "--to", "2023-03", "--out", str(out), "--workers", "1"])
        == 0
    )
    alerts = pl.concat(
        [pl.read_csv(p, infer_schema=False) for p in sorted((out / "alerts").glob("*.csv"))], how="diagonal"
    )
    assert alerts.filter(pl.col("group").is_not_null()).height > 20
    assert artefacts(alerts).height == 0, artefacts(alerts).select("month", "group", "group_type")
    state = alerts.filter(pl.col("group") == "Military Forces of Burkina Faso")
    assert state.height > 0 and (state["group_type"] == "state forces").all()
    # the coups do not make the state forces look new: none of their alerts compares with an empty baseline (their
    # spatial alerts, where they go, have baselines of their own)
    assert not (state["kind"] == "new_actor").any()
    assert (state.filter(pl.col("kind") == "count")["expected"].cast(pl.Float64) > 1).all()
    periods = pl.read_parquet(out / "warehouse" / "regime_periods.parquet")
    assert periods.filter(pl.col("period") == "2022-")["break_date"].item() == dt.date(2022, 1, 24)
