"""The monthly alert report: one self-contained HTML page and a Markdown twin, with matplotlib plots and maps.

Split along its seams: `selection.py` chooses what the report shows from the pipeline's frames, `plots.py` draws
(and caches) the plots and maps, `document.py` decides what the report says as one typed document, and `render.py`
writes that document as HTML and as Markdown. `write_report` puts them together and writes the files.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor
from pathlib import Path

from sahel_pipeline.core.cards import alert_cards
from sahel_pipeline.core.months import month_key
from sahel_pipeline.core.report.document import report_document
from sahel_pipeline.core.report.plots import PLOT_INDEX, earlier_plots
from sahel_pipeline.core.report.render import render_html, render_markdown
from sahel_pipeline.core.report.selection import ReportInputs, changes
from sahel_pipeline.core.storage import Log, written_aside

__all__ = ["ReportInputs", "write_report"]


def write_report(
    inputs: ReportInputs, out_dir: Path, warn: Log = print, executor: Executor | None = None
) -> dict[str, Path]:
    """Write reports/<YYYY-MM>.html (self-contained) and reports/<YYYY-MM>.md with its plots in reports/<YYYY-MM>/.

    The plots not kept from an earlier run of the month are drawn on `executor`'s workers when given (the fitting
    pool's: idle by the time the report is written), else in this process; the files are the same either way.

    Everything is rendered first, then written aside and renamed into place together: a run that fails on the way
    (a full disk) leaves the month's earlier report whole, its pages and plots."""
    key = month_key(inputs.month)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_dir = out_dir / key
    image_dir.mkdir(exist_ok=True)
    cards = alert_cards(inputs.alerts)
    previous = alert_cards(inputs.previous_alerts) if inputs.previous_alerts is not None else None
    document = report_document(
        inputs,
        cards,
        changes(cards, previous) if previous is not None else None,
        earlier_plots(image_dir, warn),
        executor,
    )
    figures = document.figures
    index = {figure.digest: f"{figure.name}.png" for figure in figures}
    html_path, md_path = out_dir / f"{key}.html", out_dir / f"{key}.md"
    pages = {html_path: render_html(document), md_path: render_markdown(document, key)}
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
