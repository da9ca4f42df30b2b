"""What the report shows, chosen from the pipeline's frames: the series it plots, their history and admin1 units, the
events behind each alert, what changed since the previous month, the forecasts, and the data-quality figures."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from sahel_pipeline.core.alerts import admin1_rise
from sahel_pipeline.core.cards import AlertCard
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import shift_month, window_start
from sahel_pipeline.core.panels import INDICATOR_LABELS
from sahel_pipeline.core.series import SERIES_KEY, long_admin1, long_series
from sahel_pipeline.core.storage import UNREADABLE, Log
from sahel_pipeline.core.vintages import provenance

if TYPE_CHECKING:
    from sahel_pipeline.core.spatial import AlertMap

HISTORY_MONTHS = 48
PLOTTED_CARDS = 12  # the most severe cards get a plot and a map; the others are listed with their figures and table
LARGEST_EVENTS = 5  # the events behind a card
NOTES_CHARACTERS = 160  # the start of an event's notes
FORECAST_HORIZONS = 3  # the report's forecast table shows the first months ahead; the CSV has all six


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
    previous_alerts: pl.DataFrame | None = None  # the month before's stored alert table (None: none stored)
    events: pl.DataFrame | None = None  # the alerted units' events over the model's window (feeds.recent_alert_events)
    places: pl.DataFrame | None = None  # capitals and cities of the alerted countries (places.places_table)
    maps: tuple[AlertMap, ...] = ()  # the spatial alerts' map records (spatial.alert_maps): their cards' maps
    reach: pl.DataFrame | None = None  # source, country, first_day, last_day of the data (data_reach)
    evaluation: pl.DataFrame | None = None  # the detector evaluation's summary.csv, when it was run
    generated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


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
    ends = data_reach(country_month_panel).group_by("source").agg(pl.col("last_day").max()).sort("source")
    for source, last in ends.iter_rows():
        quality[f"{source}_data_reach"] = f"{last:%-d %B %Y}"
    return quality


def data_reach(country_month_panel: pl.LazyFrame) -> pl.DataFrame:
    """source, country, first_day and last_day the data cover (the last day of the last month with data)."""
    last_day = pl.col("month").dt.offset_by(pl.format("{}d", pl.col("days_covered") - 1))
    return (
        country_month_panel.select("source", "country", "month", last_day=last_day)
        .group_by("source", "country")
        .agg(first_day=pl.col("month").min(), last_day=pl.col("last_day").max())
        .sort("source", "country")
        .collect()
    )


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


def card_key(card: AlertCard) -> dict[str, str | None]:
    """The unit of a card as the frames key it: source, level, group_id, country (SERIES_KEY without indicator)."""
    return {
        "source": card.source,
        "level": "group" if card.group else "country",
        "group_id": card.group or None,
        "country": card.country,
    }


def matching(card: AlertCard, indicator: str | None = None) -> list[pl.Expr]:
    """Filters for the rows of a card's unit (and of one of its indicators when given)."""
    key = card_key(card) | ({"indicator": indicator} if indicator else {})
    return [pl.col(k).eq_missing(pl.lit(v, dtype=pl.String)) for k, v in key.items()]


def previous_alerts(alert_dir: Path, month: dt.date, warn: Log) -> pl.DataFrame | None:
    """The alert table stored for the month before (alerts/YYYY-MM.parquet), or None when there is none to read."""
    path = alert_dir / f"{shift_month(month, -1):%Y-%m}.parquet"
    if not path.exists():
        return None
    try:
        return pl.read_parquet(path)
    except UNREADABLE as err:  # said, and not used: the report then says it cannot tell what changed
        warn(f"{path} is unreadable ({type(err).__name__}): the report cannot say what changed since that month")
        return None


def evaluation_summary(evaluation_dir: Path, warn: Log) -> pl.DataFrame | None:
    """The detector evaluation's summary table (summary.csv, written by `sahel evaluate`), when it was run."""
    path = evaluation_dir / "summary.csv"
    if not path.exists():
        return None
    try:
        return pl.read_csv(path)
    except UNREADABLE as err:
        warn(f"{path} is unreadable ({type(err).__name__}): the report leaves the evaluation's figures out")
        return None


@dataclass(frozen=True)
class Changes:
    new: tuple[AlertCard, ...]
    continuing: tuple[AlertCard, ...]
    ended: tuple[AlertCard, ...]  # the month before's cards with no card this month


def changes(cards: list[AlertCard], previous: list[AlertCard]) -> Changes:
    """This month's cards against the month before's, by unit (source, country, group) and place."""
    unit = lambda c: (c.source, c.country, c.group, c.place)  # noqa: E731
    before = {unit(c) for c in previous}
    now = {unit(c) for c in cards}
    return Changes(
        new=tuple(c for c in cards if unit(c) not in before),
        continuing=tuple(c for c in cards if unit(c) in before),
        ended=tuple(c for c in previous if unit(c) not in now),
    )


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


def card_map(maps: tuple[AlertMap, ...], card: AlertCard) -> AlertMap | None:
    """The map record of a spatial alert's card: its unit and kind, and for `approach` its place."""
    return next(
        (
            m
            for m in maps
            if (m.source, m.country, m.group, m.kind) == (card.source, card.country, card.group, card.kind)
            and (m.kind != "approach" or (m.place is not None and m.place.name == card.place))
        ),
        None,
    )


def card_events(events: pl.DataFrame | None, card: AlertCard) -> pl.DataFrame:
    """The events of a card's unit that one of its indicators counts (over the window the events were read for)."""
    if events is None or events.height == 0:
        return pl.DataFrame()
    counted = pl.col("indicators").list.eval(pl.element().is_in(card.indicators)).list.any()
    return events.filter(*matching(card), counted)


def largest_events(
    events: pl.DataFrame, month: dt.date, config: ModelConfig, top: int = LARGEST_EVENTS
) -> pl.DataFrame:
    """The recent window's largest events (most fatalities, then latest): date, place, fatalities, notes' start."""
    if events.height == 0:
        return events
    recent = events.filter(pl.col("event_date") >= window_start(month, config.recent_months))
    place = pl.concat_str([pl.col("location").fill_null(""), pl.col("admin1").fill_null("")], separator=", ")
    notes = pl.col("notes").fill_null("") if "notes" in recent.columns else pl.lit("")
    return (
        recent.sort(["fatalities", "event_date", "event_id"], descending=[True, True, False], nulls_last=True)
        .head(top)
        .select(
            date=pl.col("event_date").dt.strftime("%-d %b %Y"),
            place=place.str.strip_chars(", "),
            type=pl.col("event_type"),
            fatalities=pl.col("fatalities").fill_null(0),
            notes=notes.map_elements(_notes_start, return_dtype=pl.String),
        )
    )


def _notes_start(text: str) -> str:
    return text if len(text) <= NOTES_CHARACTERS else text[: NOTES_CHARACTERS - 1].rsplit(" ", 1)[0] + " …"


def baseline_mean(history: pl.DataFrame, month: dt.date, config: ModelConfig) -> float | None:
    """The series' mean monthly count over the baseline window (the months before the recent ones)."""
    first, last = window_start(month, config.window_months), window_start(month, config.recent_months)
    months = history.filter(pl.col("month") >= first, pl.col("month") < last)
    return None if months.height == 0 else float(months["count"].sum()) / config.baseline_months


def recent_total(history: pl.DataFrame, month: dt.date, config: ModelConfig) -> int:
    return int(history.filter(pl.col("month") >= window_start(month, config.recent_months))["count"].sum())


def forecast_table(inputs: ReportInputs, cards: list[AlertCard], horizons: int = FORECAST_HORIZONS) -> pl.DataFrame:
    """One row per series (the alerted ones, then every country's), the first `horizons` months ahead as columns:
    'median (80% interval)'."""
    if inputs.forecasts.height == 0:
        return pl.DataFrame()
    alerted = pl.DataFrame(
        [card_key(c) | {"indicator": i} for c in cards for i in c.indicators if c.kind != "new_actor"],
        schema={k: pl.String for k in SERIES_KEY},
    )
    country_series = inputs.forecasts.filter(pl.col("level") == "country").select(SERIES_KEY).unique()
    wanted = pl.concat([alerted.select(SERIES_KEY), country_series]).unique()
    shown = inputs.forecasts.join(wanted, on=SERIES_KEY, nulls_equal=True).filter(pl.col("horizon") <= horizons)
    if shown.height == 0:
        return pl.DataFrame()
    median, low, high = (pl.col(q).round(0).cast(pl.Int64).cast(pl.String) for q in ("q50", "q10", "q90"))
    cell = pl.format("{} ({}-{})", median, low, high)
    wide = (
        shown.with_columns(
            series=pl.format(
                "{} - {}", pl.coalesce(pl.col("group_name"), pl.lit("all groups")), pl.col("country")
            ),
            what=pl.col("indicator").replace_strict(INDICATOR_LABELS, default=pl.col("indicator")),
            month_ahead=pl.col("target_month").dt.strftime("%b %Y"),
            cell=cell,
        )
        .sort("horizon")
        .pivot("month_ahead", index=["source", "level", "series", "what"], values="cell", aggregate_function="first")
        .sort("level", "source", "series", "what", descending=[True, False, False, False])
    )
    return wide.select(pl.format("{} ({})", "series", "source").alias("series"), "what", *wide.columns[4:])
