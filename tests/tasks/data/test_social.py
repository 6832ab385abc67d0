"""The graph in a feature snapshot, the ``social`` fit input, and the random hold-out of
data without time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.config import FeatureConfig
from tasks.data.holdout import holdout_mask, pair_keys
from tasks.data.model_inputs import FitInputs, fit_inputs_from_snapshot
from tasks.data.social import graph_frame, social_matrix, write_social_graph
from tasks.features import build_features

USERS = pd.Series(["a", "b", "c"], dtype="str")  # the vocabulary: a=0, b=1, c=2


def edges(rows: list[tuple]) -> pd.DataFrame:
    users, friends, weights = zip(*rows, strict=True)
    return pd.DataFrame({"user_id": users, "friend_id": friends, "weight": weights})


def test_a_mutual_graph_is_symmetric_and_keeps_edge_only_users() -> None:
    graph = graph_frame(edges([("a", "b", 2.0), ("c", "z", 1.0)]), "mutual", USERS)
    pairs = graph[["user_id", "friend_id", "weight"]].values.tolist()
    assert pairs == [["a", "b", 2.0], ["b", "a", 2.0], ["c", "z", 1.0], ["z", "c", 1.0]]
    assert graph["user_idx"].tolist()[:3] == [0, 1, 2] and pd.isna(graph["user_idx"].iloc[3])
    matrix = social_matrix(graph, 3)
    assert matrix is not None and matrix.dtype == np.float32 and matrix.shape == (3, 3)
    assert matrix.toarray().tolist() == [[0, 2, 0], [2, 0, 0], [0, 0, 0]]


def test_follows_point_one_way() -> None:
    graph = graph_frame(edges([("a", "b", 1.0), ("a", "b", 3.0)]), "follows", USERS)
    matrix = social_matrix(graph, 3)
    assert matrix is not None
    assert matrix.toarray().tolist() == [[0, 3, 0], [0, 0, 0], [0, 0, 0]]  # the largest weight


def test_the_snapshot_graph_becomes_the_social_fit_input(tmp_path) -> None:
    events = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "item_id": ["i1", "i2", "i1"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    )
    from tasks.data.snapshot import save_features

    save_features(build_features(events, FeatureConfig(validation_days=1)), tmp_path)
    edges([("a", "c", 1.0), ("b", "new", 1.0)]).to_parquet(tmp_path / "e.parquet")
    counts = write_social_graph(str(tmp_path / "e.parquet"), str(tmp_path), "mutual")
    assert counts["edge_only_users"] == 1 and counts["edges_between_known_users"] == 2
    assert pd.read_parquet(tmp_path / "social_users.parquet")["user_id"].tolist() == ["new"]
    inputs = fit_inputs_from_snapshot(tmp_path, None, 7, needs=("social",))
    assert inputs.social is not None
    assert inputs.social.toarray().tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert "social" in inputs.kwargs()
    plain = fit_inputs_from_snapshot(tmp_path, None, 7, needs=("validation",))
    assert plain.social is None and "social" not in plain.kwargs()


def test_fit_inputs_without_a_graph_leave_social_out() -> None:
    inputs = FitInputs(train=None, sequences=None, item_features=None, validation=None)
    assert "social" not in inputs.kwargs()


def test_the_random_hold_out_takes_a_share_of_each_user_whatever_the_partition() -> None:
    user = np.repeat([0, 1, 2], [10, 5, 2])
    item = np.r_[np.arange(10), np.arange(5), np.arange(2)]
    times = np.zeros(len(user), dtype=np.int64)  # no time: every event at one instant
    choice = {"strategy": "random", "latest_share": 0.2, "latest_min_events": 3, "seed": 1}
    held = holdout_mask(user, times, 1, choice, item)
    assert [int(held[user == u].sum()) for u in range(3)] == [2, 1, 0]
    # the pick is that of the largest pair keys, the same in any row order or partition
    expected = np.argsort(pair_keys(user[:10], item[:10], 1))[-2:]
    assert set(np.flatnonzero(held[:10])) == set(expected)
    flipped = holdout_mask(user[::-1], times, 1, choice, item[::-1])
    assert (flipped[::-1] == held).all()


def test_a_random_split_on_untimed_events_holds_out_per_user() -> None:
    stamp = pd.Timestamp("2024-06-01", tz="UTC")
    events = pd.DataFrame(
        {
            "user_id": np.repeat(["a", "b"], 5),
            "item_id": [f"i{i}" for i in range(5)] * 2,
            "timestamp": [stamp] * 10,
        }
    )
    config = FeatureConfig(holdout="random", latest_share=0.4, min_users=1, min_events=1)
    features = build_features(events, config)
    assert features.holdout is not None and features.holdout["strategy"] == "random"
    assert features.valid.groupby("user_idx").size().tolist() == [2, 2]
    assert len(features.train) == 6
