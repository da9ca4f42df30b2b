"""Alert cards: one typed record per row of the alert table, what every channel that shows alerts renders from.

The report draws each plotted alert's figure as `reports/YYYY-MM/alert<n>.png` (n its position in the table); a card
points to its plot there when there is one, so that e-mails can carry the same figure inline.
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
    kind: str = "count"  # count | new_actor
    group_type: str = ""  # the group's actor type; "" for a country-level alert
    plot: Path | None = None

    @property
    def series(self) -> tuple[str, str, str, str]:
        """What stays the same from one month's alert to the next: source, country, group, indicator."""
        return (self.source, self.country, self.group, self.indicator)

    @property
    def who(self) -> str:
        return self.group_name or self.country

    @property
    def indicator_label(self) -> str:
        return INDICATOR_LABELS.get(self.indicator, self.indicator.replace("_", " "))

    @property
    def title(self) -> str:
        return f"{self.who} - {self.country} - {alert_subject(self.kind, self.indicator)}"

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
    """The cards of a month's alert table, in its order (most severe first), with their plots from `plot_dir`."""
    cards = []
    for position, row in enumerate(alerts.iter_rows(named=True), 1):
        plot = plot_dir / f"{plot_name(position)}.png" if plot_dir is not None else None
        cards.append(
            AlertCard(
                month=row["month"],
                source=row["source"],
                country=row["country"],
                group=row["group"] or "",
                group_name=row["group_name"] or "",
                indicator=row["indicator"],
                observed=int(row["observed"]),
                expected=None if row["expected"] is None else float(row["expected"]),
                upper=None if row["upper"] is None else int(row["upper"]),
                severity=row["severity"],
                status=row["status"],
                sentence=row["explanation"],
                synthetic=bool(row["synthetic"]),
                kind=row["kind"],
                group_type=row["group_type"] or "",
                plot=plot if plot is not None and plot.is_file() else None,
            )
        )
    return cards


def at_least(severity: str, minimum: str) -> bool:
    """Whether `severity` is `minimum` or more severe."""
    return SEVERITY_ORDER[severity] <= SEVERITY_ORDER[minimum]


def severity_counts(cards: list[AlertCard]) -> str:
    """'1 high, 2 medium' (severities with no card left out)."""
    counts = {s: sum(c.severity == s for c in cards) for s in SEVERITIES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)
