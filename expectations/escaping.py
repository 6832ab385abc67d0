"""Make text that came from input safe for HTML (the Data Docs) and Markdown (artifacts).

Input ids, values, titles and genres are data: the Parquet tables keep them raw, but a value
such as ``<script>alert(3)</script>`` must never reach a page a browser renders as markup.

* ``html_safe`` deep-copies a GX result (dicts, lists, tuples, strings) with every string
  HTML-escaped. The runner stores only such copies in the shared GX project, so the stored
  validation results and the Data Docs built from them (GX renders unexpected values and
  index values without escaping them) hold ``&lt;script&gt;``: shown as text, never run.
* ``markdown_text`` escapes a string for a Markdown paragraph or table cell: ``<``, ``>``,
  ``&`` as HTML entities (raw HTML in Markdown is passed through by most renderers),
  backticks and pipes as entities / ``\\|`` (no code spans, no extra table columns),
  ``[``/``]`` (no links) and newlines as spaces (no new blocks).
"""

from __future__ import annotations

import html
from typing import Any

_MARKDOWN = str.maketrans({"`": "&#96;", "|": "\\|", "[": "\\[", "]": "\\]", "\n": " ", "\r": " "})


def html_safe(value: Any) -> Any:
    """A copy of ``value`` with every string (keys too) HTML-escaped; other leaves as they are."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, dict):
        return {html_safe(k): html_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [html_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(html_safe(v) for v in value)
    if isinstance(value, set | frozenset):
        return [html_safe(v) for v in value]
    return value


def markdown_text(value: Any) -> str:
    """``value`` as Markdown text: no HTML, code span, link, table column or block of its own."""
    return html.escape(str(value), quote=True).translate(_MARKDOWN)
