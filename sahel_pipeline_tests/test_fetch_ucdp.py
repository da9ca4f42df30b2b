"""The UCDP client and pull against a fake UCDP API on loopback, and the rule by which GED replaces Candidate events."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from sahel_pipeline.core.fetch.http import FetchError, RetryPolicy
from sahel_pipeline.core.fetch.ucdp import GLEDITSCH_WARD, UcdpClient, country_codes, pull_ucdp, version_kind
from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.reference import ACLED_COUNTRIES
from sahel_pipeline_tests.fake_providers import FakeProviders, Fault
from sahel_pipeline_tests.fixtures import TODAY, real_file, requires_real_data

TOKEN = "tok+en&with spaces"
MALI, BURKINA, NIGER = 432, 439, 436
NAMES = {MALI: "Mali", BURKINA: "Burkina Faso", NIGER: "Niger"}


def ged_rows(ids: range, code: int, first: dt.date, every_days: int = 7, deaths: int = 1) -> list[dict]:
    """Made-up UCDP GED events as the API returns them (JSON types, GED's columns)."""
    rows = []
    for n, event_id in enumerate(ids):
        day = first + dt.timedelta(days=n * every_days)
        rows.append({
            "id": event_id, "relid": f"SYN-{day.year}-{event_id}", "year": day.year, "active_year": True,
            "code_status": "Clear", "type_of_violence": 1 + n % 3, "conflict_new_id": 100, "conflict_name": "Synthetic",
            "dyad_new_id": 200, "dyad_name": "Government - Synthetic Group", "side_a_new_id": 1,
            "side_a": f"Government of {NAMES[code]}", "side_b_new_id": 2, "side_b": "Synthetic Group",
            "number_of_sources": 1, "source_article": "", "source_office": "", "source_date": "",
            "source_headline": "SYNTHETIC, not real", "source_original": "", "where_prec": 1,
            "where_coordinates": f"Town {n}", "where_description": "", "adm_1": f"Province {n % 3} region",
            "adm_2": "", "latitude": 12.5 + n % 4 / 10, "longitude": -1.5 - n % 3 / 10, "geom_wkt": "",
            "priogrid_gid": 1, "country": NAMES[code], "country_id": code, "region": "Africa", "event_clarity": 1,
            "date_prec": 1, "date_start": f"{day.isoformat()}T00:00:00", "date_end": f"{day.isoformat()}T00:00:00",
            "deaths_a": 0, "deaths_b": deaths, "deaths_civilians": 0, "deaths_unknown": 0,
            "best": deaths, "high": deaths + 1, "low": deaths,
        })
    return rows


@pytest.fixture
def ucdp():
    with FakeProviders(ucdp_token=TOKEN) as providers:
        yield providers


def client_for(providers: FakeProviders, token: str = TOKEN, page_size: int = 10) -> UcdpClient:
    return UcdpClient(token, providers.url, page_size=page_size, retry=RetryPolicy(attempts=3, backoff=0.5),
                      sleep=lambda _: None, log=lambda _: None)


def ucdp_events(raw) -> pl.DataFrame:
    events = ingest(find_csv_files([raw]), raw.parent / "cache", TODAY, log=lambda _: None).events
    return events.filter(pl.col("source") == "UCDP")


def truth(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame({
        "event_id": [f"UCDP:{r['id']}" for r in rows],
        "event_date": [dt.date.fromisoformat(r["date_start"][:10]) for r in rows],
        "country": [r["country"] for r in rows],
        "fatalities": [r["best"] for r in rows],
    }).sort("event_id")


def test_pages_from_zero_with_the_token_in_its_header_and_the_country_filter(ucdp, tmp_path):
    ucdp.ucdp["25.1"] = ged_rows(range(1, 24), MALI, dt.date(2020, 1, 1)) + \
        ged_rows(range(100, 110), NIGER, dt.date(2020, 1, 1))
    result = pull_ucdp(tmp_path / "raw", client_for(ucdp), ["25.1"], ["Mali"])
    asked = ucdp.requests("/api/gedevents/25.1")
    assert [r.params["page"] for r in asked] == ["0", "1", "2"]  # 10, 10 and a short page of 3
    assert all(r.params["pagesize"] == "10" and r.params["Country"] == "432" for r in asked)
    assert all(r.headers["x-ucdp-access-token"] == TOKEN for r in asked)
    assert result.rows_written == 23
    assert ucdp_events(tmp_path / "raw").select(truth(ucdp.ucdp["25.1"]).columns).sort("event_id").equals(
        truth(ucdp.ucdp["25.1"][:23]))


def test_a_refused_token_an_unknown_version_and_a_bad_version_are_one_line_each(ucdp, tmp_path):
    ucdp.ucdp["25.1"] = ged_rows(range(1, 4), MALI, dt.date(2020, 1, 1))
    with pytest.raises(FetchError, match=r"^UCDP: the access token was refused \(401") as err:
        pull_ucdp(tmp_path / "raw", client_for(ucdp, token="stale"), ["25.1"], [])
    assert "stale" not in str(err.value)
    with pytest.raises(FetchError, match=r"^UCDP: no version 24\.1 "):
        pull_ucdp(tmp_path / "raw", client_for(ucdp), ["24.1"], [])
    with pytest.raises(FetchError, match=r"'25' is not a UCDP version"):
        version_kind("25")


def test_a_500_is_retried(ucdp, tmp_path):
    ucdp.ucdp["25.1"] = ged_rows(range(1, 4), MALI, dt.date(2020, 1, 1))
    ucdp.faults = [Fault("/api/gedevents/", 500)]
    assert pull_ucdp(tmp_path / "raw", client_for(ucdp), ["25.1"], []).rows_written == 3


def test_a_version_held_is_not_pulled_again_but_a_new_country_of_it_is(ucdp, tmp_path):
    ucdp.ucdp["25.1"] = ged_rows(range(1, 6), MALI, dt.date(2020, 1, 1)) + \
        ged_rows(range(10, 13), NIGER, dt.date(2020, 1, 1))
    raw = tmp_path / "raw"
    pull_ucdp(raw, client_for(ucdp), ["25.1"], ["Mali"])
    assert pull_ucdp(raw, client_for(ucdp), ["25.1"], ["Mali"]).vintage is None
    again = pull_ucdp(raw, client_for(ucdp), ["25.1"], ["Mali", "Niger"])
    assert ucdp.requests("/api/gedevents/25.1")[-1].params["Country"] == "436" and again.rows_written == 3
    assert ucdp_events(raw).height == 8


def test_ged_replaces_the_candidate_events_it_covers(ucdp, tmp_path):
    """GED 25.1 (to 2024), Candidate 25.0.6 (2025) and 26.0.2 (2026) are held; then GED 26.1 (to 2025) arrives: it
    keeps some 2025 Candidate events under their ids (revised), drops others and adds new ones. After the ingest
    UCDP's events are GED 26.1's and the 2026 Candidate ones, exactly."""
    ucdp.ucdp["25.1"] = ged_rows(range(1, 21), MALI, dt.date(2023, 1, 1), every_days=30)
    ucdp.ucdp["25.0.6"] = ged_rows(range(5001, 5013), MALI, dt.date(2025, 1, 3), every_days=14) + \
        ged_rows(range(6001, 6005), NIGER, dt.date(2025, 1, 3), every_days=14)
    ucdp.ucdp["26.0.2"] = ged_rows(range(8001, 8006), MALI, dt.date(2026, 1, 5), every_days=9)
    raw = tmp_path / "raw"
    first = pull_ucdp(raw, client_for(ucdp), ["25.1", "25.0.6", "26.0.2"], ["Mali", "Niger"])
    assert (first.replaced, first.replaced_ged) == (0, 0)  # 25.1 covers 2024 at most

    kept = [{**row, "best": row["best"] + 4} for row in ucdp.ucdp["25.0.6"][:7]]  # revised in GED
    ucdp.ucdp["26.1"] = [{**r, "best": r["best"] + 1} for r in ucdp.ucdp["25.1"][2:]] + kept + \
        ged_rows(range(9001, 9004), MALI, dt.date(2025, 6, 1))
    second = pull_ucdp(raw, client_for(ucdp), ["26.1"], ["Mali"])  # Mali only: Niger's Candidate events stay
    assert second.replaced == 12  # every 2025 Candidate event in Mali: 7 kept by GED, 5 dropped
    assert second.replaced_ged == 20  # 26.1 covers all of 25.1 in Mali, which it revised and shortened by 2
    replacements = pl.read_csv(next(p for p in second.files if "replaced" in p.name), infer_schema=False)
    assert replacements.columns == ["id", "replaced_by", "replaced_at"]
    assert sorted(replacements["id"].cast(pl.Int64)) == [1, 2, 5008, 5009, 5010, 5011, 5012]
    assert set(replacements["replaced_by"]) == {"26.1"}

    expected = truth(ucdp.ucdp["26.1"] + ucdp.ucdp["25.0.6"][12:] + ucdp.ucdp["26.0.2"])
    got = ucdp_events(raw)
    assert got.select(expected.columns).sort("event_id").equals(expected)
    stats = ingest(find_csv_files([raw]), tmp_path / "cache", TODAY, log=lambda _: None).stats
    assert stats["replaced_ucdp_events"] == 7

    third = pull_ucdp(raw, client_for(ucdp), ["26.0.2", "25.0.6"], ["Mali"])  # held: nothing new, nothing counted twice
    assert third.vintage is None


def test_a_candidate_version_pulled_after_the_ged_version_covering_it_is_replaced_at_once(ucdp, tmp_path):
    ucdp.ucdp["26.1"] = ged_rows(range(1, 5), MALI, dt.date(2025, 1, 1))
    ucdp.ucdp["25.0.3"] = ged_rows(range(700, 706), MALI, dt.date(2025, 1, 2))
    raw = tmp_path / "raw"
    pull_ucdp(raw, client_for(ucdp), ["26.1"], ["Mali"])
    late = pull_ucdp(raw, client_for(ucdp), ["25.0.3"], ["Mali"])
    assert late.replaced == 6
    assert ucdp_events(raw).select("event_id").sort("event_id").equals(truth(ucdp.ucdp["26.1"]).select("event_id"))


def test_country_names_and_codes():
    assert country_codes(["Mali", "burkina faso", "436"]) == {"Burkina Faso": 439, "Mali": 432, "Niger": 436}
    with pytest.raises(FetchError, match="no Gleditsch-Ward code known for 'Atlantis'"):
        country_codes(["Atlantis"])
    assert set(GLEDITSCH_WARD) <= ACLED_COUNTRIES  # ACLED's spelling of every name
    assert len(set(GLEDITSCH_WARD.values())) == len(GLEDITSCH_WARD)


@requires_real_data
def test_the_code_table_agrees_with_ucdps_own_codes_in_the_real_file():
    real = pl.read_csv(real_file("ucdp_ged_burkina_2016-2023.csv"), infer_schema=False,
                       columns=["country", "country_id"])
    pairs = real.unique().rows()
    assert pairs and all(GLEDITSCH_WARD[name] == int(code) for name, code in pairs)


def test_events_named_for_another_country_than_asked_are_refused(ucdp, tmp_path, monkeypatch):
    ucdp.ucdp["25.1"] = ged_rows(range(1, 4), NIGER, dt.date(2020, 1, 1))
    monkeypatch.setitem(GLEDITSCH_WARD, "Mali", NIGER)  # a wrong entry in the code table
    with pytest.raises(FetchError, match=r"with events in Niger, not Mali: the Gleditsch-Ward code table is wrong"):
        pull_ucdp(tmp_path / "raw", client_for(ucdp), ["25.1"], ["Mali"])
    assert not find_csv_files([tmp_path / "raw"])

