"""The Data Docs site as it reads without internet: a static index and styled pages.

GX's index page draws its list of validation results with JavaScript loaded from CDNs
(jQuery, Bootstrap, bootstrap-table); its pages take their styles and icons from CDNs
too. Without a network the index shows two links and two buttons, and a result page
shows bare HTML whose status icons are missing. So after GX builds the site:

* ``index.html`` is a plain page with its CSS inline and no script, listing every
  validation result GX's index lists (newest first: run time, suite, table, batch, run,
  success, link to GX's page) and every expectation suite; GX's own index is kept beside
  it as ``gx-index.html`` (it works where the CDNs answer);
* every page GX made gets a ``<style>`` of its own (:data:`PAGE_CSS`: grid, tables,
  cards, badges, the status icons as text, the "Failed only" filter in CSS) in place
  of the CDN stylesheets and scripts, which offline only fail, and the GX logo from the
  site's ``static`` folder instead of a remote image. A page whose head already holds
  this stylesheet is left alone, so a night touches only the pages GX (re)wrote (and,
  once, pages styled by an older stylesheet).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

INDEX = "index.html"
GX_INDEX = "gx-index.html"
MARKER = '<style id="recpipe-offline">'
LOGO = Path("static", "images", "logo-long.png")  # GX copies its static folder into a site
_OUR_STYLE = re.compile(re.escape(MARKER) + r".*?</style>", re.DOTALL)
_REMOTE_LOGO = re.compile(r'src="https://great-expectations-web-assets\.[^"]*"')
_CDN_TAG = re.compile(
    r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>|<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>",
    re.IGNORECASE,
)

PAGE_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;margin:0}
a{color:#0b5cad}
.container-fluid{padding:16px 32px}.row{display:flex;flex-wrap:wrap;margin:0 -8px}
.row>*{padding:0 8px;box-sizing:border-box}.col-12,.col-sm-12,.col-xs-12{width:100%}
@media(min-width:768px){.col-md-2{width:18%}.col-md-10{width:82%}}
.navbar{display:flex;align-items:center;border-bottom:1px solid #dee2e6;padding:6px 32px}
.navbar-brand img{height:28px}.breadcrumb{display:flex;gap:6px;list-style:none;margin:0;padding:0}
.breadcrumb-item+.breadcrumb-item:before{content:"/";padding-right:6px;color:#6c757d}
.nav{list-style:none;padding-left:0}.nav-link{display:block;padding:2px 0}
.sticky{position:sticky;top:10px}.d-none{display:none}.d-flex{display:flex}
.justify-content-center{justify-content:center}.float-left{float:left}
.card{border:1px solid #dee2e6;border-radius:6px;margin-bottom:12px}
.card-header{background:#f3f4f6;padding:6px 10px;border-bottom:1px solid #dee2e6}
.card-body{padding:10px}.collapse{display:block}
.alert{border:1px solid #d6d8db;background:#f6f7f8;border-radius:6px;padding:10px 14px;
margin:0 0 16px}
.ge-section{clear:both;margin-bottom:24px}
table,.table{border-collapse:collapse;margin:4px 0 12px;max-width:100%}
th,td{border-top:1px solid #dee2e6;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f3f4f6}.table-responsive{overflow-x:auto}
.show-scrollbars{overflow:auto;max-height:80vh}
.badge{display:inline-block;border-radius:4px;padding:1px 6px;font-size:12px;
background:#e9ecef;color:#343a40}
.text-success{color:#137333}.text-danger{color:#b3261e}.text-warning{color:#9a6700}
.fas:before{font-style:normal;font-weight:700}.fa-check-circle:before{content:"\\2714"}
.fa-times:before,.fa-times-circle:before,.fa-exclamation-triangle:before{content:"\\2716"}
.btn{display:inline-block;border:1px solid #0b5cad;border-radius:4px;padding:2px 10px;margin:2px}
.btn input{margin-right:4px}.lead{color:#555}
.cooltip .top{display:none}.modal,footer,#ge-cta-footer{display:none}
body:has(#option2:checked) :has(> .hide-succeeded-validation-target-child){display:none}
body:has(#option2:checked) .hide-succeeded-validation-target{display:none}
body:has(#option2:checked) :has(> * > .hide-succeeded-validations-column-section-target-child)
{display:none}
"""

INDEX_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;
margin:24px 32px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}p{margin:4px 0}
.note{color:#555}table{border-collapse:collapse;margin-top:8px}
th,td{border-top:1px solid #dee2e6;padding:5px 12px;text-align:left;white-space:nowrap}
th{background:#f3f4f6}tr:hover td{background:#f8f9fb}a{color:#0b5cad}
.ok{color:#137333;font-weight:600}.failed{color:#b3261e;font-weight:600}
.unknown{color:#6c757d}code{font-size:13px}
"""


def publish(site: Path, links: dict[str, Any]) -> Path:
    """Write the static index of ``site`` from GX's index links (``SiteBuilder.build``'s
    second value) and style every page it links; the index's path."""
    site = Path(site)
    gx_index = site / INDEX
    if gx_index.is_file() and MARKER not in _head(gx_index, 4096):
        gx_index.replace(site / GX_INDEX)
    validations = list(links.get("validations_links") or [])
    suites = list(links.get("expectations_links") or [])
    style_pages(site, (site / unquote(link["filepath"]) for link in validations + suites))
    index = site / INDEX
    index.write_text(index_html(validations, suites), encoding="utf-8")
    return index


def style_pages(site: Path, pages: Iterable[Path]) -> int:
    """Give each page of ``site`` the inline stylesheet in place of the CDN tags (or in
    place of an older version of it), and the GX logo from the site's own ``static``
    folder; how many pages changed."""
    styled = f"<head>{MARKER}{PAGE_CSS}</style>"
    changed = 0
    for page in pages:
        if not page.is_file() or styled in _head(page, len(styled) + 1024):
            continue
        text = page.read_text(encoding="utf-8")
        text = _OUR_STYLE.sub("", text)
        text = _CDN_TAG.sub("", text)
        logo = Path(os.path.relpath(site / LOGO, page.parent)).as_posix()
        text = _REMOTE_LOGO.sub(f'src="{logo}"', text)
        text = text.replace("<head>", styled, 1)
        page.write_text(text, encoding="utf-8")
        changed += 1
    return changed


def _head(page: Path, size: int) -> str:
    with page.open(encoding="utf-8", errors="replace") as f:
        return f.read(size)


def index_html(validations: list[dict], suites: list[dict]) -> str:
    """The index page: the validation results newest first, then the suites."""
    rows = sorted(validations, key=lambda v: _sort_key(v.get("run_time")), reverse=True)
    failed = sum(1 for v in rows if v.get("validation_success") is False)
    body = [
        "<h1>recpipe: data validation results</h1>",
        f"<p>{len(rows)} validation result(s), {failed} failed; newest first. "
        "Each links to the Great Expectations page with every expectation and its outcome.</p>",
        f'<p class="note">Great Expectations\' own index: <a href="{GX_INDEX}">{GX_INDEX}</a> '
        "(needs internet for its scripts).</p>",
        "<h2>Validation results</h2>",
        '<table id="validation-results"><thead><tr><th>Run time (UTC)</th><th>Suite</th>'
        "<th>Table</th><th>Batch</th><th>Run</th><th>Result</th><th>Page</th></tr></thead>"
        "<tbody>",
    ]
    body += [_result_row(v) for v in rows]
    body.append("</tbody></table>")
    body.append('<h2>Expectation suites</h2><ul id="expectation-suites">')
    for suite in sorted(suites, key=lambda s: str(s.get("expectation_suite_name"))):
        name = _text(suite.get("expectation_suite_name"))
        body.append(f'<li><a href="{_attr(suite.get("filepath"))}">{name}</a></li>')
    body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>recpipe data validation results</title>{MARKER}{INDEX_CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _result_row(link: dict) -> str:
    success = link.get("validation_success")
    verdict, css = (
        ("succeeded", "ok")
        if success is True
        else ("failed", "failed")
        if success is False
        else ("unknown", "unknown")
    )
    cells = [
        _text(_when(link.get("run_time"))),
        _text(link.get("expectation_suite_name")),
        _text(link.get("asset_name") or ""),
        f"<code>{_text(link.get('batch_identifier'))}</code>",
        _text(link.get("run_name")),
        f'<span class="{css}">{verdict}</span>',
        f'<a href="{_attr(link.get("filepath"))}">open</a>',
    ]
    return '<tr class="validation-result">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _when(run_time: Any) -> str:
    if isinstance(run_time, datetime):
        return run_time.strftime("%Y-%m-%d %H:%M:%S")
    return "" if run_time is None else str(run_time)


def _sort_key(run_time: Any) -> str:
    return run_time.isoformat() if isinstance(run_time, datetime) else str(run_time or "")


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=False)


def _attr(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
