"""The Data Docs index, opened offline in headless Chromium, lists every validation result.

Runs ``python -m flows.bench.datadocs_screenshot`` on a workspace where two nights'
validate stage and one output check ran (three stored results; the second night's
fails), opens the failed result's page to use its "Failed only" filter, then on the same
workspace with GX's own index put back in place of the static one: the check must
fail there, as GX's index draws its list with scripts from CDNs. Skips when no
Chromium is installed.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from flows.bench.datadocs_screenshot import SITE
from flows.bench.screenshot_chromium import Page, find_chromium
from tests.conftest import run_command
from tests.expectations.test_docs_site import validate_a_workspace

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium on PATH (apt-get update && apt-get install -y chromium)",
)


def screenshot(workspace: Path, png: Path):
    command = [sys.executable, "-m", "flows.bench.datadocs_screenshot"]
    args = ["--workspace", str(workspace), "--out", str(png)]
    return run_command(command + args, timeout=300, cwd=ROOT)


def test_the_index_lists_every_result_offline_and_gx_index_does_not(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    validate_a_workspace(workspace)
    png = tmp_path / "docs.png"

    done = screenshot(workspace, png)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "listed: 3 validation result(s)" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.with_name("docs-result.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = png.with_suffix(".html").read_text()
    assert len(re.findall(r'<tr class="validation-result">', dom)) == 3

    site = workspace / SITE
    # the failed result's page: "Failed only" hides the expectations that passed, no script
    failed = next(site.glob("validations/interactions/2024-06-01-*/*/*.html"))
    shown = "Array.from(document.querySelectorAll('tr')).filter(t => t.getClientRects().length)"
    with Page(str(find_chromium()), failed.as_uri()) as page:
        everything = page.evaluate(f"{shown}.length")
        page.evaluate("document.getElementById('option2').click()")
        assert 0 < page.evaluate(f"{shown}.length") < everything
        assert page.evaluate("document.querySelector('.fa-times, .fa-times-circle') !== null")

    shutil.copy(site / "gx-index.html", site / "index.html")
    done = screenshot(workspace, tmp_path / "gx.png")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "listed: 0 validation result(s)" in done.stdout
    assert "3 stored result(s) not listed" in done.stdout
