"""Re-score a few users with the current champion, through the nightly's own functions.

The champion is resolved by its alias once and loaded once per process
(``tasks.tracking.load_model_version``, as the nightly's shards do). The users' rows come
from ``tasks.scoring.table.write_scores`` (the nightly's per-shard scoring: strategies, exclusions,
caps, reasons, the table's columns), given the users' whole histories and the item-side
statistics the night computed for its champion (recent popularity, item-item similarity,
in ``<workspace>/scores/run_date=D``). When the champion is no longer the one the night
scored with (a promotion by hand since), those statistics are computed again from the
night's validated interactions for the current champion's items. So are the friends'
items of the users without usable history (the ``social`` strategy), from the night's
graph of relations between users, when it has one, or from the relations the refresh
read again (tasks/refresh/edges.py) when ``ingest.social.path`` is configured.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def champion(workspace_root: Path, registered_name: str) -> tuple[Any, str]:
    """``(wrapper with .model/.users/.items, version)`` of the current champion."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    client = tracking.client_for(Workspace.at(workspace_root))
    version = tracking.champion_version_or_fail(client, registered_name)
    model_run = client.get_model_version(registered_name, version).run_id
    wrapper = tracking.load_model_version(str(workspace_root), registered_name, version, model_run)
    return wrapper, version


def newest_event(validated_path: Path) -> pd.Timestamp | None:
    """The newest event time of the night's validated interactions."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    value = pc.max(pq.read_table(validated_path, columns=["timestamp"])["timestamp"]).as_py()
    return None if value is None else pd.Timestamp(value)


def night_totals(
    scores_dir: Path, validated_path: Path, items: Any, newest: pd.Timestamp | None, config: Any
) -> tuple[np.ndarray, Any, str]:
    """Recent popularity and (with ``score.explain``) item-item similarity for the
    champion's ``items``: the night's, or computed again when its items differ; and which."""
    import scipy.sparse as sp

    from tasks.scoring.inputs import shard_totals

    vocab = scores_dir / "champion_items.json"
    popularity = scores_dir / "recent_popularity.npy"
    similarity = scores_dir / "similarity.npz"
    same = vocab.is_file() and popularity.is_file() and vocab.read_text() == items.to_json()
    if same and (similarity.is_file() or not config.explain):
        loaded = sp.load_npz(similarity) if config.explain else None
        return np.load(popularity), loaded, "the night's"
    counts, matrix = shard_totals([str(validated_path)], items, newest, config)
    return counts, matrix, "computed for the current champion"


def night_social(
    workspace_root: Path,
    run_date: date,
    scores_dir: Path,
    validated_path: Path,
    items: Any,
    name_friends: int = 0,
) -> Any:
    """The social strategy's scores for the champion's ``items``: the night's, or built
    again from the night's graph when the champion's items differ; None without a graph."""
    from tasks.scoring.social import build_social_scores, load_social_scores
    from tasks.storage.workspace import Workspace

    vocab = scores_dir / "champion_items.json"
    if vocab.is_file() and vocab.read_text() == items.to_json():
        night = load_social_scores(scores_dir)
        if night is not None:
            return night
    graph = Workspace.at(workspace_root).features(run_date) / "social.parquet"
    if not graph.is_file():
        return None
    events = pd.read_parquet(validated_path, columns=["user_id", "item_id"])
    return build_social_scores(pd.read_parquet(graph), events, items, name_friends)


def refreshed_social(
    graph: pd.DataFrame,
    users: list[str],
    validated_path: Path,
    batch_paths: list[Path],
    items: Any,
    name_friends: int = 0,
) -> Any:
    """The social strategy's scores of ``users`` from the refresh's ``graph``
    (tasks/refresh/edges.py), their friends' items read from the night's validated
    interactions and the pending batches."""
    from tasks.scoring.social import build_social_scores

    mine = graph[graph["user_id"].astype(str).isin(set(users))]
    parts = [pd.read_parquet(validated_path, columns=["user_id", "item_id"])]
    parts += [pd.read_parquet(path, columns=["user_id", "item_id"]) for path in batch_paths]
    return build_social_scores(mine, pd.concat(parts, ignore_index=True), items, name_friends)


def score_users(
    workspace_root: Path,
    registered_name: str,
    config: Any,
    run_date: date,
    run_id: str,
    history: pd.DataFrame,
    validated_path: Path,
    items_path: Path | None,
    out_path: Path,
    positive: tuple[str, float] | None = None,
    graph: pd.DataFrame | None = None,
    users: list[str] | None = None,
    batch_paths: list[Path] | None = None,
    layer_dir: Path | None = None,
) -> dict:
    """Score the users of ``history`` (their whole histories) into the published table's
    rows at ``out_path``; the summary of ``write_scores`` plus the model and version.
    ``positive``: ``features.positive`` and its threshold, as the nightly scores with.
    ``graph``: the relations as the refresh read them (tasks/refresh/edges.py), for the
    social strategy instead of the night's; ``users``: every user to score, those without
    any history among them (a user who only gained friends); ``batch_paths``: the pending
    batches, whose events count among the friends' items. ``layer_dir``: where to write the
    refresh's publishing context (tasks/scoring/serving.py), for the served model."""
    from tasks.scoring.table import scoring_catalog, write_scores

    wrapper, version = champion(workspace_root, registered_name)
    newest = newest_event(validated_path)
    if len(history):
        latest = history["timestamp"].max()
        newest = latest if newest is None else max(newest, latest)
    scores_dir = Path(workspace_root) / "scores" / f"run_date={run_date.isoformat()}"
    popularity, similarity, totals = night_totals(
        scores_dir, validated_path, wrapper.items, newest, config
    )
    catalog = scoring_catalog(wrapper.items, str(items_path) if items_path else None, config)
    wanted = list(users) if users is not None else list(history["user_id"].astype(str).unique())
    if graph is not None:
        social = refreshed_social(
            graph, wanted, validated_path, batch_paths or [], wrapper.items, config.name_friends
        )
    else:
        social = night_social(
            Path(workspace_root),
            run_date,
            scores_dir,
            validated_path,
            wrapper.items,
            config.name_friends,
        )
    extra = np.array(sorted(set(wanted) - set(history["user_id"].astype(str))), dtype=object)
    new_items = _night_new_items(workspace_root, registered_name, scores_dir, items_path, config)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result = write_scores(
        wrapper.model,
        wrapper.users,
        wrapper.items,
        catalog,
        history,
        config,
        out_path,
        {"run_id": run_id, "run_date": run_date, "model_version": version},
        newest=newest,
        popularity=popularity,
        similarity=similarity,
        positive=positive,
        social=social,
        extra_users=extra,
        new_items=new_items,
    )
    if layer_dir is not None:
        from tasks.scoring.serving import write_layer

        write_layer(
            layer_dir,
            kind="refresh",
            run={"run_id": run_id, "run_date": run_date, "model_version": version},
            model_name=wrapper.model.name,
            config=config,
            history=history,
            items_path=items_path,
            statistics_dir=None,
            newest=newest,
            positive=positive,
            popularity=popularity,
            similarity=similarity if totals != "the night's" else None,
            social=social,
            users=wanted,
            new_item_rows_from=out_path if new_items is not None else None,
        )
    blocked = set(catalog.item_ids[catalog.blocked])
    return {
        **result,
        "path": str(out_path),
        "model": wrapper.model.name,
        "version": version,
        "item_statistics": totals,
        "known_items": set(wrapper.items.ids),
        "graph_users": set(extra),  # scored without history: known from the relations
        "blocked_items": blocked,
        "layer": None if layer_dir is None else str(layer_dir),
        "new_items": set() if new_items is None else set(new_items.new_ids.astype(str)),
    }


def _night_new_items(
    workspace_root: Path,
    registered_name: str,
    scores_dir: Path,
    items_path: Path | None,
    config: Any,
) -> Any:
    """The night's new items and their content model (tasks/scoring/new_items.py), so a
    refreshed list ends with new items as the night's did; None when the night had none
    or ``new_items_share`` is now 0."""
    from tasks.scoring.new_items import load_new_items, read_plan

    plan = read_plan(scores_dir)
    if plan is None or config.new_items_share <= 0:
        return None
    return load_new_items(
        str(workspace_root), registered_name, plan, str(items_path) if items_path else None
    )


def check_rows(
    scored: dict, history: pd.DataFrame, k: int, gx_root: Path, runner: Any = None
) -> dict:
    """The output suite (:mod:`tasks.validation.output`) on the refreshed rows, as on the
    nightly's."""
    from tasks.validation.output import check_recommendations

    table = pd.read_parquet(scored["path"])
    return check_recommendations(
        table,
        history,
        scored["known_items"],
        scored["blocked_items"],
        k,
        gx_root,
        runner,
        graph_users=scored.get("graph_users"),
        new_items=scored.get("new_items"),
    )
