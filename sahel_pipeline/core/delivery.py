"""Delivering alert cards: who gets what (the cool-down rule), sending with retries, and the ledger of what was sent.

**The cool-down rule** (HDX Signals' idea, in months): an alert goes to a recipient unless the ledger shows that the
same series (source, country, group, indicator) was sent to them at the same or a higher severity for a month at
most `cooldown_months` away. So a rerun of a month sends nothing twice, a continuing alert is sent once and again
only when its severity rises (or once the cool-down has passed with the alert still standing), and a backfill of
older months does not repeat what a later month already said. Only deliveries that succeeded count; a failed one is
tried again by the next run.

**Weekly** subscribers get at most one digest a week (ISO week, UTC) for each month: alerts that come due in
between wait for the next week's run, which the weekly schedule makes every Monday.

**The ledger** (`notifications/ledger.jsonl`) has one JSON line per message: when, the month, the channel and
recipient, the outcome (`sent`, `failed`, `dry_run`), the attempts, the alerts it carried and any error. It is read
and appended under a file lock, so two runs of different months cannot both send the same alert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from sahel_pipeline.core.alerts import SEVERITY_ORDER
from sahel_pipeline.core.cards import AlertCard, at_least
from sahel_pipeline.core.messages import email_message, headline, slack_payload, teams_payload
from sahel_pipeline.core.months import month_index, parse_month
from sahel_pipeline.core.storage import written_aside
from sahel_pipeline.core.subscriptions import Delivery, Subscriber

Channel = Literal["email", "slack", "teams"]
Outcome = Literal["sent", "failed", "dry_run"]
Security = Literal["starttls", "tls", "none"]
CHANNEL_NAMES: dict[str, str] = {"email": "e-mail", "slack": "Slack", "teams": "Teams"}
CONSECUTIVE_FAILURES = 2  # a channel that failed this many messages in a row (after retries) is not tried further
MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is not waited for within a run


class DeliveryError(Exception):
    """A message could not be delivered; `transient` ones (a server away, a rate limit) are worth another try."""

    def __init__(self, message: str, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


# --- who gets what --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Somewhere alerts go: one e-mail subscriber, or a Slack or Teams channel."""

    channel: Channel
    recipient: str  # the e-mail address, or the channel's name
    delivery: Delivery
    wants: Callable[[AlertCard], bool]
    why: str = ""  # told to the recipient: which subscription brought the message


def subscriber_targets(subscribers: list[Subscriber], subscriptions_file: str) -> list[Target]:
    return [
        Target(
            "email",
            s.address,
            s.delivery,
            s.wants,
            f"You get this message through {Path(subscriptions_file).name}, "
            + "; ".join(r.describe() for r in s.rules)
            + ".",
        )
        for s in subscribers
    ]


def channel_target(channel: Channel, min_severity: str) -> Target:
    return Target(channel, channel, "immediate", lambda card: at_least(card.severity, min_severity))


@dataclass(frozen=True)
class SentAlert:
    source: str
    country: str
    group: str
    indicator: str
    severity: str
    status: str

    @property
    def series(self) -> tuple[str, str, str, str]:
        return (self.source, self.country, self.group, self.indicator)


@dataclass(frozen=True)
class LedgerEntry:
    at: str  # ISO 8601, UTC
    month: str
    channel: str
    recipient: str
    outcome: Outcome
    attempts: int
    alerts: tuple[SentAlert, ...]
    subject: str
    synthetic: bool
    error: str = ""

    @property
    def moment(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at)


@dataclass
class Planned:
    """What one target is due this run."""

    target: Target
    due: list[AlertCard]  # to send now
    repeated: list[AlertCard] = field(default_factory=list)  # matching, but within the cool-down
    held: bool = False  # weekly: a digest for this month went out this week already


def plan(
    cards: list[AlertCard], targets: list[Target], ledger: list[LedgerEntry], now: dt.datetime, cooldown_months: int
) -> list[Planned]:
    sent = [e for e in ledger if e.outcome == "sent"]
    planned = []
    for target in targets:
        theirs = [
            e for e in sent if e.channel == target.channel and e.recipient.casefold() == target.recipient.casefold()
        ]
        matching = [c for c in cards if target.wants(c)]
        repeated = [c for c in matching if in_cooldown(c, theirs, cooldown_months)]
        due = [c for c in matching if c not in repeated]
        held = (
            target.delivery == "weekly"
            and bool(due)
            and any(e.month == due[0].month and e.moment.isocalendar()[:2] == now.isocalendar()[:2] for e in theirs)
        )
        planned.append(Planned(target, due, repeated, held))
    return planned


def in_cooldown(card: AlertCard, sent: list[LedgerEntry], cooldown_months: int) -> bool:
    """Whether one of the card's series went to this recipient at this severity or higher, `cooldown_months` or fewer
    away."""
    month = _month_number(card.month)
    return any(
        alert.series in card.every_series
        and SEVERITY_ORDER[alert.severity] <= SEVERITY_ORDER[card.severity]
        and abs(_month_number(entry.month) - month) <= cooldown_months
        for entry in sent
        for alert in entry.alerts
    )


def _month_number(month: str) -> int:
    return month_index(parse_month(month))


# --- the ledger -----------------------------------------------------------------------------------------------------


class Ledger:
    """The JSON-lines record of every message, beside a lock file that serialises runs."""

    def __init__(self, path: Path):
        self.path = path
        self.unreadable_lines = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[Ledger]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[LedgerEntry]:
        """Every entry; a line that does not parse (a write cut short) is skipped and counted."""
        if not self.path.exists():
            return []
        found, self.unreadable_lines = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                raw["alerts"] = tuple(SentAlert(**a) for a in raw["alerts"])
                found.append(LedgerEntry(**raw))
            except (ValueError, TypeError, KeyError):
                self.unreadable_lines += 1
        return found

    def append(self, entry: LedgerEntry) -> None:
        line = json.dumps(asdict(entry), ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


# --- channels -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    """An SMTP submission server: STARTTLS (usually port 587), implicit TLS (465) or plain (a local relay)."""

    host: str
    port: int = 587
    security: Security = "starttls"
    user: str = ""
    password: str = ""
    timeout: float = 30.0
    ca_file: str = ""  # a CA bundle for a server whose certificate a private authority signed

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        try:
            if self.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with server:
                if self.security == "starttls":
                    server.starttls(context=context)
                if self.user:
                    server.login(self.user, self.password)
                server.send_message(message)
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            raise DeliveryError(
                f"recipient refused: {_smtp_reply(err.recipients)}", transient=all(400 <= c < 500 for c in codes)
            ) from err
        except smtplib.SMTPConnectError as err:
            raise DeliveryError(
                f"cannot connect to {self.host}:{self.port}: {_text(err.smtp_error)}", transient=True
            ) from err
        except smtplib.SMTPResponseException as err:
            raise DeliveryError(
                f"server answered {err.smtp_code} {_text(err.smtp_error)}", transient=400 <= err.smtp_code < 500
            ) from err
        except smtplib.SMTPNotSupportedError as err:
            raise DeliveryError(f"{self.host}:{self.port} does not support it: {err}", transient=False) from err
        except smtplib.SMTPServerDisconnected as err:
            raise DeliveryError(f"{self.host}:{self.port} closed the connection: {err}", transient=True) from err
        except ssl.SSLError as err:  # a certificate that does not verify will not verify on a second try
            raise DeliveryError(
                f"TLS with {self.host}:{self.port} failed: {err.reason or err}", transient=False
            ) from err
        except OSError as err:
            raise DeliveryError(f"cannot reach {self.host}:{self.port}: {err.strerror or err}", transient=True) from err


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _smtp_reply(recipients: dict) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in recipients.items())


@dataclass(frozen=True)
class Webhook:
    """An incoming webhook (Slack, or a Teams Workflows flow) taking a JSON POST; its URL is a secret, kept out of
    every message and record."""

    url: str
    name: str
    timeout: float = 20.0

    def post(self, payload: dict) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "sahel-pipeline"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as err:
            body = err.read(300).decode(errors="replace").strip()
            transient = err.code == 429 or err.code >= 500
            retry_after = _seconds(err.headers.get("Retry-After")) if err.code == 429 else None
            raise DeliveryError(
                f"{self.name} answered {err.code} {body or err.reason}", transient, retry_after
            ) from err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise DeliveryError(f"cannot reach {self.name}'s webhook: {reason}", transient=True) from err


def _seconds(value: str | None) -> float | None:
    try:
        return min(float(value), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


def with_retries(
    send: Callable[[], None], attempts: int, delay: float, sleep: Callable[[float], None] = time.sleep
) -> tuple[int, str]:
    """(attempts made, last error or ''): transient errors are tried again after `delay`, doubling each time, or after
    the server's Retry-After."""
    for attempt in range(1, attempts + 1):
        try:
            send()
            return attempt, ""
        except DeliveryError as err:
            if not err.transient or attempt == attempts:
                return attempt, str(err)
            sleep(err.retry_after if err.retry_after is not None else delay * 2 ** (attempt - 1))
    return attempts, "no attempt made"


# --- one run's deliveries -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    """How this run reaches each channel; None where a channel is not configured."""

    smtp: SmtpServer | None = None
    sender: str = ""
    slack: Webhook | None = None
    teams: Webhook | None = None


@dataclass(frozen=True)
class Message:
    """One rendered message: an e-mail or a webhook payload."""

    target: Target
    cards: tuple[AlertCard, ...]
    subject: str
    email: EmailMessage | None = None
    payload: dict | None = None


DEFAULT_SENDER = "sahel-pipeline@localhost"


def render(planned: Planned, *, month_name: str, synthetic: bool, sender: str, link: str) -> Message:
    target, cards = planned.target, planned.due
    if target.channel == "email":
        email = email_message(
            cards,
            month_name=month_name,
            synthetic=synthetic,
            sender=sender or DEFAULT_SENDER,
            recipient=target.recipient,
            link=link,
            why=target.why,
            already_sent=len(planned.repeated),
        )
        return Message(target, tuple(cards), str(email["Subject"]), email=email)
    build = slack_payload if target.channel == "slack" else teams_payload
    payload = build(cards, month_name=month_name, synthetic=synthetic, link=link)
    return Message(target, tuple(cards), headline(month_name, synthetic), payload=payload)


def deliver(
    messages: list[Message],
    channels: Channels,
    *,
    month: str,
    synthetic: bool,
    dry_run: bool,
    outbox: Path,
    attempts: int,
    delay: float,
    now: Callable[[], dt.datetime],
    record: Callable[[LedgerEntry], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[LedgerEntry]:
    """Send each message (in a dry run, write it to `outbox` instead), `record` its ledger entry as soon as it is
    known (a run stopped half-way keeps the record of what it sent), and return the entries."""
    if dry_run:
        _clear(outbox)
    entries = []
    failures_in_a_row: dict[str, int] = {}
    for message in messages:
        channel = message.target.channel
        if dry_run:
            _write_outbox(outbox, message)
            made, error = 0, ""
        elif (send := _sender(message, channels)) is None:
            made, error = (
                0,
                f"{CHANNEL_NAMES[channel]} is not configured" + (" (no SMTP host)" if channel == "email" else ""),
            )
        elif failures_in_a_row.get(channel, 0) >= CONSECUTIVE_FAILURES:
            made, error = (
                0,
                f"not attempted: the previous {CONSECUTIVE_FAILURES} {CHANNEL_NAMES[channel]} messages failed",
            )
        else:
            made, error = with_retries(send, attempts, delay, sleep)
            failures_in_a_row[channel] = failures_in_a_row.get(channel, 0) + 1 if error else 0
        outcome: Outcome = "dry_run" if dry_run else "failed" if error else "sent"
        entry = LedgerEntry(
            at=now().astimezone(dt.UTC).isoformat(timespec="seconds"),
            month=month,
            channel=channel,
            recipient=message.target.recipient,
            outcome=outcome,
            attempts=made,
            alerts=tuple(
                SentAlert(*series, c.severity, c.status) for c in message.cards for series in c.every_series
            ),
            subject=message.subject,
            synthetic=synthetic,
            error=error,
        )
        record(entry)
        entries.append(entry)
    return entries


def _sender(message: Message, channels: Channels) -> Callable[[], None] | None:
    if message.email is not None:
        smtp, email = channels.smtp, message.email
        return None if smtp is None else lambda: smtp.send(email)
    hook = channels.slack if message.target.channel == "slack" else channels.teams
    payload = message.payload or {}
    return None if hook is None else lambda: hook.post(payload)


def _write_outbox(outbox: Path, message: Message) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    with written_aside() as aside:
        if message.email is not None:
            name = re.sub(r"[^A-Za-z0-9@._-]", "_", message.target.recipient)
            aside(outbox / f"email-{name}.eml").write_bytes(message.email.as_bytes())
        else:
            aside(outbox / f"{message.target.channel}.json").write_text(
                json.dumps(message.payload, indent=1, ensure_ascii=False), encoding="utf-8"
            )


def _clear(outbox: Path) -> None:
    """A dry run's outbox shows that run's messages only."""
    if outbox.is_dir():
        for old in outbox.iterdir():
            if old.suffix in (".eml", ".json"):
                old.unlink()
