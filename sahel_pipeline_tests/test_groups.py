"""Armed-group resolution through the alias table."""

from __future__ import annotations

import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE
from sahel_pipeline.core.groups import (
    AliasTableError,
    actor_mentions,
    attribute_events,
    load_alias_table,
    resolve_names,
)


@pytest.fixture(scope="module")
def aliases() -> pl.DataFrame:
    return load_alias_table(ALIAS_TABLE)


def resolve(
    aliases, actor: str, source: str = "ACLED", country: str = "Burkina Faso", ambiguous="separate"
) -> list[str]:
    names = pl.DataFrame({"actor": [actor], "source": [source], "country": [country]})
    return sorted(resolve_names(names, aliases, ambiguous)["group_id"].to_list())


@pytest.mark.parametrize(
    "actor, source, country, group",
    [
        ("Islamic State (Greater Sahara)", "ACLED", "Burkina Faso", "ISSP"),
        ("Islamic State (West Africa) - Greater Sahara Faction", "ACLED", "Mali", "ISSP"),
        ("Islamic State (Sahel)", "ACLED", "Niger", "ISSP"),
        ("Islamic State Sahel Province (ISSP)", "ACLED", "Niger", "ISSP"),
        ("IS", "UCDP", "Burkina Faso", "ISSP"),
        ("IS", "UCDP", "Nigeria", "ISWAP"),
        ("Islamic State (West Africa)", "ACLED", "Niger", "ISWAP"),  # not ISSP
        ("JNIM: Group for Support of Islam and Muslims", "ACLED", "Mali", "JNIM"),
        ("JNIM", "UCDP", "Burkina Faso", "JNIM"),
        ("Katiba Macina", "ACLED", "Mali", "JNIM"),
        ("Katiba Serma", "ACLED", "Mali", "JNIM"),
        ("Boko Haram - Jamaatu Ahli is-Sunnah lid-Dawati wal-Jihad", "ACLED", "Niger", "JAS"),
        ("Ansaroul Islam", "ACLED", "Burkina Faso", "ANSAROUL"),
        ("islamic state (sahel)", "ACLED", "Niger", "ISSP"),  # spelling case does not matter
    ],
)
def test_alias_table_resolves_known_names(aliases, actor, source, country, group):
    assert resolve(aliases, actor, source, country) == [group]


def test_alias_limited_to_a_source_does_not_apply_to_the_other(aliases):
    assert resolve(aliases, "IS", source="ACLED") == ["IS"]  # an ACLED actor called "IS" is not UCDP's Islamic State


def test_unknown_actor_keeps_its_own_name(aliases):
    assert resolve(aliases, "Dan Na Ambassagou") == ["Dan Na Ambassagou"]


def test_and_or_labels_are_their_own_series_or_counted_for_each(aliases):
    label = "JNIM: Group for Support of Islam and Muslims and/or Islamic State (Greater Sahara)"
    assert resolve(aliases, label) == ["ISSP/JNIM"]
    assert resolve(aliases, label, ambiguous="each") == ["ISSP", "JNIM"]
    # two names of one group are not ambiguous
    assert resolve(aliases, "Katiba Macina and/or JNIM: Group for Support of Islam and Muslims") == ["JNIM"]


def test_an_event_counts_once_per_group_and_roles_choose_the_actor_columns(aliases):
    events = pl.LazyFrame(
        {
            "event_id": ["e1"],
            "source": ["ACLED"],
            "country": ["Mali"],
            "actor1": ["Katiba Macina"],
            "assoc_actor_1": ["JNIM: Group for Support of Islam and Muslims; Katiba Serma"],
            "actor2": ["Islamic State (Sahel)"],
            "assoc_actor_2": [None],
        }
    )
    perpetrator = attribute_events(events, aliases, role="perpetrator").groups
    assert perpetrator["group_id"].to_list() == ["JNIM"]
    anyone = attribute_events(events, aliases, role="any").groups
    assert sorted(anyone["group_id"].to_list()) == ["ISSP", "JNIM"]
    assert actor_mentions(events, "perpetrator").collect().height == 3


def test_alias_table_errors_name_the_file_and_line(tmp_path):
    broken = tmp_path / "aliases.csv"
    broken.write_text("alias,group_id,group_name,source,countries\nIS,ISSP,ISSP,UCDP,Mali\nIS,ISWAP,ISWAP,UCDP,Mali\n")
    with pytest.raises(
        AliasTableError, match=r"lines 2, 3 map 'is' to different groups for source UCDP and country Mali"
    ):
        load_alias_table(broken)
    broken.write_text("name,group\nA,B\n")
    with pytest.raises(AliasTableError, match="missing column"):
        load_alias_table(broken)
