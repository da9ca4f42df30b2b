"""Alert cards: one typed record per group x country (or country) alerted in a month, what every channel that shows
alerts renders from.

The alert table has one row per group x country (or country) and month (`alerts.one_per_unit`), its strongest
indicator's, with the unit's other rising indicators in `indicators`, the rules that fired in `rules` and why the
severity is what it is in `severity_reason`; a card is such a row (`_row_reasons`, `listed`). Tables stored before
then had a row per indicator: `alert_cards` still makes them one card, its strongest row first (`rises`).

The report draws each plotted card's figure as `reports/YYYY-MM/alert<n>.png` (n its position among the cards) and
its map as `alert<n>-map.png`; a card points to its plot there when there is one, so that e-mails can carry the same
figure inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sahel_pipeline.core.alerts import SEVERITY_ORDER, alert_subject
from sahel_pipeline.core.months import month_label, parse_month
from sahel_pipeline.core.panels import INDICATOR_LABELS

SYNTHETIC_LABEL = "SYNTHETIC"
SYNTHETIC_NOTICE = (
    "SYNTHETIC DATA: at least one input file is synthetic, not real (the bundled sample is). "
    "These alerts describe no real events; do not forward them as an assessment."
)
SEVERITIES = tuple(SEVERITY_ORDER)  # most severe first
# One card per group x country (group "" for the country) and place: an `approach` alert is a card of its own, with
# its own map ringed on its place, so that "closing in on Niamey" is forwarded as one item, apart from the group's
# count rise (place "").
CARD_KEY = ["month", "source", "country", "group", "place"]


@dataclass(frozen=True)
class Rise:
    """One indicator of a card that rose: its row of the alert table."""

    indicator: str
    kind: str
    observed: int
    expected: float | None
    upper: int | None
    p_value: float | None
    rate_ratio: float | None
    rate_ratio_low: float | None
    rate_ratio_high: float | None
    severity: str
    sentence: str

    @property
    def label(self) -> str:
        return INDICATOR_LABELS.get(self.indicator, self.indicator.replace("_", " "))


@dataclass(frozen=True)
class AlertCard:
    """One alert as every channel shows it: what, how severe, the sentence to paste, and its plot when drawn."""

    month: str  # YYYY-MM
    source: str
    country: str
    group: str  # canonical group id; "" for a country-level alert
    group_name: str
    indicator: str
    observed: int
    expected: float | None  # None for a group new in the country (kind new_actor): it has no model
    upper: int | None
    severity: str  # high | medium | low
    status: str  # new | continuing
    sentence: str
    synthetic: bool
    kind: str = "count"  # count | new_actor | approach | new_ground (alerts.ALERT_KINDS)
    group_type: str = ""  # the group's actor type; "" for a country-level alert
    plot: Path | None = None
    rises: tuple[Rise, ...] = ()  # every indicator that rose, strongest first (the first is the card's own figures)
    rules: tuple[str, ...] = ()  # the rules that fired, in words
    severity_reason: str = ""  # why this severity, in words
    place: str = ""  # the place an alert is about (spatial alerts: `approach`, `new_ground`)
    listed: tuple[str, ...] = ()  # the alert table's `indicators`: every indicator of the unit that rose

    @property
    def indicators(self) -> tuple[str, ...]:
        return self.listed or tuple(r.indicator for r in self.rises) or (self.indicator,)

    @property
    def rose(self) -> tuple[tuple[str, str], ...]:
        """(kind, indicator) of every indicator that rose, strongest first."""
        listed = [(self.kind, i) for i in self.indicators]
        return tuple(dict.fromkeys(listed + [(r.kind, r.indicator) for r in self.rises]))

    @property
    def units(self) -> tuple[tuple[str, str, str, str, str], ...]:
        """What a delivery's cool-down compares: (source, country, group, kind, place) of each kind of alert on the
        card. Not the indicator: a unit whose strongest indicator changes from one month to the next is the same
        alert, not a new one."""
        return tuple(dict.fromkeys((self.source, self.country, self.group, kind, self.place) for kind, _ in self.rose))

    @property
    def series(self) -> tuple[str, str, str, str]:
        """What stays the same from one month's alert to the next: source, country, group, indicator (with the place
        of an `approach` alert: closing in on one city is not closing in on another)."""
        return (self.source, self.country, self.group, self._at_place(self.indicator))

    def _at_place(self, indicator: str) -> str:
        return f"{indicator}@{self.place}" if self.place else indicator

    @property
    def who(self) -> str:
        return self.group_name or self.country

    @property
    def unit(self) -> str:
        """The group in the country, or the whole country: 'ISSP in Niger', 'Niger (all groups)'."""
        return f"{self.group_name} in {self.country}" if self.group else f"{self.country} (all groups)"

    @property
    def indicator_label(self) -> str:
        return INDICATOR_LABELS.get(self.indicator, self.indicator.replace("_", " "))

    @property
    def title(self) -> str:
        subjects = ", ".join(
            dict.fromkeys(alert_subject(r.kind, r.indicator, self.place) for r in self.rises)
        ) or alert_subject(self.kind, self.indicator, self.place)
        unit = f"{self.who} - {self.country}" if self.group else f"{self.country} (all groups)"
        return f"{unit} - {subjects}"

    @property
    def month_name(self) -> str:
        return month_label(parse_month(self.month))

    @property
    def plot_cid(self) -> str:
        """A Content-ID for the plot inline in an e-mail, unique within one message."""
        return f"{self.plot.stem}@sahel-pipeline" if self.plot else ""


def plot_name(position: int) -> str:
    """The file name (without .png) of the plot of the alert at this 1-based position of the month's table."""
    return f"alert{position}"


def alert_cards(alerts: pl.DataFrame, plot_dir: Path | None = None) -> list[AlertCard]:
    """The cards of a month's alert table: one per group x country (CARD_KEY), most severe first (the table's order
    of each card's strongest row), with their plots from `plot_dir`."""
    rows = alerts.with_columns(pl.col("group").fill_null(""), pl.col("group_name").fill_null("")).to_dicts()
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:  # the table is most severe first: a card's first row is its strongest
        grouped.setdefault(tuple(row.get(k) or "" for k in CARD_KEY), []).append(row)  # older tables: no place
    cards = []
    for position, members in enumerate(grouped.values(), 1):
        lead = members[0]
        plot = plot_dir / f"{plot_name(position)}.png" if plot_dir is not None else None
        rises = tuple(_rise(row) for row in members)
        rules, reason = _row_reasons(lead)
        cards.append(
            AlertCard(
                month=lead["month"],
                source=lead["source"],
                country=lead["country"],
                group=lead["group"],
                group_name=lead["group_name"],
                indicator=lead["indicator"],
                observed=int(lead["observed"]),
                expected=_number(lead["expected"]),
                upper=None if lead["upper"] is None else int(lead["upper"]),
                severity=lead["severity"],
                status="continuing" if any(r["status"] == "continuing" for r in members) else lead["status"],
                sentence=lead["explanation"],
                synthetic=bool(lead["synthetic"]),
                kind=lead["kind"],
                group_type=lead["group_type"] or "",
                plot=plot if plot is not None and plot.is_file() else None,
                rises=rises,
                rules=rules,
                severity_reason=reason,
                place=lead.get("place") or "",
                # every member row's indicators (a stored table of one row per indicator has several members)
                listed=tuple(dict.fromkeys(
                    i for row in members for i in (row.get("indicators") or row["indicator"]).split(", ") if i
                )),
            )
        )
    return cards


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _rise(row: dict) -> Rise:
    return Rise(
        indicator=row["indicator"],
        kind=row["kind"],
        observed=int(row["observed"]),
        expected=_number(row["expected"]),
        upper=None if row["upper"] is None else int(row["upper"]),
        p_value=_number(row.get("p_value")),
        rate_ratio=_number(row.get("rate_ratio")),
        rate_ratio_low=_number(row.get("rate_ratio_low")),
        rate_ratio_high=_number(row.get("rate_ratio_high")),
        severity=row["severity"],
        sentence=row["explanation"],
    )


def _row_reasons(lead: dict) -> tuple[tuple[str, ...], str]:
    """The rules that fired and why the card has its severity: the alert table's own columns (`rules`,
    `severity_reason`, from `alerts.apply_alert_rule`); a table stored before they existed gives its severity
    alone."""
    listed = lead.get("rules") or ""
    rules = tuple(r.strip() for r in listed.split(",") if r.strip())
    return rules, str(lead.get("severity_reason") or lead["severity"])


def at_least(severity: str, minimum: str) -> bool:
    """Whether `severity` is `minimum` or more severe."""
    return SEVERITY_ORDER[severity] <= SEVERITY_ORDER[minimum]


def severity_counts(cards: list[AlertCard]) -> str:
    """'1 high, 2 medium' (severities with no card left out)."""
    counts = {s: sum(c.severity == s for c in cards) for s in SEVERITIES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)
