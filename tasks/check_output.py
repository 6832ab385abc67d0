"""Check the scored table against its contract (GX suite) before anything is published."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import DataValidationError

SAMPLE_ROWS = 5


def check_recommendations(
    table: pd.DataFrame,
    interactions: pd.DataFrame,
    known_items: set[str],
    blocked_items: set[str],
    k: int,
    gx_root: Path,
) -> dict:
    """Run the output suite; raise DataValidationError naming every broken rule."""
    from expectations.common import ROW_COLUMN
    from expectations.recommendations import build_recommendations_suite, with_checks
    from expectations.runner import run_suites, summary

    frame = with_checks(table, interactions, known_items, blocked_items)
    frame[ROW_COLUMN] = range(len(frame))
    results, docs = run_suites(gx_root, [(build_recommendations_suite(k), frame)])
    summaries = [summary(r) for r in results["recommendations"]]
    failed = [(s, r) for s, r in zip(summaries, results["recommendations"]) if not s["success"]]
    if failed:
        lines = []
        for s, r in failed:
            rule = r.expectation_config.meta.get("rule", s["expectation"])
            rows = [int(x[ROW_COLUMN]) for x in (r.result.get("unexpected_index_list") or [])]
            sample = table.iloc[rows[:SAMPLE_ROWS]][["user_id", "rank", "item_id", "score"]]
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


@task(name="check-output", cache_policy=NO_CACHE)
def check_output_task(
    scores_path: str,
    validated_path: str,
    items_path: str | None,
    deny_items: list[str],
    deny_list_path: str | None,
    respect_available: bool,
    k: int,
    gx_root: str,
    known_items_path: str,
) -> dict:
    from models.vocab import IdVocabulary
    from tasks.catalog import build_catalog, read_deny_list

    table = pd.read_parquet(scores_path)
    interactions = pd.read_parquet(validated_path, columns=["user_id", "item_id"])
    items = IdVocabulary.from_json(Path(known_items_path).read_text())
    catalog_frame = pd.read_parquet(items_path) if items_path else None
    denied = read_deny_list(Path(deny_list_path) if deny_list_path else None, deny_items)
    catalog = build_catalog(items, catalog_frame, denied, respect_available)
    blocked = set(catalog.item_ids[catalog.blocked])
    return check_recommendations(table, interactions, set(items.ids), blocked, k, Path(gx_root))
