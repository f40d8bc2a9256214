"""HTML pieces for the inspection site: escaping, ``<MASK>`` spans as highlighted ``<mark>`` elements, tokens
coloured by a value, and the one stylesheet (inline: the site opens from disk with no network request)."""

from __future__ import annotations

import html
import math
from typing import Iterable, Sequence

from savi_plugin.data.tags import TagError, parse_tags

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em auto;max-width:1100px;
color:#1d1d1f;padding:0 1em}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top}th{background:#f4f4f6}
mark.tag{background:#ffe08a;border-radius:3px;padding:0 2px}
.chosen mark.tag{background:#b8f0c0}.rejected mark.tag{background:#ffc4c4}
.resp{white-space:pre-wrap;overflow-wrap:anywhere;border:1px solid #ddd;border-radius:6px;padding:8px;margin:4px 0}
.chosen{border-color:#4caf50}.rejected{border-color:#e53935}
.thumbs img,.thumbs .missing{width:150px;height:auto;margin:2px;border:1px solid #ccc}
.thumbs .missing{display:inline-block;height:84px;background:#eee;color:#666;font-size:12px;padding:4px;
box-sizing:border-box}
.meta{font:12px monospace;white-space:pre-wrap;background:#f7f7f9;padding:8px;border-radius:6px}
.bad{color:#b00020}.nav a{margin-right:1em}.tok{border-radius:2px}
#filters label{margin-right:1em}
"""


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def highlight_tags(tagged: str | None, plain: str) -> str:
    """``tagged``'s phrases wrapped in ``<mark class="tag">`` (escaped); ``plain`` escaped when untagged or when
    its tags do not parse (then with a note)."""
    if not tagged:
        return escape(plain)
    try:
        parsed = parse_tags(tagged)
    except TagError as exc:
        return f'{escape(plain)} <span class="bad">(tags do not parse: {escape(exc)})</span>'
    out, at = [], 0
    for start, end in parsed.spans:
        out.append(escape(parsed.text[at:start]))
        out.append(f'<mark class="tag">{escape(parsed.text[start:end])}</mark>')
        at = end
    out.append(escape(parsed.text[at:]))
    return "".join(out)


def coloured_tokens(tokens: Sequence[str], values: Sequence[float], *, label: str = "KL") -> str:
    """Each token in a span whose red intensity grows with its value (scaled by the largest finite one), with the
    value in its tooltip."""
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0
    spans = []
    for token, value in zip(tokens, values):
        share = min(1.0, max(0.0, value / top)) if math.isfinite(value) else 1.0
        spans.append(f'<span class="tok" style="background:rgba(229,57,53,{share:.2f})" '
                     f'title="{escape(label)} {value:.4g}">{escape(token)}</span>')
    return "".join(spans)


def page(title: str, body: Iterable[str], *, scripts: Sequence[str] = ()) -> str:
    """A whole HTML page: the inline stylesheet, ``body`` and local ``scripts`` (relative paths)."""
    tags = "".join(f'<script src="{escape(s)}"></script>' for s in scripts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body>{"".join(body)}{tags}</body></html>')
