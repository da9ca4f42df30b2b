"""Delivery as plain functions: the cool-down rule, weekly digests, retries, and the real clients against real
servers on loopback (aiosmtpd for SMTP with and without TLS, an HTTP server answering as Slack and Teams do)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import jsonschema
import pytest

from sahel_pipeline.core.delivery import (
    Channels,
    DeliveryError,
    Ledger,
    LedgerEntry,
    SentAlert,
    SmtpServer,
    Target,
    Webhook,
    channel_target,
    deliver,
    plan,
    render,
    with_retries,
)
from sahel_pipeline.core.messages import email_message, slack_payload, teams_payload
from sahel_pipeline.defs.delivery import _summary
from sahel_pipeline_tests.fixtures import free_port
from sahel_pipeline_tests.local_services import WebhookEndpoint, self_signed_certificate, smtp_server
from sahel_pipeline_tests.payload_schemas import SLACK_MESSAGE, TEAMS_MESSAGE
from sahel_pipeline_tests.test_messages import make_cards

NOW = dt.datetime(2025, 1, 6, 7, 0, tzinfo=dt.UTC)  # a Monday


def everything(recipient="desk@example.org", delivery="immediate") -> Target:
    return Target("email", recipient, delivery, lambda card: True)


def sent(card, month="2024-12", severity=None, recipient="desk@example.org", outcome="sent", at=NOW) -> LedgerEntry:
    alert = SentAlert(card.source, card.country, card.group, card.indicator, severity or card.severity, card.status,
                      card.kind, card.place)
    return LedgerEntry(
        at=at.isoformat(),
        month=month,
        channel="email",
        recipient=recipient,
        outcome=outcome,
        attempts=1,
        alerts=(alert,),
        subject="",
        synthetic=False,
    )


# --- who gets what --------------------------------------------------------------------------------------------------


def test_a_first_run_sends_every_matching_alert_and_a_rerun_nothing():
    cards = make_cards(3)
    (first,) = plan(cards, [everything()], [], NOW, cooldown_months=6)
    assert first.due == cards and not first.repeated
    ledger = [sent(c) for c in cards]
    (again,) = plan(cards, [everything()], ledger, NOW, cooldown_months=6)
    assert again.due == [] and again.repeated == cards


def test_a_continuing_alert_is_sent_again_only_when_its_severity_rises_or_the_cool_down_has_passed():
    (medium,) = [dataclasses.replace(c, severity="medium", status="continuing") for c in make_cards(1)]
    high = dataclasses.replace(medium, severity="high")
    before = [sent(medium, month="2024-11")]
    assert plan([medium], [everything()], before, NOW, 6)[0].due == []  # same severity a month later: not again
    assert plan([high], [everything()], before, NOW, 6)[0].due == [high]  # it rose: sent
    low = dataclasses.replace(medium, severity="low")
    assert plan([low], [everything()], before, NOW, 6)[0].due == []  # it eased: not news


def test_the_cool_down_counts_months_both_ways_and_only_successful_deliveries():
    (card,) = make_cards(1)
    assert plan([card], [everything()], [sent(card, month="2024-06")], NOW, 6)[0].due == []  # 6 months: within
    assert plan([card], [everything()], [sent(card, month="2024-05")], NOW, 6)[0].due == [card]  # 7: past it
    assert plan([card], [everything()], [sent(card, month="2025-03")], NOW, 6)[0].due == []  # a backfill
    for outcome in ("failed", "dry_run"):
        assert plan([card], [everything()], [sent(card, outcome=outcome)], NOW, 6)[0].due == [card]
    other = [sent(card, recipient="someone@example.org")]
    assert plan([card], [everything()], other, NOW, 6)[0].due == [card]  # another recipient's record is theirs


def test_the_cool_down_keys_on_the_unit_not_the_indicator_that_led():
    """One alert per group and month: last month's led by events, this month's by fatalities (events no longer
    listed) is the same alert continuing; another kind of alert or another place on the same group is news."""
    (events,) = [dataclasses.replace(c, status="continuing") for c in make_cards(1)]
    fatalities = dataclasses.replace(events, indicator="fatalities", listed=("fatalities",))
    before = [sent(events, month="2024-11")]
    assert plan([fatalities], [everything()], before, NOW, 6)[0].due == []
    newcomer = dataclasses.replace(events, kind="new_actor")
    elsewhere = dataclasses.replace(events, kind="approach", place="Niamey")
    assert plan([newcomer, elsewhere], [everything()], before, NOW, 6)[0].due == [newcomer, elsewhere]
    other_group = dataclasses.replace(fatalities, group="G9")
    assert plan([other_group], [everything()], before, NOW, 6)[0].due == [other_group]


def test_a_ledger_line_written_before_kinds_were_recorded_still_counts(tmp_path):
    (card,) = make_cards(1)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    old = dataclasses.asdict(sent(card))
    for alert in old["alerts"]:
        del alert["kind"], alert["place"]
    ledger.path.write_text(json.dumps(old) + "\n", encoding="utf-8")
    newcomer = dataclasses.replace(card, kind="new_actor")  # such a line does not say which kind it was: any
    assert plan([card, newcomer], [everything()], ledger.entries(), NOW, 6)[0].due == []


def test_weekly_subscribers_get_one_digest_a_week_for_a_month():
    cards = make_cards(2)
    weekly = everything(delivery="weekly")
    this_week = [sent(cards[0], at=NOW - dt.timedelta(days=1))]  # Sunday is the ISO week before Monday
    assert not plan(cards, [weekly], this_week, NOW, 6)[0].held
    earlier_today = [sent(cards[0], at=NOW - dt.timedelta(hours=2))]
    held = plan(cards, [weekly], earlier_today, NOW, 6)[0]
    assert held.held and held.due == [cards[1]]  # the new alert waits for next week's digest
    other_month = [dataclasses.replace(sent(cards[0], at=NOW - dt.timedelta(hours=2)), month="2024-11")]
    assert not plan(cards, [weekly], other_month, NOW, 6)[0].held
    immediate = plan(cards, [everything()], earlier_today, NOW, 6)[0]
    assert not immediate.held and immediate.due == [cards[1]]


# --- retries --------------------------------------------------------------------------------------------------------


def test_transient_errors_are_retried_with_backoff_and_permanent_ones_are_not():
    waits: list[float] = []
    calls = iter([DeliveryError("away", transient=True), DeliveryError("away", transient=True), None])

    def flaky():
        error = next(calls)
        if error:
            raise error

    assert with_retries(flaky, attempts=3, delay=1.0, sleep=waits.append) == (3, "")
    assert waits == [1.0, 2.0]

    def refused():
        raise DeliveryError("550 no such user", transient=False)

    waits.clear()
    assert with_retries(refused, attempts=3, delay=1.0, sleep=waits.append) == (1, "550 no such user")
    assert waits == []

    def away():
        raise DeliveryError("429", transient=True, retry_after=0.25)

    assert with_retries(away, attempts=2, delay=1.0, sleep=waits.append) == (2, "429")
    assert waits == [0.25]  # the server's Retry-After, not our backoff


# --- SMTP against aiosmtpd ------------------------------------------------------------------------------------------


def digest(recipient="desk@example.org"):
    return email_message(
        make_cards(2), month_name="December 2024", synthetic=True, sender="alerts@example.org", recipient=recipient
    )


@pytest.mark.integration
def test_smtp_plain_to_a_local_relay():
    with smtp_server() as (controller, handler):
        SmtpServer("127.0.0.1", controller.port, "none").send(digest())
    (got,) = handler.received
    assert got.recipients == ["desk@example.org"] and got.sender == "alerts@example.org"
    assert got.message["Subject"].strip().startswith("[SYNTHETIC] Escalation alerts, December 2024")  # folded: a space


@pytest.mark.integration
def test_smtp_starttls_with_login_against_a_self_signed_certificate(tmp_path):
    certificate = self_signed_certificate(tmp_path)
    with smtp_server(tls=certificate, login=("alerts", "s3cret")) as (controller, handler):
        server = SmtpServer("127.0.0.1", controller.port, "starttls", "alerts", "s3cret", ca_file=str(certificate.cert))
        server.send(digest())
        with pytest.raises(DeliveryError, match="535") as wrong:
            dataclasses.replace(server, password="wrong").send(digest())
        assert not wrong.value.transient
        with pytest.raises(DeliveryError, match="TLS") as untrusted:  # the system's CAs do not know this certificate
            dataclasses.replace(server, ca_file="").send(digest())
        assert not untrusted.value.transient
        with pytest.raises(DeliveryError) as plain:  # this server requires STARTTLS before anything else
            SmtpServer("127.0.0.1", controller.port, "none").send(digest())
        assert "530" in str(plain.value)
    assert len(handler.received) == 1


@pytest.mark.integration
def test_smtp_implicit_tls(tmp_path):
    certificate = self_signed_certificate(tmp_path)
    with smtp_server(tls=certificate, implicit_tls=True) as (controller, handler):
        SmtpServer("127.0.0.1", controller.port, "tls", ca_file=str(certificate.cert)).send(digest())
    assert len(handler.received) == 1


@pytest.mark.integration
def test_smtp_failures_say_whether_to_try_again():
    with smtp_server() as (controller, handler):
        handler.refuse_with = "451 4.3.0 try again later"
        with pytest.raises(DeliveryError, match="451") as later:
            SmtpServer("127.0.0.1", controller.port, "none").send(digest())
        assert later.value.transient
    with pytest.raises(DeliveryError, match="cannot reach") as closed:
        SmtpServer("127.0.0.1", free_port(), "none", timeout=2).send(digest())
    assert closed.value.transient


# --- webhooks against a local endpoint ------------------------------------------------------------------------------


@pytest.mark.integration
def test_webhooks_post_documented_payloads_and_retry_a_service_that_is_away():
    cards = make_cards(3)
    with WebhookEndpoint() as endpoint:
        Webhook(f"{endpoint.url}/slack/T000/B000/XXX", "Slack").post(
            slack_payload(cards, month_name="December 2024", synthetic=True)
        )
        Webhook(f"{endpoint.url}/teams/workflows/abc", "Teams").post(
            teams_payload(cards, month_name="December 2024", synthetic=True)
        )
        endpoint.answers["/slack/away"] = [503, 429]
        hook = Webhook(f"{endpoint.url}/slack/away", "Slack")
        made, error = with_retries(lambda: hook.post({"text": "x", "blocks": []}), attempts=3, delay=0.01)
        assert (made, error) == (3, "") and endpoint.attempts["/slack/away"] == 3
        endpoint.answers["/slack/gone"] = [404]
        gone = Webhook(f"{endpoint.url}/slack/gone", "Slack")
        made, error = with_retries(lambda: gone.post({"text": "x"}), attempts=3, delay=0.01)
        assert made == 1 and error.startswith("Slack answered 404")  # a removed webhook is not tried again
        assert endpoint.url not in error  # the URL is a secret
    (slack,) = endpoint.bodies("/slack/T000")
    (teams,) = endpoint.bodies("/teams")
    jsonschema.validate(slack, SLACK_MESSAGE)
    jsonschema.validate(teams, TEAMS_MESSAGE)
    assert all(p.content_type.startswith("application/json") for p in endpoint.posted)


def test_an_unreachable_webhook_is_a_transient_error():
    with pytest.raises(DeliveryError, match="cannot reach Slack's webhook") as caught:
        Webhook(f"http://127.0.0.1:{free_port()}/slack", "Slack", timeout=2).post({"text": "x"})
    assert caught.value.transient


# --- a run's deliveries ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_deliver_records_each_message_and_stops_trying_a_channel_that_keeps_failing(tmp_path):
    cards = make_cards(2)
    targets = [everything(f"r{i}@example.org") for i in range(4)] + [channel_target("slack", "low")]
    planned = plan(cards, targets, [], NOW, 6)
    messages = [
        render(p, month_name="December 2024", synthetic=True, sender="alerts@example.org", link="") for p in planned
    ]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with WebhookEndpoint() as endpoint:
        channels = Channels(
            smtp=SmtpServer("127.0.0.1", free_port(), "none", timeout=2),
            slack=Webhook(f"{endpoint.url}/slack", "Slack"),
        )
        with ledger.locked():
            entries = deliver(
                messages,
                channels,
                month="2024-12",
                synthetic=True,
                dry_run=False,
                outbox=tmp_path / "outbox",
                attempts=2,
                delay=0.01,
                now=lambda: NOW,
                record=ledger.append,
            )
    outcomes = [(e.channel, e.outcome, e.attempts) for e in entries]
    # two e-mails tried twice each, then the channel is given up for this run; Slack is not held back by it
    assert outcomes == [
        ("email", "failed", 2),
        ("email", "failed", 2),
        ("email", "failed", 0),
        ("email", "failed", 0),
        ("slack", "sent", 1),
    ]
    assert "not attempted" in entries[2].error
    assert ledger.entries() == entries


def test_a_dry_run_writes_the_outbox_and_sends_nothing(tmp_path):
    cards = make_cards(2)
    planned = plan(cards, [everything(), channel_target("teams", "low")], [], NOW, 6)
    messages = [render(p, month_name="December 2024", synthetic=True, sender="", link="") for p in planned]
    outbox = tmp_path / "outbox"
    (outbox / "stale.eml").parent.mkdir()
    (outbox / "stale.eml").write_text("from an earlier dry run")
    entries = deliver(
        messages,
        Channels(),
        month="2024-12",
        synthetic=True,
        dry_run=True,
        outbox=outbox,
        attempts=3,
        delay=0.01,
        now=lambda: NOW,
        record=lambda e: None,
    )
    assert [e.outcome for e in entries] == ["dry_run", "dry_run"]
    assert sorted(p.name for p in outbox.iterdir()) == ["email-desk@example.org.eml", "teams.json"]


def test_the_ledger_skips_a_line_cut_short_and_counts_it(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    (card,) = make_cards(1)
    ledger.append(sent(card))
    with open(ledger.path, "a") as fh:
        fh.write('{"at": "2025-01-0')  # a write cut short by a crash
    assert ledger.entries() == [sent(card)] and ledger.unreadable_lines == 1


def test_the_dry_run_summary_counts_one_message_in_the_singular():
    entry = LedgerEntry("2024-12-02T00:00:00", "2024-11", "email", "a@example.org", "dry_run", 0, (), "s", False)
    assert _summary([], [entry], dry_run=True) == "1 message written to the outbox (dry run, nothing sent)"
    assert _summary([], [entry, entry], dry_run=True).startswith("2 messages written")
