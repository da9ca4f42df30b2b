"""The monthly alert report: a self-contained HTML page and a Markdown twin, with matplotlib plots.

For each alert, most severe first: its sentence, the series over the last four years (observed counts, the
baseline expectation, the 99% bound for the month, the baseline and recent windows shaded, the next six months'
forecast with 80% and 95% intervals, which widen with the horizon), and a table of the admin1 units where the rise
happened. Then the forecasts of the alerted series and of every country, and a data-quality section (events read,
quarantined, revised, deleted).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sahel_pipeline.core.alerts import admin1_rise, alert_subject
from sahel_pipeline.core.cards import SYNTHETIC_NOTICE, plot_name
from sahel_pipeline.core.imports import wait_for_import
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import days_in_month, index_month, month_index, month_key, month_label, window_start
from sahel_pipeline.core.panels import INDICATOR_LABELS
from sahel_pipeline.core.series import SERIES_KEY, long_admin1, long_series
from sahel_pipeline.core.storage import UNREADABLE, Log, discarded, is_whole_png, written_aside
from sahel_pipeline.core.tables import html_table, markdown_table
from sahel_pipeline.core.text import html_text, markdown_text, plot_text
from sahel_pipeline.core.vintages import provenance

HISTORY_MONTHS = 48
PLOTTED_ALERTS = 12  # the most severe alerts get a plot; the others are listed with their sentence and table
PLOT_CAPTION = (
    "Grey bars: monthly counts. Blue line: the model's expectation over the baseline (grey) and recent (orange) "
    "windows. Red tick: the month's 99% bound. Blue dots and bars: the next six months' forecast, median with 80% "
    "(dark) and 95% (light) intervals."
)
SEVERITY_COLOURS = {"high": "#b2182b", "medium": "#ef8a62", "low": "#f4c542"}


@dataclass
class ReportInputs:
    month: dt.date
    alerts: pl.DataFrame  # the analysts' alert table
    scores: pl.DataFrame  # every series' score at the month (with alert columns)
    forecasts: pl.DataFrame  # every modelled series' forecasts
    history: pl.DataFrame  # SERIES_KEY + month + count, for the alerted series and every country
    admin1: pl.DataFrame  # SERIES_KEY + month + admin1 + count, for the alerted series
    data_quality: dict[str, int | str]
    quarantine_reasons: pl.DataFrame  # column, reason, rows
    config: ModelConfig
    synthetic: bool = False  # any input file synthetic: the report says so first


def series_history(
    group_panel: pl.LazyFrame, country_panel: pl.LazyFrame, wanted: pl.DataFrame, month: dt.date
) -> pl.DataFrame:
    """Counts of the wanted series (SERIES_KEY columns) over the HISTORY_MONTHS up to `month`, long format."""
    history = long_series(
        group_panel, country_panel, list(INDICATOR_LABELS), first=window_start(month, HISTORY_MONTHS), last=month
    )
    return history.join(wanted.lazy().select(SERIES_KEY).unique(), on=SERIES_KEY, nulls_equal=True).collect()


def admin1_history(
    admin1_panel: pl.LazyFrame, wanted: pl.DataFrame, month: dt.date, config: ModelConfig
) -> pl.DataFrame:
    first = window_start(month, config.window_months)
    return (
        long_admin1(admin1_panel.filter(pl.col("month").is_between(first, month)))
        .join(wanted.lazy().select(SERIES_KEY).unique(), on=SERIES_KEY, nulls_equal=True)
        .collect()
    )


def reported_series(alerts: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """The series a report plots and tabulates (SERIES_KEY): the alerted ones and every country's."""
    return pl.concat(
        [alert_series(alerts).select(SERIES_KEY), scores.filter(pl.col("level") == "country").select(SERIES_KEY)],
        how="vertical_relaxed",
    )


def data_quality(ingest_summary: pl.DataFrame, country_month_panel: pl.LazyFrame) -> dict[str, int | str]:
    """The report's data-quality figures: what the ingest read and kept, the vintage of the data, and the last day each
    source's data reach."""
    figures = ingest_summary.row(0, named=True) if ingest_summary.height else {}
    quality: dict[str, int | str] = {
        key: int(figures[key])
        for key in (
            "files",
            "rows_read",
            "events",
            "quarantined_rows",
            "revised_events",
            "deleted_events",
            "replaced_ucdp_events",
            "overlapping_rows",
        )
        if key in figures
    }
    if not quality.get("replaced_ucdp_events"):  # said only where pulled UCDP versions replaced others
        quality.pop("replaced_ucdp_events", None)
    data = provenance(ingest_summary)
    quality["data_vintage"] = data["vintage"] or (
        "none recorded (the files were not pulled by `sahel fetch`, or changed since the last pull)"
    )
    if data["input_digest"]:
        quality["input_digest"] = data["input_digest"]
    # said only when it happened: paths under the raw folders that could not be read, files gone since the last run
    quality |= {key: int(figures[key]) for key in ("unreadable_paths", "vanished_files") if figures.get(key)}
    last_day = pl.col("month").dt.offset_by(pl.format("{}d", pl.col("days_covered") - 1))
    ends = (
        country_month_panel.select("source", last_day=last_day)
        .group_by("source")
        .agg(pl.col("last_day").max())
        .sort("source")
        .collect()
    )
    for source, last in ends.iter_rows():
        quality[f"{source}_data_reach"] = f"{last:%-d %B %Y}"
    return quality


def quarantine_reasons(quarantine: pl.LazyFrame, top: int = 10) -> pl.DataFrame:
    """The most frequent quarantine reasons: column, reason, rows."""
    return (
        quarantine.group_by("column", "reason")
        .agg(pl.len().alias("rows"))
        .sort("rows", descending=True)
        .head(top)
        .collect()
    )


def modelled_series(scores: pl.DataFrame) -> int:
    """Series that were scored (not skipped as sparse or without data for the month)."""
    return scores.filter(pl.col("model") != "skipped").height if "model" in scores.columns else 0


def alert_series(alerts: pl.DataFrame) -> pl.DataFrame:
    """The series key of each alert row (level from whether a group is named)."""
    return alerts.with_columns(
        level=pl.when(pl.col("group") == "").then(pl.lit("country")).otherwise(pl.lit("group")),
        group_id=pl.when(pl.col("group") == "").then(pl.lit(None, pl.String)).otherwise(pl.col("group")),
    )


# --- plots ----------------------------------------------------------------------------------------------------------


PLOTTING_MODULES = ("matplotlib.pyplot",)  # what the first plot imports (_pyplot)


def _pyplot():
    """matplotlib, imported when the first plot is drawn (a second of import the other stages need not pay)."""
    wait_for_import(PLOTTING_MODULES[0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return buffer.getvalue()


def plot_series(history: pl.DataFrame, score: dict, forecasts: pl.DataFrame, config: ModelConfig, title: str) -> bytes:
    """Observed counts, baseline expectation, 99% bound at the month, windows, and the next months' forecast.

    The x axis counts months (labelled by hand): matplotlib's date axis costs half the time of a plot.
    """
    month = score["month"]
    m = month_index(month)
    history = history.sort("month")
    x = [month_index(d) for d in history["month"]]
    counts = history["count"].to_list()
    fig, ax = _pyplot().subplots(figsize=(7.5, 2.7))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.12)  # fixed margins: automatic layout doubles the cost
    # One line collection instead of a patch per month, and no legend (the caption says what is what): a third of
    # the cost of a plot.
    ax.vlines(x, 0, counts, color="#4d4d4d", lw=6.5, zorder=2)
    baseline_start, recent_start = m - config.window_months + 0.5, m - config.recent_months + 0.5
    ax.axvspan(baseline_start, recent_start, color="#ececec", zorder=0)
    ax.axvspan(recent_start, m + 0.5, color="#fde0c5", zorder=0)
    expected = score.get("expected")
    if expected is not None and not math.isnan(expected):
        trend = score.get("trend_per_year") or 1.0
        line = list(range(m - config.window_months + 1, m + 1))
        full_month_expected = expected / max(score.get("days_covered", 31) / days_in_month(month), 1e-9)
        ax.plot(line, [full_month_expected * trend ** ((i - m) / 12) for i in line], color="#2166ac", lw=1.8, zorder=3)
        ax.plot([m], [score["upper"]], marker="_", markersize=18, mew=2.5, color="#b2182b", ls="none", zorder=4)
    top = max([*counts, score.get("upper") or 0])
    if forecasts.height:
        f = forecasts.sort("target_month")
        fx = [month_index(d) for d in f["target_month"]]
        ax.vlines(fx, f["q025"].to_list(), f["q975"].to_list(), color="#92c5de", lw=6, zorder=2)
        ax.vlines(fx, f["q10"].to_list(), f["q90"].to_list(), color="#2166ac", lw=2, zorder=3)
        ax.plot(fx, f["q50"].to_list(), "o", color="#2166ac", markersize=4, zorder=4)
        top = max(top, *f["q975"].to_list())
    ticks = [i for i in range(min(x, default=m), m + config.horizons + 1) if i % 12 in (0, 6)]
    ax.set_xticks(ticks, [f"{index_month(i):%b %Y}" for i in ticks])
    # Data are text, not TeX: a name holding `$\foo$` is drawn as typed, not parsed as maths (which could fail).
    ax.set_title(plot_text(title), fontsize=10, loc="left", parse_math=False)
    ax.set_ylabel(INDICATOR_LABELS.get(score["indicator"], score["indicator"]), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, top * 1.1 + 1)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def admin1_table(admin1: pl.DataFrame, month: dt.date, config: ModelConfig, rows: int = 6) -> pl.DataFrame:
    """Recent-window count per admin1 unit against what the baseline rate would give (admin1_rise), largest rise
    first."""
    return (
        admin1_rise(admin1, [], pl.col("month") >= window_start(month, config.recent_months), config)
        .filter((pl.col("recent") > 0) | (pl.col("at_baseline_rate") >= 0.5))
        .sort("rise", "admin1", descending=[True, False])  # ties in a fixed order: the same data, the same report
        .head(rows)
        .with_columns(pl.col("at_baseline_rate", "rise").round(1))
        .rename({"recent": f"last {config.recent_months} months", "at_baseline_rate": "at the baseline rate"})
    )


# --- documents ------------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str
    digest: str  # of the plot's inputs (plot_digest)


@dataclass
class AlertSection:
    alert: dict
    figures: list[Figure]
    where: pl.DataFrame  # admin1 units, largest rise first


def build_sections(inputs: ReportInputs, earlier_plots: dict[str, bytes] | None = None) -> list[AlertSection]:
    """The alerts' sections; a plot whose inputs digest is in `earlier_plots` is taken from there, not drawn again."""
    earlier_plots = earlier_plots or {}
    sections = []
    keyed = alert_series(inputs.alerts)
    for n, alert in enumerate(keyed.iter_rows(named=True), 1):
        key = {k: alert[k] for k in SERIES_KEY}
        match = [pl.col(k).eq_missing(pl.lit(v, dtype=pl.String)) for k, v in key.items()]
        where = admin1_table(inputs.admin1.filter(*match), inputs.month, inputs.config)
        if n > PLOTTED_ALERTS:
            sections.append(AlertSection(alert, [], where))
            continue
        score_rows = inputs.scores.filter(*match)
        score = (
            score_rows.row(0, named=True)
            if score_rows.height
            else {"month": inputs.month, "indicator": alert["indicator"]}
        )
        title = f"{alert['group_name'] or alert['country']} - {alert['country']} ({alert['source']})"
        plotted = (inputs.history.filter(*match), score, inputs.forecasts.filter(*match), inputs.config, title)
        digest = plot_digest(*plotted)
        png = earlier_plots.get(digest) or plot_series(*plotted)
        sections.append(AlertSection(alert, [Figure(plot_name(n), png, PLOT_CAPTION, digest)], where))
    return sections


# Part of every plot's digest: change it when plot_series draws differently, so that no earlier plot is reused.
PLOT_VERSION = "2"


def plot_digest(history: pl.DataFrame, score: dict, forecasts: pl.DataFrame, config: ModelConfig, title: str) -> str:
    """Digest of everything plot_series draws from: equal digests, equal plots. A weekly run redraws only the plots
    whose series changed (each costs about a tenth of a second)."""
    drawn = (
        PLOT_VERSION,
        history.sort("month").rows(),
        sorted(score.items()),
        forecasts.sort(forecasts.columns).rows(),
        repr(config),
        title,
    )
    return hashlib.blake2b(repr(drawn).encode(), digest_size=16).hexdigest()


def _forecast_table(inputs: ReportInputs) -> pl.DataFrame:
    alerted = alert_series(inputs.alerts).select(SERIES_KEY).unique()
    country_series = inputs.forecasts.filter(pl.col("level") == "country").select(SERIES_KEY).unique()
    wanted = pl.concat([alerted, country_series]).unique()
    if inputs.forecasts.height == 0:
        return inputs.forecasts
    return (
        inputs.forecasts.join(wanted, on=SERIES_KEY, nulls_equal=True)
        .with_columns(
            series=pl.coalesce(pl.col("group_name"), pl.lit("(all groups)")),
            target=pl.col("target_month").dt.strftime("%b %Y"),
        )
        .sort(
            "source",
            "country",
            "level",
            "series",
            "indicator",
            "horizon",
            descending=[False, False, True, False, False, False],
        )
        .select(
            "source", "country", "series", "indicator", "target", median="q50",
            **{"80% from": "q10", "80% to": "q90", "95% from": "q025", "95% to": "q975"},
        )
    )


def render_markdown(inputs: ReportInputs, sections: list[AlertSection], image_dir: str) -> str:
    month = month_label(inputs.month)
    lines = [f"# Escalation alerts, {month}", ""]
    if inputs.synthetic:
        lines += [f"> **{SYNTHETIC_NOTICE}**", ""]
    lines += [markdown_text(_summary_sentence(inputs)), ""]
    for section in sections:
        a = section.alert
        subject = alert_subject(a["kind"], a["indicator"])
        lines += [
            f"## [{a['severity']}, {a['status']}] {markdown_text(a['group_name'] or a['country'])} - "
            f"{markdown_text(a['country'])} - {markdown_text(subject)}",
            "",
            markdown_text(a["explanation"]),
            "",
        ]
        lines += [f"![{f.caption}]({image_dir}/{f.name}.png)" for f in section.figures] + [""]
        if section.where.height:
            lines += ["Where:", "", markdown_table(section.where), ""]
    lines += ["## Forecasts", "", markdown_table(_forecast_table(inputs)), ""]
    lines += [
        "## Data quality",
        "",
        *[
            f"- {k.replace('_', ' ')}: {v:,}" if isinstance(v, int) else f"- {k.replace('_', ' ')}: {markdown_text(v)}"
            for k, v in inputs.data_quality.items()
        ],
        "",
    ]
    if inputs.quarantine_reasons.height:
        lines += ["Quarantine reasons:", "", markdown_table(inputs.quarantine_reasons), ""]
    lines += ["## How alerts are raised", "", _method_note(inputs.config), ""]
    return "\n".join(lines)


def render_html(inputs: ReportInputs, sections: list[AlertSection]) -> str:
    month = month_label(inputs.month)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Escalation alerts, {month}</title>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<style>{_CSS}</style></head><body>",
        *([f"<div class='synthetic' role='alert'>{html_text(SYNTHETIC_NOTICE)}</div>"] if inputs.synthetic else []),
        "<main>",
        f"<h1>Escalation alerts, {month}</h1>",
        f"<p class='lead'>{html_text(_summary_sentence(inputs))}</p>",
    ]
    for section in sections:
        a = section.alert
        colour = SEVERITY_COLOURS.get(a["severity"], "#999")
        parts.append("<section class='alert'>")
        parts.append(
            f"<h2><span class='badge' style='background:{colour}'>{html_text(a['severity'])}</span>"
            f"<span class='status'>{html_text(a['status'])}</span> {html_text(a['group_name'] or a['country'])} - "
            f"{html_text(a['country'])} - {html_text(alert_subject(a['kind'], a['indicator']))}</h2>"
        )
        parts.append(f"<p class='explanation'>{html_text(a['explanation'])}</p>")
        for figure in section.figures:
            data = base64.b64encode(figure.png).decode()
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html_text(figure.caption)}'>"
                f"<figcaption>{html_text(figure.caption)}</figcaption></figure>"
            )
        if section.where.height:
            parts.append("<p class='where'>Where:</p>" + html_table(section.where))
        parts.append("</section>")
    if not sections:
        parts.append("<p class='none'>No escalation alert this month.</p>")
    parts.append("<h2>Forecasts</h2>" + html_table(_forecast_table(inputs)))
    parts.append(
        "<h2>Data quality</h2><ul>"
        + "".join(
            f"<li>{html_text(k.replace('_', ' '))}: {v:,}</li>"
            if isinstance(v, int)
            else f"<li>{html_text(k.replace('_', ' '))}: {html_text(v)}</li>"
            for k, v in inputs.data_quality.items()
        )
        + "</ul>"
    )
    if inputs.quarantine_reasons.height:
        parts.append("<p>Quarantine reasons:</p>" + html_table(inputs.quarantine_reasons))
    parts.append(f"<h2>How alerts are raised</h2><p>{html_text(_method_note(inputs.config))}</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(inputs: ReportInputs, out_dir: Path, warn: Log = print) -> dict[str, Path]:
    """Write reports/<YYYY-MM>.html (self-contained) and reports/<YYYY-MM>.md with its plots in reports/<YYYY-MM>/.

    Everything is rendered first, then written aside and renamed into place together: a run that fails on the way
    (a full disk) leaves the month's earlier report whole, its pages and plots."""
    key = month_key(inputs.month)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_dir = out_dir / key
    image_dir.mkdir(exist_ok=True)
    sections = build_sections(inputs, _earlier_plots(image_dir, warn))
    figures = [figure for section in sections for figure in section.figures]
    index = {figure.digest: f"{figure.name}.png" for figure in figures}
    html_path, md_path = out_dir / f"{key}.html", out_dir / f"{key}.md"
    pages = {html_path: render_html(inputs, sections), md_path: render_markdown(inputs, sections, key)}
    with written_aside() as aside:
        for figure in figures:
            aside(image_dir / f"{figure.name}.png").write_bytes(figure.png)
        aside(image_dir / PLOT_INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")
        for path, page in pages.items():
            aside(path).write_text(page, encoding="utf-8")
    # An earlier report of the month may have had more alerts: its extra plots would be mistaken for this one's.
    for stale in set(image_dir.glob("*.png")) - {image_dir / name for name in index.values()}:
        stale.unlink()
    paths = {"html": html_path, "markdown": md_path, "plots": image_dir}
    return paths | ({"first_plot": image_dir / f"{figures[0].name}.png"} if figures else {})


PLOT_INDEX = "plots.json"  # beside the plots: the digest of each one's inputs


def _earlier_plots(image_dir: Path, warn: Log) -> dict[str, bytes]:
    """The plots an earlier report of the month drew, by digest. A plot that is not a whole PNG (or an index that is
    not JSON) is discarded with a warning, and drawn again."""
    index_path = image_dir / PLOT_INDEX
    if not index_path.exists():
        return {}
    try:
        index = {str(digest): str(name) for digest, name in json.loads(index_path.read_text(encoding="utf-8")).items()}
    except UNREADABLE as err:
        discarded(index_path, err, "every plot of the month is drawn again", warn)
        return {}
    plots = {}
    for digest, name in index.items():
        path = image_dir / Path(name).name
        try:
            png = path.read_bytes()
        except OSError:
            continue  # removed since: drawn again
        if is_whole_png(png):
            plots[digest] = png
        else:
            discarded(path, ValueError("not a whole PNG"), "the plot is drawn again", warn)
    return plots


def _summary_sentence(inputs: ReportInputs) -> str:
    alerts = inputs.alerts
    if alerts.height == 0 and modelled_series(inputs.scores) == 0:
        # Silence here is not calm: a month the data do not reach yet (or too early to model) must not read as one.
        reach = ", ".join(
            f"{key.removesuffix('_data_reach')} to {value}"
            for key, value in inputs.data_quality.items()
            if key.endswith("_data_reach")
        )
        return (
            f"No series could be scored for {month_label(inputs.month)}, so its lack of alerts says nothing: "
            "every series "
            f"lacks data for the month or the history a model needs (the data reach {reach or 'no month'})."
        )
    if alerts.height == 0:
        return f"No escalation alert for {month_label(inputs.month)}: no series rose above its expected range."
    severity = dict(alerts.group_by("severity").len().iter_rows())
    new = alerts.filter(pl.col("status") == "new").height
    parts = ", ".join(f"{severity[s]} {s}" for s in ("high", "medium", "low") if s in severity)
    return (
        f"{alerts.height} escalation alert{'s' if alerts.height != 1 else ''} for {month_label(inputs.month)} "
        f"({parts}); "
        f"{new} new, {alerts.height - new} continuing from the month before."
    )


def _method_note(config: ModelConfig) -> str:
    return (
        f"Each series is compared with a count model fitted on the {config.baseline_months} months before the last "
        f"{config.recent_months} (negative binomial, or Poisson when the counts are not overdispersed; earlier "
        "outbreaks down-weighted; a trend kept only when significant and not extrapolating). A month is above its "
        f"range when its count reaches the indicator's minimum and the model gives it less than a {config.alert_p:.0%} "
        f"chance; a rise is sustained when the lower end of the {config.recent_months}-month rate ratio's 95% "
        f"interval is at least {config.rr_alert_low}. Severity counts how many of these hold, and how strongly. "
        f"Groups are alerted when they are of an armed type ({', '.join(config.alerted_types)}); "
        "protests and riots are judged per country. A group with no event in the country in the "
        f"{config.new_actor_quiet_months} months before it appeared is reported as new once it has "
        f"{config.new_actor_min_events} events there, not compared with its empty past."
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:920px;margin:0 auto;padding:1.5rem 1.2rem 4rem}
h1{font-size:1.6rem;margin-bottom:.3rem} h2{font-size:1.15rem;margin-top:2rem}
.lead{font-size:1.05rem;color:#444}
section.alert{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:.6rem 1rem 1rem;margin:1.2rem 0}
section.alert h2{margin-top:.4rem}
.badge{color:#fff;border-radius:4px;padding:.1rem .45rem;font-size:.8rem;margin-right:.4rem;text-transform:uppercase}
.status{font-size:.8rem;color:#666;margin-right:.5rem}
.explanation{font-size:1rem;line-height:1.45}
figure{margin:.6rem 0} figure img{max-width:100%} figcaption{font-size:.8rem;color:#666}
table{border-collapse:collapse;font-size:.85rem;width:100%;background:#fff}
th,td{border-bottom:1px solid #e5e5e5;padding:.25rem .4rem;text-align:left}
th{background:#f0f0f0}
.where{font-size:.85rem;color:#444;margin-bottom:.2rem}
.synthetic{background:#7a0019;color:#fff;font-weight:600;padding:.6rem 1.2rem;text-align:center}
.none{font-size:1.05rem;background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:1rem}
"""
