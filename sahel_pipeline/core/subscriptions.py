"""Who gets which alerts by e-mail: the subscriptions file (`data/subscriptions.csv`), read and checked.

One line per rule: an address, the countries and groups it follows (`;`-separated; `*` or empty for all), the
least severity it wants, and whether it is sent each run (`immediate`) or at most once a week (`weekly`). An address
may have several lines (Niger at any severity, Mali only when high); its alerts are those any of its lines matches.
Lines starting with `#` are comments. Any problem stops with one line naming the file and the line.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sahel_pipeline.core.cards import SEVERITIES, AlertCard, at_least
from sahel_pipeline.core.reference import ACLED_COUNTRIES

Delivery = Literal["immediate", "weekly"]
DELIVERIES: tuple[Delivery, ...] = ("immediate", "weekly")
COLUMNS = ("address", "countries", "groups", "min_severity", "delivery")
OPTIONAL_COLUMNS = ("note",)
ALL = "*"
ADDRESS = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\".]+$")
_COUNTRY_BY_KEY = {c.casefold(): c for c in ACLED_COUNTRIES}


class SubscriptionError(ValueError):
    """The subscriptions file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Subscription:
    """One line of the file. `countries` and `groups` are None for all; groups are matched without regard to case,
    against a group's id or its name."""

    address: str
    countries: frozenset[str] | None
    groups: frozenset[str] | None
    min_severity: str
    delivery: Delivery
    line: int

    def matches(self, card: AlertCard) -> bool:
        return (
            at_least(card.severity, self.min_severity)
            and (self.countries is None or card.country in self.countries)
            and (
                self.groups is None
                or bool({card.group.casefold(), card.group_name.casefold()} & {g.casefold() for g in self.groups})
            )
        )

    def describe(self) -> str:
        """'line 5: Niger, every group, low and above'."""
        countries = ", ".join(sorted(self.countries)) if self.countries else "every country"
        groups = ", ".join(sorted(self.groups)) if self.groups else "every group"
        return f"line {self.line}: {countries}, {groups}, {self.min_severity} and above"


@dataclass(frozen=True)
class Subscriber:
    """An address and all its lines: one message per subscriber, with the alerts any of its lines matches."""

    address: str
    delivery: Delivery
    rules: tuple[Subscription, ...]

    def wants(self, card: AlertCard) -> bool:
        return any(rule.matches(card) for rule in self.rules)


def load_subscriptions(path: str | Path) -> list[Subscriber]:
    """The subscribers of the file, in the order they first appear."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SubscriptionError(
            f"{path}: no such file (the subscriptions file lists who gets alerts by e-mail)"
        ) from None
    except UnicodeDecodeError as err:
        raise SubscriptionError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    rows = csv.reader(text.splitlines())
    header: list[str] | None = None
    rules: list[Subscription] = []
    for fields in rows:
        line = rows.line_num
        if not any(f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [f.strip().lower() for f in fields]
            _check_header(path, line, header)
            continue
        if len(fields) != len(header):
            raise SubscriptionError(f"{path}: line {line} has {len(fields)} fields, the header has {len(header)}")
        rules.append(_rule(path, line, dict(zip(header, (f.strip() for f in fields), strict=True))))
    return _subscribers(path, rules)


def _check_header(path: Path, line: int, header: list[str]) -> None:
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS and c not in OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        raise SubscriptionError(
            f"{path}: line {line}: {'; '.join(problems)}; expected {', '.join(COLUMNS)} (and optionally note)"
        )


def _rule(path: Path, line: int, row: dict[str, str]) -> Subscription:
    where = f"{path}: line {line}"
    address = row["address"]
    if not ADDRESS.match(address):
        raise SubscriptionError(f"{where}: '{address}' is not an e-mail address")
    severity = row["min_severity"].lower() or SEVERITIES[-1]
    if severity == ALL:
        severity = SEVERITIES[-1]
    if severity not in SEVERITIES:
        raise SubscriptionError(f"{where}: min_severity '{row['min_severity']}' is not one of {', '.join(SEVERITIES)}")
    delivery = next((d for d in DELIVERIES if d == (row["delivery"].lower() or "immediate")), None)
    if delivery is None:
        raise SubscriptionError(f"{where}: delivery '{row['delivery']}' is not one of {', '.join(DELIVERIES)}")
    countries, groups = _listed(row["countries"]), _listed(row["groups"])
    return Subscription(
        address=address,
        countries=frozenset(_country(where, name) for name in countries) if countries is not None else None,
        groups=frozenset(groups) if groups is not None else None,
        min_severity=severity,
        delivery=delivery,
        line=line,
    )


def _listed(value: str) -> list[str] | None:
    names = [v.strip() for v in value.split(";") if v.strip()]
    return None if not names or ALL in names else names


def _country(where: str, name: str) -> str:
    known = _COUNTRY_BY_KEY.get(name.casefold())
    if known is None:
        close = difflib.get_close_matches(name, sorted(ACLED_COUNTRIES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (use ACLED's country names)"
        raise SubscriptionError(f"{where}: unknown country '{name}'{hint}")
    return known


def _subscribers(path: Path, rules: list[Subscription]) -> list[Subscriber]:
    by_address: dict[str, list[Subscription]] = {}
    for rule in rules:
        by_address.setdefault(rule.address.casefold(), []).append(rule)
    subscribers = []
    for lines in by_address.values():
        first = lines[0]
        for other in lines[1:]:
            if other.delivery != first.delivery:
                raise SubscriptionError(
                    f"{path}: line {other.line}: {other.address} is {other.delivery} here but {first.delivery} at line "
                    f"{first.line}; one address gets one kind of message"
                )
        subscribers.append(Subscriber(first.address, first.delivery, tuple(lines)))
    return subscribers
