"""`sahel`: run the pipeline, read the alerts, run the backtest, from a terminal.

    sahel run [--raw PATH ...] [--out DIR] [--month YYYY-MM | --from YYYY-MM --to YYYY-MM] [--workers N] [--verbose]
              [--as-of VINTAGE]
    sahel alerts [--month YYYY-MM] [--out DIR]
    sahel backtest [--raw PATH ...] [--out DIR] [--months N] [--workers N] [--verbose]
    sahel fetch acled --raw DIR [--country NAME ...] [--since YYYY-MM-DD]
    sahel fetch ucdp --raw DIR --version VERSION [...] [--country NAME ...]
    sahel vintages [--raw DIR]
    sahel notify [--month YYYY-MM] [--dry-run] [--out DIR]
    sahel evaluate [--raw PATH ...] [--out DIR] [--series N] [--years Y] [--seed S] [--no-r] [--target-far P ...]
                   [--from YYYY-MM --to YYYY-MM] [--workers N] [--verbose]

`run` materializes the Dagster asset graph in this process: ingest and panels once, then the month partitions asked
for (by default the latest month the data cover in full). `fetch` pulls from the providers' APIs into a raw folder
and records the vintage. Runs are recorded in the Dagster instance the UI reads; the terminal gets one progress
line per step, Dagster's own log goes to a file under the output folder. Errors are one line and a non-zero exit
status.

Heavy libraries (Dagster, Polars, statsmodels) are imported inside the commands, so `sahel --help` and
`sahel --version` answer at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import textwrap
from collections.abc import Container
from pathlib import Path
from typing import TYPE_CHECKING

from sahel_pipeline import BACKTEST_MONTHS
from sahel_pipeline.core.months import is_month_key
from sahel_pipeline.core.text import terminal_text

if TYPE_CHECKING:
    import polars as pl

if TYPE_CHECKING:
    from sahel_pipeline.runner import Notified

EXIT_USAGE, EXIT_FAILED = 2, 1


class CliError(Exception):
    """A problem the user can fix; printed as one line."""

    def __init__(self, message: str, status: int = EXIT_USAGE):
        super().__init__(message)
        self.status = status


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(given)
    args.out_given = any(a == "--out" or a.startswith("--out=") for a in given)
    log_path: Path | None = None
    try:
        from sahel_pipeline.core.lock import OutputFolderLocked
        from sahel_pipeline.runner import RunFailed
        from sahel_pipeline.startup import skip_final_garbage_collection

        skip_final_garbage_collection()
        try:
            return args.command(args)
        except RunFailed as err:
            log_path = err.log_path
            raise CliError(str(err), EXIT_FAILED) from err
        except OutputFolderLocked as err:
            raise CliError(str(err), EXIT_FAILED) from err
    except CliError as err:
        where = f" (log: {log_path})" if log_path else ""
        print(f"sahel: error: {terminal_text(err)}{where}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print("sahel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python's recommended way to silence the final flush
        return 0


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("sahel-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """--version, looked up only when asked for (importlib.metadata scans the installed packages)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"sahel {version()}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sahel", description="Early-warning pipeline for armed-conflict analysts.")
    top.add_argument("--version", action=_Version)
    commands = top.add_subparsers(required=True, metavar="{run,alerts,backtest,fetch,vintages,notify,evaluate}")

    def common(sub: argparse.ArgumentParser, runs: bool = True) -> None:
        if runs:
            sub.add_argument(
                "--raw",
                nargs="+",
                metavar="PATH",
                help="folders or CSV files to ingest (default: data/raw, or the bundled sample when it holds no CSV)",
            )
        sub.add_argument(
            "--out", default="data/outputs", metavar="DIR", help="where outputs go (default: data/outputs)"
        )
        if runs:
            sub.add_argument(
                "--workers",
                type=int,
                default=os.cpu_count() or 1,
                metavar="N",
                help="processes fitting series (default: all cores)",
            )
            sub.add_argument(
                "--verbose",
                "-v",
                action="store_true",
                help="show Dagster's log as the run goes, instead of one progress line per step",
            )

    run = commands.add_parser("run", help="ingest, model and write alerts and reports for month partitions")
    common(run)
    when = run.add_mutually_exclusive_group()
    when.add_argument("--month", metavar="YYYY-MM", help="one month (default: the latest month the data cover in full)")
    when.add_argument("--from", dest="first", metavar="YYYY-MM", help="first month of a range (with --to)")
    run.add_argument("--to", dest="last", metavar="YYYY-MM", help="last month of a range (with --from)")
    run.add_argument(
        "--as-of", dest="as_of", metavar="VINTAGE",
        help="recompute from exactly the files the raw folder held at this vintage (see `sahel vintages`); needs --out",
    )
    run.set_defaults(command=command_run)

    alerts = commands.add_parser("alerts", help="print a month's alerts table")
    common(alerts, runs=False)
    alerts.add_argument("--month", metavar="YYYY-MM", help="the month (default: the latest month with alerts written)")
    alerts.set_defaults(command=command_alerts)

    backtest = commands.add_parser("backtest", help="rolling-origin backtest of forecasts and alerts")
    common(backtest)
    backtest.add_argument(
        "--months",
        type=int,
        default=BACKTEST_MONTHS,
        metavar="N",
        help=f"origins: this many months up to the data's end (default {BACKTEST_MONTHS})",
    )
    backtest.set_defaults(command=command_backtest)

    fetch = commands.add_parser("fetch", help="pull ACLED or UCDP data from their APIs into a raw folder")
    providers = fetch.add_subparsers(required=True, metavar="{acled,ucdp}")
    acled = providers.add_parser("acled", help="ACLED events (ACLED_EMAIL, ACLED_PASSWORD): a first pull, then changes")
    acled.add_argument("--raw", required=True, metavar="DIR", help="the raw folder to pull into (made if missing)")
    acled.add_argument("--country", nargs="+", action="extend", default=[], metavar="NAME",
                       help="ACLED country names (default: every country)")
    acled.add_argument("--since", metavar="YYYY-MM-DD",
                       help="first event date of a country's first pull (default: 1997-01-01, all of ACLED; a country "
                       "held keeps the date it was first pulled from)")
    acled.set_defaults(command=command_fetch_acled)
    ucdp = providers.add_parser("ucdp", help="UCDP GED and Candidate versions (UCDP_API_TOKEN)")
    ucdp.add_argument("--raw", required=True, metavar="DIR", help="the raw folder to pull into (made if missing)")
    ucdp.add_argument("--version", required=True, nargs="+", action="extend", metavar="VERSION",
                      help="GED versions like 25.1, Candidate versions like 26.0.3")
    ucdp.add_argument("--country", nargs="+", action="extend", default=[], metavar="NAME",
                      help="country names or Gleditsch-Ward codes (default: every country)")
    ucdp.set_defaults(command=command_fetch_ucdp)

    listing = commands.add_parser("vintages", help="list the pulls recorded in a raw folder")
    listing.add_argument("--raw", default="data/raw", metavar="DIR", help="the raw folder (default: data/raw)")
    listing.set_defaults(command=command_vintages)

    notify = commands.add_parser("notify", help="send a month's alerts to their subscribers, Slack and Teams")
    common(notify, runs=False)
    notify.add_argument("--month", metavar="YYYY-MM", help="default: the latest month with alerts written")
    notify.add_argument(
        "--dry-run",
        action="store_true",
        help="write the messages to notifications/YYYY-MM/outbox/ and send nothing, whatever SAHEL_NOTIFY_DRY_RUN "
        "says (without it, nothing is sent either unless SAHEL_NOTIFY_DRY_RUN=false)",
    )
    notify.set_defaults(command=command_notify)

    # Defaults are EvaluationConfig's (None here: importing it at start-up would slow every command).
    evaluate = commands.add_parser(
        "evaluate", help="measure the alert rule against an oracle and the standard detectors"
    )
    common(evaluate)
    evaluate.add_argument("--series", type=int, metavar="N", help="simulated series per scenario (default 60)")
    evaluate.add_argument("--years", type=int, metavar="Y", help="judged years of the stable series (default 6)")
    evaluate.add_argument("--seed", type=int, metavar="S", help="seed of the simulations (default 2024)")
    evaluate.add_argument(
        "--no-r", action="store_true", help="do not run the R surveillance peers (they are listed as skipped)"
    )
    evaluate.add_argument(
        "--target-far", type=float, nargs="+", metavar="P",
        help="false alarms per month thresholds are matched to on stable series, one setting each (default 0.01)",
    )
    evaluate.add_argument(
        "--from", dest="first", metavar="YYYY-MM", help="first month of real data judged (default 2017-01)"
    )
    evaluate.add_argument(
        "--to", dest="last", metavar="YYYY-MM", help="last month of real data judged (default 2020-12)"
    )
    evaluate.set_defaults(command=command_evaluate)
    return top


# --- run ------------------------------------------------------------------------------------------------------------


def command_run(args: argparse.Namespace) -> int:
    if (args.first is None) != (args.last is None):
        raise CliError("--from and --to go together")
    months = _months(args)
    if args.as_of:
        _check_as_of(args)
    _check_possible(months, args.as_of)
    runner = _runner(args)
    upstream = runner.materialize_upstream()  # adds the month partitions the data can score
    _check_partitions(months, runner)
    if not months:
        months = [_latest_complete_month(runner.settings)]
        print(f"month: {months[0]} (the latest month the data cover in full)")
    notified = {month: runner.materialize_month(month) for month in months}
    _print_run_summary(upstream, runner.settings.output_path, notified)
    print(f"log: {runner.log_path}")
    return 0


def _months(args: argparse.Namespace) -> list[str]:
    from sahel_pipeline.core.months import month_key, month_range, parse_month

    for value in (args.month, args.first, args.last):
        if value is not None and not is_month_key(value):
            raise CliError(f"bad month '{value}': expected YYYY-MM, e.g. 2023-10")
    if args.month:
        return [args.month]
    if args.first:
        first, last = parse_month(args.first), parse_month(args.last)
        if first > last:
            raise CliError(f"--from {args.first} is after --to {args.last}")
        return [month_key(month) for month in month_range(first, last)]
    return []


def _check_possible(months: list[str], as_of: str) -> None:
    """Before any work: a month no data can make a partition (before 2000, after the current month)."""
    from sahel_pipeline.core.vintages import current_day
    from sahel_pipeline.defs.partitions import impossible_months

    why = impossible_months(months, current_day(as_of))
    if why:
        raise CliError(why)


def _check_partitions(months: list[str], runner) -> None:
    """After the ingest: months are partitions from the first one the data can score to the current month; a month
    before that is refused before it is scored."""
    from sahel_pipeline.defs.partitions import month_partitions

    keys = month_partitions(runner.instance)
    outside = sorted(set(months) - set(keys))
    if outside and not keys:
        raise CliError(f"month {outside[0]} cannot be scored: the data are too short to score any month")
    if outside:
        raise CliError(f"month {outside[0]} is outside the months the data can score, {keys[0]} to {keys[-1]}")


def _check_as_of(args: argparse.Namespace) -> None:
    """Before any work: the vintage exists, its files are intact, and the past week goes to a folder of its own."""
    from sahel_pipeline.core.vintages import VintageError, files_at

    if not args.out_given:
        raise CliError("--as-of recomputes a past week: give --out DIR, a folder apart from the current outputs")
    try:
        files_at([Path(p).expanduser() for p in (args.raw or ["data/raw"])], args.as_of)
    except VintageError as err:
        raise CliError(str(err)) from None


def _runner(args: argparse.Namespace, evaluation=None):
    raw = args.raw or []
    for path in raw:
        if not Path(path).exists():
            raise CliError(f"raw data path does not exist: {path}")
    if getattr(args, "months", 1) < 1:
        raise CliError("--months must be at least 1")
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    home = os.environ.get("DAGSTER_HOME")
    if home and not Path(home).is_dir():
        raise CliError(f"DAGSTER_HOME is set to {home}, which is not a folder: create it or unset DAGSTER_HOME")

    from sahel_pipeline.runlog import ProgressLines
    from sahel_pipeline.runner import Runner

    return Runner(
        raw,
        Path(args.out),
        workers=args.workers,
        backtest_months=getattr(args, "months", BACKTEST_MONTHS),
        as_of=getattr(args, "as_of", None) or "",
        evaluation=evaluation,
        progress=ProgressLines(),
        verbose=args.verbose,
    )


def _latest_complete_month(settings) -> str:
    import polars as pl

    from sahel_pipeline.core.months import month_key
    from sahel_pipeline.core.panels import last_complete_month

    panel = pl.read_parquet(settings.warehouse / "country_month_panel.parquet")
    if panel.height == 0:
        raise CliError("no events were ingested: nothing to score", EXIT_FAILED)
    return month_key(last_complete_month(panel))


def _print_run_summary(upstream: dict, out: Path, notified: dict[str, Notified | None]) -> None:
    import polars as pl

    if upstream["synthetic"]:
        print(
            f"SYNTHETIC: {upstream['synthetic_files']} of {upstream['files']} input files are synthetic, not real data"
        )
    replaced = upstream.get("replaced_ucdp_events") or 0
    by_ged = f", {replaced:,} UCDP events replaced by GED" if replaced else ""
    print(
        f"events: {upstream['events']:,} from {upstream['files']} files ({upstream['rows_read']:,} rows read, "
        f"{upstream['quarantined_rows']:,} quarantined, {upstream['revised_events']:,} revised, "
        f"{upstream['deleted_events']:,} deleted{by_ged})"
    )
    if upstream.get("vintage"):
        print(f"data vintage: {upstream['vintage']} (input digest {upstream['input_digest']})")
    for month, notes in notified.items():
        report = out / "reports" / f"{month}.html"
        if pl.read_csv(out / "forecasts" / f"{month}.csv", infer_schema=False).height == 0:  # one row per scored series
            print(
                f"{month}: no series could be scored (no data for the month, or too short a history); report: {report}"
            )
        else:
            alerts = pl.read_csv(out / "alerts" / f"{month}.csv", infer_schema=False)
            by = dict(alerts.group_by("severity").len().iter_rows())
            counts = ", ".join(f"{by.get(s, 0)} {s}" for s in ("high", "medium", "low"))
            print(f"{month}: {alerts.height} alerts ({counts}); report: {report}")
        if notes is not None:
            _print_notified(month, notes)


def _print_notified(month: str, notes: Notified) -> None:
    print(f"{month}: notifications: {notes.summary}" + (f": {notes.outbox}" if notes.outbox else ""))
    if notes.problems:
        print(f"{month}: notifications: not all delivered: {notes.problems}", file=sys.stderr)


# --- alerts ---------------------------------------------------------------------------------------------------------


def command_alerts(args: argparse.Namespace) -> int:
    import polars as pl

    month = _written_month(Path(args.out), args.month)
    # The Parquet twin holds the values as written (the CSV's text cells are made safe for spreadsheets).
    print(format_alerts(pl.read_parquet(Path(args.out) / "alerts" / f"{month}.parquet"), month))
    return 0


def _written_month(out: Path, month: str | None) -> str:
    """The month asked for, or the latest with alerts written under `out`; an error when there are none."""
    folder = out / "alerts"
    if month and not is_month_key(month):
        raise CliError(f"bad month '{month}': expected YYYY-MM, e.g. 2023-10")
    written = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not written:
        raise CliError(f"no alerts written under {folder}: run `sahel run` first", EXIT_FAILED)
    path = folder / f"{month}.csv" if month else written[-1]
    if not path.exists():
        months = ", ".join(p.stem for p in written[-6:])
        raise CliError(f"no alerts for {month} under {folder} (written: {months})", EXIT_FAILED)
    return path.stem


def format_alerts(alerts: pl.DataFrame, month: str, width: int = 100) -> str:
    """A header row and one aligned row per alert (columns as wide as their longest value), its sentence below.
    Expected counts and rate ratios are rounded as the sentence rounds them. Data are printed without control
    characters (text.terminal_text), so a name holding escape sequences cannot drive the terminal, and long names are
    shortened."""
    import polars as pl

    from sahel_pipeline.core.alerts import alert_subject, count_text, ratio_text

    if alerts.height == 0:
        return f"{month}: no alerts."

    def figures(row: dict, text: dict) -> list:
        kind, indicator = row.get("kind") or "count", text["indicator"]
        subject = {"count": indicator, "new_actor": alert_subject(kind, indicator)}.get(
            kind, f"{alert_subject(kind, indicator, text.get('place'))} ({indicator})"
        )
        if row["expected"] is None:  # a group new in the country, a distance trend: no expected count
            return [subject, row["observed"], "", ""]
        ratio = f"{ratio_text(float(row['rate_ratio']))}x" if row["rate_ratio"] else "inf" if kind == "count" else ""
        return [subject, row["observed"], count_text(float(row["expected"])), ratio]

    rows = []
    for row in alerts.iter_rows(named=True):
        text = {k: terminal_text(v, limit=40) for k, v in row.items() if k != "explanation"}
        rows.append(
            [text["severity"].upper(), text["status"], text["source"], text["country"], text["group"] or "(country)",
             *figures(row, text | {"indicator": _with_others(text["indicator"], row.get("indicators"))})]
        )
    header = ["severity", "status", "source", "country", "group", "indicator", "observed", "expected", "rate ratio"]
    table = text_table(header, rows, right=range(6, 9)).splitlines()
    synthetic = "synthetic" in alerts.columns and bool(
        (alerts["synthetic"].cast(pl.String).str.to_lowercase() == "true").any()
    )
    lines = [f"{month}: {alerts.height} alerts" + (" (SYNTHETIC data, not real)" if synthetic else ""), "", table[0]]
    reasons = alerts["severity_reason"] if "severity_reason" in alerts.columns else [None] * alerts.height
    for line, sentence, reason in zip(table[1:], alerts["explanation"], reasons, strict=True):
        lines.append(line)
        explanation = terminal_text(sentence, limit=2000)
        lines += textwrap.wrap(explanation, width=width, initial_indent="    ", subsequent_indent="    ")
        if reason:
            why = f"Severity {terminal_text(reason, limit=400)}"
            lines += textwrap.wrap(why, width=width, initial_indent="    ", subsequent_indent="    ")
        lines.append("")
    return "\n".join(lines)


def _with_others(indicator: str, indicators: str | None) -> str:
    """The alert's indicator, and how many more of the unit's indicators rose with it: "events (+2)"."""
    others = len(indicators.split(", ")) - 1 if indicators else 0
    return f"{indicator} (+{others})" if others else indicator


# --- notify ---------------------------------------------------------------------------------------------------------


def command_notify(args: argparse.Namespace) -> int:
    from sahel_pipeline.defs.resources import DeliverySettings
    from sahel_pipeline.runner import Runner

    out = Path(args.out)
    month = _written_month(out, args.month)
    if not (out / "warehouse" / "escalation_alerts" / f"{month}.parquet").exists():
        raise CliError(f"no alerts stored for {month} under {out}: run `sahel run --month {month}` first", EXIT_FAILED)
    runner = Runner([], out, delivery=DeliverySettings(dry_run=True if args.dry_run else None))
    _check_partitions([month], runner)
    notes = runner.materialize_notifications(month)
    if notes is None:
        raise CliError(f"the notifications of {month} did not run", EXIT_FAILED)
    _print_notified(month, notes)
    return EXIT_FAILED if notes.problems else 0


def text_table(header: list[str], rows: list[list], right: Container[int] = ()) -> str:
    """Columns padded to their widest cell; the columns in `right` (numbers) aligned right."""
    cells = [header, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = (
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def frame_table(frame: pl.DataFrame) -> str:
    """A Polars frame as a plain table: whole numbers with thousands separators, fractions to two decimals."""
    import polars as pl

    def show(value: object) -> str:
        if isinstance(value, bool) or value is None:
            return "" if value is None else str(value).lower()
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.2f}"
        return str(value)

    numeric = [i for i, dtype in enumerate(frame.dtypes) if dtype.is_numeric() and dtype != pl.Boolean]
    return text_table(
        frame.columns,
        [[show(v) for v in row] for row in frame.iter_rows()],
        right=set(numeric),
    )


# --- backtest -------------------------------------------------------------------------------------------------------


def command_backtest(args: argparse.Namespace) -> int:
    import polars as pl

    from sahel_pipeline.core.backtest import BASELINES

    runner = _runner(args)
    runner.materialize_upstream()
    runner.materialize_backtest()
    folder = runner.settings.output_path / "backtest"
    by_horizon = ["level", "horizon", "forecasts", "crps_model", *(f"crps_{b}" for b in BASELINES),
                  "log_score_model", "pit50", "pit80", "pit95"]
    for title, name, columns in (
        ("Forecasts against the baselines, by horizon", "by_horizon", by_horizon),
        ("Alerts per series-year", "alert_rates", None),
        ("Known escalation episodes", "episodes", None),
    ):
        table = pl.read_csv(folder / f"{name}.csv")
        # names from the data, printed without control characters
        table = table.with_columns(pl.col(pl.String).map_elements(terminal_text, return_dtype=pl.String))
        table = table.select(columns) if columns else table.drop("description", strict=False)
        print(f"{title} ({name}.csv):\n{frame_table(table)}\n")
    print(f"backtest tables: {folder}")
    print(f"log: {runner.log_path}")
    return 0


# --- fetch ----------------------------------------------------------------------------------------------------------


class ProgressLine:
    """Pages and rows of a pull on one line of stderr: rewritten in place on a terminal, a line per ten pages in a
    log."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.open = False

    def __call__(self, event) -> None:
        of = f"/{event.pages}" if event.pages is not None else ""
        total = f" of {event.total:,}" if event.total is not None else ""
        text = f"{event.provider} {event.query}: page {event.page}{of}, {event.rows:,}{total} rows"
        done = event.pages is not None and event.page >= event.pages
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if done else ""))
            self.open = not done
        elif event.page == 1 or event.page % 10 == 0 or done:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.open = False


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _pull_folder(raw: str) -> Path:
    folder = Path(raw).expanduser()
    if folder.is_file():
        raise CliError(f"--raw must be a folder to pull into, not a file: {raw}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pull(client, pull):
    """Run a pull with its progress line; a FetchError becomes the one-line error of a failed command."""
    from sahel_pipeline.core.fetch.http import FetchError

    progress = ProgressLine()
    with client:
        try:
            return pull(progress)
        except FetchError as err:
            raise CliError(str(err), EXIT_FAILED) from None
        finally:
            progress.close()


def command_fetch_acled(args: argparse.Namespace) -> int:
    from sahel_pipeline.core.fetch.acled import ACLED_URL, AcledClient, AcledCredentials, check_countries, pull_acled
    from sahel_pipeline.core.fetch.http import FetchError

    try:
        since = dt.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise CliError(f"bad date '{args.since}' for --since: expected YYYY-MM-DD, e.g. 2017-01-01") from None
    credentials = AcledCredentials(os.environ.get("ACLED_EMAIL", "").strip(), os.environ.get("ACLED_PASSWORD", ""))
    if not credentials.complete:
        raise CliError(
            "ACLED_EMAIL and ACLED_PASSWORD must hold your myACLED login (see the README, 'Pulling from the APIs')"
        )
    try:
        check_countries(args.country)
    except FetchError as err:
        raise CliError(str(err)) from None
    client = AcledClient(credentials, os.environ.get("SAHEL_ACLED_API_URL") or ACLED_URL, log=_log)
    result = _pull(
        client, lambda progress: pull_acled(_pull_folder(args.raw), client, args.country, since, progress=progress)
    )
    wrote = ", ".join(str(p) for p in (result.events_file, result.deletions_file) if p) or "no file (nothing changed)"
    print(f"ACLED: {result.rows_written:,} new or revised events, {result.deletions_written:,} deletions: {wrote}")
    print(f"vintage: {result.vintage.id if result.vintage else 'none'}")
    return 0


def command_fetch_ucdp(args: argparse.Namespace) -> int:
    from sahel_pipeline.core.fetch.http import FetchError
    from sahel_pipeline.core.fetch.ucdp import UCDP_URL, UcdpClient, country_codes, pull_ucdp, version_kind

    token = os.environ.get("UCDP_API_TOKEN", "").strip()
    if not token:
        raise CliError("UCDP_API_TOKEN must hold your UCDP API token (see the README, 'Pulling from the APIs')")
    try:
        for version in args.version:
            version_kind(version)
        country_codes(args.country)
    except FetchError as err:
        raise CliError(str(err)) from None
    client = UcdpClient(token, os.environ.get("SAHEL_UCDP_API_URL") or UCDP_URL, log=_log)
    result = _pull(
        client,
        lambda progress: pull_ucdp(_pull_folder(args.raw), client, args.version, args.country, progress=progress),
    )
    if result.vintage is None:
        print("UCDP: every version asked is held already for these countries: nothing pulled")
        return 0
    wrote = ", ".join(str(p) for p in result.files) or "no file"
    print(
        f"UCDP: {result.rows_written:,} events; replaced by GED: {result.replaced:,} Candidate events, "
        f"{result.replaced_ged:,} of earlier GED versions: {wrote}"
    )
    print(f"vintage: {result.vintage.id}")
    return 0


def command_vintages(args: argparse.Namespace) -> int:
    from sahel_pipeline.core.vintages import read_vintages

    found = read_vintages(Path(args.raw).expanduser())
    if not found:
        raise CliError(f"no pull recorded under {args.raw} (`sahel fetch` records one per pull)", EXIT_FAILED)
    for vintage in found:
        record = vintage.record
        newest = record.get("newest_timestamp")
        if isinstance(newest, int):
            newest = f"{dt.datetime.fromtimestamp(newest, dt.UTC):%Y-%m-%d %H:%M} UTC"
        print(
            f"{vintage.id:<32} {vintage.provider:<5} {record.get('rows', 0):>9,} rows  newest {newest or '-'}  "
            f"{len(vintage.holdings)} files held"
        )
    return 0


# --- evaluate -------------------------------------------------------------------------------------------------------


def command_evaluate(args: argparse.Namespace) -> int:
    import polars as pl

    from sahel_pipeline.core.evaluation.run import EvaluationConfig
    from sahel_pipeline.defs.resources import EvaluationSettings

    for value in (args.first, args.last):
        if value is not None and not is_month_key(value):
            raise CliError(f"bad month '{value}': expected YYYY-MM, e.g. 2020-12")
    given = {"series": args.series, "years": args.years, "seed": args.seed, "target_fars": args.target_far,
             "real_first": args.first, "real_last": args.last}
    given = {k: v for k, v in given.items() if v is not None}
    if args.no_r:
        given["use_r"] = False
    settings = EvaluationSettings(**given)
    try:
        settings.config(EvaluationConfig().model)  # the checks a run would make, before any work
    except ValueError as err:
        raise CliError(str(err)) from None
    runner = _runner(args, evaluation=settings)
    runner.materialize_upstream()
    runner.materialize_evaluation()
    folder = runner.settings.output_path / "evaluation"
    summary = frame_table(pl.read_csv(folder / "summary.csv"))
    print(f"Detectors at matched false-alarm rates (summary.csv):\n{summary}\n")
    detectors = pl.read_csv(folder / "detectors.csv")
    for name, status in detectors.filter(pl.col("status") != "ran").select("name", "status").iter_rows():
        print(f"{name}: {status}")
    print(f"evaluation tables and methods page: {folder} (methods.html)")
    print(f"log: {runner.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
