"""Benchmark at global-ACLED scale: stage timings, the whole cold run, a weekly update, peak memory, and the floor.

    python -m sahel_pipeline.benchmark [--data bench_data] [--events 2500000] [--runs 3] [--workers N]

The data are generated on first use (`python -m sahel_pipeline.synthetic global`): an ACLED-layout export of about
2.5 million events to 14 November 2026 and a weekly update file (the next week's events and revisions of earlier ones).
Every figure is the median of --runs runs, each in a fresh process, as a scheduled run would be:

* floor: Polars reading the whole CSV (every column, as the pipeline must keep them) and grouping it to
  actor x country x month counts; and, for reference, the same with only the three columns the counts need;
* stages: read and normalise, merge and row rules, Great Expectations (import and run), panels, model fits, alerts
  and report, called as plain functions;
* whole cold run: `sahel run` from nothing through the alerts and report of October 2026, in Dagster, timed from
  the start of the Python process to its exit (imports included), the floor being measured just before it;
* weekly update: the state a previous weekly run left (October and November 2026 on the export), plus the update
  file, then the weekly run again for October and November, timed the same way;
* the UI's overhead, on the bundled sample (not the 2.5 million events): `sahel run --month 2024-12` into a new
  folder and instance, against the same month launched as the UI launches it (`dagster job execute` on the code
  location: its executor, a process per step), interleaved, each from process start to exit. `--ui-only` measures
  this alone (a few minutes), without generating the large data.
* `--steps`: the memory a Celery worker needs (deploy/README.md, Sizing): ingest and panels (a run's first steps, in
  one process), then each model shard alone in a fresh process, as a worker runs it, on the generated data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

EXPORT = "acled_global_1997-2026-11-14_SYNTHETIC.csv"
UPDATE = "acled_global_update_2026-11-21_SYNTHETIC.csv"
COLD_MONTH = "2026-10"
WEEKLY_MONTHS = ("2026-10", "2026-11")
TODAY = dt.date(2026, 11, 21)
SAMPLE_MONTH = "2024-12"


class TreeMemory:
    """Peak resident memory of this process and every process it started, directly or not (the fitting workers are
    children of a fork server), sampled ten times a second from /proc."""

    def __init__(self) -> None:
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.1):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                    parents[int(entry.name)] = int(fields[1])
                    rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, IndexError, ValueError):
                    continue
            tree, frontier = {me}, [me]
            while frontier:
                parent = frontier.pop()
                children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
                tree.update(children)
                frontier.extend(children)
            self.peak_total = max(self.peak_total, sum(rss.get(pid, 0) for pid in tree))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return {"peak_main_gib": own, "peak_tree_gib": max(self.peak_total / 2**30, own)}


# --- measurements, each run in its own process ------------------------------------------------------------------------


def measure_floor(data: Path) -> dict[str, float]:
    import polars as pl

    path = data / EXPORT
    month = pl.col("event_date").str.to_date("%d %B %Y").dt.month_start()
    started = time.perf_counter()
    pl.read_csv(path, infer_schema=False).group_by("actor1", "country", month.alias("month")).len()
    full = time.perf_counter() - started
    started = time.perf_counter()
    pl.scan_csv(path).select("actor1", "country", month.alias("month")).group_by(
        "actor1", "country", "month"
    ).len().collect()
    projected = time.perf_counter() - started
    return {"floor_all_columns_s": full, "floor_three_columns_s": projected}


def measure_stages(data: Path, workers: int) -> dict[str, float]:
    """The pipeline's work as plain function calls, stage by stage (no Dagster, no files but the CSV)."""
    import polars as pl

    from sahel_pipeline import ALIAS_TABLE, PLACES_FILE
    from sahel_pipeline.core.alerts import new_actors, ruled_alert_table
    from sahel_pipeline.core.groups import load_alias_table
    from sahel_pipeline.core.ingest import consolidate
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.panels import build_panels
    from sahel_pipeline.core.places import places_table
    from sahel_pipeline.core.pool import fitting_pool
    from sahel_pipeline.core.schema import CANONICAL_COLUMNS
    from sahel_pipeline.core.scoring import score_month
    from sahel_pipeline.core.sources import read_source_file
    from sahel_pipeline.core.validation import quarantine_invalid_rows

    memory = TreeMemory()
    times: dict[str, float] = {}

    def timed(label, work):
        started = time.perf_counter()
        result = work()
        times[label] = time.perf_counter() - started
        return result

    source = timed("read_normalise_s", lambda: read_source_file(data / EXPORT))

    def merge():
        valid, invalid = quarantine_invalid_rows(source.events, TODAY)
        frames = [valid.select(CANONICAL_COLUMNS).with_columns(_file_order=pl.lit(0, pl.Int32))]
        return consolidate(frames, [source.deletions], [source.quarantine, invalid])

    merged = timed("merge_row_rules_s", merge)
    source = None  # the raw frame is not needed any more: let the stages after it run in the memory they would have
    timed("gx_import_s", lambda: __import__("great_expectations"))
    from sahel_pipeline.core.validation import validate_with_great_expectations

    summary = timed("gx_validate_s", lambda: validate_with_great_expectations(merged.events.lazy(), TODAY))
    assert summary.success, summary.to_markdown()
    places = places_table(merged.events["country"].unique().to_list(), PLACES_FILE)
    aliases = load_alias_table(ALIAS_TABLE)
    # The spatial panels are counted with the others, from the same attribution (their cost is part of panels_s):
    # what they add is panels_s against the same panels counted without the places (made first, then dropped).
    timed("panels_without_places_s", lambda: build_panels(merged.events, aliases))
    panels = timed("panels_s", lambda: build_panels(merged.events, aliases, places=places))
    times["spatial_panels_s"] = times["panels_s"] - times["panels_without_places_s"]
    merged = None
    config = ModelConfig()
    month = dt.date(2026, 10, 1)
    pool = fitting_pool(workers)
    scores = timed(
        "model_fits_s",
        lambda: score_month(panels.group_month, panels.country_month, month, config, pool, lambda _: None),
    )
    times["series_fitted"] = scores.scores.filter(pl.col("model") != "skipped").height
    times["fits_per_s"] = times["series_fitted"] / times["model_fits_s"]

    def alerts_and_report():
        from sahel_pipeline.core.alerts import apply_alert_rule
        from sahel_pipeline.core.report import ReportInputs, write_report
        from sahel_pipeline.core.report.selection import admin1_history, alert_series, series_history
        from sahel_pipeline.core.series import SERIES_KEY

        newcomers = new_actors(panels.group_month, panels.admin1_month, month, config)
        ruled = apply_alert_rule(scores.scores, config)
        table = ruled_alert_table(ruled, panels.admin1_month, config, newcomers)
        wanted = alert_series(table).select(SERIES_KEY)
        inputs = ReportInputs(
            month=month,
            alerts=table,
            scores=ruled,
            forecasts=scores.forecasts,
            history=series_history(panels.group_month.lazy(), panels.country_month.lazy(), wanted, month),
            admin1=admin1_history(panels.admin1_month.lazy(), wanted, month, config),
            data_quality={},
            quarantine_reasons=pl.DataFrame(),
            config=config,
        )
        with tempfile.TemporaryDirectory() as out:
            write_report(inputs, Path(out), executor=pool.executor() if pool is not None else None)
        return table

    table = timed("alerts_report_s", alerts_and_report)
    times["alerts"] = table.height
    return times | memory.stop()


def measure_run(raw: list[Path], out: Path, months: tuple[str, ...], workers: int) -> dict[str, float]:
    """A whole run through Dagster, as `sahel run` does it."""
    from sahel_pipeline.runner import Runner
    from sahel_pipeline.startup import skip_final_garbage_collection

    skip_final_garbage_collection()  # as `sahel run` does
    memory = TreeMemory()
    started = time.perf_counter()
    runner = Runner([str(p) for p in raw], out, workers=workers)
    runner.materialize_upstream()
    for month in months:
        runner.materialize_month(month)
    return {"run_s": time.perf_counter() - started} | memory.stop()


def measure_step(raw: list[Path], out: Path, step: str, workers: int) -> dict[str, float]:
    """One step of the cold month alone, as a Celery worker runs it: `upstream` (ingest and panels) or a shard's
    index, reading what the upstream measurement stored under `out`."""
    from sahel_pipeline.defs.models import SERIES_SCORES
    from sahel_pipeline.runner import Runner

    memory = TreeMemory()
    started = time.perf_counter()
    runner = Runner([str(p) for p in raw], out, workers=workers)
    if step == "upstream":
        runner.materialize_upstream()
    else:
        runner._run(runner.weekly, list(SERIES_SCORES[int(step)].keys), partition_key=COLD_MONTH)
    return {"step_s": time.perf_counter() - started} | memory.stop()


def print_steps(data: Path, workers: int) -> None:
    from sahel_pipeline.defs.models import SERIES_SCORES

    with tempfile.TemporaryDirectory(dir=data) as scratch_dir:
        raw, out = Path(scratch_dir) / "raw", Path(scratch_dir) / "out"
        raw.mkdir()
        (raw / EXPORT).symlink_to((data / EXPORT).resolve())
        print(f"{workers} fitting workers; peak memory of this process and its children; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for step in ["upstream", *(str(k) for k in range(len(SERIES_SCORES)))]:
            figures = in_fresh_process("step", str(data), str(raw), str(out), step)
            name = "ingest and panels" if step == "upstream" else f"shard {int(step) + 1} of {len(SERIES_SCORES)}"
            print(f"{name}: {figures['step_s']:.1f} s, peak {figures['peak_tree_gib']:.2f} GiB "
                  f"(main process {figures['peak_main_gib']:.2f} GiB)", flush=True)


def compare_ui_style(runs: int) -> dict[str, float]:
    """The sample's cold run of one month from the command line and as the UI launches it, interleaved so that both
    meet the machine in the same state; medians, and the median of the runs' ratios."""
    from sahel_pipeline import DATA_DIR, PROJECT_DIR, SAMPLE_DIR
    from sahel_pipeline.defs.partitions import MONTHS
    from sahel_pipeline.instance_storage import sqlite_instance

    bin_dir = Path(sys.executable).parent
    cli, ui, loads = [], [], []
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        with tempfile.TemporaryDirectory() as scratch_dir:
            scratch = Path(scratch_dir)
            homes = {name: scratch / f"home_{name}" for name in ("cli", "ui")}
            for home in homes.values():
                home.mkdir()
                shutil.copyfile(PROJECT_DIR / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
            # In the UI the month is a partition once a first run has ingested the data; here it is added beforehand,
            # so that the launched run does the command line's work: ingest, panels and the month, from nothing.
            with sqlite_instance(homes["ui"]) as instance:
                assert MONTHS.name is not None
                instance.add_dynamic_partitions(MONTHS.name, [SAMPLE_MONTH])
            env = {**os.environ, "SAHEL_ALLOWED_ROOTS": os.pathsep.join([str(scratch), str(DATA_DIR)])}
            cli.append(timed_command(
                [str(bin_dir / "sahel"), "run", "--raw", str(SAMPLE_DIR), "--out", str(scratch / "cli"),
                 "--month", SAMPLE_MONTH],
                env | {"DAGSTER_HOME": str(homes["cli"])}, scratch,
            ))
            ui.append(timed_command(
                [str(bin_dir / "dagster"), "job", "execute", "-m", "sahel_pipeline.definitions",
                 "-j", "weekly_escalation_job", "--tags", json.dumps({"dagster/partition": SAMPLE_MONTH})],
                env | UI_ENVIRONMENT | {"DAGSTER_HOME": str(homes["ui"]), "SAHEL_RAW_PATHS": str(SAMPLE_DIR),
                                        "SAHEL_OUTPUT_DIR": str(scratch / "ui")},
                scratch,
            ))
            if not (scratch / "ui" / "alerts" / f"{SAMPLE_MONTH}.csv").exists():
                raise RuntimeError("the UI-style run wrote no alerts")
    return {
        "cli_s": statistics.median(cli),
        "ui_s": statistics.median(ui),
        "ratio": statistics.median(u / c for u, c in zip(ui, cli, strict=True)),
        "load_min": min(loads),
        "load_max": max(loads),
    }


# The code location's variables, as .env.example has them, without credentials: the launched run pulls nothing.
UI_ENVIRONMENT = {name: "" for name in ("ACLED_EMAIL", "ACLED_PASSWORD", "UCDP_API_TOKEN", "SAHEL_ACLED_API_URL",
                                        "SAHEL_UCDP_API_URL", "SAHEL_FETCH_COUNTRIES", "SAHEL_UCDP_VERSIONS")}


def timed_command(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from the command's start to its exit; its output is kept for the error if it fails."""
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}")
    return elapsed


def print_ui_comparison(ui: dict[str, float], runs: int) -> None:
    loads = f"{ui['load_min']:.1f} to {ui['load_max']:.1f}"
    print(f"\nsample, {SAMPLE_MONTH}, cold, median of {runs} interleaved runs (1-minute load average {loads}):")
    print(f"  sahel run                  {ui['cli_s']:>7.1f} s")
    print(f"  as the UI launches it      {ui['ui_s']:>7.1f} s   {ui['ratio']:.2f}x the command line (median ratio)")


# --- orchestration ----------------------------------------------------------------------------------------------------


def in_fresh_process(*args: str) -> dict[str, float]:
    """One measurement in a new Python process; `process_s` is its whole life, from start to exit."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "sahel_pipeline.benchmark", "--measure", *args], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark step {args[0]} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]) | {"process_s": elapsed}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("bench_data"))
    parser.add_argument("--events", type=int, default=2_500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ui-only", action="store_true", help="only the sample's command line vs UI-style runs")
    parser.add_argument("--steps", action="store_true", help="only the memory of the steps a Celery worker runs")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_measure(args.measure, args.workers)))
        return
    if args.steps:
        generate_data(args.data, args.events)
        print_steps(args.data, args.workers)
        return
    if args.ui_only:
        print_ui_comparison(compare_ui_style(args.runs), args.runs)
        return
    run_benchmark(args.data, args.events, args.runs, args.workers)
    print_ui_comparison(compare_ui_style(args.runs), args.runs)


def _measure(what: list[str], workers: int) -> dict[str, float]:
    kind, data, *rest = what
    if kind == "floor":
        return measure_floor(Path(data))
    if kind == "stages":
        return measure_stages(Path(data), workers)
    raw, out, months = rest[0].split(","), Path(rest[1]), tuple(rest[2].split(","))
    if kind == "step":
        return measure_step([Path(p) for p in raw], out, months[0], workers)
    return measure_run([Path(p) for p in raw], out, months, workers)


def generate_data(data: Path, events: int) -> None:
    """The benchmark's files, made again when they are missing or an older generator made them."""
    from sahel_pipeline.synthetic import GLOBAL_DATA_VERSION, write_global

    marker = data / "GENERATED"
    made_by = marker.read_text().strip() if marker.exists() else ""
    if not (data / EXPORT).exists() or made_by != f"{GLOBAL_DATA_VERSION} {events}":
        print(f"generating {events:,} synthetic events in {data} ...", flush=True)
        started = time.perf_counter()
        print(write_global(data, events), f"({time.perf_counter() - started:.0f} s)", flush=True)
        marker.write_text(f"{GLOBAL_DATA_VERSION} {events}\n")


def run_benchmark(data: Path, events: int, runs: int, workers: int) -> None:
    generate_data(data, events)
    size = (data / EXPORT).stat().st_size
    print(f"data: {data / EXPORT} ({size / 1e6:,.0f} MB); {workers} workers; median of {runs} runs", flush=True)

    stages = median_of([in_fresh_process("stages", str(data)) for _ in range(runs)])
    floors, cold, weekly = [], [], []
    with tempfile.TemporaryDirectory(dir=data) as scratch_dir:
        scratch = Path(scratch_dir)
        export_only, with_update = scratch / "raw_export", scratch / "raw_weekly"
        export_only.mkdir()
        with_update.mkdir()
        for folder, names in ((export_only, [EXPORT]), (with_update, [EXPORT, UPDATE])):
            for name in names:
                (folder / name).symlink_to((data / name).resolve())
        # The floor is measured just before each cold run, so that both meet the machine in the same state: on a
        # shared host the floor alone varied by a factor of two between invocations.
        for n in range(runs):
            floors.append(in_fresh_process("floor", str(data)))
            out = scratch / f"cold_{n}"
            cold.append(in_fresh_process("run", str(data), str(export_only), str(out), COLD_MONTH))
            shutil.rmtree(out)
        previous_week = scratch / "previous_week"
        in_fresh_process("run", str(data), str(export_only), str(previous_week), ",".join(WEEKLY_MONTHS))
        for n in range(runs):
            out = scratch / f"weekly_{n}"
            shutil.copytree(previous_week, out, symlinks=True)
            # last week's state plus the update file; the export keeps its name, so the cache still knows it
            weekly.append(in_fresh_process("run", str(data), str(with_update), str(out), ",".join(WEEKLY_MONTHS)))
            shutil.rmtree(out)
    ratios = {
        "all": statistics.median(c["process_s"] / f["floor_all_columns_s"] for c, f in zip(cold, floors, strict=True)),
        "three": statistics.median(
            c["process_s"] / f["floor_three_columns_s"] for c, f in zip(cold, floors, strict=True)
        ),
    }
    print_report(median_of(floors), stages, median_of(cold), median_of(weekly), ratios)


def print_report(floor: dict, stages: dict, cold: dict, weekly: dict, ratios: dict) -> None:
    rows = [
        ("floor: Polars reads the whole CSV and groups it (every column)", floor["floor_all_columns_s"], ""),
        ("floor, only the three columns the counts need", floor["floor_three_columns_s"], ""),
        ("read and normalise", stages["read_normalise_s"], ""),
        ("merge, revisions, deletions, row rules", stages["merge_row_rules_s"], ""),
        ("Great Expectations: import", stages["gx_import_s"], ""),
        ("Great Expectations: validate 8 columns", stages["gx_validate_s"], ""),
        ("panels (group, country, admin1; spatial: distances, spread, admin2 areas, rings)", stages["panels_s"], ""),
        (
            "  of which the spatial panels (against the same panels without places)",
            stages["spatial_panels_s"],
            f"without places {stages['panels_without_places_s']:.2f} s",
        ),
        ("model fits", stages["model_fits_s"], f"{stages['series_fitted']:.0f} series, {stages['fits_per_s']:.0f}/s"),
        ("alerts and report", stages["alerts_report_s"], f"{stages['alerts']:.0f} alerts"),
        (
            "whole cold run (Dagster, one month; process start to exit)",
            cold["process_s"],
            f"{cold['run_s']:.1f} s once imported; peak memory {cold['peak_tree_gib']:.2f} GiB (all processes)",
        ),
        (
            "weekly update (Dagster, two months; process start to exit)",
            weekly["process_s"],
            f"{weekly['run_s']:.1f} s once imported; peak memory {weekly['peak_tree_gib']:.2f} GiB (all processes)",
        ),
    ]
    print()
    print(f"{'stage':<66}{'seconds':>9}  notes")
    for label, seconds, note in rows:
        print(f"{label:<66}{seconds:>9.2f}  {note}")
    print(f"\nwhole cold run / floor (every column), median of the runs' ratios: {ratios['all']:.1f}x")
    print(f"whole cold run / floor (three columns), median of the runs' ratios: {ratios['three']:.1f}x")
    print(f"peak memory of the stages run: {stages['peak_tree_gib']:.2f} GiB (all processes)")


if __name__ == "__main__":
    main()
