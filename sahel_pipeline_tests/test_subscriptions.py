"""The subscriptions file: who gets which alerts, and one clear line for each way of getting it wrong."""

from __future__ import annotations

import pytest

from sahel_pipeline import SUBSCRIPTIONS
from sahel_pipeline.core.cards import AlertCard
from sahel_pipeline.core.subscriptions import SubscriptionError, load_subscriptions

HEADER = "address,countries,groups,min_severity,delivery\n"


def card(country="Niger", group="ISSP", group_name="Islamic State Sahel Province (ISSP)", severity="high") -> AlertCard:
    return AlertCard(
        month="2024-12",
        source="ACLED",
        country=country,
        group=group,
        group_name=group_name,
        indicator="events",
        observed=17,
        expected=6.8,
        upper=14,
        severity=severity,
        status="new",
        sentence="...",
        synthetic=False,
    )


def write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "subscriptions.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_the_shipped_file_loads_and_says_who_gets_what():
    subscribers = {s.address: s for s in load_subscriptions(SUBSCRIPTIONS)}
    assert subscribers, "the shipped example lists no subscriber"
    assert all(address.endswith("@example.org") for address in subscribers)  # reserved: nobody real is written to
    assert {s.delivery for s in subscribers.values()} == {"immediate", "weekly"}


def test_rules_match_by_country_group_id_or_name_and_least_severity(tmp_path):
    path = write(
        tmp_path,
        "a@example.org,Niger,*,medium,immediate\n"
        "b@example.org,*,jnim;islamic state sahel province (issp),low,weekly\n"
        "c@example.org,,,,\n"
        "d@example.org,Mali;Burkina Faso,,high,\n",
    )
    a, b, c, d = load_subscriptions(path)
    assert a.wants(card()) and not a.wants(card(severity="low")) and not a.wants(card(country="Mali"))
    assert b.wants(card(severity="low"))  # matched on the group's name, whatever its case
    assert b.wants(card(country="Mali", group="JNIM", group_name="Group for Support of Islam and Muslims (JNIM)"))
    assert not b.wants(card(group="Dozo", group_name="Dozo Communal Militia (Mali)"))
    assert b.delivery == "weekly"
    assert (
        c.wants(card(severity="low", country="Chad")) and c.delivery == "immediate"
    )  # empty: every one, low, immediate
    assert d.wants(card(country="Mali")) and not d.wants(card(country="Mali", severity="medium"))
    assert not d.wants(card())


def test_several_lines_of_one_address_are_one_subscriber_with_either_rule(tmp_path):
    path = write(
        tmp_path,
        "desk@example.org,Niger,*,low,immediate\n"
        "# comments and blank lines are skipped\n\n"
        "DESK@example.org,*,*,high,immediate\n",
    )
    (desk,) = load_subscriptions(path)
    assert desk.wants(card(country="Niger", severity="low")) and desk.wants(card(country="Chad", severity="high"))
    assert not desk.wants(card(country="Chad", severity="medium"))
    assert "line 2" in desk.rules[0].describe() and "line 5" in desk.rules[1].describe()


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (
            "analyst.example.org,Niger,*,low,immediate\n",
            HEADER,
            r"line 2: 'analyst.example.org' is not an e-mail address",
        ),
        (
            "a@example.org,Niger,*,hgih,immediate\n",
            HEADER,
            r"line 2: min_severity 'hgih' is not one of high, medium, low",
        ),
        ("a@example.org,Niger,*,low,daily\n", HEADER, r"line 2: delivery 'daily' is not one of immediate, weekly"),
        ("a@example.org,Nigr,*,low,immediate\n", HEADER, r"line 2: unknown country 'Nigr' \(did you mean Niger\?\)"),
        ("a@example.org,Niger,*,low\n", HEADER, r"line 2 has 4 fields, the header has 5"),
        (
            "a@example.org,Niger,low,immediate\n",
            "address,countries,min_severity,delivery\n",
            r"line 1: missing column\(s\) groups",
        ),
        (
            "a@example.org,Niger,*,low,immediate\n",
            "address,countries,groups,min_severty,delivery\n",
            r"line 1: missing column\(s\) min_severity; unknown column\(s\) min_severty",
        ),
        (
            "a@example.org,Niger,*,low,immediate\nb@example.org,*,*,low,immediate\na@example.org,Mali,*,high,weekly\n",
            HEADER,
            r"line 4: a@example.org is weekly here but immediate at line 2",
        ),
    ],
)
def test_a_bad_line_is_one_error_naming_the_file_and_the_line(tmp_path, body, header, message):
    path = write(tmp_path, body, header)
    with pytest.raises(SubscriptionError, match=message) as caught:
        load_subscriptions(path)
    assert str(caught.value).startswith(f"{path}: line ") and "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SubscriptionError, match="subscriptions.csv: no such file"):
        load_subscriptions(tmp_path / "subscriptions.csv")
