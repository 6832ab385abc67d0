"""Check the scored table against its contract (GX suite) before anything is published.

Each scored part is checked with its own user shard's interactions; the suite and the
failure message are in :mod:`tasks.validation.output`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import ScoreConfig
from tasks.validation.output import run_checks


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
    from tasks.scoring.new_items import read_plan
    from tasks.scoring.social import load_social_scores

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
    social = load_social_scores(Path(scores_path).parent)  # users only in the graph
    graph_users = None if social is None else set(social.edge_only)
    new_plan = read_plan(Path(scores_path).parent)  # the catalogue's new items it ranked
    new_items = None if new_plan is None else set(new_plan["item_ids"])
    frames = [
        with_checks(
            pd.read_parquet(part),
            pd.read_parquet(shard, columns=["user_id", "item_id"]),
            known,
            blocked,
            graph_users,
            new_items,
        )
        for part, shard in zip(parts, shard_paths, strict=True)
    ]
    return run_checks(pd.concat(frames, ignore_index=True), config.k, Path(gx_root))


check_output_task = task(name="check-output", cache_policy=NO_CACHE)(check_output)
