"""The Data Docs site reads without internet: a static index of every result, styled pages.

On tiny synthetic index links (known order and verdicts) and on a GX project where two
validations and an output check ran, as the validate stage and the output check run them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from expectations.docs_site import GX_INDEX, MARKER, PAGE_CSS, index_html, style_pages

SITE = Path("gx", "uncommitted", "data_docs", "local_site")


def link(suite: str, run: str, hour: int, success: bool | None) -> dict:
    return {
        "expectation_suite_name": suite,
        "filepath": f"validations/{suite}/{run}/2026010{hour}T000000.000000Z/recpipe-{suite}.html",
        "batch_identifier": f"recpipe-{suite}",
        "validation_success": success,
        "run_time": datetime(2026, 1, 1, hour, tzinfo=UTC),
        "run_name": run,
        "asset_name": suite,
    }


def rows(page: str) -> list[list[str]]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r'<tr class="validation-result">(.*?)</tr>', body)
    ]


def test_the_index_lists_results_newest_first_with_verdicts_and_escapes_names() -> None:
    page = index_html(
        [
            link("items", "run_date=2026-01-01-a", 1, True),
            link("interactions", "<b>x</b>", 3, False),
            link("edges", "run_date=2026-01-01-b", 2, None),
        ],
        [{"expectation_suite_name": "items", "filepath": "expectations/items.html"}],
    )
    assert [(r[0], r[1], r[5]) for r in rows(page)] == [
        ("2026-01-01 03:00:00", "interactions", "failed"),
        ("2026-01-01 02:00:00", "edges", "unknown"),
        ("2026-01-01 01:00:00", "items", "succeeded"),
    ]
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "3 validation result(s), 1 failed" in page
    assert "<script" not in page and "https://" not in page
    assert '<a href="expectations/items.html">items</a>' in page


def test_pages_lose_their_cdn_tags_and_get_styles_once(tmp_path: Path) -> None:
    page = tmp_path / "validations" / "s" / "r" / "t" / "b.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        "<html><head>"
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/b.css"/>'
        '<script src="https://code.jquery.com/jquery.js"></script>'
        '<link rel="shortcut icon" href="../../../static/images/favicon.ico"/>'
        "</head><body>"
        '<img src="https://great-expectations-web-assets.s3.amazonaws.com/logo-long.png?d=1">'
        "<script>inline()</script></body></html>"
    )
    assert style_pages(tmp_path, [page, tmp_path / "missing.html"]) == 1
    text = page.read_text()
    assert text.startswith(f"<html><head>{MARKER}")
    assert "https://" not in text
    assert 'src="../../../../static/images/logo-long.png"' in text
    assert "favicon.ico" in text and "<script>inline()</script>" in text
    assert style_pages(tmp_path, [page]) == 0  # already styled: left alone
    assert page.read_text() == text
    page.write_text(text.replace(PAGE_CSS, "td{color:red}"))  # an older stylesheet
    assert style_pages(tmp_path, [page]) == 1
    assert page.read_text() == text


def interactions(bad_user: bool) -> pd.DataFrame:
    users = ["u1", "u1", "u2", " " if bad_user else "u3"]
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(["i1", "i2", "i1", "i3"], dtype="str"),
            "timestamp": pd.to_datetime(["2024-05-01"] * 4, utc=True),
            "value": np.array([1.0, 5.0, 0.0, 2.5]),
        }
    )


def validate_a_workspace(root: Path) -> Path:
    """Two nights' validate stage and one output check on the workspace's GX project;
    the index the last one returned."""
    from datetime import date

    from tasks.config import ValidateConfig
    from tasks.scoring.table import recommendations_table
    from tasks.validation.checks import validate_interactions
    from tasks.validation.output import check_recommendations

    lenient = ValidateConfig(max_quarantine_share=1.0)
    now = pd.Timestamp("2024-06-01T00:00:00Z")
    gx_root = root / "validation"
    for night, bad in (("2024-05-31", False), ("2024-06-01", True)):
        validate_interactions(
            interactions(bad), gx_root=gx_root, config=lenient, now=now, run_name=night
        )
    scored = pd.DataFrame(
        [("u1", 1, "i3", 0.9), ("u2", 1, "i2", 0.5)],
        columns=["user_id", "rank", "item_id", "score"],
    ).assign(strategy="personal")
    table = recommendations_table(scored, "r", date(2024, 6, 1), "m", "1")
    seen = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i1"]})
    out = check_recommendations(table, seen, {"i1", "i2", "i3"}, set(), 1, gx_root)
    return Path(out["data_docs_index"])


def test_the_runner_writes_an_index_of_every_stored_result_and_styles_their_pages(
    tmp_path: Path,
) -> None:
    index = validate_a_workspace(tmp_path)
    site = tmp_path / "validation" / SITE
    assert index == site / "index.html"
    stored = sorted(
        (tmp_path / "validation" / "gx" / "uncommitted" / "validations").rglob("*.json")
    )
    page = index.read_text()
    listed = rows(page)
    assert len(listed) == len(stored) == 3
    assert sorted(r[1] for r in listed) == ["interactions", "interactions", "recommendations"]
    assert [r[5] for r in listed if r[1] == "interactions"].count("failed") == 1
    assert (site / GX_INDEX).is_file() and MARKER not in (site / GX_INDEX).read_text()
    hrefs = re.findall(r'<td><a href="([^"]+)">open</a></td>', page)
    for href in hrefs:
        text = (site / unquote(href)).read_text()
        assert MARKER in text and "bootstrapcdn" not in text and "code.jquery.com" not in text
    assert {h.split("/")[1] for h in hrefs} == {"interactions", "recommendations"}
