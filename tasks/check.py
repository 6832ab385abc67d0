"""Check the scored table against its contract (GX suite) before anything is published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import ScoreConfig
from tasks.errors import DataValidationError

SAMPLE_ROWS = 5


def check_recommendations(
    table: pd.DataFrame,
    interactions: pd.DataFrame,
    known_items: set[str],
    blocked_items: set[str],
    k: int,
    gx_root: Path,
    runner: Any = None,
) -> dict:
    """Run the output suite; raise DataValidationError naming every broken rule.
    ``runner``: a caller's ``expectations.runner.SuiteRunner``, which builds the Data Docs
    when the caller finishes it (the intraday refresh: once, after publishing)."""
    from expectations.recommendations import with_checks

    frame = with_checks(table, interactions, known_items, blocked_items)
    return run_checks(frame, k, gx_root, runner)


def run_checks(frame: pd.DataFrame, k: int, gx_root: Path, runner: Any = None) -> dict:
    """The output suite on a table with its derived check columns (``with_checks``)."""
    from expectations.common import ROW_COLUMN
    from expectations.recommendations import build_recommendations_suite
    from expectations.runner import run_suites, summary

    frame = frame.reset_index(drop=True)
    frame[ROW_COLUMN] = range(len(frame))
    suite = build_recommendations_suite(k)
    if runner is None:
        found, docs = run_suites(gx_root, [(suite, frame)])
        results = found["recommendations"]
    else:
        results, docs = runner.run(suite, frame), None
    summaries = [summary(r) for r in results]
    failed = [(s, r) for s, r in zip(summaries, results) if not s["success"]]
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


def check_output(
    scores_path: str,
    shard_paths: list[str],
    items_path: str | None,
    config: ScoreConfig,
    gx_root: str,
    known_items_path: str,
) -> dict:
    """Check the scored parts (``scores_path``: ``part-NNNNN.parquet``, one per user shard of
    ``shard_paths``); each part is compared with its own shard's interactions, so memory
    holds one shard's history at a time and the derived check columns of the whole table."""
    from expectations.recommendations import with_checks
    from models.vocab import IdVocabulary
    from tasks.data.catalog import build_catalog, read_deny_list

    parts = sorted(Path(scores_path).glob("part-*.parquet"))
    if len(parts) != len(shard_paths):
        raise RuntimeError(
            f"check output: {len(parts)} scored parts in {scores_path} for {len(shard_paths)} "
            "user shards; run the scoring stage again"
        )
    items = IdVocabulary.from_json(Path(known_items_path).read_text())
    catalog_frame = pd.read_parquet(items_path) if items_path else None
    deny_list = Path(config.deny_list_path) if config.deny_list_path else None
    denied = read_deny_list(deny_list, config.deny_items)
    catalog = build_catalog(items, catalog_frame, denied, config.respect_available)
    blocked = set(catalog.item_ids[catalog.blocked])
    known = set(items.ids)
    frames = [
        with_checks(
            pd.read_parquet(part),
            pd.read_parquet(shard, columns=["user_id", "item_id"]),
            known,
            blocked,
        )
        for part, shard in zip(parts, shard_paths, strict=True)
    ]
    return run_checks(pd.concat(frames, ignore_index=True), config.k, Path(gx_root))


@task(name="check-output", cache_policy=NO_CACHE)
def check_output_task(
    scores_path: str,
    shard_paths: list[str],
    items_path: str | None,
    config: ScoreConfig,
    gx_root: str,
    known_items_path: str,
) -> dict:
    return check_output(scores_path, shard_paths, items_path, config, gx_root, known_items_path)
