"""The report's document (document.py) written as one self-contained HTML page and as Markdown with its plots beside
it. Every text is data-safe here: `text.html_text` / `text.markdown_text` for words, `tables.py` for tables."""

from __future__ import annotations

import base64

from sahel_pipeline.core.report.document import (
    Banner,
    Block,
    Bullets,
    Card,
    Document,
    Heading,
    Link,
    Paragraph,
    Picture,
    Table,
)
from sahel_pipeline.core.tables import html_table, markdown_table
from sahel_pipeline.core.text import html_text, markdown_text

SEVERITY_COLOURS = {"high": "#b2182b", "medium": "#d6604d", "low": "#b8860b"}


def render_html(document: Document, css: str | None = None) -> str:
    """The page, styled by `css` (the report's style by default)."""
    body = "\n".join(_html(block) for block in document.blocks if not isinstance(block, Banner))
    banners = "".join(_html(block) for block in document.blocks if isinstance(block, Banner))
    return "\n".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html_text(document.title)}</title>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<style>{_CSS if css is None else css}</style></head><body>",
            banners,
            "<main>",
            body,
            "</main></body></html>",
        ]
    )


def _html(block: Block) -> str:
    match block:
        case Banner(text):
            return f"<div class='synthetic' role='alert'>{html_text(text)}</div>"
        case Heading(text, level):
            return f"<h{level}>{html_text(text)}</h{level}>"
        case Paragraph(text, style):
            if style == "quote":
                return f"<blockquote><p class='to-paste'>To paste:</p><p>{html_text(text)}</p></blockquote>"
            return f"<p class='{style}'>{html_text(text)}</p>" if style else f"<p>{html_text(text)}</p>"
        case Link(text, href, before):
            return f"<p>{html_text(before)}<a href='{html_text(href)}'>{html_text(text)}</a></p>"
        case Bullets(items, style):
            listed = "".join(f"<li>{html_text(item)}</li>" for item in items)
            return f"<ul class='{style}'>{listed}</ul>" if style else f"<ul>{listed}</ul>"
        case Table(frame, caption, cell):
            head = f"<p class='caption'>{html_text(caption)}</p>" if caption else ""
            return f"{head}<div class='scroll'>{html_table(frame, cell)}</div>"
        case Picture(figure):
            data = base64.b64encode(figure.png).decode()
            return (
                f"<figure><img src='data:image/png;base64,{data}' alt='{html_text(figure.alt)}'>"
                f"<figcaption>{html_text(figure.caption)}</figcaption></figure>"
            )
        case Card(card, body):
            colour = SEVERITY_COLOURS.get(card.severity, "#777")
            head = (
                f"<h2><span class='badge' style='background:{colour}'>{html_text(card.severity)}</span>"
                f"<span class='status'>{html_text(card.status)} &middot; {html_text(card.source)}</span> "
                f"{html_text(card.title)}</h2>"
            )
            return "<section class='alert'>" + head + "".join(_html(b) for b in body) + "</section>"
    raise TypeError(f"no HTML for {type(block).__name__}")


def render_markdown(document: Document, image_dir: str) -> str:
    lines: list[str] = []
    for block in document.blocks:
        lines += _markdown(block, image_dir)
    return "\n".join(lines)


def _markdown(block: Block, image_dir: str) -> list[str]:
    match block:
        case Banner(text):
            return [f"> **{markdown_text(text)}**", ""]
        case Heading(text, level):
            return [f"{'#' * level} {markdown_text(text)}", ""]
        case Paragraph(text, style):
            if style == "quote":
                return [f"> To paste: {markdown_text(text)}", ""]
            return [f"_{markdown_text(text)}_" if style == "note" else markdown_text(text), ""]
        case Link(text, href, before):
            return [f"{markdown_text(before)}[{markdown_text(text)}](<{href}>)", ""]
        case Bullets(items, _):
            return [*(f"- {markdown_text(item)}" for item in items), ""]
        case Table(frame, caption, cell):
            return [*([markdown_text(caption), ""] if caption else []), markdown_table(frame, cell), ""]
        case Picture(figure):
            image = f"![{markdown_text(figure.alt)}]({image_dir}/{figure.name}.png)"
            return [image, "", markdown_text(figure.caption), ""]
        case Card(card, body):
            head = f"## [{card.severity}, {card.status}] {markdown_text(card.title)} ({markdown_text(card.source)})"
            return [head, "", *(line for b in body for line in _markdown(b, image_dir))]
    raise TypeError(f"no Markdown for {type(block).__name__}")


# Narrow screens: nothing wider than the page (tables scroll inside their box, images shrink), body text 16 px.
_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;background:#fafafa;margin:0;
line-height:1.45;overflow-wrap:anywhere}
main{max-width:920px;margin:0 auto;padding:1.2rem 1rem 4rem}
h1{font-size:1.6rem;margin:.4rem 0} h2{font-size:1.15rem;margin-top:1.8rem}
.lead{font-size:1.05rem;color:#333;font-weight:500}
ul.provenance{font-size:.82rem;color:#444;background:#f1f1f1;border-radius:6px;padding:.5rem .6rem .5rem 1.6rem}
ul.changes{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:.5rem .6rem .5rem 1.6rem}
section.alert{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:.6rem 1rem 1rem;margin:1.2rem 0}
section.alert h2{margin-top:.4rem}
.badge{color:#fff;border-radius:4px;padding:.1rem .45rem;font-size:.8rem;margin-right:.4rem;text-transform:uppercase}
.status{font-size:.8rem;color:#666;margin-right:.5rem}
.why{background:#fff4e5;border-left:4px solid #e08214;padding:.3rem .6rem}
blockquote{margin:.6rem 0;padding:.2rem .8rem;border-left:4px solid #92c5de;background:#f4f9fc}
.to-paste{font-size:.75rem;color:#666;margin:.2rem 0 0;text-transform:uppercase}
.note{color:#555;font-size:.9rem}
figure{margin:.8rem 0} figure img{max-width:100%;height:auto;display:block} figcaption{font-size:.8rem;color:#666}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.85rem;width:100%;background:#fff}
th,td{border-bottom:1px solid #e5e5e5;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.caption{font-size:.85rem;color:#444;margin-bottom:.2rem}
.synthetic{background:#7a0019;color:#fff;font-weight:600;padding:.6rem 1.2rem;text-align:center}
.none{font-size:1.05rem;background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:1rem}
"""
