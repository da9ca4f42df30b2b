"""The weekly job on the bundled sample, delivering December 2024's alerts for real: to an SMTP server (aiosmtpd) and
a webhook endpoint answering as Slack and Teams do, both on loopback. What arrived is parsed and held against the
alert table and the subscriptions, and against the documented payload schemas; then reruns, a severity rise and
failing servers."""

from __future__ import annotations

import io
import json
import shutil

import dagster as dg
import feedparser
import jsonschema
import polars as pl
import pytest
from PIL import Image

from sahel_pipeline import ALIAS_TABLE, SAMPLE_DIR
from sahel_pipeline.core.feeds import geojson_problems
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.delivery import alert_notifications
from sahel_pipeline.defs.resources import DeliverySettings, PipelineSettings
from sahel_pipeline_tests.fixtures import free_port, instance_with_months, materialize_upstream
from sahel_pipeline_tests.local_services import WebhookEndpoint, smtp_server
from sahel_pipeline_tests.payload_schemas import SLACK_MESSAGE, TEAMS_MESSAGE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MONTH = "2024-12"
SUBSCRIPTIONS = """address,countries,groups,min_severity,delivery
niger@example.org,Niger,*,low,immediate
mali-high@example.org,Mali,*,high,immediate
dozo@example.org,*,dozo communal militia (mali),medium,weekly
everyone@example.org,*,*,low,immediate
"""
SEVERITY = {"high": 0, "medium": 1, "low": 2}


def card_rows(alerts: pl.DataFrame) -> pl.DataFrame:
    """The strongest row of each group x country (the alert table is most severe first): one card each, whose
    sentence the messages carry."""
    return alerts.with_columns(pl.col("group").fill_null("")).unique(
        ["month", "source", "country", "group"], keep="first", maintain_order=True
    )


def expected_alerts(alerts: pl.DataFrame) -> dict[str, list[str]]:
    """Each address's alerts (their sentences), by reading the subscriptions above the way an analyst would."""
    rank = pl.col("severity").replace_strict(SEVERITY, return_dtype=pl.Int8)
    wanted = {
        "niger@example.org": alerts.filter(pl.col("country") == "Niger"),
        "mali-high@example.org": alerts.filter(pl.col("country") == "Mali", rank <= SEVERITY["high"]),
        "dozo@example.org": alerts.filter(
            pl.col("group_name").str.to_lowercase() == "dozo communal militia (mali)", rank <= SEVERITY["medium"]
        ),
        "everyone@example.org": alerts,
    }
    return {address: frame["explanation"].to_list() for address, frame in wanted.items() if frame.height}


def delivery_settings(out, smtp_port, hooks_url, **changes) -> DeliverySettings:
    (out / "subscriptions.csv").write_text(SUBSCRIPTIONS)
    settings = {
        "dry_run": False,
        "subscriptions": str(out / "subscriptions.csv"),
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "smtp_sender": "alerts@example.org",
        "slack_webhook_url": f"{hooks_url}/slack/T0/B0/x",
        "teams_webhook_url": f"{hooks_url}/teams/flow",
        "slack_min_severity": "low",
        "teams_min_severity": "medium",
        "retry_delay_seconds": 0.01,
        "report_url": "https://reports.example.org/sahel",
    }
    return DeliverySettings(**{**settings, **changes})


def notify(out, delivery: DeliverySettings, as_of: str = "") -> dg.ExecuteInProcessResult:
    """Only the notifications of the month, from the alerts stored by the weekly run."""
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(out), sample_fallback=False, as_of=as_of)
    definitions = build_definitions(settings, delivery_settings=delivery)
    with instance_with_months(MONTH) as instance:
        return dg.materialize(
            definitions.assets,  # their checks are check_specs
            selection=[alert_notifications.key],
            partition_key=MONTH,
            resources=definitions.resources,
            instance=instance,
        )


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key == alert_notifications.key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "notifications_were_delivered"]
    return evaluation


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    out = tmp_path_factory.mktemp("delivered")
    with smtp_server() as (controller, mail), WebhookEndpoint() as hooks:
        settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(out), sample_fallback=False)
        definitions = build_definitions(settings, delivery_settings=delivery_settings(out, controller.port, hooks.url))
        job = definitions.resolve_job_def("weekly_escalation_job")
        with dg.instance_for_test() as instance:
            materialize_upstream(job, instance)  # adds the month partitions
            result = job.execute_in_process(partition_key=MONTH, instance=instance)
        yield {"out": out, "result": result, "mail": mail, "hooks": hooks, "smtp_port": controller.port}


def test_each_subscriber_gets_one_digest_of_the_alerts_their_lines_match(delivered):
    assert delivered["result"].success
    alerts = pl.read_csv(delivered["out"] / "alerts" / f"{MONTH}.csv")
    expected = expected_alerts(card_rows(alerts))
    assert "mali-high@example.org" not in expected  # the sample has no high alert in Mali: nothing to send there
    received = {r.recipients[0]: r for r in delivered["mail"].received}
    assert all(len(r.recipients) == 1 for r in delivered["mail"].received)
    assert sorted(received) == sorted(expected)
    for address, sentences in expected.items():
        message = received[address].message
        assert message["To"] == address and received[address].sender == "alerts@example.org"
        subject = message["Subject"].strip()
        assert subject.startswith("[SYNTHETIC] Escalation alerts, December 2024: ")
        assert f"{len(sentences)} alert" in subject
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert text.startswith("SYNTHETIC") and "SYNTHETIC DATA" in html
        for sentence in sentences:
            assert sentence in text
        for other in set(alerts["explanation"]) - set(sentences):
            assert other not in text
        assert "https://reports.example.org/sahel/reports/2024-12.html" in text
        images = [p for p in message.walk() if p.get_content_type() == "image/png"]
        assert len(images) == len(sentences)  # every alert of the sample has its plot (fewer than 12 alerts)
        for image in images:
            assert f"cid:{image['Content-ID'].strip('<>')}" in html
            decoded = Image.open(io.BytesIO(image.get_content()))
            assert decoded.format == "PNG" and decoded.size[0] > 300
            decoded.load()


def test_slack_and_teams_get_posts_that_follow_their_documented_schemas(delivered):
    alerts = pl.read_csv(delivered["out"] / "alerts" / f"{MONTH}.csv")
    (slack,) = delivered["hooks"].bodies("/slack")
    (teams,) = delivered["hooks"].bodies("/teams")
    jsonschema.validate(slack, SLACK_MESSAGE)
    jsonschema.validate(teams, TEAMS_MESSAGE)
    assert slack["blocks"][0]["text"]["text"] == "SYNTHETIC - Escalation alerts, December 2024"
    posted = json.dumps(slack)
    cards = card_rows(alerts)
    assert all(
        s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in posted for s in cards["explanation"]
    )
    card = teams["attachments"][0]["content"]
    assert card["body"][0]["text"] == "SYNTHETIC - Escalation alerts, December 2024"
    medium_up = cards.filter(pl.col("severity") != "low")["explanation"].to_list()
    shown = [b["items"][1]["text"] for b in card["body"] if b["type"] == "Container" and b.get("separator")]
    assert shown == medium_up  # Teams is set to medium and above
    assert card["actions"][0]["url"] == "https://reports.example.org/sahel/reports/2024-12.html"


def test_the_ledger_records_what_went_to_whom(delivered):
    lines = [
        json.loads(line) for line in (delivered["out"] / "notifications" / "ledger.jsonl").read_text().splitlines()
    ]
    assert {(e["channel"], e["recipient"]) for e in lines} == {
        *(("email", a) for a in expected_alerts(pl.read_csv(delivered["out"] / "alerts" / f"{MONTH}.csv"))),
        ("slack", "slack"),
        ("teams", "teams"),
    }
    assert all(e["outcome"] == "sent" and e["attempts"] == 1 and e["synthetic"] and e["month"] == MONTH for e in lines)
    assert "hooks" not in json.dumps(lines) and delivered["hooks"].url not in json.dumps(lines)  # no webhook URL kept
    assert check(delivered["result"]).passed


def test_a_rerun_of_the_month_sends_nothing_twice(delivered):
    before_mail, before_posts = len(delivered["mail"].received), len(delivered["hooks"].posted)
    result = notify(
        delivered["out"], delivery_settings(delivered["out"], delivered["smtp_port"], delivered["hooks"].url)
    )
    assert result.success and check(result).passed
    assert len(delivered["mail"].received) == before_mail and len(delivered["hooks"].posted) == before_posts
    assert metadata(result)["sent"] == 0 and metadata(result)["alerts_not_repeated"] > 0


def copy_without_deliveries(delivered, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(delivered["out"], out, ignore=shutil.ignore_patterns("ledger.jsonl"))
    return out


def test_an_alert_sent_last_month_at_a_lower_severity_is_sent_again_the_others_not(delivered, tmp_path):
    out = copy_without_deliveries(delivered, tmp_path)
    alerts = pl.read_csv(out / "alerts" / f"{MONTH}.csv")
    high = card_rows(alerts).filter(pl.col("severity") == "high").row(0, named=True)
    others = card_rows(alerts).filter(pl.col("explanation") != high["explanation"])
    # November's ledger: every alert went to everyone@ already, the first high one then only at medium
    earlier = [
        {
            "source": a["source"],
            "country": a["country"],
            "group": a["group"] or "",
            "indicator": a["indicator"],
            "severity": "medium" if a == high else a["severity"],
            "status": "new",
        }
        for a in alerts.iter_rows(named=True)
    ]
    entry = {
        "at": "2024-12-02T06:00:00+00:00",
        "month": "2024-11",
        "channel": "email",
        "recipient": "everyone@example.org",
        "outcome": "sent",
        "attempts": 1,
        "alerts": earlier,
        "subject": "",
        "synthetic": True,
        "error": "",
    }
    (out / "notifications" / "ledger.jsonl").write_text(json.dumps(entry) + "\n")
    mail = delivered["mail"]
    before = len(mail.received)
    result = notify(
        out,
        delivery_settings(
            out, delivered["smtp_port"], delivered["hooks"].url, slack_webhook_url="", teams_webhook_url=""
        ),
    )
    assert result.success
    mine = [r for r in mail.received[before:] if r.recipients == ["everyone@example.org"]]
    (message,) = mine
    text = message.message.get_body(("plain",)).get_content()
    assert high["explanation"] in text and not any(s in text for s in others["explanation"])
    n = others.height
    assert f"{n} other matching alert{'s' * (n != 1)} continue" in text


def test_a_past_vintage_recomputed_is_a_dry_run_whatever_the_settings_say(delivered, tmp_path):
    out = copy_without_deliveries(delivered, tmp_path)  # as `--as-of` writes: a folder of its own, an empty ledger
    before_mail, before_posts = len(delivered["mail"].received), len(delivered["hooks"].posted)
    delivery = delivery_settings(out, delivered["smtp_port"], delivered["hooks"].url)
    result = notify(out, delivery, as_of="2026-11-23T060012Z-acled")
    assert result.success and check(result).passed
    assert len(delivered["mail"].received) == before_mail and len(delivered["hooks"].posted) == before_posts
    facts = metadata(result)
    assert facts["dry_run"] is True and facts["sent"] == 0 and facts["dry_run_messages"] > 0
    outbox = out / "notifications" / MONTH / "outbox"
    assert (outbox / "slack.json").exists() and (outbox / "teams.json").exists() and list(outbox.glob("email-*.eml"))


def test_a_failing_server_is_retried_then_reported_and_the_run_still_succeeds(delivered, tmp_path):
    out = copy_without_deliveries(delivered, tmp_path)
    hooks = delivered["hooks"]
    hooks.answers["/slack/down"] = [500] * 10
    hooks.answers["/teams/flow"] = [503]  # away once, then back
    closed = free_port()
    result = notify(out, delivery_settings(out, closed, hooks.url, slack_webhook_url=f"{hooks.url}/slack/down"))
    assert result.success
    evaluation = check(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "email to" in evaluation.description and "cannot reach 127.0.0.1" in evaluation.description
    facts = metadata(result)
    ledger = [json.loads(line) for line in (out / "notifications" / "ledger.jsonl").read_text().splitlines()]
    outcome = {(e["channel"], e["recipient"]): (e["outcome"], e["attempts"]) for e in ledger}
    assert outcome[("slack", "slack")] == ("failed", 3) and hooks.attempts["/slack/down"] == 3
    assert outcome[("teams", "teams")] == ("sent", 2)
    email = [v for (channel, _), v in outcome.items() if channel == "email"]
    assert email[:2] == [("failed", 3), ("failed", 3)]  # then the channel is given up for this run
    assert all(v == ("failed", 0) for v in email[2:])
    assert facts["failed"] == len(email) + 1 and facts["sent"] == 1
    # the next run, with the server back, sends what failed (a failure is not a delivery), and only that
    with smtp_server() as (controller, mail):
        again = notify(out, delivery_settings(out, controller.port, hooks.url, slack_webhook_url=""))
    assert check(again).passed and len(mail.received) == len(email)
    assert metadata(again)["sent"] == len(email)


def test_a_bad_subscriptions_file_is_reported_and_the_other_channels_still_go_out(delivered, tmp_path):
    out = copy_without_deliveries(delivered, tmp_path)
    delivery = delivery_settings(out, delivered["smtp_port"], delivered["hooks"].url)
    (out / "subscriptions.csv").write_text(
        "address,countries,groups,min_severity,delivery\nniger@example.org,Nigeria;Nigr,*,low,now\n"
    )
    before = len(delivered["hooks"].posted)
    result = notify(out, delivery)
    assert result.success
    evaluation = check(result)
    assert not evaluation.passed and "subscriptions.csv: line 2: " in evaluation.description
    assert len(delivered["hooks"].posted) == before + 2  # Slack and Teams


def test_the_feed_and_the_map_layer_are_written_beside_the_alerts(delivered):
    out = delivered["out"]
    alerts = pl.read_csv(out / "alerts" / f"{MONTH}.csv")
    parsed = feedparser.parse((out / "alerts" / f"{MONTH}.atom").read_text())
    assert not parsed.bozo and parsed.feed.title.startswith("SYNTHETIC")
    sentences = [e.summary.rsplit("assessment. ", 1)[1] for e in parsed.entries]
    assert sentences == card_rows(alerts)["explanation"].to_list()
    document = json.loads((out / "alerts" / f"{MONTH}.geojson").read_text())
    assert geojson_problems(document) == [] and document["synthetic"] is True and "crs" not in document
    checks = [
        e for e in delivered["result"].get_asset_check_evaluations() if e.check_name == "alert_geojson_follows_rfc_7946"
    ]
    assert checks and checks[0].passed


def test_the_map_layer_holds_the_alerted_series_recent_events_in_longitude_latitude_order(delivered):
    out = delivered["out"]
    document = json.loads((out / "alerts" / f"{MONTH}.geojson").read_text())
    events = pl.read_parquet(out / "warehouse" / "canonical_events.parquet")
    alerts = pl.read_csv(out / "alerts" / f"{MONTH}.csv")
    issp = alerts.filter(pl.col("group") == "ISSP", pl.col("country") == "Niger", pl.col("indicator") == "events").row(
        0, named=True
    )
    points = [f for f in document["features"] if f["properties"]["kind"] == "event"]
    by_id = {
        row["event_id"]: row
        for row in events.filter(pl.col("event_id").is_in([f["properties"]["event_id"] for f in points])).iter_rows(
            named=True
        )
    }
    issp_names = [a.lower() for a in pl.read_csv(ALIAS_TABLE).filter(pl.col("group_id") == "ISSP")["alias"]]
    for feature in points:
        event = by_id[feature["properties"]["event_id"]]
        lon, lat = feature["geometry"]["coordinates"]
        assert (lon, lat) == (round(event["longitude"], 5), round(event["latitude"], 5))
        assert "2024-10-01" <= feature["properties"]["date"] <= "2024-12-31"
        assert feature["properties"]["country"] == event["country"]
        if feature["properties"]["group"] == "ISSP":
            actors = f"{event['actor1']};{event['assoc_actor_1'] or ''}".lower()
            assert any(name in actors for name in issp_names)
    issp_december = [
        f
        for f in points
        if f["properties"]["group"] == "ISSP"
        and f["properties"]["country"] == "Niger"
        and f["properties"]["date"].startswith("2024-12")
        and "events" in f["properties"]["indicators"]
    ]
    assert len(issp_december) == issp["observed"]  # the month's count in the table: every one of its events is mapped


def test_hot_spots_sit_at_the_mean_of_their_units_recent_events_with_the_rise(delivered):
    document = json.loads((delivered["out"] / "alerts" / f"{MONTH}.geojson").read_text())
    spots = [f for f in document["features"] if f["properties"]["kind"] == "hot_spot"]
    tillaberi = [
        s
        for s in spots
        if s["properties"]["group"] == "ISSP"
        and s["properties"]["admin1"] == "Tillaberi"
        and s["properties"]["indicator"] == "events"
    ]
    (spot,) = tillaberi  # where the sample planted the rise
    there = [
        f
        for f in document["features"]
        if f["properties"]["kind"] == "event"
        and f["properties"]["group"] == "ISSP"
        and f["properties"]["admin1"] == "Tillaberi"
        and "events" in f["properties"]["indicators"]
    ]
    assert spot["properties"]["recent"] == len(there) == spot["properties"]["events_located"]
    lon = sum(f["geometry"]["coordinates"][0] for f in there) / len(there)
    lat = sum(f["geometry"]["coordinates"][1] for f in there) / len(there)
    assert spot["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-4)
    assert spot["properties"]["rise"] == pytest.approx(
        spot["properties"]["recent"] - spot["properties"]["at_baseline_rate"], abs=0.11
    )
    assert all(s["properties"]["rise"] > 0 for s in spots)


def test_whatever_stops_the_notifications_is_reported_and_the_run_still_succeeds(delivered, tmp_path):
    out = copy_without_deliveries(delivered, tmp_path)
    blocked = out / "notifications" / MONTH / "outbox"
    shutil.rmtree(blocked, ignore_errors=True)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the outbox folder should be")  # as a full or read-only disk would
    result = notify(out, DeliverySettings(dry_run=True, subscriptions=delivery_settings(out, 25, "").subscriptions))
    assert result.success
    evaluation = check(result)
    assert not evaluation.passed and "notifications stopped after 0 messages: " in evaluation.description
