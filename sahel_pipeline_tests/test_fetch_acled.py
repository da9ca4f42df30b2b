"""The ACLED client and the weekly pull, run against a fake ACLED on loopback that behaves as ACLED documents."""

from __future__ import annotations

import csv
import datetime as dt
import json

import polars as pl
import pytest

from sahel_pipeline import SAMPLE_DIR
from sahel_pipeline.core.fetch.acled import AcledClient, AcledCredentials, plan_queries, pull_acled
from sahel_pipeline.core.fetch.http import FetchError, RetryPolicy
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.schema import CONTENT_COLUMNS
from sahel_pipeline_tests.fake_providers import ACLED_COLUMNS, FakeProviders, Fault
from sahel_pipeline_tests.fixtures import TODAY

EMAIL = "ana+acled&co@example.org"  # e-mail addresses and passwords hold +, & and spaces
PASSWORD = "p&ss w+rd=%20 ok"


def synthetic_rows(n: int, country: str, first: dt.date, timestamp: int, prefix: str | None = None) -> list[dict]:
    """Made-up events in ACLED's columns, one a day from `first`."""
    prefix = prefix or country[:3].upper()
    rows = []
    for i in range(n):
        day = first + dt.timedelta(days=i)
        row = dict.fromkeys(ACLED_COLUMNS, "")
        row.update(
            event_id_cnty=f"{prefix}{i + 1}", event_date=day.isoformat(), year=str(day.year), time_precision="1",
            disorder_type="Political violence", event_type="Battles", sub_event_type="Armed clash",
            actor1="Synthetic Armed Group", actor2=f"Military Forces of {country}", country=country,
            admin1=f"Region {i % 4}", location=f"Village {i}", latitude=str(12 + i % 5 / 10),
            longitude=str(-1 - i % 7 / 10), geo_precision="1", source="Synthetic Wire", source_scale="National",
            notes=f"SYNTHETIC, not real. Event {i}.", fatalities=str(i % 6), timestamp=str(timestamp + i),
        )
        rows.append(row)
    return rows


def sample_rows(name: str) -> list[dict]:
    """The bundled synthetic sample, with ISO dates as ACLED's API writes them."""
    with open(SAMPLE_DIR / name, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for fmt in ("%d %B %Y", "%Y-%m-%d"):
            try:
                row["event_date"] = dt.datetime.strptime(row["event_date"], fmt).date().isoformat()
                break
            except ValueError:
                continue
    return rows


@pytest.fixture
def acled():
    with FakeProviders(email=EMAIL, password=PASSWORD) as providers:
        yield providers


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(providers: FakeProviders, page_size: int = 10, password: str = PASSWORD, sleeps=None, logs=None,
               clock=None) -> AcledClient:
    return AcledClient(
        AcledCredentials(EMAIL, password), providers.url, page_size=page_size,
        retry=RetryPolicy(attempts=4, backoff=0.5), sleep=sleeps if sleeps is not None else Sleeps(),
        log=(logs.append if logs is not None else lambda _: None), **({"clock": clock} if clock else {}),
    )


def ingested(raw) -> pl.DataFrame:
    return ingest(find_csv_files([raw]), raw.parent / f"cache-{raw.name}", TODAY, log=lambda _: None).events


def as_provider_holds(providers: FakeProviders) -> pl.DataFrame:
    """What the fake ACLED holds now, in the fields the comparison reads."""
    rows = list(providers.events.values())
    return pl.DataFrame({
        "event_id": [f"ACLED:{r['event_id_cnty']}" for r in rows],
        "event_date": [dt.date.fromisoformat(r["event_date"]) for r in rows],
        "country": [r["country"] for r in rows],
        "actor1": [r["actor1"] for r in rows],
        "fatalities": [int(r["fatalities"]) for r in rows],
        "revision": [int(r["timestamp"]) for r in rows],
    }).sort("event_id")


def compared(events: pl.DataFrame) -> pl.DataFrame:
    return events.select("event_id", "event_date", "country", "actor1", "fatalities", "revision").sort("event_id")


# --- the client -------------------------------------------------------------------------------------------------------


def test_login_form_encodes_plus_ampersand_and_spaces(acled, tmp_path):
    acled.publish(synthetic_rows(3, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    pull_acled(tmp_path / "raw", client_for(acled), ["Mali"])
    grant = acled.requests("/oauth/token")[0].form
    assert grant == {"username": EMAIL, "password": PASSWORD, "grant_type": "password", "client_id": "acled",
                     "scope": "authenticated"}
    reads = acled.requests("/api/acled/read")
    assert reads and all(r.headers["Authorization"].startswith("Bearer ") for r in reads)


def test_first_pull_pages_until_a_short_page_and_counts_only_once(acled, tmp_path):
    acled.publish(synthetic_rows(23, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    result = pull_acled(tmp_path / "raw", client_for(acled, page_size=5), ["Mali"])
    reads = acled.requests("/api/acled/read")
    assert [r.params["page"] for r in reads] == ["1", "2", "3", "4", "5"]  # the fifth holds 3 rows: short, the end
    assert [r.params.get("with_total") for r in reads] == ["true", None, None, None, None]
    assert all(r.params["limit"] == "5" and r.params["_format"] == "json" for r in reads)
    assert result.rows_written == 23 and result.events_file.name.startswith("acled_")
    written = pl.read_csv(result.events_file, infer_schema=False)
    assert written.columns == ACLED_COLUMNS  # ACLED's export layout, which the ingest reads unchanged
    assert compared(ingested(tmp_path / "raw")).equals(as_provider_holds(acled))


def test_a_total_that_is_a_multiple_of_the_page_size_ends_on_an_empty_page(acled, tmp_path):
    acled.publish(synthetic_rows(10, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    pull_acled(tmp_path / "raw", client_for(acled, page_size=5), ["Mali"])
    assert [r.params["page"] for r in acled.requests("/api/acled/read")] == ["1", "2", "3"]


def test_filters_country_and_first_event_date(acled, tmp_path):
    acled.publish(synthetic_rows(30, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.publish(synthetic_rows(30, "Niger", dt.date(2024, 1, 1), 1_500_000_000))
    pull_acled(tmp_path / "raw", client_for(acled), ["Niger"], since=dt.date(2024, 1, 21))
    first = acled.requests("/api/acled/read")[0].params
    assert (first["country"], first["event_date"], first["event_date_where"]) == ("Niger", "2024-01-21", ">=")
    events = ingested(tmp_path / "raw")
    assert set(events["country"]) == {"Niger"} and events.height == 10
    assert events["event_date"].min() == dt.date(2024, 1, 21)


def test_an_expired_access_token_gets_401_and_the_client_refreshes_it(acled, tmp_path):
    acled.publish(synthetic_rows(25, "Mali", dt.date(2024, 1, 1), 1_500_000_000))

    def expire_after_the_first_page(path, params):
        if params.get("page") == "1":
            acled.clock += acled.access_lifetime + 1  # the server's clock: the client's token is now expired

    acled.between_pages = expire_after_the_first_page
    logs: list[str] = []
    pull_acled(tmp_path / "raw", client_for(acled, logs=logs), ["Mali"])
    reads = acled.requests("/api/acled/read")
    assert [r.params["page"] for r in reads] == ["1", "2", "2", "3"]  # page 2 refused once (401), then served
    grants = [r.form["grant_type"] for r in acled.requests("/oauth/token")]
    assert grants == ["password", "refresh_token"]  # refreshed, not logged in again
    assert any("expired" in line for line in logs)
    assert ingested(tmp_path / "raw").height == 25


def test_a_refused_refresh_token_falls_back_to_the_password(acled, tmp_path):
    acled.publish(synthetic_rows(5, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    now = [1_000.0]
    client = client_for(acled, clock=lambda: now[0])
    pull_acled(tmp_path / "raw", client, ["Mali"])
    now[0] += 20 * 86400  # the client knows both tokens are past their lifetimes
    acled.clock += 20 * 86400
    pull_acled(tmp_path / "raw", client, ["Mali"])
    assert [r.form["grant_type"] for r in acled.requests("/oauth/token")] == ["password", "password"]
    now[0] += 86400 + 1  # only the access token expired: renewed with the refresh token, proactively
    acled.clock += 86400 + 1
    pull_acled(tmp_path / "raw", client, ["Mali"])
    assert [r.form["grant_type"] for r in acled.requests("/oauth/token")][-1] == "refresh_token"
    assert all(r.headers.get("Authorization") for r in acled.requests("/api/acled/read"))


def test_429_waits_as_retry_after_says_and_a_500_is_retried_with_backoff(acled, tmp_path):
    acled.publish(synthetic_rows(15, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.faults = [Fault("/api/acled/read", 429, {"Retry-After": "7"}, {"message": "Too many requests"}),
                    Fault("/api/acled/read", 500, times=2)]
    sleeps = Sleeps()
    pull_acled(tmp_path / "raw", client_for(acled, sleeps=sleeps), ["Mali"])
    assert sleeps == [7.0, 1.0, 2.0]  # Retry-After honoured; then the backoff of the 2nd and 3rd attempts
    assert ingested(tmp_path / "raw").height == 15


def test_a_rate_limit_asking_for_hours_fails_at_once_instead_of_stalling_the_run(acled, tmp_path):
    acled.publish(synthetic_rows(5, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.faults = [Fault("/api/acled/read", 429, {"Retry-After": "86400"}, {"message": "Daily quota reached"})]
    sleeps = Sleeps()
    with pytest.raises(FetchError, match=r"asked to wait 24.0 h") as err:
        pull_acled(tmp_path / "raw", client_for(acled, sleeps=sleeps), ["Mali"])
    assert sleeps == [] and "\n" not in str(err.value)


def test_a_500_that_persists_fails_with_one_line_and_keeps_the_pages_for_later(acled, tmp_path):
    acled.publish(synthetic_rows(25, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.between_pages = lambda path, params: acled.faults.append(Fault("/api/acled/read", 500, times=4)) \
        if params.get("page") == "2" else None
    with pytest.raises(FetchError) as err:
        pull_acled(tmp_path / "raw", client_for(acled), ["Mali"])
    assert str(err.value).startswith("ACLED: 500 on /api/acled/read after 4 attempts") and "\n" not in str(err.value)
    assert not find_csv_files([tmp_path / "raw"])  # nothing the ingest would read
    assert len(list((tmp_path / "raw" / "acled_api" / ".partial").rglob("page_*.csv"))) == 2


def test_wrong_credentials_are_one_clear_line_without_the_secrets(acled, tmp_path):
    with pytest.raises(FetchError) as err:
        pull_acled(tmp_path / "raw", client_for(acled, password=PASSWORD + "x"), ["Mali"])
    message = str(err.value)
    assert message.startswith("ACLED: the e-mail address and password were refused")
    assert "ACLED_EMAIL and ACLED_PASSWORD" in message and "\n" not in message
    assert EMAIL not in message and PASSWORD not in message


def test_an_access_tier_that_returns_nothing_is_said_so(acled, tmp_path):
    acled.publish(synthetic_rows(5, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.tier_returns_nothing = True
    with pytest.raises(FetchError, match=r"^ACLED: no events for Mali since 1997-01-01: an account whose access "
                                         r"level does not include these data"):
        pull_acled(tmp_path / "raw", client_for(acled), ["Mali"])
    assert not list((tmp_path / "raw" / ".vintages").glob("*.json"))  # no vintage for a pull that failed


# --- the weekly pull --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_weekly_pull_with_revisions_and_deletions_gives_what_a_full_pull_gives(acled, tmp_path):
    export = sample_rows("acled_sahel_2017-2024_SYNTHETIC.csv")
    acled.publish(export)
    countries = ["Burkina Faso", "Mali", "Niger"]
    raw = tmp_path / "raw"
    first = pull_acled(raw, client_for(acled, page_size=2000), countries)
    assert first.rows_written == len(export) and first.deletions_file is None

    acled.clock += 7 * 86400  # a week later ACLED has new events, corrections (newer timestamps) and deletions
    update = sample_rows("acled_sahel_update_2024-12-31_SYNTHETIC.csv")
    acled.publish(update)
    deleted = pl.read_csv(SAMPLE_DIR / "acled_sahel_deletions_2024-12-31_SYNTHETIC.csv")["event_id_cnty"].to_list()
    acled.delete(deleted)
    acled.log.clear()
    second = pull_acled(raw, client_for(acled, page_size=2000), countries)
    reads = acled.requests("/api/acled/read")
    watermark = first.vintage.record["watermark"]
    assert {(r.params["timestamp"], r.params["timestamp_where"]) for r in reads} == {(str(watermark), ">=")}
    gone = acled.requests("/api/deleted/read")[0].params
    assert (gone["deleted_timestamp"], gone["deleted_timestamp_where"]) == (str(watermark), ">=")
    assert second.rows_written == len(update) and second.deletions_written == len(deleted)
    # the events at the watermark come back (those still published and not revised), and are not written twice
    at_watermark = {row["event_id_cnty"] for row in export if int(row["timestamp"]) == watermark}
    at_watermark -= set(deleted) | {row["event_id_cnty"] for row in update}
    assert at_watermark and second.rows_received == len(update) + len(at_watermark)

    events = ingested(raw)
    assert compared(events).equals(as_provider_holds(acled))  # event by event, the provider's data exactly
    full = tmp_path / "full"
    pull_acled(full, client_for(acled, page_size=2000), countries)
    content = [c for c in CONTENT_COLUMNS if c not in ("source_file",)] + ["revision"]
    assert events.select(content).sort("event_id").equals(ingested(full).select(content).sort("event_id"))


def test_a_week_without_changes_writes_no_file_but_records_the_pull(acled, tmp_path):
    acled.publish(synthetic_rows(12, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    raw = tmp_path / "raw"
    pull_acled(raw, client_for(acled), ["Mali"])
    files = find_csv_files([raw])
    quiet = pull_acled(raw, client_for(acled), ["Mali"])
    assert quiet.rows_received == 1 and quiet.rows_written == 0 and quiet.events_file is None
    assert find_csv_files([raw]) == files
    assert len(list((raw / ".vintages").glob("*.json"))) == 2


def test_an_event_revised_in_the_same_second_as_the_watermark_is_not_missed(acled, tmp_path):
    rows = synthetic_rows(6, "Mali", dt.date(2024, 1, 1), 1_500_000_000)
    acled.publish(rows)
    raw = tmp_path / "raw"
    first = pull_acled(raw, client_for(acled), ["Mali"])
    watermark = first.vintage.record["watermark"]
    acled.publish([{**rows[0], "fatalities": "40", "timestamp": str(watermark)}])  # same second as the newest held
    pull_acled(raw, client_for(acled), ["Mali"])
    assert ingested(raw).filter(pl.col("event_id") == "ACLED:MAL1")["fatalities"].item() == 40


def test_a_new_country_gets_a_full_pull_and_held_ones_are_updated(acled, tmp_path):
    acled.publish(synthetic_rows(8, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    acled.publish(synthetic_rows(8, "Niger", dt.date(2024, 1, 1), 1_500_000_000))
    raw = tmp_path / "raw"
    pull_acled(raw, client_for(acled), ["Mali"])
    acled.log.clear()
    pull_acled(raw, client_for(acled), ["Niger"])
    asked = {(r.params["country"], "timestamp" in r.params) for r in acled.requests("/api/acled/read")}
    assert asked == {("Mali", True), ("Niger", False)}
    assert compared(ingested(raw)).equals(as_provider_holds(acled))


def test_plan_queries_grows_the_scope_and_pulls_an_earlier_start_whole():
    held = {"Mali": "2020-01-01"}
    queries, scope = plan_queries(["Mali"], dt.date(2018, 1, 1), held, watermark=123)
    assert [(q.country, q.since.isoformat(), q.timestamp_from) for q in queries] == [("Mali", "2018-01-01", None)]
    assert scope == {"Mali": "2018-01-01"}
    queries, _ = plan_queries([], dt.date(2018, 1, 1), held, watermark=123)
    assert {(q.country, q.timestamp_from) for q in queries} == {("Mali", 123), ("*", None)}
    queries, scope = plan_queries(["Mali", "Niger"], None, held, watermark=123)  # no date: each keeps its own
    assert [(q.country, q.since.isoformat(), q.timestamp_from) for q in queries] == [
        ("Mali", "2020-01-01", 123), ("Niger", "1997-01-01", None)]
    assert scope == {"Mali": "2020-01-01", "Niger": "1997-01-01"}


def test_an_interrupted_pull_resumes_at_the_next_page(acled, tmp_path):
    acled.publish(synthetic_rows(47, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    raw = tmp_path / "raw"

    def interrupt(event):
        if event.page == 3:
            raise KeyboardInterrupt  # Ctrl-C, or the run being stopped, after the third page

    with pytest.raises(KeyboardInterrupt):
        pull_acled(raw, client_for(acled), ["Mali"], progress=interrupt)
    assert not find_csv_files([raw])  # no half file for the ingest
    acled.log.clear()
    logs: list[str] = []
    result = pull_acled(raw, client_for(acled, logs=logs), ["Mali"])
    assert [r.params["page"] for r in acled.requests("/api/acled/read")] == ["4", "5"]
    assert any("resuming an interrupted pull at page 4 (3 pages kept)" in line for line in logs)
    assert result.rows_written == 47
    assert not list((raw / "acled_api" / ".partial").iterdir())  # the pages go once the pull is recorded
    assert compared(ingested(raw)).equals(as_provider_holds(acled))


def test_a_resumed_pull_starts_again_when_the_data_moved_meanwhile(acled, tmp_path):
    rows = synthetic_rows(30, "Mali", dt.date(2024, 1, 1), 1_500_000_000)
    acled.publish(rows)
    raw = tmp_path / "raw"

    def interrupt(event):
        if event.page == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_acled(raw, client_for(acled), ["Mali"], progress=interrupt)
    acled.publish(synthetic_rows(3, "Mali", dt.date(2024, 3, 1), 1_500_000_100, prefix="MALNEW"))
    acled.log.clear()
    pull_acled(raw, client_for(acled), ["Mali"])
    assert [r.params["page"] for r in acled.requests("/api/acled/read")] == ["3", "1", "2", "3", "4"]
    assert compared(ingested(raw)).equals(as_provider_holds(acled))


def test_a_deletion_while_the_pages_are_read_makes_the_query_run_again(acled, tmp_path):
    acled.publish(synthetic_rows(20, "Mali", dt.date(2024, 1, 1), 1_500_000_000))

    def delete_from_the_first_page(path, params):
        if params.get("page") == "1" and "MAL20" in acled.events:
            acled.delete(["MAL20"])  # the newest event, on page 1: the later rows shift up a place

    acled.between_pages = delete_from_the_first_page
    logs: list[str] = []
    result = pull_acled(tmp_path / "raw", client_for(acled, logs=logs), ["Mali"])
    assert any("the data changed while the pages were read; pulling the query again" in line for line in logs)
    assert result.rows_written == 19
    assert compared(ingested(tmp_path / "raw")).equals(as_provider_holds(acled))


def test_the_manifest_says_what_was_asked_and_got(acled, tmp_path):
    acled.publish(synthetic_rows(12, "Mali", dt.date(2024, 1, 1), 1_500_000_000))
    result = pull_acled(tmp_path / "raw", client_for(acled, page_size=5), ["Mali"], since=dt.date(2020, 1, 1))
    record = json.loads((tmp_path / "raw" / ".vintages" / f"{result.vintage.id}.json").read_text())
    assert record["request"] == {"countries": ["Mali"], "since": "2020-01-01", "timestamp_from": None,
                                 "deletions_from": None}
    assert record["rows"] == 12 and record["newest_timestamp"] == 1_500_000_011
    assert record["queries"][0]["pages"] == 3 and record["queries"][0]["total_reported"] == 12
    assert [h["file"] for h in record["holdings"]] == [f"acled_api/{result.events_file.name}"]
    assert record["made_by"] == "cli" and record["scope"] == {"Mali": "2020-01-01"}
