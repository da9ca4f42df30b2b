"""The report as one typed document: a list of blocks (heading, paragraph, list, table, figure, card, banner, ...)
that `render.py` writes as HTML and as Markdown. Everything the report says is decided here, once.

Its order: the synthetic banner (when an input is), the title, the provenance (when generated, by which version, on
which data, and the sources' attribution), the month in one sentence, what changed since the previous month, one card
per group x country alerted (why its severity, each indicator's figures with their windows, the sentence to paste,
its plot and map, where the rise is, its largest recent events), the forecasts, the data quality, and the methods
with the detector evaluation's headline figures.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import polars as pl

import sahel_pipeline.core.report.plots as plots
from sahel_pipeline.core.alerts import SPATIAL_KINDS, chance_alerts, count_text
from sahel_pipeline.core.cards import SYNTHETIC_NOTICE, AlertCard, Rise, plot_name, severity_counts
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import month_label, shift_month, window_start
from sahel_pipeline.core.report.plots import Figure, Plot
from sahel_pipeline.core.report.selection import (
    PLOTTED_CARDS,
    Changes,
    ReportInputs,
    admin1_table,
    baseline_mean,
    card_events,
    card_map,
    forecast_table,
    largest_events,
    matching,
    modelled_series,
    recent_total,
)
from sahel_pipeline.core.tables import Cell, plain
from sahel_pipeline.core.vintages import vintage_date

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from sahel_pipeline.core.spatial import AlertMap

BREAK_BEARS_MONTHS = 12  # a break is mentioned on a card when it is this recent: older ones are in the expectation
EVALUATION_PAGE = "../evaluation/methods.html"  # from reports/, where `sahel evaluate` writes the methods page
EVALUATION_COLUMNS = {
    "detector": "detector",
    "setting": "setting",
    "stable_alerts_per_series_year": "false alerts per series-year (stable)",
    "x3_within_2": "tripling found within 2 months",
    "x2_within_2": "doubling found within 2 months",
    "regime_within_2": "rise after a high regime found",
    "renamed_alerts": "alerts on a renamed force",
    "renamed_alerts_from_break": "of which the break brings",
}
# Attribution as the sources' terms ask: ACLED a citation with a link, the access date and the filters used; UCDP
# its datasets' introducing articles.
ACLED_CITATION = "Armed Conflict Location & Event Data (ACLED), https://acleddata.com."
UCDP_CITATION = (
    "Uppsala Conflict Data Program (UCDP), https://ucdp.uu.se: the Georeferenced Event Dataset (Sundberg and Melander "
    "2013, Journal of Peace Research) and the Candidate Events Dataset (Hegre et al. 2020, Research & Politics)."
)


# --- blocks ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    style: str = ""  # lead | note | why | quote: how it stands out


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    before: str = ""  # plain text before the link, in the same paragraph


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]
    style: str = ""


@dataclass(frozen=True)
class Table:
    frame: pl.DataFrame
    caption: str = ""
    cell: Cell = plain  # how a value is written


@dataclass(frozen=True)
class Picture:
    figure: Figure


@dataclass(frozen=True)
class Banner:
    text: str


@dataclass(frozen=True)
class Card:
    card: AlertCard
    body: tuple[Block, ...]


Block = Heading | Paragraph | Link | Bullets | Table | Picture | Banner | Card


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]

    @property
    def figures(self) -> list[Figure]:
        return [b.figure for c in self.blocks if isinstance(c, Card) for b in c.body if isinstance(b, Picture)]


# --- the report -----------------------------------------------------------------------------------------------------


def report_document(
    inputs: ReportInputs,
    cards: list[AlertCard],
    changed: Changes | None,
    earlier: dict[str, bytes] | None = None,
    executor: Executor | None = None,
) -> Document:
    """The month's report. Its plots are planned first, then drawn together (on `executor`'s workers when given,
    see plots.drawn_figures); a plot whose inputs digest is in `earlier` is taken from there, not drawn again."""
    month = month_label(inputs.month)
    blocks: list[Block] = [Banner(SYNTHETIC_NOTICE)] if inputs.synthetic else []
    blocks += [Heading(f"Escalation alerts, {month}", 1), *provenance_blocks(inputs)]
    blocks.append(Paragraph(summary_sentence(inputs, cards), "lead"))
    blocks += change_blocks(inputs.month, changed)
    events = [card_events(inputs.events, card) for card in cards]
    planned = [
        card_plots(inputs, card, position, its_events) if position <= PLOTTED_CARDS else []
        for position, (card, its_events) in enumerate(zip(cards, events, strict=True), 1)
    ]
    drawn = iter(plots.drawn_figures([plot for its_plots in planned for plot in its_plots], earlier or {}, executor))
    for card, its_events, its_plots in zip(cards, events, planned, strict=True):
        figures = tuple(next(drawn) for _ in its_plots)
        blocks.append(Card(card, card_body(inputs, card, its_events, figures)))
    if not cards:
        blocks.append(Paragraph("No escalation alert this month.", "none"))
    blocks += forecast_blocks(inputs, cards)
    blocks += quality_blocks(inputs)
    blocks += method_blocks(inputs)
    return Document(f"Escalation alerts, {month}", tuple(blocks))


def pipeline_version() -> str:
    try:
        return version("sahel-pipeline")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


def provenance_blocks(inputs: ReportInputs) -> list[Block]:
    """When, by what, on which data, and whose data: on the first screen."""
    quality = inputs.data_quality
    files = quality.get("files")
    vintage = str(quality.get("data_vintage", ""))
    pulled = vintage if not vintage.startswith("none") else ""
    items = [
        f"Generated {inputs.generated:%-d %B %Y, %H:%M} UTC by sahel_pipeline {pipeline_version()}.",
        f"Data: {files if files is not None else 'no'} input file{'s' if files != 1 else ''}; "
        + (f"pull {pulled}." if pulled else "not one pull of `sahel fetch` (files as given)."),
    ]
    reach = inputs.reach if inputs.reach is not None else pl.DataFrame()
    if reach.height:
        items.append(
            "Last event date: "
            + "; ".join(f"{s} {c} {last:%-d %b %Y}" for s, c, _, last in reach.select(
                "source", "country", "first_day", "last_day").iter_rows())  # fmt: skip
            + "."
        )
    sources = set(reach["source"].to_list()) if reach.height else set()
    accessed = f"accessed {vintage_date(pulled):%-d %B %Y}" if pulled else "access date not recorded (not pulled)"
    for source, citation in (("ACLED", ACLED_CITATION), ("UCDP", UCDP_CITATION)):
        if source in sources:
            of = reach.filter(pl.col("source") == source)
            filters = (
                f"countries {', '.join(of['country'].to_list())}; events from "
                f"{min(of['first_day'].to_list()):%-d %b %Y} to {max(of['last_day'].to_list()):%-d %b %Y}"
            )
            items.append(f"{source} data: {citation} Used here: {filters}; {accessed}.")
    return [Bullets(tuple(items), "provenance")]


def summary_sentence(inputs: ReportInputs, cards: list[AlertCard]) -> str:
    month = month_label(inputs.month)
    if not cards and modelled_series(inputs.scores) == 0:
        # Silence here is not calm: a month the data do not reach yet (or too early to model) must not read as one.
        reach = ", ".join(
            f"{key.removesuffix('_data_reach')} to {value}"
            for key, value in inputs.data_quality.items()
            if key.endswith("_data_reach")
        )
        return (
            f"No series could be scored for {month}, so its lack of alerts says nothing: every series "
            f"lacks data for the month or the history a model needs (the data reach {reach or 'no month'})."
        )
    if not cards:
        return f"No escalation alert for {month}: no series rose above its expected range."
    new = sum(c.status == "new" for c in cards)
    rows = sum(len(c.indicators) for c in cards)
    judged, crossed, chance = chance_alerts(inputs.scores, inputs.config)
    return (
        f"{len(cards)} escalation alert{'s' if len(cards) != 1 else ''} for {month} ({severity_counts(cards)}), "
        f"over {rows} indicator{'s' if rows != 1 else ''} that rose; {new} new, {len(cards) - new} continuing from "
        f"the month before. {crossed} of the {judged} series judged crossed a rule; {chance_words(chance)} would by "
        "chance alone, at the rules' levels."
    )


def chance_words(chance: float) -> str:
    """How many of the month's series would cross a rule by chance, as a reader says it: 'about 3', or 'fewer than
    one' where a rounded 'about 0' would read as none at all."""
    return "fewer than one" if chance < 1 else f"about {chance:.0f}"


def change_blocks(month: dt.date, changed: Changes | None) -> list[Block]:
    before = month_label(shift_month(month, -1))
    if changed is None:
        return [
            Heading(f"What changed since {before}"),
            Paragraph(
                f"No alert table is stored for {before} in this output folder, so this month's alerts cannot be "
                f"compared with the ones sent then. (An alert's 'new' or 'continuing' comes from the data: whether "
                f"the series was already above its range in {before}.)",
                "note",
            ),
        ]
    name = lambda c: f"{c.unit} ({c.severity})"  # noqa: E731
    items = [
        f"{label} ({len(group)}): {', '.join(name(c) for c in group) if group else 'none'}"
        for label, group in (("New", changed.new), ("Continuing", changed.continuing), ("Ended", changed.ended))
    ]
    return [Heading(f"What changed since {before}"), Bullets(tuple(items), "changes")]


def card_body(
    inputs: ReportInputs, card: AlertCard, events: pl.DataFrame, figures: tuple[Figure, ...]
) -> tuple[Block, ...]:
    """A card: why, its figures, the sentence to paste, its plots (`figures`, drawn with the report's others), where
    and its largest events (`events`: card_events)."""
    config = inputs.config
    body: list[Block] = [Paragraph(f"Why {card.severity_reason}", "why")]
    if card.place:
        body.append(Paragraph(f"Place: {card.place}."))
    body += [Paragraph(rise_text(inputs, card, rise)) for rise in card.rises if rise.kind == "count"]
    body.append(Paragraph(card.sentence, "quote"))
    body += [Picture(f) for f in figures]
    where = admin1_table(inputs.admin1.filter(*matching(card, card.indicator)), inputs.month, config)
    if where.height:
        body.append(Table(where, f"Where ({card.rises[0].label if card.rises else card.indicator_label}):"))
    largest = largest_events(events, inputs.month, config)
    if largest.height:
        # An approach card's events are those behind it (feeds.spatial_alert_events): its month's, near its place.
        when = (
            f"near {card.place} in {month_label(inputs.month)}"
            if card.kind == "approach"
            else f"of the last {config.recent_months} months"
        )
        body.append(Table(largest, f"Largest events {when}:"))
    return tuple(body)


def rise_text(inputs: ReportInputs, card: AlertCard, rise: Rise) -> str:
    """One indicator's figures, each with its window, saying what the expectation is made of."""
    config, month = inputs.config, inputs.month
    rows = inputs.scores.filter(*matching(card, rise.indicator))
    score = rows.row(0, named=True) if rows.height else {}
    history = inputs.history.filter(*matching(card, rise.indicator))
    first, split = window_start(month, config.window_months), window_start(month, config.recent_months)
    baseline_span = f"{first:%b %Y}-{shift_month(split, -1):%b %Y}"
    recent_span = f"{split:%b %Y}-{month:%b %Y}"
    mean = baseline_mean(history, month, config)
    text = f"{rise.label.capitalize()}: {rise.observed} in {month_label(month)}"
    if rise.expected is not None:
        made_of = f"the series' recent level before the last {config.recent_months} months"
        text += (
            f", against {count_text(rise.expected)} expected for the month ({made_of}; "
            f"{config.bound_quantile:.1%} bound {rise.upper})."
        )
    if mean is not None:
        text += (
            f" The baseline, {baseline_span} ({config.baseline_months} months), averaged {count_text(mean)} a month."
        )
    if score.get("rate_ratio_method") == "exact" and score.get("baseline_sum") is not None:
        total = recent_total(history, month, config)
        text += (
            f" The last {config.recent_months} months, {recent_span}, hold {total} against {score['baseline_sum']} "
            "in the baseline: too few before for a rate ratio to mean much."
        )
    elif rise.rate_ratio is not None and math.isfinite(rise.rate_ratio):
        total = recent_total(history, month, config)
        text += (
            f" The last {config.recent_months} months, {recent_span}, hold {total} ({total / config.recent_months:.1f}"
            f" a month): {rise.rate_ratio:.1f}x [{rise.rate_ratio_low:.1f}-{rise.rate_ratio_high:.1f}] the "
            "baseline's rate."
        )
    broke, label = score.get("break_month"), score.get("break_label")
    if broke is not None and label and broke >= shift_month(month, -BREAK_BEARS_MONTHS + 1):
        sentence = score.get("break_sentence")
        text += f" {label} ({month_label(broke)}) falls within the last {BREAK_BEARS_MONTHS} months"
        text += f": {sentence}." if sentence else "."
    return text


def card_plots(inputs: ReportInputs, card: AlertCard, position: int, events: pl.DataFrame) -> list[Plot]:
    """The plots of a card, planned (drawn with the report's others): its series, and its map."""
    config = inputs.config
    planned: list[Plot] = []
    # A spatial alert's indicator is no panel series (events within a ring, a distance): its figure is the map.
    if card.kind not in SPATIAL_KINDS and (
        card.kind != "new_actor" or inputs.history.filter(*matching(card, card.indicator)).height
    ):
        rows = inputs.scores.filter(*matching(card, card.indicator))
        score = rows.row(0, named=True) if rows.height else {"month": inputs.month, "indicator": card.indicator}
        history = inputs.history.filter(*matching(card, card.indicator))
        forecasts = inputs.forecasts.filter(*matching(card, card.indicator))
        breaks = tuple((b.date, b.label) for b in config.breaks if b.country == card.country)
        title = f"{card.unit} ({card.source}): {card.indicator_label}"
        alt = plots.series_alt(card.unit, card.indicator, history, score, forecasts, config)
        planned.append(plots.series_plot(plot_name(position), title, alt, history, score, forecasts, config, breaks))
    drawn_map = card_map(inputs.maps, card) if card.kind in SPATIAL_KINDS else None
    if drawn_map is not None:
        planned.append(spatial_map_plot(card, position, drawn_map))
    elif events.height:
        split = window_start(inputs.month, config.recent_months)
        recent, baseline = events.filter(pl.col("event_date") >= split), events.filter(pl.col("event_date") < split)
        places = (
            inputs.places.filter(pl.col("country") == card.country) if inputs.places is not None else pl.DataFrame(
                schema={"name": pl.String, "kind": pl.String, "latitude": pl.Float64, "longitude": pl.Float64})
        )  # fmt: skip
        title = f"{card.unit}: events, {split:%b %Y}-{inputs.month:%b %Y} against the baseline"
        shown = places.select("name", "kind", "latitude", "longitude")
        # what the map draws (a revision of an event's date within its window or of its admin1 leaves it as it was)
        drawn = (recent.select(plots.MAP_EVENT_COLUMNS), baseline.select(plots.MAP_EVENT_COLUMNS), shown)
        digest = plots.plot_digest(*drawn, title)
        alt = plots.map_alt(card.unit, recent, *drawn[1:])  # the words name the recent events' admin1 too
        planned.append(
            Plot(f"{plot_name(position)}-map", title, plots.plot_map, (*drawn, title), alt, plots.MAP_CAPTION, digest)
        )
    return planned


def spatial_map_plot(card: AlertCard, position: int, drawn: AlertMap) -> Plot:
    """A spatial alert's map from its map record: the unit's located events of the baseline and recent windows, the
    country's places, and the rings around the alert's place."""
    event_schema = {"latitude": pl.Float64, "longitude": pl.Float64, "fatalities": pl.Int64}

    def frame(events: tuple) -> pl.DataFrame:
        rows = [{k: getattr(e, k) for k in event_schema} for e in events]
        return pl.DataFrame(rows, schema=event_schema)

    places = pl.DataFrame(
        [{"name": p.name, "kind": p.kind, "latitude": p.latitude, "longitude": p.longitude} for p in drawn.places],
        schema={"name": pl.String, "kind": pl.String, "latitude": pl.Float64, "longitude": pl.Float64},
    )
    ring = (drawn.place.latitude, drawn.place.longitude, drawn.rings_km) if drawn.place else None
    around = f" around {drawn.place.name}" if drawn.place else ""
    title = f"{card.unit}: events{around}"
    inputs = (frame(drawn.recent), frame(drawn.baseline), places)
    digest = plots.plot_digest(*inputs, title, ring)
    alt = plots.map_alt(card.unit, *inputs, (drawn.place.name, drawn.rings_km) if drawn.place else None)
    if drawn.imprecise:
        alt = alt.removesuffix(".") + f"; {drawn.imprecise} imprecisely located events are not on the map."
    caption = plots.MAP_CAPTION + plots.RING_CAPTION
    return Plot(f"{plot_name(position)}-map", title, plots.plot_map, (*inputs, title, ring), alt, caption, digest)


def forecast_blocks(inputs: ReportInputs, cards: list[AlertCard]) -> list[Block]:
    table = forecast_table(inputs, cards)
    return [
        Heading("Forecasts"),
        Paragraph(
            "The alerted series and every country's, one row each: the median count for each of the next three "
            "months, with its 80% interval in brackets (the 95% one and months four to six are in "
            f"forecasts/{inputs.month:%Y-%m}.csv).",
            "note",
        ),
        Table(table),
    ]


def quality_blocks(inputs: ReportInputs) -> list[Block]:
    items = tuple(
        f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')}: {v}"
        for k, v in inputs.data_quality.items()
    )
    blocks: list[Block] = [Heading("Data quality"), Bullets(items)]
    if inputs.quarantine_reasons.height:
        blocks.append(Table(inputs.quarantine_reasons, "Quarantine reasons:"))
    return blocks


def method_blocks(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("How alerts are raised"), Paragraph(method_note(inputs.config))]
    evaluation = inputs.evaluation
    if evaluation is not None and evaluation.height and "detector" in evaluation.columns:
        shown = evaluation.filter(pl.col("detector").is_in(["sahel", "oracle"])).select(
            [pl.col(c).alias(label) for c, label in EVALUATION_COLUMNS.items() if c in evaluation.columns]
        )
        blocks += [
            Paragraph(
                "How well the rule works, from the detector evaluation on simulated series with known truth "
                "(`sahel`: this rule; `oracle`: a detector that knows each series' true distribution):"
            ),
            Table(shown.with_columns(pl.col(pl.Float64).round(3))),
        ]
    else:
        blocks.append(
            Paragraph(
                "The detector evaluation (this rule against an oracle and the standard detectors, on simulated "
                "series with known truth and on real series) has not been run for this output folder: "
                "`sahel evaluate` writes it; the README's section 'Detector evaluation' gives its figures.",
                "note",
            )
        )
    blocks.append(Link("the detector evaluation's methods page", EVALUATION_PAGE, "Details: "))
    return blocks


def method_note(config: ModelConfig) -> str:
    return (
        "Each series (a group's, or a country's, monthly count of one indicator) is compared with its recent level: "
        f"the level it kept up to the last {config.recent_months} months, which follows the series (no trend from an "
        "earlier phase is extrapolated), with the month-to-month noise around it (earlier outbreaks count as one "
        "month's evidence each). A month is above its range when its count reaches the indicator's minimum and has "
        f"less than a {config.alert_p:.1%} chance under that level; a rise is sustained when the last "
        f"{config.recent_months} months' total has less than a {config.sustained_p:.2%} chance under it (and the "
        "month itself reaches the minimum and its expected count); after a dated break (a coup, a new regime "
        f"period) the months since it are compared with the {config.break_before_months} months before it, at a "
        f"{config.break_p:.2%} chance. Severity counts how many of these hold, and how strongly (a chance under "
        f"{config.strong_p:.1%}): three or more points high, two medium, one low; high also needs a "
        f"false-discovery-adjusted q-value below {config.high_q:g} among the month's series. One alert is raised "
        "per group (or country) and month, for its strongest indicator, the others listed. Groups are alerted when "
        f"they are of an armed type ({', '.join(config.alerted_types)}); protests and riots are judged per country. "
        f"A group with no event in the country in the {config.new_actor_quiet_months} months before it appeared is "
        f"reported as new once it has {config.new_actor_min_events} events there, not compared with its empty past."
    )
