"""Messages rendered from alert cards: the e-mail digest, Slack's Block Kit and Teams' Adaptive Card, checked against
what the providers document (sahel_pipeline_tests/payload_schemas.py)."""

from __future__ import annotations

import dataclasses
import io
import json
from html import escape as html_escape

import jsonschema
import pytest
from PIL import Image

from sahel_pipeline.core.cards import AlertCard
from sahel_pipeline.core.messages import TEAMS_MAX_BYTES, email_message, slack_payload, teams_payload
from sahel_pipeline_tests.payload_schemas import SLACK_MESSAGE, TEAMS_MESSAGE


def make_cards(n: int, synthetic: bool = True, plot=None, sentence_words: int = 60) -> list[AlertCard]:
    severities = ["high", "medium", "low"]
    return [
        AlertCard(
            month="2024-12",
            source="ACLED",
            country=f"Country {i}",
            group=f"G{i}",
            group_name=f"Group <{i}> & co",
            indicator="events",
            observed=10 + i,
            expected=2.5,
            upper=8,
            severity=severities[i % 3],
            status="new" if i % 2 else "continuing",
            sentence=" ".join(["word"] * sentence_words) + f" {i}.",
            synthetic=synthetic,
            plot=plot,
        )
        for i in range(n)
    ]


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "alert1.png"
    Image.new("RGB", (20, 10), (200, 30, 30)).save(path)
    return path


@pytest.mark.parametrize("n", [1, 5, 60])
def test_slack_payload_follows_block_kit_and_its_limits(n):
    payload = slack_payload(
        make_cards(n), month_name="December 2024", synthetic=True, link="https://example.org/r.html"
    )
    jsonschema.validate(payload, SLACK_MESSAGE)
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["text"].startswith("SYNTHETIC")
    assert payload["text"].startswith("SYNTHETIC")
    shown = [b for b in blocks if b["type"] == "section" and b["text"]["text"].startswith("*Group")]
    if n == 60:  # more than fit in 50 blocks: the rest are counted, not dropped silently
        more = [b for b in blocks if b["type"] == "context" and "more alerts" in b["elements"][0]["text"]]
        assert (
            len(blocks) <= 50 and len(more) == 1 and f"{60 - len(shown)} more alerts" in more[0]["elements"][0]["text"]
        )
    else:
        assert len(shown) == n
    assert all("&lt;" in b["text"]["text"] and "&amp;" in b["text"]["text"] for b in shown)  # Slack's escapes


def test_slack_cuts_a_text_over_its_limit_instead_of_being_refused():
    (long,) = make_cards(1, sentence_words=800)  # 4,000 characters
    payload = slack_payload([long], month_name="December 2024", synthetic=False)
    jsonschema.validate(payload, SLACK_MESSAGE)
    assert not payload["blocks"][0]["text"]["text"].startswith("SYNTHETIC")


@pytest.mark.parametrize("n", [1, 60])
def test_teams_payload_is_a_workflows_message_with_an_adaptive_card(n):
    payload = teams_payload(
        make_cards(n), month_name="December 2024", synthetic=True, link="https://example.org/r.html"
    )
    jsonschema.validate(payload, TEAMS_MESSAGE)
    card = payload["attachments"][0]["content"]
    assert card["body"][0]["text"].startswith("SYNTHETIC")
    assert card["body"][1]["style"] == "attention"  # the synthetic notice stands out
    assert len(json.dumps(payload).encode()) <= TEAMS_MAX_BYTES
    alerts = [b for b in card["body"] if b["type"] == "Container" and b.get("separator")]
    if n == 60:
        assert len(alerts) < 60 and card["body"][-1]["text"] == f"… and {60 - len(alerts)} more alerts in the report"
    else:
        assert len(alerts) == 1


def test_the_email_has_a_text_part_and_an_html_part_with_its_plots_inline(png):
    with_plot, without = make_cards(2)
    cards = [dataclasses.replace(with_plot, plot=png), without]
    message = email_message(
        cards,
        month_name="December 2024",
        synthetic=True,
        sender="alerts@example.org",
        recipient="desk@example.org",
        why="because line 2",
        already_sent=3,
    )
    assert message["Subject"].startswith("[SYNTHETIC] Escalation alerts, December 2024: 2 alerts")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for card in cards:
        assert card.sentence in text and card.title in text and html_escape(card.title) in html
    assert "3 other matching alerts" in text and "because line 2" in text
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    cid = images[0]["Content-ID"].strip("<>")
    assert f"cid:{cid}" in html
    assert Image.open(io.BytesIO(images[0].get_content())).size == (20, 10)


def test_a_real_month_says_nothing_of_synthetic():
    cards = make_cards(2, synthetic=False)
    message = email_message(
        cards, month_name="December 2024", synthetic=False, sender="a@example.org", recipient="b@example.org"
    )
    assert "SYNTHETIC" not in message.as_string()
    assert "SYNTHETIC" not in json.dumps(slack_payload(cards, month_name="December 2024", synthetic=False))
    assert "SYNTHETIC" not in json.dumps(teams_payload(cards, month_name="December 2024", synthetic=False))
