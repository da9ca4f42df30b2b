"""The evaluation's methods page: what was simulated, which detectors ran and how, and the tables, as Markdown and as
one self-contained HTML page. A document of the report's blocks (`report/document.py`), written by its renderers
(`report/render.py`), so that the page's text and tables are made data-safe as the report's are."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from sahel_pipeline.core.evaluation import metrics
from sahel_pipeline.core.evaluation.surveillance import QUIRKS
from sahel_pipeline.core.report import render
from sahel_pipeline.core.report.document import Block, Bullets, Document, Heading, Paragraph, Table

if TYPE_CHECKING:
    from sahel_pipeline.core.evaluation.run import EvaluationResult

TITLE = "Detector evaluation"


def methods_document(result: EvaluationResult) -> Document:
    c, t = result.config, result.tables
    targets = ", ".join(f"{x:.2%}".replace(".00%", "%") for x in c.target_fars)

    def table(frame: pl.DataFrame) -> Table:
        return Table(frame, cell=cell)

    blocks: list[Block] = [
        Heading(TITLE, 1),
        Paragraph(
            f"Run {result.finished:%Y-%m-%d %H:%M} UTC in {result.seconds:.0f} s: {c.series} series per scenario "
            f"(seed {c.seed}), stable series judged over {c.years} years, thresholds also matched to {targets} of "
            f"months, event counts on the stable event series and fatalities on the stable fatality series. Real "
            f"data: {result.real_data or 'the panels given'}, judged from "
            f"{c.real_first:%Y-%m} to {c.real_last:%Y-%m}."
        ),
        Heading("Summary"),
        Paragraph(
            "Alerts per series-year on stable series (target: at most 0.12 per indicator), share of planted rises "
            "detected within two months, and alerts on the renamed state force, at each detector's own settings and at "
            "the matched false-alarm rate. The renamed force's rate never changes, so every alert on it is false: "
            "its alerts by chance are those on the same counts without the break date (`renamed_unbroken`), and "
            "the target is none beyond them (`renamed_alerts_from_break`)."
        ),
        table(t["summary"]),
        Heading("How the figures are computed"),
        Bullets(tuple(_items(metrics.__doc__))),
        Heading("Scenarios"),
        Paragraph(
            "Every series has a 39-month burn-in no detector is judged on, then months whose truth is known. "
            "Counts are negative binomial (variance mu + alpha mu^2); fatalities are events times heavy-tailed "
            "deaths per event."
        ),
        table(result.scenarios),
        Heading("Detectors"),
        table(t["detectors"].select("name", "label", "status", "description", "note", "seconds")),
        Heading("Quirks of R surveillance found on the way"),
        Bullets(tuple(QUIRKS)),
        Heading("Thresholds"),
        table(t["thresholds"]),
        Heading("False alarms"),
        Paragraph("In-control months of every scenario (all strata), then the stable series by stratum."),
        table(_rows(t["false_alarms"], pl.col("stratum") == "all")),
        table(_rows(t["false_alarms"], pl.col("stratum") != "all")),
        Heading("Detection of planted rises"),
        table(t["detection"]),
        Heading("P-values on stable series"),
        table(t["pvalues"]),
    ]
    if "real_alert_rates" in t:
        blocks += [Heading("Real data: alerts per series-year"), table(t["real_alert_rates"])]
    if "episodes" in t:
        blocks += [
            Heading("Real data: known episodes"),
            Paragraph(
                "Flagged when any indicator of the episode's series alarms from three months before its first "
                "month to its last; lead = months before the first month."
            ),
            table(t["episodes"]),
        ]
    return Document(TITLE, tuple(blocks))


def _rows(frame: pl.DataFrame, condition: pl.Expr) -> pl.DataFrame:
    return frame.filter(condition) if frame.height else frame


def _items(docstring: str | None) -> list[str]:
    """The "- " items of a docstring, each on one line."""
    items: list[str] = []
    for line in (docstring or "").splitlines():
        text = line.strip()
        if text.startswith("- "):
            items.append(text[2:])
        elif text and items:
            items[-1] += " " + text
    return [item.replace("**", "") for item in items]


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) < 0.001 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def render_markdown(result: EvaluationResult) -> str:
    return render.render_markdown(methods_document(result), image_dir="")  # the page has no pictures


def render_html(result: EvaluationResult) -> str:
    return render.render_html(methods_document(result), CSS)


# Wider than the report's page: the evaluation's tables have many columns.
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:1200px;margin:0 auto;padding:1.5rem 1.2rem 4rem}
h1{font-size:1.6rem} h2{font-size:1.15rem;margin-top:2rem} p,li{line-height:1.45}
.scroll{overflow-x:auto;margin:.8rem 0}
table{border-collapse:collapse;font-size:.8rem;background:#fff}
th,td{border-bottom:1px solid #e5e5e5;padding:.2rem .4rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}
"""
