"""Hostile names through every output: each case of the corpus (hostile.py) must be inert in the alerts CSV, JSON,
the report's Markdown and HTML, the terminal and the Dagster UI's Markdown metadata, and shown as text."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import unicodedata
from html.parser import HTMLParser

import dagster as dg
import polars as pl
import pytest

from sahel_pipeline.cli import main
from sahel_pipeline.core.months import month_key
from sahel_pipeline.core.report.document import EVALUATION_PAGE
from sahel_pipeline.runner import Runner
from sahel_pipeline_tests.hostile import HOSTILE_NAMES, MONTH, write_hostile_export

KEY = month_key(MONTH)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
RISING = {"events", "violent_events", "fatalities"}  # what each hostile group's month raises (hostile.py)


class Page(HTMLParser):
    """The tags, attributes and text of an HTML document."""

    def __init__(self, document: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: list[list[int]] = []  # per table, the cells of each row
        self.feed(document)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append(0)
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


LINKS = {EVALUATION_PAGE}  # the only link the report writes: to the detector evaluation's methods page


def inert_page(page: Page, allowed: set[str]) -> list[str]:
    """What in a page is not inert: a tag we do not write, an event-handler attribute, a link, a non-embedded image,
    or a table whose rows have different numbers of cells (a `|` or a line break taken as structure)."""
    problems = [f"tag <{tag}>" for tag, _ in page.tags if tag not in allowed]
    problems += [
        f"link to {attrs.get('href')}" for tag, attrs in page.tags if tag == "a" and attrs.get("href") not in LINKS
    ]
    problems += [f"attribute {name} on <{tag}>" for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    problems += [
        f"image {attrs.get('src', '')[:40]}"
        for tag, attrs in page.tags
        if tag == "img" and not (attrs.get("src") or "").startswith(("data:image/png;base64,", f"{KEY}/alert"))
    ]
    return problems


DIRECTION_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(name: str) -> str:
    """What a reader must see of a name: its characters without controls (line breaks as spaces, escape sequences'
    ESC, NUL and direction overrides gone), spaces collapsed."""
    spaced = "".join(" " if c in "\t\n\r" else c for c in name)
    kept = "".join(c for c in spaced if unicodedata.category(c) != "Cc" and c not in DIRECTION_CONTROLS)
    return " ".join(kept.split())


def shown(name: str, text: str) -> bool:
    """The name is shown as text (a long one may be shortened)."""
    return visible(name)[:60] in text


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    raw = write_hostile_export(root / "raw").parent
    out = root / "out"
    # an instance of its own: the metadata read below is this run's only, not the session's other runs'
    runner = Runner([str(raw)], out, workers=1, instance=dg.DagsterInstance.ephemeral())
    runner.materialize_upstream()
    runner.materialize_month(KEY)
    metadata = []
    for run in runner.instance.get_runs():
        for entry in runner.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            event = entry.dagster_event
            assert event is not None
            metadata += [
                value.value for value in event.step_materialization_data.materialization.metadata.values()
                if isinstance(value, dg.MarkdownMetadataValue)
            ]
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        assert main(["alerts", "--out", str(out)]) == 0
    alerts = pl.read_parquet(out / "alerts" / f"{KEY}.parquet")
    groups = set(alerts["group_name"])
    missing = [case for case, name in HOSTILE_NAMES.items() if name.strip() not in groups]
    assert not missing, f"these cases raised no alert, so they would not be tested: {missing}"
    return out, metadata, terminal.getvalue(), alerts


def verdicts(hostile_run) -> dict[tuple[str, str], list[str]]:
    """(case, output) -> what was not inert there (empty: held)."""
    out, metadata, terminal, alerts = hostile_run
    results: dict[tuple[str, str], list[str]] = {}

    with open(out / "alerts" / f"{KEY}.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    numeric = {name for name, dtype in alerts.schema.items() if dtype.is_numeric()}
    document = json.loads((out / "alerts" / f"{KEY}.json").read_text(encoding="utf-8"))
    markdown = Page(_render_markdown((out / "reports" / f"{KEY}.md").read_text(encoding="utf-8")))
    page = Page((out / "reports" / f"{KEY}.html").read_text(encoding="utf-8"))
    ui = [Page(_render_markdown(md)) for md in metadata]
    ui_text = " ".join(p.all_text for p in ui)

    # the tags the report writes itself (the synthetic banner: a bold quote in Markdown, a div in HTML)
    markdown_tags = {"h1", "h2", "p", "img", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "em",
                     "blockquote", "strong", "a"}
    html_tags = markdown_tags | {"html", "head", "meta", "title", "style", "body", "main", "section", "span", "figure",
                                 "figcaption", "div"}
    common = {
        "Markdown": inert_page(markdown, markdown_tags) + _ragged(markdown),
        "HTML": inert_page(page, html_tags) + _ragged(page),
        "Dagster metadata": [p for u in ui for p in inert_page(u, {"table", "thead", "tbody", "tr", "th", "td", "p",
                                                                   "em", "img"}) + _ragged(u)],
    }
    for case, name in HOSTILE_NAMES.items():
        kept = name.strip()  # values padded with blanks are stripped at ingest (documented)
        rows = [r for r in table if r["group_name"].lstrip("'") == kept or r["group_name"] == kept]
        csv_problems = [f"{column} = {value[:30]!r}" for r in rows for column, value in r.items()
                        if column not in numeric and value.startswith(FORMULA_STARTS)]
        # one alert per group and month: the rise shows on events, violent events and fatalities, listed in it
        if len(rows) != 1:
            csv_problems.append(f"{len(rows)} rows instead of 1")
        elif set(rows[0]["indicators"].split(", ")) != RISING:
            csv_problems.append(f"indicators {rows[0]['indicators']!r} instead of {sorted(RISING)}")
        results[(case, "CSV")] = csv_problems
        in_json = [a for a in document["alerts"] if a["group_name"] == kept]
        results[(case, "JSON")] = [] if len(in_json) == 1 else ["not kept as written"]
        for output, where in (("Markdown", markdown.all_text), ("HTML", page.all_text), ("Dagster metadata", ui_text)):
            results[(case, output)] = common[output] + ([] if shown(kept, where) else ["not shown as text"])
        controls = [c for c in terminal if c != "\n" and unicodedata.category(c) in ("Cc", "Cf") and c != "\u200b"]
        results[(case, "terminal")] = [f"control character {c!r}" for c in set(controls)] + (
            [] if shown(kept[:39], terminal) else ["not shown"]
        )
    return results


def _render_markdown(text: str) -> str:
    mistune = pytest.importorskip("mistune")  # installed with Great Expectations
    return mistune.html(text)


def _ragged(page: Page) -> list[str]:
    """Tables whose rows do not all have the header's number of cells."""
    return [f"a table with rows of {sorted(set(rows))} cells" for rows in page.tables if len(set(rows)) > 1]


@pytest.mark.slow
def test_every_hostile_name_is_inert_in_every_output(hostile_run):
    results = verdicts(hostile_run)
    failed = {key: problems for key, problems in results.items() if problems}
    assert len(results) == len(HOSTILE_NAMES) * 6
    assert not failed, f"{len(failed)} of {len(results)} (case, output) pairs did not hold: {failed}"


@pytest.mark.slow
def test_formulas_are_quoted_in_the_csv_and_kept_in_json_and_parquet(hostile_run):
    out, _, _, alerts = hostile_run
    written = pl.read_csv(out / "alerts" / f"{KEY}.csv", infer_schema=False)
    name = HOSTILE_NAMES["formula ="]
    assert f"'{name}" in written["group_name"].to_list()
    assert name in alerts["group_name"].to_list()
    assert json.loads((out / "alerts" / f"{KEY}.json").read_text())["alerts"][0]["group_name"] is not None
    # numbers are left alone: a negative number in a numeric column is not quoted
    from sahel_pipeline.core.text import spreadsheet_safe

    frame = pl.DataFrame({"group_name": ["-2+3 Militia", "ok"], "rate_ratio": [-1.5, 2.0]})
    assert spreadsheet_safe(frame).rows() == [("'-2+3 Militia", -1.5), ("ok", 2.0)]


@pytest.mark.slow  # draws four plots: matplotlib's import and drawing take over a second
def test_plot_titles_are_text_not_tex():
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.report.plots import SeriesSettings, plot_series

    history = pl.DataFrame({"month": [MONTH], "count": [3]})
    score = {"month": MONTH, "indicator": "events", "expected": 1.0, "upper": 4, "days_covered": 31}
    forecasts = pl.DataFrame(schema={"target_month": pl.Date, "median": pl.Int64, "lo80": pl.Int64,
                                     "hi80": pl.Int64, "lo95": pl.Int64, "hi95": pl.Int64})
    for name in (HOSTILE_NAMES["tex"], r"$\frac{1}{$ unbalanced", HOSTILE_NAMES["very long"], "x^2_{y}$"):
        png = plot_series(history, score, forecasts, SeriesSettings.of(ModelConfig()), f"{name} - Niger (ACLED)")
        assert png.startswith(b"\x89PNG")


def test_markdown_text_leaves_no_syntax_and_keeps_the_words():
    from sahel_pipeline.core.text import markdown_text

    pytest.importorskip("mistune")
    for name in HOSTILE_NAMES.values():
        page = Page(_render_markdown(f"| a |\n|---|\n| {markdown_text(name)} |\n\n{markdown_text(name)}\n"))
        assert inert_page(page, {"table", "thead", "tbody", "tr", "th", "td", "p"}) == []
        assert _ragged(page) == []
        assert visible(name) in page.all_text
