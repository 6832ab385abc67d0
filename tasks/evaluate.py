"""Evaluate: full-ranking metrics of a model bundle on the temporal hold-out.

Every model, tonight's challengers and the current champion alike, is evaluated
through the same path as the published scoring (``tasks.score.score_users``):
its own vocabularies map today's raw ids, users it does not know get the
cold-start fallback, seen items are excluded. So the figures compare what each
model would actually publish, on the same users and the same hold-out items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.metrics import evaluate_rankings
from models.vocab import IdVocabulary
from tasks.features import FeatureSet
from tasks.score import score_users


@dataclass(frozen=True)
class Holdout:
    """Raw-id frames: the training history and the relevant hold-out items per user."""

    train: pd.DataFrame  # user_id, item_id, timestamp (history of the evaluated users)
    relevant: pd.DataFrame  # user_id, item_id (new items in the validation period)


def holdout_from_features(features: FeatureSet) -> Holdout:
    """Users with training history and at least one validation item new to them."""

    def raw(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user_id": features.users.raw(frame["user_idx"]).astype(str),
                "item_id": features.items.raw(frame["item_idx"]).astype(str),
                "timestamp": frame["timestamp"].to_numpy(),
            }
        )

    train = raw(features.train)  # every event, in time order (sequence models read it)
    valid = raw(features.valid).drop_duplicates(["user_id", "item_id"])[["user_id", "item_id"]]
    seen = pd.MultiIndex.from_frame(train[["user_id", "item_id"]])
    new = valid[~pd.MultiIndex.from_frame(valid).isin(seen)]
    new = new[new["user_id"].isin(train["user_id"])]
    return Holdout(
        train=train[train["user_id"].isin(new["user_id"])].reset_index(drop=True),
        relevant=new.reset_index(drop=True),
    )


def evaluate_bundle(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    holdout: Holdout,
    k: int,
) -> dict[str, float]:
    """Recall@k and NDCG@k (and the scoring time) of ``model`` on ``holdout``."""
    if holdout.relevant.empty:
        raise ValueError(
            "evaluate: no user has both training history and new validation items; "
            "widen features.validation_days or check the temporal split"
        )
    start = time.perf_counter()
    scored = score_users(model, users, items, holdout.train, k)
    seconds = time.perf_counter() - start
    eval_users = IdVocabulary(holdout.relevant["user_id"])
    all_items = IdVocabulary(
        pd.concat([pd.Series(items.ids.astype(str)), holdout.relevant["item_id"]])
    )
    recommended = np.full((len(eval_users), k), -1, dtype=np.int64)
    rows = eval_users.index(scored["user_id"])
    recommended[rows, scored["rank"].to_numpy() - 1] = all_items.index(scored["item_id"])
    relevant = sp.csr_matrix(
        (
            np.ones(len(holdout.relevant), dtype=np.float32),
            (
                eval_users.index(holdout.relevant["user_id"]),
                all_items.index(holdout.relevant["item_id"]),
            ),
        ),
        shape=(len(eval_users), len(all_items)),
    )
    known = all_items.index(holdout.train["item_id"])
    train = sp.csr_matrix(
        (
            np.ones(int((known >= 0).sum()), dtype=np.float32),
            (eval_users.index(holdout.train["user_id"])[known >= 0], known[known >= 0]),
        ),
        shape=(len(eval_users), len(all_items)),
    )
    metrics = evaluate_rankings(recommended, relevant, k, train=train, n_items=len(items))
    metrics["scoring_seconds"] = round(seconds, 3)
    return metrics


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(trained: dict, features_dir: str, k: int, workspace_root: str) -> dict:
    from models.vocab import load_bundle
    from tasks import tracking
    from tasks.features import load_features
    from tasks.workspace import Workspace

    holdout = holdout_from_features(load_features(features_dir))
    model, users, items = load_bundle(trained["bundle_dir"])
    metrics = evaluate_bundle(model, users, items, holdout, k)
    client = tracking.client_for(Workspace.at(workspace_root))
    tracking.log_metrics(client, trained["run_id"], metrics)
    return {**trained, "metrics": metrics}
