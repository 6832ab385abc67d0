"""The output suite on a scored recommendations table: every broken rule named with a
sample of its rows, before anything is published (the nightly's check stage and the
intraday refresh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import DataValidationError
from tasks.validation.suites import pipeline_errors

SAMPLE_ROWS = 5


def check_recommendations(
    table: pd.DataFrame,
    interactions: pd.DataFrame,
    known_items: set[str],
    blocked_items: set[str],
    k: int,
    gx_root: Path,
    runner: Any = None,
    graph_users: set[str] | None = None,
    new_items: set[str] | None = None,
) -> dict:
    """Run the output suite; raise DataValidationError naming every broken rule.
    ``runner``: a caller's ``expectations.runner.SuiteRunner``, which builds the Data Docs
    when the caller finishes it (the intraday refresh: once, after publishing).
    ``graph_users``: users known from the relations between users only; ``new_items``:
    the night's new items (tasks/scoring/new_items.py), the only items of ``new_item``
    rows."""
    from expectations.recommendations import with_checks

    frame = with_checks(table, interactions, known_items, blocked_items, graph_users, new_items)
    return run_checks(frame, k, gx_root, runner)


@pipeline_errors()
def run_checks(frame: pd.DataFrame, k: int, gx_root: Path, runner: Any = None) -> dict:
    """The output suite on a table with its derived check columns (``with_checks``)."""
    from expectations.common import ROW_COLUMN
    from expectations.recommendations import build_recommendations_suite
    from expectations.runner import run_suites, summary
    from tasks.storage.shared_files import locked

    frame = frame.reset_index(drop=True)
    frame[ROW_COLUMN] = range(len(frame))
    suite = build_recommendations_suite(k)
    if runner is None:
        found, docs = run_suites(gx_root, [(suite, frame)], lock=locked)
        results = found["recommendations"]
    else:
        results, docs = runner.run(suite, frame), None
    summaries = [summary(r) for r in results]
    failed = [(s, r) for s, r in zip(summaries, results, strict=False) if not s["success"]]
    if failed and runner is not None:
        docs = runner.finish()
    if failed:
        lines = []
        for s, r in failed:
            rule = r.expectation_config.meta.get("rule", s["expectation"])
            rows = [int(x[ROW_COLUMN]) for x in (r.result.get("unexpected_index_list") or [])]
            sample = frame.iloc[rows[:SAMPLE_ROWS]][["user_id", "rank", "item_id", "score"]]
            lines.append(
                f"- {rule} ({s['expectation']} on {s['column']}): "
                f"{s['unexpected_count']} rows break it; sample:\n{sample.to_string(index=False)}"
            )
        raise DataValidationError(
            "recommendations failed their output checks; nothing was published and the "
            "previous tables keep serving:\n"
            + "\n".join(lines)
            + f"\nSee the Data Docs at {docs}; fix the scoring rules or the champion and re-run."
        )
    return {"checks": len(summaries), "data_docs_index": str(docs) if docs else None}
