"""Hostile input (script and HTML in ids, values, titles, genres) never reaches the Data Docs
HTML or the Markdown artifacts unescaped; the quarantine Parquet keeps the raw values."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.config import ValidateConfig
from tasks.validate import validate

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
SCRIPT = "<script>alert(3)</script>"
IMG = '<img src=x onerror="alert(4)">'
BACKTICK = "`x` | <b>y</b>"
# The payloads unescaped (GX's own pages carry script tags of their own, so the test looks
# for ours): a script or img tag of the input, or its event handler with a raw quote (JSON
# writes it as \"); escaped, they read &lt;script&gt; and onerror=&quot;, shown as text.
DANGER = re.compile(
    r'<\s*script\s*>\s*alert|<\s*img\s+src\s*=\s*x|onerror\s*=\s*\\?"\s*alert', re.IGNORECASE
)


def _workspace(tmp_path: Path) -> dict:
    raw = tmp_path / "raw.parquet"
    rows = [
        ("u1", "i1", "2024-05-01", 1.0),
        ("u1", "i2", "2024-05-02", 5.0),
        ("u2", "i1", "2024-05-03", 0.0),
        ("u3", "i3", "2024-05-30", 2.5),
        (SCRIPT, "i1", "2024-05-04", 1.0),  # accepted: a well-formed, if hostile, id
        ("u4", SCRIPT, "2024-05-04", 1.0),  # quarantined: not in the catalog
        ("u5", IMG, "2024-05-05", 2.0),  # accepted: in the catalog
        (IMG + "x" * 300, "i1", "2024-05-05", 2.0),  # quarantined: too long
        (" " + SCRIPT, "i2", "2024-05-05", 2.0),  # quarantined: surrounding whitespace
        ("u6", "i2", "2024-05-06", -1e9),  # an odd value
    ]
    users, items, times, values = zip(*rows, strict=True)
    pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": pd.to_datetime(list(times), utc=True),
            "value": np.array(values, dtype="float64"),
            "event_type": pd.array([SCRIPT, IMG, *["view"] * 8], dtype="str"),
        }
    ).to_parquet(raw)
    items_path = tmp_path / "items.parquet"
    pd.DataFrame(
        {
            "item_id": pd.array(["i1", "i2", "i3", IMG, IMG, " " + SCRIPT], dtype="str"),
            "title": pd.array([SCRIPT, IMG, BACKTICK, "t", "t2", "t3"], dtype="str"),
            "genres": pd.array([IMG, SCRIPT, "Drama", "x", "y", "z"], dtype="str"),
            "year": pd.array([1999, 3000, None, 2000, 2000, 2000], dtype="Int64"),
            "metadata_missing": [False, False, True, False, False, False],
        }
    ).to_parquet(items_path)
    users_path = tmp_path / "users.parquet"
    pd.DataFrame(
        {
            "user_id": pd.array(["u1", SCRIPT, SCRIPT, IMG + " "], dtype="str"),
            "age": [30, 200, 40, None],
        }
    ).to_parquet(users_path)
    return {"raw": raw, "items": items_path, "users": users_path}


def _offending(text: str) -> list[str]:
    return [text[max(0, m.start() - 60) : m.end() + 60] for m in DANGER.finditer(text)]


def test_hostile_input_is_escaped_in_docs_and_markdown(tmp_path):
    from tasks.report import summary_markdown as run_summary_markdown

    published: list[str] = []
    paths = _workspace(tmp_path)
    gx_root = tmp_path / "validation"
    summary = validate(
        str(paths["raw"]),
        str(tmp_path / "validated"),
        str(gx_root),
        ValidateConfig(max_quarantine_share=1.0),
        NOW.isoformat(),
        items_path=str(paths["items"]),
        users_path=str(paths["users"]),
        artifact=lambda md: published.append(md) or True,
    )

    # The quarantine Parquet is data: it keeps the raw values.
    quarantine = pd.read_parquet(summary.quarantine_path)
    assert SCRIPT in set(quarantine["item_id"])
    assert IMG + "x" * 300 in set(quarantine["user_id"])
    assert " " + SCRIPT in set(quarantine["user_id"])
    assert SCRIPT in set(pd.read_parquet(summary.accepted_path)["user_id"])
    items_quarantine = pd.read_parquet(summary.items_quarantine_path)
    assert " " + SCRIPT in set(items_quarantine["item_id"])

    # Every file GX wrote under the validation folder: Data Docs HTML and stored results.
    docs = [p for p in gx_root.rglob("*") if p.suffix in {".html", ".md", ".json"}]
    assert any(p.suffix == ".html" for p in docs)
    leaks = {str(p.relative_to(gx_root)): _offending(p.read_text("utf-8")) for p in docs}
    assert {k: v for k, v in leaks.items() if v} == {}

    # The validation artifact and the run summary.
    assert published, "validate published no Markdown"
    out = {
        "status": "FAILED",
        "run_id": SCRIPT,
        "failed_stage": "check",
        "error": f"check output: sample rows: user_id={SCRIPT}, item_id={IMG}, title={BACKTICK}",
        "validation": summary.summary(),
        "promotion": {"challenger": IMG, "reason": SCRIPT, "registered_name": "recpipe"},
        "scoring": {"users_by_strategy": {SCRIPT: 1}, "rows": 1},
        "monitor": {"figures": {}, "findings": [{"level": "warn", "message": IMG}]},
        "published": {"rows": 1, "lake": SCRIPT, "table": BACKTICK},
        "stage_seconds": {"validate": 1.0},
    }
    markdown = [*published, run_summary_markdown(out)]
    assert [hit for md in markdown for hit in _offending(md)] == []
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in markdown[-1]  # shown, as text
    assert "`x`" not in markdown[-1]  # no code span of the input's own


def test_markdown_cells_escape_html_backticks_and_pipes():
    from expectations.report import summary_markdown
    from tasks.validation.checks import validate_interactions  # noqa: F401  (import check)

    text = summary_markdown(None, failure=f"sample rows: user_id={SCRIPT}, item_id={BACKTICK}")
    assert not _offending(text)
    assert "`x`" not in text
