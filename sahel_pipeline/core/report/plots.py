"""The report's plots (a card's series over four years, and its map) and the plot cache.

Plots are drawn at twice the resolution a screen shows them (PLOT_DPI), with their legend inside, so that they read
at phone width. Each plot's inputs are digested (`plot_digest`); the report's folder keeps `plots.json`, the digest
of each plot it holds, and a weekly rerun takes a plot whose digest is unchanged from there instead of drawing it
again (`earlier_plots`, which checks that each one is a whole PNG first).

The report plans its plots first (`Plot`: what each is drawn from, and its digest), then draws the missing ones
(`drawn_figures`): on the fitting pool's workers when it is given one, each plot a task, else one after another in
this process. Drawing is a pure function of the plot's inputs (same matplotlib, same fonts), so a worker's PNG is
byte for byte the one this process would draw. A plot that cannot be drawn, or a worker that dies drawing it, stops
the report with an error naming the plot (`PlotError`): a report is never written with a figure missing, and the
month's earlier report stays whole (write_report writes aside).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import textwrap
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import polars as pl

from sahel_pipeline.core.alerts import count_text
from sahel_pipeline.core.imports import wait_for_import
from sahel_pipeline.core.models import ModelConfig
from sahel_pipeline.core.months import days_in_month, index_month, month_index, month_label
from sahel_pipeline.core.panels import INDICATOR_LABELS
from sahel_pipeline.core.places import CAPITAL, KM_PER_DEGREE
from sahel_pipeline.core.report.selection import baseline_mean
from sahel_pipeline.core.storage import UNREADABLE, Log, discarded, is_whole_png
from sahel_pipeline.core.text import plot_text

PLOTTING_MODULES = ("matplotlib.pyplot",)  # what the first plot imports (_pyplot)
PLOT_DPI = 180  # twice the 90 dots per inch the figure sizes are set for: sharp on phones and high-density screens
PLOT_INDEX = "plots.json"  # beside the plots: the digest of each one's inputs
# Part of every plot's digest: change it when a plot is drawn differently, so that no earlier plot is reused.
PLOT_VERSION = "4"
COLOURS = {"bars": "#6b6b6b", "expected": "#2166ac", "bound": "#b2182b", "baseline": "#ececec", "recent": "#fde0c5",
           "forecast": "#1b7837", "forecast_light": "#a6dba0", "break": "#762a83"}  # fmt: skip


@dataclass
class Figure:
    name: str  # file name without .png
    png: bytes
    alt: str  # what the plot shows, in words (the data, not the drawing)
    caption: str
    digest: str  # of the plot's inputs (plot_digest)


@dataclass(frozen=True)
class Plot:
    """A figure planned: how it is drawn and from what (`draw(*drawn_from)`, sent to a worker as is), and what the
    report says of it."""

    name: str
    title: str
    draw: Callable[..., bytes]  # plot_series or plot_map: module-level, so a worker process can run it
    drawn_from: tuple
    alt: str
    caption: str
    digest: str  # of the plot's inputs (plot_digest)

    def figure(self, png: bytes) -> Figure:
        return Figure(self.name, png, self.alt, self.caption, self.digest)


class PlotError(RuntimeError):
    """A plot of the report could not be drawn (its drawing raised, or the worker drawing it died)."""


def drawn_figures(planned: list[Plot], earlier: dict[str, bytes], executor: Executor | None = None) -> list[Figure]:
    """The planned plots as figures, in order: taken from `earlier` (by digest) when there, else drawn, on
    `executor`'s workers when it is given (the fitting pool's have matplotlib preloaded, and this process then never
    imports it)."""
    missing = {plot.digest: plot for plot in planned if plot.digest not in earlier}
    if executor is None:
        drawn = {digest: _checked(plot, partial(plot.draw, *plot.drawn_from)) for digest, plot in missing.items()}
    else:
        futures = {digest: executor.submit(plot.draw, *plot.drawn_from) for digest, plot in missing.items()}
        try:
            drawn = {digest: _checked(missing[digest], future.result) for digest, future in futures.items()}
        finally:  # after a failure, the plots not drawn yet are not drawn for nothing
            for future in futures.values():
                future.cancel()
    return [plot.figure(drawn[plot.digest] if plot.digest in drawn else earlier[plot.digest]) for plot in planned]


def _checked(plot: Plot, draw: Callable[[], bytes]) -> bytes:
    where = f"the report's plot {plot.name}.png ({plot.title})"
    try:
        png = draw()
    except BrokenExecutor as err:
        # Every plot not drawn yet fails so, whichever plot the worker died on: this one is the first in order.
        raise PlotError(f"{where} was not drawn: a worker process stopped while the plots were drawn ({err})") from err
    except Exception as err:
        raise PlotError(f"{where} could not be drawn: {type(err).__name__}: {err}") from err
    if not isinstance(png, bytes) or not is_whole_png(png):
        raise PlotError(f"{where} was drawn as {type(png).__name__}, not as a whole PNG")
    return png


def _pyplot():
    """matplotlib, imported when the first plot is drawn (a second of import the other stages need not pay)."""
    wait_for_import(PLOTTING_MODULES[0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(fig, title: str, left: float, fontsize: float = 10) -> None:
    """The plot's title, wrapped to the figure's width and anchored at its left margin: a map's axes shrink to keep
    the map's proportions, and a title set on them ran off the figure's right edge. Data are text, not TeX: a name
    holding `$\\foo$` is drawn as typed, not parsed as maths (which could fail)."""
    width_pt = fig.get_figwidth() * (1 - left - 0.01) * 72
    lines = textwrap.wrap(plot_text(title), width=max(int(width_pt / (0.55 * fontsize)), 20)) or [""]
    fig.text(left, 0.985, "\n".join(lines), fontsize=fontsize, ha="left", va="top", parse_math=False)
    # room for the title's lines above the axes (a line is about 1.25 font sizes)
    fig.subplots_adjust(top=1 - (0.015 * 72 * fig.get_figheight() + 1.25 * fontsize * len(lines) + 4)
                        / (72 * fig.get_figheight()))  # fmt: skip


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


SERIES_CAPTION = (
    "Bars: monthly counts. Blue line: the expectation, the series' recent level before the recent window, over the "
    "baseline (grey) and recent (orange) windows. Red tick: the month's 99.5% bound. Green diamonds: the forecast "
    "median for the next six months, with its 80% (dark) and 95% (light) intervals. Purple dashes: break dates "
    "(coups)."
)


@dataclass(frozen=True)
class SeriesSettings:
    """The model's settings a series plot draws (its windows, its bound's level, the forecast's months): the plot's
    digest holds these, not the whole ModelConfig, which holds settings the drawing does not show."""

    window_months: int
    recent_months: int
    bound_quantile: float
    horizons: int

    @classmethod
    def of(cls, config: ModelConfig) -> SeriesSettings:
        return cls(config.window_months, config.recent_months, config.bound_quantile, config.horizons)


SERIES_SCORE_FIELDS = ("month", "indicator", "expected", "days_covered", "upper")  # what plot_series reads of a score
SERIES_FORECAST_COLUMNS = ("target_month", "q025", "q10", "q50", "q90", "q975")


def series_plot(
    name: str,
    title: str,
    alt: str,
    history: pl.DataFrame,
    score: dict,
    forecasts: pl.DataFrame,
    config: ModelConfig,
    breaks: tuple[tuple[dt.date, str], ...],
) -> Plot:
    """A card's series plot, planned from what plot_series draws and nothing more, so that its digest changes when
    the drawing does: digested whole, a score's other fields (its exceedance probabilities, its p-values) and the
    model's other settings redrew, in a weekly update, 9 of a month's 11 series plots that looked the same."""
    drawn_from = (
        history.select("month", "count"),
        {field: score[field] for field in SERIES_SCORE_FIELDS if field in score},
        forecasts.select(SERIES_FORECAST_COLUMNS),
        SeriesSettings.of(config),
        title,
        breaks,
    )
    return Plot(name, title, plot_series, drawn_from, alt, SERIES_CAPTION, plot_digest(*drawn_from))


def plot_series(
    history: pl.DataFrame,
    score: dict,
    forecasts: pl.DataFrame,
    config: SeriesSettings,
    title: str,
    breaks: tuple[tuple[dt.date, str], ...] = (),
) -> bytes:
    """Observed counts, the expectation (the recent level: flat) over the model's window, the bound at the month, the
    windows, the next months' forecast and the break dates in the plotted range.

    The x axis counts months (labelled by hand): matplotlib's date axis costs half the time of a plot.
    """
    plt = _pyplot()
    month = score["month"]
    m = month_index(month)
    history = history.sort("month")
    x = [month_index(d) for d in history["month"]]
    counts = history["count"].to_list()
    fig, ax = plt.subplots(figsize=(6.4, 3.1))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.11)  # fixed margins: automatic layout doubles the cost
    # One line collection instead of a patch per month: a third of the cost of bars.
    ax.vlines(x, 0, counts, color=COLOURS["bars"], lw=4.5, zorder=2, label="monthly count")
    baseline_start, recent_start = m - config.window_months + 0.5, m - config.recent_months + 0.5
    ax.axvspan(baseline_start, recent_start, color=COLOURS["baseline"], zorder=0)
    ax.axvspan(recent_start, m + 0.5, color=COLOURS["recent"], zorder=0)
    expected = score.get("expected")
    if expected is not None and not math.isnan(expected):
        line = list(range(m - config.window_months + 1, m + 1))
        full_month_expected = expected / max(score.get("days_covered", 31) / days_in_month(month), 1e-9)
        ax.plot(line, [full_month_expected] * len(line), color=COLOURS["expected"], lw=1.8, zorder=3,
                label="expected")  # fmt: skip
        ax.plot([m], [score["upper"]], marker="_", markersize=16, mew=2.5, color=COLOURS["bound"], ls="none",
                zorder=4, label=f"{config.bound_quantile:.1%} bound")  # fmt: skip
    top = max([*counts, score.get("upper") or 0, 1])
    if forecasts.height:
        f = forecasts.sort("target_month")
        fx = [month_index(d) for d in f["target_month"]]
        ax.vlines(fx, f["q025"].to_list(), f["q975"].to_list(), color=COLOURS["forecast_light"], lw=5, zorder=2)
        ax.vlines(fx, f["q10"].to_list(), f["q90"].to_list(), color=COLOURS["forecast"], lw=2, zorder=3)
        ax.plot(fx, f["q50"].to_list(), "D", color="white", mec=COLOURS["forecast"], mew=1.5, markersize=5,
                zorder=4, label="forecast (80%, 95%)")  # fmt: skip
        top = max(top, *f["q975"].to_list())
    first = min(x, default=m)
    for date, label in breaks:
        b = month_index(date)
        if first <= b <= m:
            ax.axvline(b, color=COLOURS["break"], lw=1.2, ls=(0, (4, 3)), zorder=1)
            ax.text(b + 0.4, top * 1.08, plot_text(label), color=COLOURS["break"], fontsize=7.5, va="top",
                    parse_math=False)  # fmt: skip
    ticks = [i for i in range(first, m + config.horizons + 1) if i % 12 in (0, 6)]
    ax.set_xticks(ticks, [f"{index_month(i):%b %Y}" for i in ticks])
    _title(fig, title, fig.subplotpars.left)
    ax.set_ylabel(INDICATOR_LABELS.get(score["indicator"], score["indicator"]), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, top * 1.15 + 1)
    ax.legend(loc="upper left", fontsize=7.5, frameon=True, framealpha=0.85, borderaxespad=0.3, handlelength=1.2)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


MAP_CAPTION = (
    "Small grey dots: the baseline's events; orange circles: the recent window's, sized by fatalities. Star: the "
    "capital; squares: major cities (GeoNames). Longitude and latitude in degrees; no borders are drawn."
)


MAP_EVENT_COLUMNS = ("latitude", "longitude", "fatalities")  # what plot_map draws of an event


RING_CAPTION = " Dashed circles: the rings (km) around the place the alert is about."


def ring_points(latitude: float, longitude: float, radius_km: float, steps: int = 72) -> pl.DataFrame:
    """A circle of `radius_km` around a point, as latitude and longitude (the local plane: a degree of longitude
    shrinks with the cosine of latitude, as the rings' counts measure it)."""
    angle = pl.Series([2 * math.pi * i / steps for i in range(steps + 1)])
    degrees = radius_km / KM_PER_DEGREE
    return pl.DataFrame(
        {
            "latitude": latitude + degrees * angle.sin(),
            "longitude": longitude + degrees / max(math.cos(math.radians(latitude)), 0.2) * angle.cos(),
        }
    )


def plot_map(
    recent: pl.DataFrame,
    baseline: pl.DataFrame,
    places: pl.DataFrame,
    title: str,
    ring: tuple[float, float, tuple[int, ...]] | None = None,
) -> bytes:
    """The recent window's events against the baseline's (latitude, longitude, fatalities), with the places (capital,
    cities) that fall in the mapped area labelled; `ring` (latitude, longitude, radii in km) draws the rings of a
    spatial alert's place. Drawn from coordinates only: no tiles, no download."""
    plt = _pyplot()
    has_position = (pl.col("latitude").is_not_null(), pl.col("longitude").is_not_null())
    located = [f.filter(*has_position) for f in (recent, baseline)]
    circles = [ring_points(ring[0], ring[1], r) for r in ring[2]] if ring else []
    points = pl.concat([f.select("latitude", "longitude") for f in located] + circles[-1:])
    capital = places.filter(pl.col("kind") == CAPITAL)
    if points.height:
        lat0, lat1 = float(points["latitude"].min()), float(points["latitude"].max())  # type: ignore[arg-type]
        lon0, lon1 = float(points["longitude"].min()), float(points["longitude"].max())  # type: ignore[arg-type]
    else:
        lat0 = lat1 = float(capital["latitude"][0]) if capital.height else 0.0
        lon0 = lon1 = float(capital["longitude"][0]) if capital.height else 0.0
    pad = max(lat1 - lat0, lon1 - lon0, 1.0) * 0.12
    box = (lon0 - pad, lon1 + pad, lat0 - pad, lat1 + pad)
    # Always show the capital: it is how a reader places the map.
    if capital.height:
        cx, cy = float(capital["longitude"][0]), float(capital["latitude"][0])
        box = (min(box[0], cx - pad), max(box[1], cx + pad), min(box[2], cy - pad), max(box[3], cy + pad))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.08)
    recent_located, baseline_located = located
    ax.scatter(baseline_located["longitude"], baseline_located["latitude"], s=5, color="#9a9a9a", alpha=0.5,
               linewidths=0, zorder=2, label=f"baseline: {baseline.height} events")  # fmt: skip
    sizes = [12 + 6 * min(f, 50) ** 0.8 for f in recent_located["fatalities"].fill_null(0).to_list()]
    ax.scatter(recent_located["longitude"], recent_located["latitude"], s=sizes, color="#f46d43", alpha=0.75,
               edgecolors="#a50026", linewidths=0.6, zorder=3, label=f"recent: {recent.height} events")  # fmt: skip
    for radius, circle in zip(ring[2] if ring else (), circles, strict=True):
        ax.plot(circle["longitude"], circle["latitude"], "--", color="#555", lw=0.8, zorder=3)
        top = circle.height // 4  # the circle's northernmost point: the labels do not overlap there
        ax.annotate(f"{radius} km", (circle["longitude"][top], circle["latitude"][top]), xytext=(2, 2),
                    textcoords="offset points", fontsize=6.5, color="#555", zorder=5)  # fmt: skip
    shown = places.filter(pl.col("longitude").is_between(box[0], box[1]), pl.col("latitude").is_between(box[2], box[3]))
    for row in shown.iter_rows(named=True):
        is_capital = row["kind"] == CAPITAL
        ax.plot(row["longitude"], row["latitude"], "*" if is_capital else "s", color="#222",
                markersize=11 if is_capital else 4, zorder=4)  # fmt: skip
        ax.annotate(plot_text(row["name"]), (row["longitude"], row["latitude"]), xytext=(4, 3),
                    textcoords="offset points", fontsize=8 if is_capital else 7, fontweight="bold" if is_capital
                    else "normal", zorder=5, annotation_clip=True, parse_math=False)  # fmt: skip
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    mid = math.radians((box[2] + box[3]) / 2)
    ax.set_aspect(1 / max(math.cos(mid), 0.2))  # degrees of longitude shrink with latitude
    _title(fig, title, fig.subplotpars.left)
    ax.tick_params(labelsize=7)
    ax.legend(loc="lower left", fontsize=7.5, framealpha=0.85, markerscale=0.8)
    ax.grid(color="#eeeeee", lw=0.6, zorder=0)
    return _png(fig)


def series_alt(
    who: str, indicator: str, history: pl.DataFrame, score: dict, forecasts: pl.DataFrame, config: ModelConfig
) -> str:
    """What a card's plot shows, in words, for readers who cannot see it."""
    label = INDICATOR_LABELS.get(indicator, indicator.replace("_", " "))
    month = score["month"]
    history = history.sort("month")
    text = f"Monthly {label} of {who}"
    if history.height:
        peak = history.sort("count", "month", descending=True).row(0, named=True)
        text += (
            f", {month_label(history['month'][0])} to {month_label(month)}: the busiest month "
            f"{month_label(peak['month'])} with {peak['count']}"
        )
        now = history.filter(pl.col("month") == month)["count"]
        if now.len():
            text += f"; {month_label(month)} {now[0]}"
    expected = score.get("expected")
    if expected is not None and not math.isnan(expected):
        text += f" against {count_text(expected)} expected ({config.bound_quantile:.1%} bound {score.get('upper')})"
    mean = baseline_mean(history, month, config)
    if mean is not None:
        text += f"; the baseline's {config.baseline_months} months averaged {count_text(mean)}"
    if forecasts.height:
        f = forecasts.sort("horizon").row(0, named=True)
        text += f"; next month's forecast median {f['q50']:.0f} (80%: {f['q10']:.0f} to {f['q90']:.0f})"
    return text + "."


def map_alt(
    who: str,
    recent: pl.DataFrame,
    baseline: pl.DataFrame,
    places: pl.DataFrame,
    ring: tuple[str, tuple[int, ...]] | None = None,
) -> str:
    text = f"Map of {who}'s events: {recent.height} in the recent window, {baseline.height} in the baseline"
    if ring:
        text += f"; rings of {', '.join(str(r) for r in ring[1])} km around {ring[0]}"
    busiest = (
        recent.group_by("admin1").len().sort("len", "admin1", descending=[True, False]).head(2)
        if recent.height and "admin1" in recent.columns
        else pl.DataFrame()
    )
    if busiest.height:
        text += "; most recent events in " + " and ".join(f"{a} ({n})" for a, n in busiest.iter_rows())
    capital = places.filter(pl.col("kind") == CAPITAL)
    if capital.height:
        text += f"; the capital {capital['name'][0]} is marked"
    return text + "."


def plot_digest(*drawn_from: object) -> str:
    """Digest of everything a plot draws from: equal digests, equal plots. A weekly run redraws only the plots whose
    series changed (each costs about a tenth of a second)."""
    parts = [PLOT_VERSION]
    for value in drawn_from:
        if isinstance(value, pl.DataFrame):
            parts.append(repr(value.sort(value.columns).rows() if value.width else []))
        elif isinstance(value, dict):
            parts.append(repr(sorted(value.items())))
        else:
            parts.append(repr(value))
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def earlier_plots(image_dir: Path, warn: Log) -> dict[str, bytes]:
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
