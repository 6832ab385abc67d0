"""Evaluation on the feature snapshot's codes, against hand-worked answers."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.evaluate import evaluate_bundle, holdout_from_features
from tasks.features import FeatureSet
from tests.tasks.test_score import FixedScores

USERS = IdVocabulary(["u1", "u2", "u3"])
ITEMS = IdVocabulary(["a", "b", "c", "d"])


def coded(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": USERS.index([r[0] for r in rows]),
            "item_idx": ITEMS.index([r[1] for r in rows]),
            "timestamp": pd.to_datetime([r[2] for r in rows], utc=True),
            "value": 1.0,
        }
    )


FEATURES = FeatureSet(
    users=USERS,
    items=ITEMS,
    train=coded([("u1", "a", "2026-01-01"), ("u2", "a", "2026-01-02"), ("u1", "b", "2026-01-03")]),
    valid=coded(
        [
            ("u1", "c", "2026-01-05"),
            ("u2", "a", "2026-01-05"),  # seen in training: not a hold-out item
            ("u2", "d", "2026-01-06"),
            ("u2", "d", "2026-01-07"),  # repeated: counts once
            ("u3", "b", "2026-01-06"),  # no training history: not evaluated
        ]
    ),
    cutoff=pd.Timestamp("2026-01-04", tz="UTC"),
)


def test_holdout_keeps_new_items_of_users_with_history() -> None:
    holdout = holdout_from_features(FEATURES)
    relevant = {(USERS.ids[u], ITEMS.ids[i]) for u, i in holdout.relevant.to_numpy()}
    assert relevant == {("u1", "c"), ("u2", "d")}
    assert sorted(USERS.raw(holdout.train["user_idx"])) == ["u1", "u1", "u2"]


def test_metrics_through_the_models_own_vocabularies() -> None:
    # The model knows u1 but not u2, and items a, b, c but not d.
    model_users, model_items = IdVocabulary(["u0", "u1"]), IdVocabulary(["a", "b", "c"])
    model = FixedScores([3.0, 2.0, 1.0]).fit(sp.csr_matrix(np.ones((2, 3), dtype=np.float32)))
    metrics = evaluate_bundle(model, model_users, model_items, holdout_from_features(FEATURES), 2)
    # u1 (personal): a and b seen, only c is left -> [c]: a hit at rank 1.
    # u2 (cold start, popularity in the last 30 days: a by 2 users, b by 1): a seen -> [b, c];
    # its hold-out item d is unknown to the model: a miss.
    assert metrics["n_users"] == 2
    assert metrics["recall@2"] == 0.5
    assert metrics["hit@2"] == 0.5
    assert metrics["ndcg@2"] == 0.5
    assert metrics["mrr@2"] == 0.5
    assert np.isclose(metrics["coverage@2"], 2 / 3)
