"""Report: figures and counts of the night on the nightly parent MLflow run."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.vocab import IdVocabulary


def popularity_counts(
    interactions: pd.DataFrame, recommendations: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Per item of the data: number of interactions, number of times recommended."""
    items = IdVocabulary(interactions["item_id"])
    catalog = np.bincount(items.index(interactions["item_id"]), minlength=len(items))
    rec_idx = items.index(recommendations["item_id"])
    recommended = np.bincount(rec_idx[rec_idx >= 0], minlength=len(items))
    return catalog, recommended


def catalog_coverage(recommendations: pd.DataFrame, n_items: int) -> float:
    return float(recommendations["item_id"].nunique() / n_items) if n_items else float("nan")


@task(name="report", cache_policy=NO_CACHE)
def report_task(
    results: list[dict],
    validated_path: str,
    scores_path: str,
    k: int,
    workspace_root: str,
    parent_run_id: str,
) -> dict:
    from tasks import plots, tracking
    from tasks.workspace import Workspace

    client = tracking.client_for(Workspace.at(workspace_root))
    names = [m for m in results[0]["metrics"] if "@" in m] if results else []
    tracking.log_figure(
        client,
        parent_run_id,
        plots.metrics_bar(results, names, "models on tonight's hold-out"),
        "plots/models_side_by_side.png",
    )
    interactions = pd.read_parquet(validated_path, columns=["item_id"])
    recs = pd.read_parquet(scores_path, columns=["user_id", "item_id", "strategy"])
    catalog, recommended = popularity_counts(interactions, recs)
    tracking.log_figure(
        client,
        parent_run_id,
        plots.long_tail(catalog, recommended, "popularity long tail: data vs recommendations"),
        "plots/long_tail.png",
    )
    coverage = catalog_coverage(recs, len(catalog))
    by_strategy = recs.drop_duplicates("user_id")["strategy"].value_counts().to_dict()
    metrics = {
        "published.coverage": coverage,
        "published.rows": float(len(recs)),
        "published.users": float(recs["user_id"].nunique()),
    }
    metrics.update({f"published.users_{s}": float(n) for s, n in by_strategy.items()})
    tracking.log_metrics(client, parent_run_id, metrics)
    return {"coverage": coverage}
