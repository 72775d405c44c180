"""One report document, two renderings: a self-contained HTML page and Markdown with PNG files.

The HTML references nothing outside itself: images are inline base64 PNG, the style sheet is inline,
there are no scripts, fonts or links, and URL schemes inside quoted text (e.g. a profile's citation)
are dropped, so the page renders the same offline and can never leak a request.
"""
from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from accelsim.report.plotting import png_bytes


@dataclass
class Para:
    text: str
    warn: bool = False  # rendered as a flagged note (assumptions, missing data)


@dataclass
class Table:
    head: list[str]
    body: list[list[str]]
    caption: str = ""
    warn_rows: set[int] = field(default_factory=set)  # rows flagged in HTML (e.g. assumptions)
    left: int = 2  # leading text columns, aligned left (the rest are numbers, aligned right); 9: all text


@dataclass
class Image:
    name: str  # file stem under figures/ for Markdown
    png: bytes
    caption: str

    @classmethod
    def of(cls, name: str, fig: Figure, caption: str) -> "Image":
        return cls(name, png_bytes(fig), caption)


@dataclass
class Pre:
    text: str


@dataclass
class Verdict:
    lines: list[tuple[str, str]]  # (label, sentence): a short list read before anything else


@dataclass
class Details:
    summary: str  # the one line shown while collapsed
    blocks: list = field(default_factory=list)


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""


_SCHEME = re.compile(r"\b(?:https?|ftp|file)://", re.I)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#1b1f23;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:right;white-space:normal;overflow-wrap:break-word;
vertical-align:top}td:first-child{white-space:nowrap}table.l9 td:first-child{white-space:normal;min-width:12em}
th{background:#f6f8fa}table.l1 :is(td,th):first-child,table.l2 :is(td,th):nth-child(-n+2),table.l9 :is(td,th){
text-align:left}
tr.warn td{background:#fff8c5}p.warn{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .7em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eaeef2}figcaption{font-size:.85em;color:#57606a}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}nav a{margin-right:.8em}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
ul.verdict{background:#f0f6ff;border:1px solid #b6d4fe;border-radius:6px;padding:.7em 1em .7em 2.2em;font-size:1.02em}
ul.verdict li{margin:.25em 0}details{margin:.8em 0}summary{cursor:pointer;font-weight:600}
"""


def _h(text: str) -> str:
    return html.escape(_SCHEME.sub("", text))


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _html_block(b) -> str:
    if isinstance(b, Para):
        return f'<p class="warn">&#9888; {_h(b.text)}</p>' if b.warn else f"<p>{_h(b.text)}</p>"
    if isinstance(b, Pre):
        return f"<pre>{_h(b.text)}</pre>"
    if isinstance(b, Image):
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure id="fig-{_h(b.name)}"><img alt="{_h(b.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_h(b.caption)}</figcaption></figure>")
    if isinstance(b, Verdict):
        return '<ul class="verdict">' + "".join(f"<li><b>{_h(k)}:</b> {_h(v)}</li>" for k, v in b.lines) + "</ul>"
    if isinstance(b, Details):
        return (f"<details><summary>{_h(b.summary)}</summary>" + "\n".join(_html_block(x) for x in b.blocks)
                + "</details>")
    if isinstance(b, Table):
        cap = f"<caption>{_h(b.caption)}</caption>" if b.caption else ""
        head = "".join(f"<th>{_h(c)}</th>" for c in b.head)
        rows = "".join(f'<tr{" class=warn" if i in b.warn_rows else ""}>' + "".join(f"<td>{_h(c)}</td>" for c in row)
                       + "</tr>" for i, row in enumerate(b.body))
        return (f'<table class="l{min(b.left, 9)}">{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
                "</table>")
    raise TypeError(type(b).__name__)


def render_html(title: str, sections: list[Section], data: dict) -> str:
    nav = " ".join(f'<a href="#{s.anchor or _slug(s.title)}">{_h(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor or _slug(s.title)}"><h2>{_h(s.title)}</h2>\n'
                     + "\n".join(_html_block(b) for b in s.blocks) + "</section>" for s in sections)
    # the report's numbers, machine-readable; a JSON data block is inert (never executed)
    blob = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_h(title)}</title><style>{_CSS}</style></head>\n<body><h1>{_h(title)}</h1><nav>{nav}</nav>\n"
            f'{body}\n<script type="application/json" id="report-data">{_SCHEME.sub("", blob)}</script>'
            f"</body></html>\n")


def _md_table(t: Table) -> str:
    from accelsim.report.tables import to_markdown

    cap = f"**{t.caption}**\n\n" if t.caption else ""
    body = [[("⚠ " + row[0]) if i in t.warn_rows else row[0]] + row[1:] for i, row in enumerate(t.body)]
    return cap + to_markdown(t.head, body)


def render_markdown(title: str, sections: list[Section], figures_dir: Path, rel: str = "figures") -> str:
    """Markdown text; each image is written to ``figures_dir/<name>.png`` and linked relatively."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}"]
    for s in sections:
        parts.append(f"## {s.title}")
        parts.extend(_md_blocks(s.blocks, figures_dir, rel))
    return "\n\n".join(parts) + "\n"


def _md_blocks(blocks: list, figures_dir: Path, rel: str) -> list[str]:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Verdict):
            parts.append("\n".join(f"* **{k}:** {v}" for k, v in b.lines))
        elif isinstance(b, Details):
            # GitHub and most Markdown viewers render raw <details>; the content stays plain Markdown
            parts.append(f"<details><summary>{html.escape(b.summary)}</summary>")
            parts.extend(_md_blocks(b.blocks, figures_dir, rel))
            parts.append("</details>")
        elif isinstance(b, Para):
            parts.append(f"> ⚠ {b.text}" if b.warn else b.text)
        elif isinstance(b, Pre):
            parts.append(f"```\n{b.text}\n```")
        elif isinstance(b, Table):
            parts.append(_md_table(b))
        elif isinstance(b, Image):
            (figures_dir / f"{b.name}.png").write_bytes(b.png)
            parts.append(f"![{b.caption}]({rel}/{b.name}.png)\n\n*{b.caption}*")
    return parts
