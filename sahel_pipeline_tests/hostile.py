"""A corpus of hostile armed-group names, and an ACLED export in which each of them escalates (so that each reaches
every output: the alerts CSV, JSON and Parquet, the report's Markdown and HTML and plots, the terminal, the Dagster
UI's metadata). Hand-made; no real data. The README's Reliability section lists the cases and what each must give."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from sahel_pipeline.core.months import month_range, shift_month

# case -> name. Each name is one armed group's actor name.
HOSTILE_NAMES = {
    "script tag": "<script>alert('sahel')</script> Brigade",
    "html attribute": '<img src=x onerror="alert(1)"> Front',
    "markdown table": "Group | with | pipes",
    "markdown syntax": "**Bold** _Front_ [click](javascript:alert(1)) ![x](http://x/y.png) `code`",
    "markdown heading": "# Heading Front",
    "line breaks": "Line one\nLine two\r\nLine three",
    "tex": r"$\foo$ Movement $x^2$",
    "terminal escapes": "\x1b[31mRed\x1b[0m Army\x1b]0;pwned\x07\x1b[2J",
    "formula =": '=HYPERLINK("http://evil.example","Click")',
    "formula +": "+1+2 Militia",
    "formula -": "-2+3 Militia",
    "formula @": "@SUM(A1:A9) Militia",
    "formula tab": "\t=1+1 Militia",
    "very long": "Very Long Name " * 400,
    "right-to-left override": "Normal \u202eesrever\u202c Group",
    "zero width and arabic": "Jama\u200bat \u062c\u0645\u0627\u0639\u0629",
    "NUL": "Nul\x00Byte Group",
    "entity": "&lt;b&gt;Entity &amp;Co",
}

# inter1 2 is ACLED's rebel group: every hostile name is typed as an armed group, whose series are alerted.
HEADER = [
    "event_id_cnty", "event_date", "event_type", "sub_event_type", "actor1", "inter1", "actor2", "inter2", "country",
    "admin1", "location", "latitude", "longitude", "fatalities", "timestamp",
]
MONTH = dt.date(2024, 5, 1)  # the month every group escalates in


def write_hostile_export(folder: Path) -> Path:
    """Each hostile group: one event a month for four years, then twelve in MONTH, in Niger."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "acled_hostile_SYNTHETIC.csv"
    rows = []
    for g, name in enumerate(HOSTILE_NAMES.values()):
        months = month_range(shift_month(MONTH, -48), shift_month(MONTH, -1))
        days = [m + dt.timedelta(days=g % 20) for m in months] + [MONTH + dt.timedelta(days=d) for d in range(12)]
        for n, day in enumerate(days):
            rows.append([f"HST{g}-{n}", day.isoformat(), "Battles", "Armed clash", name, "2",
                         "Military Forces of Niger", "1", "Niger", "Tillaberi", "Ayorou", "14.7", "0.9", "1",
                         "1715000000"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path
