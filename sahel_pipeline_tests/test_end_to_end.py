"""The whole asset graph on the bundled sample, materialized into a temporary folder, month by month."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
from concurrent.futures import Executor

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline import ALIAS_TABLE, SAMPLE_DIR
from sahel_pipeline.core.actor_types import ARMED_TYPES
from sahel_pipeline.core.alerts import alert_table, new_actors
from sahel_pipeline.core.groups import load_alias_table
from sahel_pipeline.core.ingest import ingest
from sahel_pipeline.core.models import load_breaks
from sahel_pipeline.core.panels import INDICATORS, build_panels
from sahel_pipeline.core.places import places_table
from sahel_pipeline.core.pool import fitting_pool
from sahel_pipeline.core.report import plots as report_plots
from sahel_pipeline.core.report import write_report
from sahel_pipeline.core.scoring import MonthScores, nest_forecasts, score_month
from sahel_pipeline.core.spatial import BUFFER_SCHEMA, SPATIAL_SCHEMA
from sahel_pipeline.definitions import build_definitions
from sahel_pipeline.defs import alerts as alerts_assets
from sahel_pipeline.defs.alerts import month_alerts
from sahel_pipeline.defs.partitions import MODEL_SHARDS
from sahel_pipeline.defs.resources import ModelSettings, PipelineSettings
from sahel_pipeline_tests.fixtures import materialize_upstream, without_report_time

# The columns the issue asks for, in this order, the place of a spatial alert (issue 13), and the synthetic flag
# (issue 11) last.
ALERT_COLUMNS = [
    "month", "kind", "source", "country", "group", "group_name", "group_type", "indicator", "indicators", "place",
    "observed", "expected", "upper", "p_value", "q_value", "rate_ratio", "rate_ratio_low", "rate_ratio_high",
    "severity", "status", "rules", "severity_reason", "explanation", "synthetic",
]
MONTHS = ("2024-12", "2024-01", "2025-01")  # 2025-01: after the sample's last event, nothing to score


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture(scope="module")
def run(tmp_path_factory, instance):
    out = tmp_path_factory.mktemp("outputs")
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(out), sample_fallback=False)
    job = build_definitions(settings).resolve_job_def("weekly_escalation_job")
    materialize_upstream(job, instance)  # adds the month partitions
    results = {
        month: job.execute_in_process(partition_key=month, instance=instance, raise_on_error=False) for month in MONTHS
    }
    return out, results


def alerts(out, month: str) -> pl.DataFrame:
    path = out / "alerts" / f"{month}.csv"
    return pl.read_csv(path, infer_schema_length=None, schema_overrides={"synthetic": pl.Boolean})


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_every_month_runs_with_passing_checks_and_an_unscored_month_warns(run):
    _, results = run
    for month, result in results.items():
        assert result.success, month
        pulls = {m.asset_key.to_user_string(): m.materialization.metadata["reason"].value
                 for m in result.get_asset_materialization_events() if m.asset_key.to_user_string().endswith("_pull")}
        assert pulls == {"acled_pull": "ACLED_EMAIL and ACLED_PASSWORD are not set",
                         "ucdp_pull": "UCDP_API_TOKEN is not set"}  # no credentials: nothing pulled, not a failure
        failed = {e.check_name: e.severity for e in result.get_asset_check_evaluations() if not e.passed}
        if month == "2025-01":  # the sample ends in December 2024
            assert failed == {"month_has_scored_series": dg.AssetCheckSeverity.WARN}
        else:
            assert failed == {}, month


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_planted_escalation_is_in_the_months_alerts_csv(run):
    out, _ = run
    december = alerts(out, "2024-12")
    assert december.columns == ALERT_COLUMNS
    issp = december.filter(pl.col("group") == "ISSP", pl.col("country") == "Niger", pl.col("indicator") == "events")
    assert issp.height == 1
    row = issp.row(0, named=True)
    assert row["severity"] == "high" and row["month"] == "2024-12"
    assert row["observed"] > row["upper"] > row["expected"]
    assert row["rate_ratio_low"] > 1.5
    sentence = row["explanation"]
    assert sentence.startswith("Islamic State Sahel Province (ISSP) in Niger (ACLED): ")
    assert "events in December 2024 against" in sentence and "expected (99.5% bound" in sentence
    assert "the last three months run at" in sentence and "the baseline rate" in sentence
    assert "Most of the rise is in Tillaberi" in sentence  # where the sample planted it


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_jnim_going_from_almost_nothing_to_a_handful_is_flagged(run):
    out, _ = run
    january = alerts(out, "2024-01").filter(pl.col("group") == "JNIM", pl.col("country") == "Niger")
    (row,) = january.rows(named=True)  # one alert for the group, its rising indicators listed
    assert "events" in row["indicators"].split(", ")
    assert "The rise shows too in events" in row["explanation"] or row["indicator"] == "events"


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_the_group_new_in_niger_gets_a_new_actor_alert_and_every_group_alert_an_armed_type(run):
    out, _ = run
    december = alerts(out, "2024-12")
    lakurawa = december.filter(pl.col("group") == "Lakurawa")
    assert lakurawa.select("kind", "country", "group_type", "status").rows() == [
        ("new_actor", "Niger", "rebel group", "continuing")
    ]
    assert lakurawa["explanation"][0].startswith("Lakurawa (ACLED): first seen in Niger in November 2024: ")
    assert "Dosso" in lakurawa["explanation"][0]  # where the sample put it
    grouped = december.filter(pl.col("group").is_not_null() & (pl.col("group") != ""))
    assert set(grouped["group_type"]) <= set(ARMED_TYPES)
    panel = pl.read_parquet(out / "warehouse" / "group_month_panel.parquet")
    crowds = panel.filter(pl.col("group_id").str.starts_with("Protesters")).select("group_type").unique()
    assert crowds["group_type"].to_list() == ["protesters"]  # in the panel, typed, and never alerted


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_a_month_without_alerts_still_writes_its_files(run):
    out, _ = run
    quiet = alerts(out, "2025-01")  # no data for the month: nothing can be scored
    assert quiet.height == 0 and quiet.columns == ALERT_COLUMNS
    document = json.loads((out / "alerts" / "2025-01.json").read_text())
    digest = document.pop("input_digest")
    assert len(digest) == 16 and int(digest, 16) >= 0  # which files the alerts were computed on
    assert document == {  # none pulled
        "month": "2025-01", "vintage": None, "synthetic": True, "columns": ALERT_COLUMNS, "alerts": [],
    }
    assert pl.read_parquet(out / "alerts" / "2025-01.parquet").columns == ALERT_COLUMNS
    assert "No series could be scored for January 2025" in (out / "reports" / "2025-01.html").read_text()
    assert "No series could be scored" not in (out / "reports" / "2024-12.html").read_text()


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_report_reads_on_its_own(run):
    out, _ = run
    page = (out / "reports" / "2024-12.html").read_text()
    assert "<h1>Escalation alerts, December 2024</h1>" in page
    assert page.count("data:image/png;base64,") >= 2  # plots are embedded: the page needs no other file
    assert "Islamic State Sahel Province (ISSP) in Niger (ACLED)" in page
    assert "Data quality" in page and "deleted events: 5" in page and "Forecasts" in page
    assert "data vintage: none recorded" in page and "input digest: " in page
    markdown = (out / "reports" / "2024-12.md").read_text()
    # a card's figures and its sentence to paste give the expectation alike (once 0.0 against 0.03, 23.4 against 23)
    for card in markdown.split("\n## ")[1:]:
        said = re.search(r"against (\S+) expected for the month", card)
        pasted = re.search(r"^> To paste: .*? against (\S+) expected", card, re.MULTILINE)
        if said and pasted:
            assert said.group(1) == pasted.group(1), card[:200]
    assert re.search(r"against \S+ expected for the month", markdown)
    images = [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
    assert images and all((out / "reports" / image).exists() for image in images)
    assert sorted(p.name for p in (out / "reports" / "2024-12").glob("*.png")) == sorted(
        i.split("/")[-1] for i in images
    )


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_report_metadata_shows_the_first_alerts_plot_in_the_ui(run):
    _, results = run
    previews = {
        month: next(
            m.materialization.metadata["first_alert_plot"].value
            for m in result.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey("alert_report")
        )
        for month, result in results.items()
    }
    assert previews["2024-12"].startswith("![first alert](data:image/png;base64,iVBORw0KGgo")  # a PNG's signature
    assert previews["2025-01"] == "_no alert this month_"


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_forecasts_cover_the_next_six_months_with_widening_intervals(run):
    out, _ = run
    forecasts = pl.read_csv(out / "forecasts" / "2024-12.csv", try_parse_dates=True)
    issp_events = (pl.col("group_id") == "ISSP") & (pl.col("country") == "Niger") & (pl.col("indicator") == "events")
    issp = forecasts.filter(issp_events).sort("horizon")
    assert issp["horizon"].to_list() == [1, 2, 3, 4, 5, 6]
    assert issp["target_month"].to_list() == [dt.date(2025, m, 1) for m in range(1, 7)]
    quantiles = issp.select("q025", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q975").rows()
    assert all(list(row) == sorted(row) for row in quantiles)
    width = (issp["q975"] - issp["q025"]).to_list()
    assert width == sorted(width) and width[-1] > width[0]  # the level's uncertainty grows with the horizon
    exceedance = pl.read_csv(out / "forecasts" / "2024-12-exceedance.csv", try_parse_dates=True)
    issp_any = exceedance.filter(issp_events, pl.col("basis") == "fixed").sort("months", "at_least")
    month, quarter = (issp_any.filter(pl.col("months") == n)["probability"].to_list() for n in (1, 3))
    assert month == sorted(month, reverse=True) and quarter == sorted(quarter, reverse=True)  # P(>= k) falls with k
    assert all(q >= m for m, q in zip(month, quarter, strict=True))  # three months' total reaches k more easily


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_a_past_month_uses_only_data_dated_up_to_then(run):
    """Alerts of January 2024 are the same as if the data had stopped at the end of January 2024."""
    out, _ = run
    events = pl.read_parquet(out / "warehouse" / "canonical_events.parquet")
    then = events.filter(pl.col("event_date") <= dt.date(2024, 1, 31))
    settings = ModelSettings()
    panels = build_panels(then, load_alias_table(ALIAS_TABLE), breaks=settings.configured_breaks())
    config = settings.config(panels.regime_periods.to_dicts())
    month = dt.date(2024, 1, 1)
    scores = score_month(panels.group_month, panels.country_month, month, config, log=lambda _: None)
    newcomers = new_actors(panels.group_month, panels.admin1_month, month, config)
    at_the_time = alert_table(scores.scores, panels.admin1_month, config, newcomers, synthetic=True)
    assert at_the_time.drop("explanation").equals(
        alerts(out, "2024-01").drop("explanation").cast(at_the_time.drop("explanation").schema)
    )


@pytest.mark.slow  # ingests the sample and scores its month
def test_alerts_asset_alone_with_build_asset_context(tmp_path):
    """month_alerts invoked directly on the sample's panels: one clear rise among quiet series becomes one alert row,
    its files and a report that shows it."""
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(tmp_path), sample_fallback=False)
    ingested = ingest(settings.raw_files(lambda _: None).files, settings.ingest_cache, dt.date(2025, 1, 15))
    panels = build_panels(ingested.events, load_alias_table(ALIAS_TABLE))
    month = dt.date(2024, 12, 1)
    base = {
        "month": month,
        "source": "ACLED",
        "country": "Niger",
        "group_name": "Islamic State Sahel Province (ISSP)",
        "group_type": "rebel group",
        "indicator": "events",
        "model": "negbin",
        "partial": False,
        "days_covered": 31,
        "rate_ratio_method": "glm",
        "previous_exceedances": 0,
        "recent_active_months": 3,
    }
    rows = [
        {
            **base,
            "level": "group",
            "group_id": "ISSP",
            "observed": 30,
            "expected": 6.0,
            "upper": 14,
            "p_value": 1e-6,
            "window_p_value": 1e-9,
            "recent_sum": 70,
            "rate_ratio": 3.9,
            "rate_ratio_low": 2.6,
            "rate_ratio_high": 5.8,
        },
        {
            **base,
            "level": "group",
            "group_id": "JNIM",
            "group_name": "JNIM",
            "observed": 6,
            "expected": 6.0,
            "upper": 14,
            "p_value": 0.5,
            "window_p_value": 0.5,
            "recent_sum": 18,
            "rate_ratio": 1.0,
            "rate_ratio_low": 0.6,
            "rate_ratio_high": 1.6,
        },
    ]
    shard = nest_forecasts(MonthScores(pl.DataFrame(rows), pl.DataFrame(), pl.DataFrame()))  # no forecasts
    empty = shard.clear()
    admin1 = pl.LazyFrame(
        {
            "source": ["ACLED"],
            "level": ["group"],
            "group_id": ["ISSP"],
            "country": ["Niger"],
            "admin1": ["Tillaberi"],
            "month": [month],
            "events": [30],
            "violent_events": [20],
            "fatalities": [40],
            "civilian_targeting_events": [5],
        }
    )
    # ISSP has been active in Niger all along: not new there
    group_panel = pl.LazyFrame(
        {
            "source": "ACLED",
            "group_id": "ISSP",
            "group_name": "ISSP",
            "group_type": "rebel group",
            "country": "Niger",
            "month": pl.date_range(dt.date(2022, 1, 1), month, "1mo", eager=True),
            **dict.fromkeys(INDICATORS, 0),  # every indicator, for the report's history
            "events": 6,
            "fatalities": 2,
        }
    ).cast({name: panels.country_month.schema[name] for name in INDICATORS})  # as the panels store them
    context = dg.build_asset_context(partition_key="2024-12")
    shards = {f"shard_{k}": (shard if k == 1 else empty) for k in range(1, MODEL_SHARDS + 1)}
    # the sample's ingest figures, said to come from a real pull: the alerts' synthetic flag follows the summary
    provenance = {"vintage": "2026-11-23T060012Z-acled", "input_digest": "0123456789abcdef", "synthetic": False}
    summary = pl.DataFrame([{**ingested.stats, **provenance}])
    outputs = list(
        month_alerts(
            context, settings=settings, models=ModelSettings(break_dates=""), admin1_month_panel=admin1,
            group_month_panel=group_panel, country_month_panel=panels.country_month.lazy(),
            ingest_summary=summary, quarantined_events=ingested.quarantine.lazy(),
            canonical_events=pl.LazyFrame(ingested.events), **shards,
            # no event near any place: no spatial alert
            buffer_scores=pl.DataFrame(), spatial_month_panel=pl.LazyFrame(schema=SPATIAL_SCHEMA),
            buffer_month_panel=pl.LazyFrame(schema=BUFFER_SCHEMA), places=places_table(["Niger"]),
        )
    )
    materialization, columns_check, scored_check, report = outputs
    assert materialization.metadata["dagster/row_count"] == 1
    assert materialization.metadata["high_severity"] == 1
    assert columns_check.passed and scored_check.passed
    assert report.asset_key == dg.AssetKey("alert_report") and report.metadata["alerts"] == 1
    assert "Tillaberi" in (tmp_path / "reports" / "2024-12.md").read_text()
    written = pl.read_csv(tmp_path / "alerts" / "2024-12.csv")
    assert written["group"].to_list() == ["ISSP"]
    assert "Tillaberi" in written["explanation"][0]
    assert written["synthetic"].to_list() == [False]
    document = json.loads((tmp_path / "alerts" / "2024-12.json").read_text())
    assert (document["vintage"], document["input_digest"]) == ("2026-11-23T060012Z-acled", "0123456789abcdef")
    assert document["synthetic"] is False


def test_breaks_file_is_read():
    breaks = load_breaks(ModelSettings().break_dates)
    niger = [b for b in breaks if b.country == "Niger"]
    assert niger and niger[0].date == dt.date(2023, 7, 26)


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_running_a_month_again_reuses_unchanged_work_and_changes_nothing(run, instance):
    """The weekly job re-runs months it has already scored: nothing changed, so nothing is read, recounted or
    refitted."""
    out, _ = run
    before = (out / "alerts" / "2024-12.csv").read_bytes()
    settings = PipelineSettings(raw_paths=str(SAMPLE_DIR), output_dir=str(out), sample_fallback=False)
    again = (
        build_definitions(settings)
        .resolve_job_def("weekly_escalation_job")
        .execute_in_process(partition_key="2024-12", instance=instance)
    )
    metadata = {
        m.asset_key.to_user_string(): m.materialization.metadata for m in again.get_asset_materialization_events()
    }
    shards = [metadata[f"series_scores/shard_{k}_of_{MODEL_SHARDS}"] for k in range(1, MODEL_SHARDS + 1)]
    assert sum(s["series_fitted"].value for s in shards) == 0
    assert sum(s["scores_reused"].value for s in shards) > 50
    assert metadata["raw_file_manifest"]["files_read_this_run"].value == 0
    assert metadata["group_month_panel"]["months_recounted"].value == 0
    checks = {e.check_name: e for e in again.get_asset_check_evaluations()}
    great_expectations = checks["canonical_events_pass_great_expectations"]
    assert great_expectations.passed
    # nothing was read again, and the check says what it vouches for: the whole table, validated in the first run
    events = pl.read_parquet(out / "warehouse" / "canonical_events.parquet").height
    assert great_expectations.metadata["rows_validated_now"].value == 0
    assert great_expectations.metadata["rows_validated_earlier"].value == events
    assert great_expectations.metadata["rows_in_table"].value == events
    assert great_expectations.metadata["files_validated_earlier"].value == 3
    assert f"{events:,} validated earlier and unchanged since (3 files, validated" in great_expectations.description
    assert (out / "alerts" / "2024-12.csv").read_bytes() == before


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_report_of_a_month_run_again_redraws_only_plots_whose_inputs_changed(run, instance, monkeypatch):
    out, results = run
    plots = out / "reports" / "2024-12"
    index = json.loads((plots / report_plots.PLOT_INDEX).read_text())
    assert len(index) >= 2
    before = without_report_time((out / "reports" / "2024-12.html").read_bytes())
    dropped = sorted(index)[0]  # as if that series had changed since
    (plots / report_plots.PLOT_INDEX).write_text(json.dumps({k: v for k, v in index.items() if k != dropped}))
    drawn = []
    for drawing in ("plot_series", "plot_map"):  # the dropped plot is a card's series or its map
        monkeypatch.setattr(
            report_plots, drawing, lambda *args: drawn.append(args[-1]) or (plots / index[dropped]).read_bytes()
        )
    job = results["2024-12"].job_def
    again = job.execute_in_process(
        partition_key="2024-12", asset_selection=list(month_alerts.keys), instance=instance  # the report's step
    )
    assert again.success
    assert len(drawn) == 1
    assert json.loads((plots / report_plots.PLOT_INDEX).read_text()) == index
    assert without_report_time((out / "reports" / "2024-12.html").read_bytes()) == before  # its minute may be the next


class CountedExecutor(Executor):
    """An executor that counts what it is given: the report's plots are sent to the workers, not drawn here."""

    def __init__(self, inner: Executor):
        self.inner, self.submitted = inner, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)


@pytest.mark.slow  # runs the whole graph (the module's `run`) and draws the month's plots twice
def test_a_report_drawn_on_the_fitting_workers_is_byte_identical_to_one_drawn_here(run, instance, monkeypatch,
                                                                                  tmp_path):
    _, results = run
    given = []
    writes = alerts_assets.write_report
    monkeypatch.setattr(
        alerts_assets, "write_report", lambda inputs, *more: given.append(inputs) or writes(inputs, *more)
    )
    assert results["2024-12"].job_def.execute_in_process(
        partition_key="2024-12", asset_selection=list(month_alerts.keys), instance=instance  # the report's step
    ).success
    (inputs,) = given  # what the month's step gave its report
    workers = CountedExecutor(fitting_pool(2).executor())  # the pool `sahel run --workers 2` draws on
    write_report(inputs, tmp_path / "here")
    write_report(inputs, tmp_path / "workers", executor=workers)

    def files(folder):
        return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    here, there = files(tmp_path / "here"), files(tmp_path / "workers")
    plots = [p for p in here if p.suffix == ".png"]
    assert len(plots) >= 3 and any(p.stem.endswith("-map") for p in plots)  # several cards' series and maps
    assert workers.submitted == len(plots)
    assert there.keys() == here.keys()
    assert [p for p in here if here[p] != there[p]] == []  # the pages (the HTML embeds every plot) and each PNG
    write_report(inputs, tmp_path / "workers", executor=workers)  # a rerun takes its plots from the month's folder
    assert workers.submitted == len(plots) and files(tmp_path / "workers") == there


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_a_report_run_again_removes_plots_of_alerts_it_no_longer_has(run, instance):
    out, results = run
    plots = out / "reports" / "2024-12"
    stale = plots / "alert99.png"  # as if an earlier run of the month had 99 alerts
    stale.write_bytes((plots / "alert1.png").read_bytes())
    job = results["2024-12"].job_def
    assert job.execute_in_process(
        partition_key="2024-12", asset_selection=list(month_alerts.keys), instance=instance  # the report's step
    ).success
    assert not stale.exists()
    assert (plots / "alert1.png").exists()


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_the_synthetic_sample_says_so_in_every_output(run):
    out, results = run
    manifest = pl.read_parquet(out / "warehouse" / "raw_file_manifest.parquet")
    assert manifest["synthetic"].all() and manifest.height == 3
    assert all("synthetic: the file name says SYNTHETIC" in n for n in manifest["notes"])
    assert pl.read_parquet(out / "warehouse" / "ingest_summary.parquet")["synthetic"].to_list() == [True]
    for month in MONTHS:
        assert alerts(out, month)["synthetic"].all()
        assert pl.read_parquet(out / "alerts" / f"{month}.parquet")["synthetic"].all()
        assert json.loads((out / "alerts" / f"{month}.json").read_text())["synthetic"] is True
        page = (out / "reports" / f"{month}.html").read_text()
        assert "<div class='synthetic' role='alert'>SYNTHETIC DATA: " in page
        assert page.index("class='synthetic'") < page.index("<h1>")  # before anything else
        assert "> **SYNTHETIC DATA: " in (out / "reports" / f"{month}.md").read_text()
        assert "<title>SYNTHETIC - Escalation alerts, " in (out / "alerts" / f"{month}.atom").read_text()


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_notifications_are_a_dry_run_unless_configured(run):
    out, results = run
    checks = {e.check_name: e.passed for e in results["2024-12"].get_asset_check_evaluations()}
    assert checks["notifications_were_delivered"]
    ledger = [json.loads(line) for line in (out / "notifications" / "ledger.jsonl").read_text().splitlines()]
    assert ledger and {e["outcome"] for e in ledger} == {"dry_run"}
    outbox = out / "notifications" / "2024-12" / "outbox"
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in outbox.glob("*.eml")]
    assert len(messages) == 3  # the three addresses of the shipped data/subscriptions.csv with a matching alert
    assert all(m["Subject"].strip().startswith("[SYNTHETIC] Escalation alerts, December 2024") for m in messages)


@pytest.mark.slow
def test_real_looking_files_raise_no_synthetic_flag(tmp_path):
    """The same events under other file names and with their notes rewritten: nothing says SYNTHETIC any more."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in SAMPLE_DIR.glob("*.csv"):
        frame = pl.read_csv(path, infer_schema=False)
        if "notes" in frame.columns:
            frame = frame.with_columns(pl.col("notes").str.replace("^SYNTHETIC, not real. ", "Reported: "))
        frame.write_csv(raw / path.name.replace("_SYNTHETIC", ""))
    out = tmp_path / "out"
    settings = PipelineSettings(raw_paths=str(raw), output_dir=str(out), sample_fallback=False)
    job = build_definitions(settings).resolve_job_def("weekly_escalation_job")
    with dg.instance_for_test() as instance:
        materialize_upstream(job, instance)  # adds the month partitions
        result = job.execute_in_process(partition_key="2024-12", instance=instance)
    assert result.success
    assert not pl.read_parquet(out / "warehouse" / "raw_file_manifest.parquet")["synthetic"].any()
    december = alerts(out, "2024-12")
    assert december.height > 0 and not december["synthetic"].any()
    assert json.loads((out / "alerts" / "2024-12.json").read_text())["synthetic"] is False
    for written in [out / "reports" / "2024-12.html", out / "reports" / "2024-12.md", out / "alerts" / "2024-12.atom",
                    *(out / "notifications" / "2024-12" / "outbox").iterdir()]:
        assert "SYNTHETIC" not in written.read_text(errors="replace"), written.name


@pytest.mark.slow  # runs the whole graph (the module's `run`)
def test_group_panel_metadata_lists_normalised_names_with_their_variants_and_how_groups_were_typed(run):
    _, results = run
    metadata = next(
        m.materialization.metadata
        for m in results["2024-12"].get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("group_month_panel")
    )
    names = metadata["groups_and_their_names"].value
    mali = next(line for line in names.splitlines() if "| Military Forces of Mali |" in line)
    assert "Military Forces of Mali (2013-2020)" in mali and "Military Forces of Mali (2021-)" in mali
    typed_by = metadata["groups_typed_by"].value
    assert "alias table" in typed_by and "source code" in typed_by
    assert metadata["groups_typed_by_inference"].value > 0 and metadata["groups_without_type"].value == 0
    periods = next(
        m.materialization.metadata
        for m in results["2024-12"].get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("regime_periods")
    )
    assert periods["breaks_from_regime_periods"].value == 1  # Niger's April 2021 change; the coups are configured


@pytest.mark.slow
@pytest.mark.integration  # starts headless Chromium
@pytest.mark.parametrize("width", [1280, 420])
def test_the_report_reads_in_a_browser_at_desktop_and_phone_width(run, width, tmp_path):
    from sahel_pipeline_tests import browser

    binary = browser.chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian's `chromium`; scripts/ensure_test_services.sh)")
    out, _ = run
    page = out / "reports" / "2024-12.html"
    found = browser.measure(binary, page, width, tmp_path)
    shot = browser.screenshot(binary, page, width, 2400, browser.ARTIFACTS / f"report-2024-12-{width}px.png", tmp_path)
    assert found["width"] == width
    assert found["scrollWidth"] <= found["clientWidth"], f"the page scrolls sideways at {width} px: {found}"
    assert found["wide"] == [], f"elements wider than the window at {width} px: {found['wide']}"
    assert found["images"] >= 2 and found["broken"] == [], found
    assert found["banner"].startswith("SYNTHETIC DATA")
    assert shot.stat().st_size > 10_000
