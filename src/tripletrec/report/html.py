"""HTML building blocks of the reports: escaping, tables, inline images, the page.

Every value that reaches a page goes through :func:`cell` (or :func:`escape`): item names,
user ids, settings and file names are user data, and a name such as ``<script>`` must show
as text. Only :class:`Html` values (built here from escaped parts) pass unescaped. Pages are
self-contained: the style sheet is inline and images are ``data:`` URLs, so a report opens
offline and fetches nothing.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Collection, Iterable, Sequence
from string import Template
from typing import Any


class Html(str):
    """Markup already escaped: :func:`cell` writes it as it is."""


def escape(value: Any) -> Html:
    """``value`` as text that cannot open a tag or close an attribute."""
    return Html(html.escape(str(value), quote=True))


def number(value: float) -> str:
    """A number as a report shows it: integers with thousands separators; below 1, four
    decimals (as the command line prints metrics), or three significant digits when
    smaller than 0.001; above 1, four significant digits (``nan``, ``inf`` spelt out)."""
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if value.is_integer() and size < 1e15:
        return f"{int(value):,}"
    if size < 1e-3:
        return f"{value:.3g}"
    if size < 1:
        return f"{value:.4f}"
    return f"{value:,.{max(0, 3 - int(math.log10(size)))}f}"


def cell(value: Any) -> Html:
    """The HTML of one value: markup as is, numbers formatted, anything else escaped."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return Html(number(value))  # type: ignore[arg-type]
    return escape(value)


def tag(name: str, content: Any, **attributes: str) -> Html:
    """``<name attr="..">content</name>``; ``content`` through :func:`cell`."""
    shown = "".join(f' {key.rstrip("_")}="{escape(value)}"' for key, value in attributes.items())
    return Html(f"<{name}{shown}>{cell(content)}</{name}>")


def join(parts: Iterable[Any], separator: str = "") -> Html:
    """Parts through :func:`cell`, joined by ``separator`` (itself escaped)."""
    return Html(escape(separator).join(cell(part) for part in parts))


def table(
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Collection[int] | None = None,
    caption: str | None = None,
) -> Html:
    """A table; the ``numeric`` columns (default: all but the first) are right-aligned."""
    head = join(tag("th", name) for name in header)
    numeric = range(1, len(header)) if numeric is None else numeric
    body = []
    for row in rows:
        cells = (
            tag("td", value, class_="num") if i in numeric else tag("td", value)
            for i, value in enumerate(row)
        )
        body.append(tag("tr", join(cells)))
    shown = "" if caption is None else tag("caption", caption)
    return Html(
        f"<table>{shown}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def image(png: bytes, alt: str) -> Html:
    """An inline PNG (a ``data:`` URL: nothing is fetched when the page opens)."""
    data = base64.b64encode(png).decode("ascii")
    return Html(f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">')


def section(title: str, *parts: Any, id_: str | None = None) -> Html:
    """A titled ``<section>`` of parts (through :func:`cell`)."""
    anchor = "" if id_ is None else f' id="{escape(id_)}"'
    return Html(f"<section{anchor}>{tag('h2', title)}{join(parts)}</section>")


def contents(sections: Sequence[tuple[str, str]]) -> Html:
    """Links to the page's own sections: ``(anchor id, title)`` pairs."""
    links = (f'<a href="#{escape(anchor)}">{escape(title)}</a>' for anchor, title in sections)
    return Html(f"<nav>{''.join(links)}</nav>")


def note(text: str) -> Html:
    """A muted remark (why a section is empty, where a figure is missing)."""
    return tag("p", text, class_="note")


_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       margin: 0 auto; padding: 24px 32px 48px; max-width: 1180px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.subtitle, .note { color: #59636e; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d0d7de; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff8c5; }
td.best { font-weight: 700; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.grid { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }
.grid > div { flex: 0 1 auto; }
.figures img { height: 260px; width: auto; max-width: 100%; object-fit: contain; margin: 0; }
nav { margin: 6px 0 0; font-size: 14px; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
.user { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
.history { color: #3d444d; }
.because { color: #59636e; font-size: 13px; }
code { font-size: 13px; background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
"""

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<h1>$title</h1>
<p class="subtitle">$subtitle</p>
$body
</body>
</html>
""")


def page(title: str, subtitle: str, sections: Iterable[Any]) -> str:
    """A whole self-contained HTML document."""
    return _PAGE.substitute(
        title=escape(title), subtitle=cell(subtitle), style=_STYLE, body=join(sections, "\n")
    )
