"""Evaluate: full-ranking metrics of each model on the validation split."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.metrics import evaluate_rankings


def evaluation_targets(
    train: sp.csr_matrix, valid: sp.csr_matrix
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Users to evaluate and their relevant items.

    A user is evaluated when they have training history and at least one
    validation item they had not already interacted with in training; those new
    items are the relevant set.
    """
    new_items = (valid - valid.multiply(train > 0)).tocsr()
    new_items.eliminate_zeros()
    has_train = np.diff(train.indptr) > 0
    has_new = np.diff(new_items.indptr) > 0
    users = np.flatnonzero(has_train & has_new)
    return users, new_items[users]


def evaluate_model(
    model: BaseRecommender, train: sp.csr_matrix, valid: sp.csr_matrix, k: int
) -> dict[str, float]:
    """Rank every item not seen in training for each evaluated user; Recall/NDCG@k."""
    users, relevant = evaluation_targets(train, valid)
    if users.size == 0:
        raise ValueError(
            "evaluate: no user has both training history and new validation items; "
            "widen features.validation_days or check the temporal split"
        )
    recommended, _ = model.recommend(users, k, exclude_seen=True, history=train)
    return evaluate_rankings(recommended, relevant, k)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(trained: dict, features_dir: str, k: int, workspace_root: str) -> dict:
    from models.vocab import load_bundle
    from tasks import tracking
    from tasks.features import load_features
    from tasks.workspace import Workspace

    features = load_features(features_dir)
    model, _, _ = load_bundle(trained["bundle_dir"])
    metrics = evaluate_model(model, features.matrix("train"), features.matrix("valid"), k)
    client = tracking.client_for(Workspace.at(workspace_root))
    tracking.log_metrics(client, trained["run_id"], metrics)
    return {**trained, "metrics": metrics}
