"""Messages rendered from alert cards: the e-mail digest, the Slack post and the Microsoft Teams post.

Every message names the month and, when any input is synthetic, says SYNTHETIC first (subject, header, title).

* E-mail: a multipart/alternative message with a plain-text part and an HTML part whose plots are inline images
  (multipart/related, referenced by `cid:`), so that the digest reads, prints and forwards without any link.
* Slack incoming webhook: Block Kit header, section and context blocks within Slack's documented limits (50 blocks a
  message, 3,000 characters a section text, 150 a header, 10 context elements); a plain `text` for notifications.
* Teams Workflows webhook ("Post to a channel when a webhook request is received"): a message whose one attachment
  is an Adaptive Card (`application/vnd.microsoft.card.adaptive`, schema 1.4, the version Teams renders from
  webhooks), kept under Teams' 28 KB message size.
"""

from __future__ import annotations

import html
import json
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sahel_pipeline.core.cards import SYNTHETIC_LABEL, SYNTHETIC_NOTICE, AlertCard, severity_counts

SEVERITY_COLOURS = {"high": "#b2182b", "medium": "#d6604d", "low": "#b8860b"}

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000
SLACK_MAX_HEADER = 150
TEAMS_CARD_VERSION = "1.4"
TEAMS_MAX_BYTES = 28_000
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def headline(month_name: str, synthetic: bool) -> str:
    """'Escalation alerts, December 2024', led by SYNTHETIC when any input is synthetic."""
    return (f"{SYNTHETIC_LABEL} - " if synthetic else "") + f"Escalation alerts, {month_name}"


def summary_line(cards: list[AlertCard]) -> str:
    """'5 alerts (1 high, 3 medium, 1 low)'."""
    if not cards:
        return "no alerts"
    return f"{len(cards)} alert{'s' * (len(cards) != 1)} ({severity_counts(cards)})"


def report_link(report_url: str, month: str) -> str:
    """Where the month's report is served, when a base URL is configured ('' otherwise)."""
    return f"{report_url.rstrip('/')}/reports/{month}.html" if report_url else ""


# --- e-mail ---------------------------------------------------------------------------------------------------------


def email_message(
    cards: list[AlertCard],
    *,
    month_name: str,
    synthetic: bool,
    sender: str,
    recipient: str,
    link: str = "",
    why: str = "",
    already_sent: int = 0,
) -> EmailMessage:
    """One subscriber's digest: `cards` are the alerts due to them; `already_sent` counts matching alerts left out
    because they were sent before (the cool-down); `why` says which subscription lines matched."""
    message = EmailMessage()
    message["Subject"] = (
        f"[{SYNTHETIC_LABEL}] " if synthetic else ""
    ) + f"Escalation alerts, {month_name}: {summary_line(cards)}"
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(_email_text(cards, month_name, synthetic, link, why, already_sent))
    message.add_alternative(_email_html(cards, month_name, synthetic, link, why, already_sent), subtype="html")
    related = message.get_body(("html",))  # the HTML part, which its images are related to
    assert related is not None
    for card in cards:
        if card.plot is not None:
            related.add_related(
                card.plot.read_bytes(),
                maintype="image",
                subtype="png",
                cid=f"<{card.plot_cid}>",
                filename=card.plot.name,
            )
    return message


def _footer(link: str, why: str, already_sent: int) -> list[str]:
    lines = []
    if already_sent:
        lines.append(
            f"{already_sent} other matching alert{'s' * (already_sent != 1)} continue at a severity you "
            "were sent before and are not repeated; the report lists every alert."
        )
    lines.append(f"The month's report: {link}" if link else "The month's report is in the pipeline's reports folder.")
    if why:
        lines.append(why)
    return lines


def _email_text(
    cards: list[AlertCard], month_name: str, synthetic: bool, link: str, why: str, already_sent: int
) -> str:
    lines = [headline(month_name, synthetic), ""]
    if synthetic:
        lines += [SYNTHETIC_NOTICE, ""]
    lines += [summary_line(cards), ""]
    for card in cards:
        lines += [f"[{card.severity.upper()}, {card.status}] {card.title} ({card.source})", card.sentence, ""]
    return "\n".join([*lines, *_footer(link, why, already_sent), ""])


def _email_html(
    cards: list[AlertCard], month_name: str, synthetic: bool, link: str, why: str, already_sent: int
) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><body style='margin:0;background:#f4f4f4;"
        "font-family:Arial,Helvetica,sans-serif;color:#222'>",
        "<div style='max-width:680px;margin:0 auto;background:#fff;padding:16px'>",
    ]
    if synthetic:
        parts.append(
            f"<p style='background:#7a0019;color:#fff;font-weight:bold;padding:10px;margin:0 0 12px'>"
            f"{e(SYNTHETIC_NOTICE)}</p>"
        )
    parts += [
        f"<h1 style='font-size:20px;margin:0 0 4px'>{e(headline(month_name, synthetic))}</h1>",
        f"<p style='color:#555;margin:0 0 12px'>{e(summary_line(cards))}</p>",
    ]
    for card in cards:
        colour = SEVERITY_COLOURS.get(card.severity, "#777")
        parts.append("<div style='border:1px solid #ddd;border-radius:6px;padding:10px 12px;margin:12px 0'>")
        parts.append(
            f"<p style='margin:0 0 6px'><span style='background:{colour};color:#fff;padding:2px 6px;border-radius:3px;"
            f"font-size:12px;text-transform:uppercase'>{e(card.severity)}</span> "
            f"<span style='color:#666;font-size:12px'>{e(card.status)} &middot; {e(card.source)}</span></p>"
        )
        parts.append(f"<h2 style='font-size:16px;margin:0 0 6px'>{e(card.title)}</h2>")
        parts.append(f"<p style='margin:0 0 8px;line-height:1.4'>{e(card.sentence)}</p>")
        if card.plot is not None:
            alt = (
                f"Monthly {card.indicator_label} of {card.who} in {card.country} over four years, "
                "with the model's expectation"
            )
            parts.append(
                f"<img src='cid:{card.plot_cid}' alt='{e(alt)}' width='640' style='max-width:100%;height:auto'>"
            )
        parts.append("</div>")
    footer = _footer(f"<a href='{e(link)}'>{e(link)}</a>" if link else "", e(why), already_sent)
    parts.append("".join(f"<p style='color:#666;font-size:12px'>{line}</p>" for line in footer))
    parts.append("</div></body></html>")
    return "".join(parts)


# --- Slack ----------------------------------------------------------------------------------------------------------


def slack_payload(cards: list[AlertCard], *, month_name: str, synthetic: bool, link: str = "") -> dict:
    """An incoming-webhook message: header, the synthetic notice, a summary, then a section and a context block per
    alert; alerts beyond the block budget are counted in a last context block."""
    title = headline(month_name, synthetic)
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": _cut(title, SLACK_MAX_HEADER)}}]
    if synthetic:
        blocks.append(_slack_section(f":warning: *{_mrkdwn(SYNTHETIC_NOTICE)}*"))
    blocks.append(_slack_context(_mrkdwn(summary_line(cards))))
    closing = [_slack_section(f"<{link}|Open the month's report>")] if link else []
    room = (SLACK_MAX_BLOCKS - len(blocks) - len(closing) - 1) // 2  # two blocks an alert, one for "more"
    for card in cards[:room]:
        blocks.append(_slack_section(f"*{_mrkdwn(card.title)}*\n{_mrkdwn(card.sentence)}"))
        blocks.append(_slack_context(f"*{card.severity.upper()}* · {card.status} · {_mrkdwn(card.source)}"))
    if len(cards) > room:
        blocks.append(_slack_context(f"… and {len(cards) - room} more alerts in the report"))
    blocks += closing
    return {"text": _cut(f"{title}: {summary_line(cards)}", SLACK_MAX_TEXT), "blocks": blocks}


def _slack_section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_MAX_TEXT)}}


def _slack_context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, SLACK_MAX_TEXT)}]}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, as its formatting guide asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Microsoft Teams ------------------------------------------------------------------------------------------------


def teams_payload(cards: list[AlertCard], *, month_name: str, synthetic: bool, link: str = "") -> dict:
    """A Workflows-webhook message with one Adaptive Card; alerts that would take it over Teams' size limit are
    counted at its end instead."""
    body: list[dict] = [_text(headline(month_name, synthetic), weight="Bolder", size="Large")]
    if synthetic:
        body.append({"type": "Container", "style": "attention", "items": [_text(SYNTHETIC_NOTICE, weight="Bolder")]})
    body.append(_text(summary_line(cards), isSubtle=True))
    card = {
        "$schema": ADAPTIVE_SCHEMA,
        "type": "AdaptiveCard",
        "version": TEAMS_CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the month's report", "url": link}]
    message = {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}
    for shown, alert in enumerate(cards):
        body.append(_teams_alert(alert))
        # The "more" line (about 100 bytes) must fit as well.
        if len(json.dumps(message).encode()) > TEAMS_MAX_BYTES - 200:
            body.pop()
            body.append(_text(f"… and {len(cards) - shown} more alerts in the report", isSubtle=True))
            break
    return message


def _teams_alert(card: AlertCard) -> dict:
    return {
        "type": "Container",
        "separator": True,
        "items": [
            _text(card.title, weight="Bolder"),
            _text(card.sentence),
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Severity", "value": card.severity},
                    {"title": "Status", "value": card.status},
                    {"title": "Source", "value": card.source},
                ],
            },
        ],
    }


def _text(text: str, **style: str | bool) -> dict:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}
