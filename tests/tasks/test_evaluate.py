"""Evaluation on the feature snapshot's codes, against hand-worked answers."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.data.snapshot import FeatureSet
from tasks.evaluate import evaluate_per_user, holdout_from_features
from tests.tasks.scoring.test_ranking import FixedScores

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
    holdout = holdout_from_features(FEATURES)
    metrics, _ = evaluate_per_user(model, model_users, model_items, holdout, 2)
    # u1 (personal): a and b seen, only c is left -> [c]: a hit at rank 1.
    # u2 (cold start, popularity in the last 30 days: a by 2 users, b by 1): a seen -> [b, c];
    # its hold-out item d is unknown to the model: a miss.
    assert metrics["n_users"] == 2
    assert metrics["recall@2"] == 0.5
    assert metrics["hit@2"] == 0.5
    assert metrics["ndcg@2"] == 0.5
    assert metrics["mrr@2"] == 0.5
    assert np.isclose(metrics["coverage@2"], 2 / 3)


def test_holdout_sample_is_seeded_and_keeps_whole_users() -> None:
    users = IdVocabulary([f"u{n}" for n in range(50)])
    items = IdVocabulary(["a", "b", "c"])
    train = pd.DataFrame(
        {
            "user_idx": np.repeat(np.arange(50), 2),
            "item_idx": np.tile([0, 1], 50),
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
            "value": 1.0,
        }
    )
    valid = pd.DataFrame(
        {
            "user_idx": np.arange(50),
            "item_idx": 2,
            "timestamp": pd.Timestamp("2026-01-05", tz="UTC"),
            "value": 1.0,
        }
    )
    features = FeatureSet(users, items, train, valid, pd.Timestamp("2026-01-02", tz="UTC"))
    holdout = holdout_from_features(features)
    assert holdout.n_users == 50 and holdout.population is None
    sample = holdout.sample(20, seed=7)
    assert sample.n_users == 20 and sample.population == 50
    chosen = set(sample.relevant["user_idx"])
    assert set(sample.train["user_idx"]) == chosen  # each chosen user's whole history
    assert len(sample.train) == 40
    assert set(holdout.sample(20, seed=7).relevant["user_idx"]) == chosen  # same every call
    assert set(holdout.sample(20, seed=8).relevant["user_idx"]) != chosen
    assert holdout.sample(50) is holdout and holdout.sample(None) is holdout


def test_sample_size_follows_the_interval_asked_for() -> None:
    from tasks.config import EvaluateConfig

    # (1.959964 * 0.5 / h)^2 users: the worst-case spread of a figure in [0, 1]
    assert EvaluateConfig().sample_users == 38415
    assert EvaluateConfig(sample_half_width=0.01).sample_users == 9604
    assert EvaluateConfig(sample_half_width=0.01, confidence=0.9).sample_users == 6764
    assert EvaluateConfig(sample_half_width=0).sample_users is None


def test_a_sampled_snapshot_holdout_reads_only_the_drawn_users_history(tmp_path) -> None:
    from tasks.config import FeatureConfig
    from tasks.evaluate import holdout_from_snapshot
    from tasks.sources.demo import generate_demo
    from tests.tasks.test_features import build_in_partitions

    interactions, _ = generate_demo(n_users=300, n_items=120, end="2026-01-01")
    config = FeatureConfig(validation_days=5, part_rows=2_000)
    meta = build_in_partitions(interactions, tmp_path, config)
    assert meta["parts"] >= 3
    whole = holdout_from_snapshot(meta["features_dir"])
    assert whole.n_users > 60
    drawn = holdout_from_snapshot(meta["features_dir"], sample=60, seed=3)
    expected = whole.sample(60, seed=3)
    assert drawn.n_users == 60 and drawn.population == whole.n_users
    for table in ("train", "relevant"):  # the same rows, in the same order per user
        mine, theirs = getattr(drawn, table), getattr(expected, table)
        pd.testing.assert_frame_equal(
            mine.sort_values("user_idx", kind="stable").reset_index(drop=True),
            theirs.sort_values("user_idx", kind="stable").reset_index(drop=True),
        )
    everyone = holdout_from_snapshot(meta["features_dir"], sample=10**6)
    assert everyone.population is None and len(everyone.train) == len(whole.train)
