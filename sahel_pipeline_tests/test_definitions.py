"""The code location loads, with every asset, check, job, schedule and sensor; the schedule and sensor behave."""

from __future__ import annotations

import datetime as dt
import os
import time

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_key, month_label, month_range, parse_month, shift_month
from sahel_pipeline.core.report.selection import modelled_series
from sahel_pipeline.core.scoring import score_month
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs.automation import PULLS, UPSTREAM, raw_files_sensor, weekly_escalation_schedule
from sahel_pipeline.defs.partitions import MODEL_SHARDS, month_partitions
from sahel_pipeline.defs.resources import PipelineSettings
from sahel_pipeline_tests.fixtures import materialize_upstream

ASSETS = {
    "acled_pull", "ucdp_pull",
    "raw_file_manifest", "canonical_events", "quarantined_events", "ingest_summary",
    "group_month_panel", "country_month_panel", "admin1_month_panel", "regime_periods",
    "places", "spatial_month_panel", "buffer_month_panel", "buffer_scores",
    *(f"series_scores/shard_{k}_of_{MODEL_SHARDS}" for k in range(1, MODEL_SHARDS + 1)),
    "series_forecasts", "escalation_alerts", "alert_report", "alert_feeds", "alert_notifications", "forecast_backtest",
    "detector_evaluation",
}
CHECKS = {
    "raw_file_manifest:raw_files_are_readable",
    "canonical_events:canonical_events_pass_great_expectations",
    "quarantined_events:quarantine_share_is_small",
    "country_month_panel:country_panel_counts_every_event_once",
    "group_month_panel:group_panel_is_zero_filled",
    "spatial_month_panel:spatial_panel_counts_the_panels_events",
    "buffer_month_panel:rings_are_nested",
    "escalation_alerts:alert_table_has_the_documented_columns",
    "escalation_alerts:month_has_scored_series",
    "alert_feeds:alert_geojson_follows_rfc_7946",
    "alert_notifications:notifications_were_delivered",
}


# The code location's environment without API credentials, as `.env.example` has it.
NO_PULLS = {name: "" for name in ("ACLED_EMAIL", "ACLED_PASSWORD", "SAHEL_ACLED_API_URL", "UCDP_API_TOKEN",
                                  "SAHEL_UCDP_API_URL", "SAHEL_UCDP_VERSIONS", "SAHEL_FETCH_COUNTRIES")}


@pytest.fixture
def defs(monkeypatch, tmp_path):
    monkeypatch.setenv("SAHEL_RAW_PATHS", str(tmp_path / "raw"))
    monkeypatch.setenv("SAHEL_OUTPUT_DIR", str(tmp_path / "out"))
    for name, value in NO_PULLS.items():
        monkeypatch.setenv(name, value)
    from sahel_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs


def test_definitions_hold_every_asset_and_check(defs):
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == ASSETS
    assert {f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys} == CHECKS
    blocking = {spec.key.name for a in defs.assets for spec in a.check_specs if spec.blocking}
    assert blocking == {
        "raw_files_are_readable", "canonical_events_pass_great_expectations", "country_panel_counts_every_event_once"
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.group_name != "default", f"{key.to_user_string()} has no group"
        assert node.kinds, f"{key.to_user_string()} has no kinds"


def test_jobs_schedule_and_sensor(defs):
    assert defs.resolve_job_def("weekly_escalation_job").partitions_def is not None
    assert defs.resolve_job_def("backtest_job")
    weekly = defs.resolve_job_def("weekly_escalation_job").asset_layer.selected_asset_keys
    evaluation = defs.resolve_job_def("evaluation_job").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in evaluation} == {"detector_evaluation"}
    assert not {k.to_user_string() for k in weekly} & {"detector_evaluation", "forecast_backtest"}  # not weekly work
    schedule = defs.resolve_schedule_def("weekly_escalation_schedule")
    assert schedule.cron_schedule == "0 6 * * 1"  # Mondays 06:00
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "weekly_escalation_job"
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    assert sensor.job_name == "weekly_escalation_job"


@pytest.fixture(scope="module")
def sample_upstream(tmp_path_factory):
    """Ingest and panels of the sample in an instance of their own: the settings, the instance and the definitions."""
    from sahel_pipeline import SAMPLE_DIR

    out = tmp_path_factory.mktemp("upstream")
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(out), sample_fallback=False)
    definitions = build_definitions(settings)
    with dg.instance_for_test() as instance:  # schedule and sensor contexts need an instance with a ref
        materialize_upstream(definitions.resolve_job_def("weekly_escalation_job"), instance)
        yield settings, instance, definitions


@pytest.mark.slow
def test_month_partitions_start_at_the_first_month_the_data_can_score(sample_upstream):
    settings, instance, _ = sample_upstream
    events = pl.read_parquet(settings.warehouse / "canonical_events.parquet")
    first_data_month = events["event_date"].min().replace(day=1)
    config = ModelConfig()
    partitions = month_partitions(instance)
    first = parse_month(partitions[0])
    assert first == shift_month(first_data_month, config.first_scorable_offset) > first_data_month
    assert partitions[-1] == month_key(settings.today())  # to the current, still-open month, without a gap
    assert len(partitions) == len(month_range(first, parse_month(partitions[-1])))
    # the first partition is the first month any series can be scored: the month before, none can
    group = pl.read_parquet(settings.warehouse / "group_month_panel.parquet")
    country = pl.read_parquet(settings.warehouse / "country_month_panel.parquet")
    before = shift_month(first, -1)
    scored = {m: modelled_series(score_month(group, country, m, config).scores) for m in (before, first)}
    assert scored[before] == 0 < scored[first]


@pytest.mark.slow
def test_schedule_picks_the_latest_months_the_data_cover_and_says_why(sample_upstream):
    settings, instance, definitions = sample_upstream
    with dg.build_schedule_context(  # a context manager: PipelineSettings has set-up and tear-down hooks
        instance=instance,
        scheduled_execution_time=dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC),  # long after the sample ends
        resources={"settings": settings},
        repository_def=definitions.get_repository_def(),
    ) as context:
        requests = weekly_escalation_schedule.evaluate_tick(context).run_requests
    last = pl.read_parquet(settings.warehouse / "country_month_panel.parquet")["month"].max()
    assert [r.partition_key for r in requests] == [month_key(shift_month(last, -1)), month_key(last)]
    assert len({r.run_key for r in requests}) == 2
    assert f"the data reach {month_label(last)}" in requests[0].tags["sahel/why"]


@pytest.mark.slow  # builds the code location and an instance
def test_schedule_before_any_data_runs_ingest_and_panels_alone(tmp_path):
    settings = PipelineSettings(raw_paths=str(tmp_path), output_dir=str(tmp_path / "out"), sample_fallback=False)
    with dg.instance_for_test() as instance:  # schedule and sensor contexts need an instance with a ref
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2024, 1, 8, 6, tzinfo=dt.UTC),
            resources={"settings": settings}, repository_def=build_definitions(settings).get_repository_def(),
        ) as context:
            (request,) = weekly_escalation_schedule.evaluate_tick(context).run_requests
    assert request.partition_key is None
    assert set(request.asset_selection) == {*PULLS, *UPSTREAM}  # the schedule pulls first, where credentials are set
    assert "ingest first" in request.tags["sahel/why"]


@pytest.fixture
def sensor_on(tmp_path):
    """A raw folder holding one export, and a function evaluating the sensor on it from a cursor."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "acled_2024-05-06.csv").write_text("event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n")
    settings = PipelineSettings(raw_paths=str(raw), output_dir=str(tmp_path / "out"), sample_fallback=False)
    definitions = build_definitions(settings)
    with dg.instance_for_test() as instance:  # a sensor context needs an instance with a ref

        def tick(cursor):
            # PipelineSettings has set-up and tear-down hooks (the output folder's lock): its context is a context
            # manager
            resources = {"settings": settings}
            with dg.build_sensor_context(
                cursor=cursor, definitions=definitions, resources=resources, instance=instance
            ) as context:
                return raw_files_sensor.evaluate_tick(context)

        yield raw, tick


@pytest.mark.slow  # builds the code location and an instance
def test_sensor_starts_runs_when_a_file_lands_or_changes_and_skips_otherwise(sensor_on):
    raw, tick = sensor_on
    # no panels yet: each change asks for ingest and panels, which add the month partitions
    first = tick(None)
    assert len(first.run_requests) == 1 and first.cursor
    assert first.run_requests[0].asset_selection == UPSTREAM
    quiet = tick(first.cursor)
    assert quiet.run_requests == [] and "no new or changed file among 1" in quiet.skip_message

    (raw / "acled_2024-05-13.csv").write_text("event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n")
    added = tick(first.cursor)
    assert len(added.run_requests) == 1 and added.cursor != first.cursor

    later = time.time() + 5
    os.utime(raw / "acled_2024-05-06.csv", (later, later))  # a corrected export written over the old one
    changed = tick(added.cursor)
    assert len(changed.run_requests) == 1
    assert {r.run_key for r in changed.run_requests}.isdisjoint({r.run_key for r in added.run_requests})


@pytest.mark.slow
def test_sensor_scores_the_latest_months_once_the_panels_reach_them(sample_upstream):
    settings, instance, definitions = sample_upstream
    resources = {"settings": settings}
    with dg.build_sensor_context(definitions=definitions, resources=resources, instance=instance) as context:
        requests = raw_files_sensor(context)  # directly: evaluate_tick would look the months up without the instance
    assert [r.partition_key for r in requests] == ["2024-11", "2024-12"]  # the sample's events end in December 2024
    assert all("the data reach December 2024" in r.tags["sahel/why"] for r in requests)
    for request in requests:  # a file dropped by hand rescores; it does not call the providers' APIs
        selected = {key.to_user_string() for key in request.asset_selection}
        assert "canonical_events" in selected and "escalation_alerts" in selected
        assert not selected & {"acled_pull", "ucdp_pull"}


@pytest.mark.slow  # materializes the ingest through the code location
def test_settings_given_at_launch_must_name_both_paths_and_move_the_warehouse_too(defs, tmp_path):
    """The launchpad replaces the code location's settings whole: without both paths the run is refused (instead of
    quietly reading data/raw), and with them every table, alert and report goes to the folder given."""
    from sahel_pipeline import SAMPLE_DIR

    job = defs.resolve_job_def("weekly_escalation_job")
    with pytest.raises(dg.DagsterInvalidConfigError, match="raw_paths"):
        job.execute_in_process(run_config={"resources": {"settings": {"config": {"group_role": "any"}}}})
    launched = tmp_path / "launched"
    settings = {"raw_paths": str(SAMPLE_DIR), "output_dir": str(launched), "group_role": "any"}
    ingest = [dg.AssetKey(k) for k in ("raw_file_manifest", "canonical_events", "quarantined_events", "ingest_summary")]
    launch = {"resources": {"settings": {"config": settings}}}
    result = job.execute_in_process(asset_selection=ingest, run_config=launch)
    assert result.success
    assert (launched / "warehouse" / "canonical_events.parquet").exists()
    assert not (tmp_path / "out").exists()  # SAHEL_OUTPUT_DIR, which the launch settings replaced


@pytest.mark.slow  # builds the code location and an instance
def test_files_a_dagster_run_pulled_do_not_wake_the_sensor_but_a_cli_pull_does(sensor_on):
    from sahel_pipeline.core import vintages

    raw, tick = sensor_on
    first = tick(None)
    for n, made_by in enumerate(("dagster", "cli")):
        name = f"acled_api/acled_2026-11-2{n}T060000Z.csv"
        (raw / name).parent.mkdir(exist_ok=True)
        (raw / name).write_text("event_id_cnty,event_date,event_type,actor1,actor2,country,fatalities\n")
        vintages.record_vintage(raw, {"vintage": f"2026-11-2{n}T060000Z-acled", "provider": "ACLED",
                                      "created_at": "2026-11-23T06:00:00+00:00", "made_by": made_by, "files": [name]})
        after = tick(first.cursor)
        assert (after.run_requests == []) is (made_by == "dagster"), made_by


@pytest.mark.slow  # a Dagster run of the code location's job (about a second of CPU)
def test_the_code_location_with_empty_credentials_pulls_nothing_and_does_not_fail(defs):
    job = defs.resolve_job_def("weekly_escalation_job")
    pulls = [dg.AssetKey("acled_pull"), dg.AssetKey("ucdp_pull")]
    result = job.execute_in_process(asset_selection=pulls)  # the pulls are not partitioned by month
    assert result.success
    reasons = {m.asset_key.to_user_string(): m.materialization.metadata["reason"].value
               for m in result.get_asset_materialization_events()}
    assert reasons == {"acled_pull": "ACLED_EMAIL and ACLED_PASSWORD are not set",
                       "ucdp_pull": "UCDP_API_TOKEN is not set"}


def test_the_weekly_job_ends_in_feeds_and_notifications_after_the_report(defs):
    job = defs.resolve_job_def("weekly_escalation_job")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert {"alert_feeds", "alert_notifications"} <= selected
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("alert_report") in graph.get(dg.AssetKey("alert_notifications")).parent_keys
    assert dg.AssetKey("canonical_events") in graph.get(dg.AssetKey("alert_feeds")).parent_keys


def test_delivery_settings_read_unset_channels_from_the_environment_when_the_run_starts(monkeypatch):
    from sahel_pipeline.defs.resources import DeliverySettings

    settings = DeliverySettings()
    assert settings.is_dry_run()  # nothing configured: nothing is sent
    channels, problems = settings.channels()
    assert channels.smtp is None and channels.slack is None and channels.teams is None and problems == []
    monkeypatch.setenv("SAHEL_NOTIFY_DRY_RUN", "false")
    monkeypatch.setenv("SAHEL_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("SAHEL_SMTP_SECURITY", "tls")
    monkeypatch.setenv("SAHEL_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("SAHEL_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    assert not settings.is_dry_run()
    channels, problems = settings.channels()
    assert (channels.smtp.host, channels.smtp.port, channels.smtp.security, channels.smtp.password) == (
        "smtp.example.org", 465, "tls", "s3cret")  # implicit TLS's port unless one is given
    assert channels.slack.url.startswith("https://hooks.slack.com/") and channels.teams is None
    given = DeliverySettings(dry_run=True, smtp_host="", slack_webhook_url="")  # a value given wins, even empty
    assert given.is_dry_run() and given.channels()[0].smtp is None and given.channels()[0].slack is None
    monkeypatch.setenv("SAHEL_SMTP_PORT", "smtp")
    channels, problems = settings.channels()
    assert channels.smtp is None and problems == ["e-mail: SAHEL_SMTP_PORT 'smtp' is not a port number"]
    assert channels.slack is not None  # one channel's bad setting leaves the others on
