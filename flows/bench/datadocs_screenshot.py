"""What the Data Docs of a workspace show without internet: a PNG of the index and a check.

    python -m flows.bench.datadocs_screenshot --workspace W [--out shot.png]

Opens the Data Docs index (``validation/gx/uncommitted/data_docs/local_site/index.html``,
the "validation report" a run prints) through a ``file://`` URL in headless Chromium
with no network (``flows.bench.screenshot_chromium``: no host name resolves), saves a
screenshot and the rendered DOM, and checks that the page lists every validation result
in the workspace's GX store that has a page (a run that stopped before building its Data
Docs left a result without one: noted, as GX's own index leaves it out too), each row
laid out and linking a page that exists; then opens the
newest result's page and checks that it is styled (a table cell with a border). Prints
what it found; exits 0 when the check passes, 1 when it fails, 2 when something it needs
is missing (Chromium: ``apt-get install -y chromium``; a workspace without Data Docs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from flows.bench.screenshot_chromium import Page, find_chromium

SITE = Path("validation", "gx", "uncommitted", "data_docs", "local_site")
RESULTS = Path("validation", "gx", "uncommitted", "validations")

#: The rows of the index's results table as the browser lays them out.
_ROWS_JS = """
Array.from(document.querySelectorAll('#validation-results tr.validation-result')).map(tr => {
  const cells = Array.from(tr.cells).map(td => td.innerText.trim());
  const r = tr.getBoundingClientRect();
  return {cells: cells, href: tr.querySelector('a').getAttribute('href'),
          visible: r.width > 0 && r.height > 0};
})
"""
_STYLED_JS = """
(() => { const td = document.querySelector('td');
  return td !== null && getComputedStyle(td).borderTopStyle !== 'none'; })()
"""


@dataclass(frozen=True)
class Listed:
    """One validation result as the index shows it."""

    run_time: str
    suite: str
    table: str
    batch: str
    run: str
    result: str
    page: str  # the linked page, relative to the site

    @property
    def key(self) -> tuple[str, str, str]:
        """(suite, run name, batch): what names a stored result."""
        return (self.suite, self.run, self.batch)


def stored_results(workspace: Path) -> set[tuple[str, str, str]]:
    """(suite, run name, batch) of every validation result in the workspace's GX store
    (``<suite>/<run name>/<run time>/<batch>.json``)."""
    root = workspace / RESULTS
    return {
        (p.relative_to(root).parts[0], p.parent.parent.name, p.stem)
        for p in root.glob("*/*/*/*.json")
    }


def result_page_exists(site: Path, key: tuple[str, str, str]) -> bool:
    """Whether GX built a page for the stored result ``key`` (any run time)."""
    suite, run, batch = key
    return any((site / "validations" / suite / run).glob(f"*/{batch}.html"))


def check_index(chromium: str, index: Path, png: Path) -> tuple[list[Listed], str, bool]:
    """The results listed by ``index`` as rendered offline, its DOM, and whether every row
    is visible; writes ``png``."""
    with Page(chromium, index.resolve().as_uri(), size=(1366, 900)) as page:
        page.wait_for("document.readyState === 'complete'", timeout=60)
        rows = page.evaluate(_ROWS_JS) or []
        page.screenshot(png)
        dom = page.dom()
    listed = [_listed(row["cells"], unquote(row["href"])) for row in rows]
    return listed, dom, all(row["visible"] for row in rows)


def _listed(cells: list[str], page: str) -> Listed:
    run_time, suite, table, batch, run, result = cells[:6]
    return Listed(run_time, suite, table, batch, run, result, page)


def page_is_styled(chromium: str, page_path: Path, png: Path) -> bool:
    """Whether a result page renders with its inline styles offline; writes ``png``."""
    with Page(chromium, page_path.resolve().as_uri(), size=(1366, 900)) as page:
        page.wait_for("document.readyState === 'complete'", timeout=60)
        styled = bool(page.evaluate(_STYLED_JS))
        page.screenshot(png)
    return styled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench.datadocs_screenshot",
        description="Screenshot and check a recpipe workspace's Data Docs without internet.",
    )
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, help="PNG path (default: <workspace>/datadocs-screenshot.png)"
    )
    args = parser.parse_args(argv)
    site = args.workspace / SITE
    index = site / "index.html"
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium on PATH; install it: apt-get update && apt-get install -y chromium")
        return 2
    if not index.is_file():
        print(f"no Data Docs at {index}; make a workspace with 'recpipe --workspace W run'")
        return 2
    png = (args.out or args.workspace / "datadocs-screenshot.png").resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    listed, dom, visible = check_index(chromium, index, png)
    png.with_suffix(".html").write_text(dom)
    print(f"page        {index.resolve().as_uri()}")
    print(f"screenshot  {png}")
    print(f"DOM         {png.with_suffix('.html')}")
    print(f"listed: {len(listed)} validation result(s)")
    for row in listed:
        print(f"  {row.run_time}  {row.suite:<16} {row.run:<32} {row.result}")
    failures = []
    stored = stored_results(args.workspace)
    pageless = {key for key in stored if not result_page_exists(site, key)}
    for key in sorted(pageless):  # GX lists a result once its page exists
        print(f"  note: no page for stored result {key} (its run stopped before building docs)")
    missing = stored - pageless - {row.key for row in listed}
    if missing:
        failures.append(f"{len(missing)} stored result(s) not listed: {sorted(missing)[:5]}")
    if not visible:
        failures.append("some listed rows are not laid out (hidden or zero-sized)")
    dead = [row.page for row in listed if not (site / row.page).is_file()]
    if dead:
        failures.append(f"{len(dead)} link(s) to missing pages: {dead[:3]}")
    if listed and not dead:
        page_png = png.with_name(png.stem + "-result.png")
        if not page_is_styled(chromium, site / listed[0].page, page_png):
            failures.append(f"the result page {listed[0].page} renders without styles")
        print(f"result page {site / listed[0].page} -> {page_png}")
    if not listed:
        failures.append("the index lists no validation result")
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        return 1
    print("OK: the index lists every validation result, offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
