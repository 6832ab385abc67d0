"""Score: top-K recommendations for every active user, shard by shard of users.

The stage plans once (:func:`plan_scoring`: the model version, the user shards, what
every shard shares: recent popularity, item-item similarity, the similar-items table),
scores each shard into ``recommendations/part-NNNNN.parquet`` (:func:`score_shard`, on
any worker), and sums the shards' counts (:func:`finish_scoring`). The ranking rules
(strategies, exclusions, caps, reasons) are in :mod:`tasks.scoring.ranking`; the table
and its Parquet writer in :mod:`tasks.scoring.table`.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import build_catalog
from tasks.scoring.inputs import shard_totals
from tasks.scoring.similarity_cache import SimilarityCache
from tasks.scoring.table import scoring_catalog, write_scores
from tasks.storage.cache import StageResult
from tasks.storage.faults import checkpoint


@dataclass(frozen=True)
class ScoringPlan:
    """What every shard task needs, as paths and plain values (it travels to Dask workers)."""

    workspace_root: str
    registered_name: str
    version: str  # the champion version resolved once for the whole run
    model_run: str  # its MLflow run
    model_name: str
    items_path: str | None
    config: ScoreConfig
    run_id: str
    run_date: date
    out_dir: str
    shards: list[str]
    newest: str | None
    popularity_path: str
    similarity_path: str | None
    items_vocab_path: str
    positive: tuple[str, float] | None = None  # features.positive and its threshold
    plan_seconds: float = 0.0  # planning's own time (the shards' work is not in it)
    similarity_cached: bool = False  # read from the similarity cache, not summed again
    social: dict | None = None  # the social strategy's users (tasks/scoring/social.py)
    new_items: dict | None = None  # the new items and their model (tasks/scoring/new_items.py)


def plan_scoring(
    validated_path: str,
    items_path: str | None,
    registered_name: str,
    workspace_root: str,
    config: ScoreConfig,
    run_id: str,
    run_date: date,
    out_dir: str,
    version: str | None = None,
    positive: tuple[str, float] | None = None,
    graph_path: str | None = None,
    features_dir: str | None = None,
    content_models: list[dict] | None = None,
) -> ScoringPlan:
    """Resolve the model (``version``, the one the night's promotion decided on; else the
    champion), split the users into shards, and compute what all shards share: recent
    popularity and (with explanations) item-item similarity, both summed shard by shard;
    write the similar-items table. ``graph_path``: the relations between users
    (tasks/data/social.py), from which the friends' items of the users without usable
    history are computed once for every shard (tasks/scoring/social.py).
    ``features_dir``: the night's feature snapshot, whose content features describe the
    catalogue's items nobody has interacted with yet; ``content_models``: tonight's
    registered models (name, version, run_id, metrics), among which a content-aware one
    ranks those items when the champion does not read content
    (tasks/scoring/new_items.py)."""
    from tasks import tracking
    from tasks.data.explain import similar_items_table
    from tasks.data.shards import shard_interactions
    from tasks.storage.workspace import Workspace

    start = time.perf_counter()
    client = tracking.client_for(Workspace.at(workspace_root))
    version = version or tracking.champion_version_or_fail(client, registered_name)
    model_run = client.get_model_version(registered_name, version).run_id
    model_name, items = tracking.version_catalog(
        workspace_root, registered_name, version, model_run
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards = shard_interactions(validated_path, out / "shards", config.shard_rows)
    newest = shards.newest_timestamp
    cache = SimilarityCache(Workspace.at(workspace_root).similarity_cache, validated_path, items)
    similarity = cache.get(config) if config.explain else None
    popularity, computed = shard_totals(
        shards.paths, items, newest, config, similarity=similarity is None
    )
    cached = similarity is not None
    if computed is not None:
        similarity = cache.put(config, computed)
    popularity_path = out / "recent_popularity.npy"
    np.save(popularity_path, popularity)
    similarity_path = None
    for stale in (out / "similarity.npz", out / "similar_items.parquet"):
        stale.unlink(missing_ok=True)
    if similarity is not None:
        similarity_path = out / "similarity.npz"
        sp.save_npz(similarity_path, similarity, compressed=False)  # read back by each shard
        catalog = build_catalog(items, None, set())
        similar = similar_items_table(similarity, catalog.item_ids, config.similar_k)
        similar.insert(0, "run_date", pd.Series([run_date] * len(similar), dtype="date32[pyarrow]"))
        similar.insert(0, "run_id", run_id)
        similar.to_parquet(out / "similar_items.parquet", index=False)
    items_vocab_path = out / "champion_items.json"
    items_vocab_path.write_text(items.to_json())
    social = _social_scores(graph_path, validated_path, items, out, config.name_friends)
    new_items = _new_items(
        features_dir,
        validated_path,
        items_path,
        config,
        out,
        {"name": model_name, "version": version, "run_id": model_run},
        content_models or [],
        workspace_root,
        registered_name,
    )
    parts = out / "recommendations"
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir()
    checkpoint("score:planned")
    return ScoringPlan(
        workspace_root,
        registered_name,
        version,
        model_run,
        model_name,
        items_path,
        config,
        run_id,
        run_date,
        str(out),
        shards.paths,
        shards.newest,
        str(popularity_path),
        None if similarity_path is None else str(similarity_path),
        str(items_vocab_path),
        positive,
        round(time.perf_counter() - start, 2),
        cached,
        social,
        new_items,
    )


def _social_scores(
    graph_path: str | None,
    validated_path: str,
    items: IdVocabulary,
    out: Path,
    name_friends: int = 0,
) -> dict | None:
    """Build and save the social strategy's scores (none without a graph); their counts."""
    from tasks.scoring.social import (
        SOCIAL_FILE,
        SOCIAL_USERS_FILE,
        build_social_scores,
        save_social_scores,
    )

    for stale in (out / SOCIAL_FILE, out / SOCIAL_USERS_FILE):
        stale.unlink(missing_ok=True)
    if graph_path is None or not Path(graph_path).is_file():
        return None
    graph = pd.read_parquet(graph_path, columns=["user_id", "friend_id", "weight"])
    events = pd.read_parquet(validated_path, columns=["user_id", "item_id"])
    social = build_social_scores(graph, events, items, name_friends)
    save_social_scores(social, out)
    return {"users": len(social.users), "edge_only_users": len(social.edge_only)}


def _new_items(
    features_dir: str | None,
    validated_path: str,
    items_path: str | None,
    config: ScoreConfig,
    out: Path,
    champion: dict[str, str],
    candidates: list[dict],
    workspace_root: str,
    registered_name: str,
) -> dict | None:
    """The catalogue's items with content and no event today, and the model that ranks
    them (``new_items.json``); None when there are none, no model reads content, or
    ``new_items_share`` is 0."""
    from tasks.data.content_features import CONTENT_FILE
    from tasks.scoring import new_items

    (out / new_items.NEW_ITEMS_FILE).unlink(missing_ok=True)
    slots = new_items.slots(config.k, config.new_items_share)
    content_path = None if features_dir is None else Path(features_dir) / CONTENT_FILE
    if slots == 0 or content_path is None or not content_path.exists():
        return None
    chosen = _content_model(
        new_items.content_candidates(champion, candidates),
        workspace_root,
        registered_name,
    )
    if chosen is None:
        return None
    content = pd.read_parquet(content_path, columns=["item_id", "item_idx"])
    seen = set(pd.read_parquet(validated_path, columns=["item_id"])["item_id"].astype(str))
    # the deny list and the catalogue's availability, as every ranked item meets them
    catalog = scoring_catalog(IdVocabulary(content["item_id"].astype(str)), items_path, config)
    blocked = set(catalog.item_ids[catalog.blocked])
    rows = new_items.new_item_rows(
        content["item_id"].to_numpy(), content["item_idx"].notna().to_numpy(), seen, blocked
    )
    if len(rows) == 0:
        return None
    plan = {
        **chosen,
        "features_dir": str(features_dir),
        "rows": [int(r) for r in rows],
        "item_ids": content["item_id"].astype(str).to_numpy()[rows].tolist(),
        "slots": slots,
    }
    new_items.write_plan(out, plan)
    return plan


def _content_model(
    candidates: list[dict[str, str]], workspace_root: str, registered_name: str
) -> dict | None:
    """The first of ``candidates`` fitted with content (a two-tower may be fitted without)."""
    from tasks import tracking

    for candidate in candidates:
        loaded = tracking.load_model_version(
            workspace_root, registered_name, candidate["version"], candidate["run_id"]
        )
        if loaded.model.reads_content():
            return candidate
    return None


def score_shard(plan: ScoringPlan, shard: int) -> dict:
    """Score the users of one shard; write ``recommendations/part-NNNNN.parquet``."""
    from tasks import tracking
    from tasks.data.shards import read_shard
    from tasks.scoring.social import load_social_scores

    champion = tracking.load_model_version(
        plan.workspace_root, plan.registered_name, plan.version, plan.model_run
    )
    social = load_social_scores(plan.out_dir) if plan.social else None
    new = _load_new_items(plan) if plan.new_items else None
    # the users only in the graph have no shard of their own: the first shard takes them
    extra = social.edge_only if social is not None and shard == 0 else None
    out = write_scores(
        champion.model,
        champion.users,
        champion.items,
        scoring_catalog(champion.items, plan.items_path, plan.config),
        read_shard(plan.shards[shard]),
        plan.config,
        Path(plan.out_dir) / "recommendations" / f"part-{shard:05d}.parquet",
        {"run_id": plan.run_id, "run_date": plan.run_date, "model_version": plan.version},
        newest=None if plan.newest is None else pd.Timestamp(plan.newest),
        popularity=np.load(plan.popularity_path),
        similarity=None if plan.similarity_path is None else sp.load_npz(plan.similarity_path),
        positive=plan.positive,
        social=social,
        extra_users=extra,
        new_items=new,
    )
    checkpoint("score:shard-written")
    return {"shard": shard, "worker": f"{socket.gethostname()}:{os.getpid()}", **out}


def _load_new_items(plan: ScoringPlan) -> Any:
    """The shard's view of the plan's new items (tasks/scoring/new_items.py)."""
    from tasks.scoring.new_items import load_new_items

    return load_new_items(
        plan.workspace_root, plan.registered_name, plan.new_items or {}, plan.items_path
    )


def finish_scoring(plan: ScoringPlan, parts: list[dict], seconds: float) -> dict:
    """The stage's summary from the shards' counts."""
    strategies: dict[str, int] = {}
    for part in parts:
        for strategy, n in part["users_by_strategy"].items():
            strategies[strategy] = strategies.get(strategy, 0) + n
    if sorted(p["shard"] for p in parts) != list(range(len(plan.shards))):
        raise RuntimeError(
            f"scoring: {len(plan.shards)} shards planned, results for "
            f"{sorted(p['shard'] for p in parts)}; run the stage again"
        )
    out = Path(plan.out_dir)
    similar = out / "similar_items.parquet"
    n_users = sum(strategies.values())
    return {
        "path": str(out / "recommendations"),
        "items_vocab_path": plan.items_vocab_path,
        "similar_path": str(similar) if similar.exists() else None,
        "rows": sum(p["rows"] for p in parts),
        "users": n_users,
        "shards": len(plan.shards),
        "shard_paths": plan.shards,
        "workers": sorted({p["worker"] for p in parts if "worker" in p}),
        "model": plan.model_name,
        "version": plan.version,
        "users_by_strategy": dict(sorted(strategies.items())),
        "new_item_users": sum(p.get("new_item_users", 0) for p in parts),
        "new_items": None
        if plan.new_items is None
        else {
            "model": f"{plan.new_items['name']} v{plan.new_items['version']}",
            "items": len(plan.new_items["rows"]),
            "slots": plan.new_items["slots"],
        },
        "seconds": round(seconds, 2),
        "plan_seconds": plan.plan_seconds,
        "similarity_cached": plan.similarity_cached,
        "users_per_second": round(n_users / seconds, 1) if seconds > 0 else None,
    }


class ScoreResult(StageResult):
    """The scored parts (``path``: ``part-NNNNN.parquet``, one per user shard of
    ``shard_paths``), the similar-items table and the stage's counts
    (:func:`finish_scoring`)."""

    path: str
    items_vocab_path: str
    similar_path: str | None
    rows: int
    users: int
    shards: int
    shard_paths: list[str]
    workers: list[str]
    model: str
    version: str
    users_by_strategy: dict[str, int]
    new_item_users: int = 0
    new_items: dict | None = None
    seconds: float
    plan_seconds: float
    similarity_cached: bool
    users_per_second: float | None


plan_scoring_task = task(name="plan-scoring", cache_policy=NO_CACHE)(plan_scoring)


score_shard_task = task(
    name="score-shard", task_run_name="score-shard-{shard}", cache_policy=NO_CACHE
)(score_shard)


finish_scoring_task = task(name="finish-scoring", cache_policy=NO_CACHE)(finish_scoring)
