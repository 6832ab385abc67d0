import numpy as np
import pandas as pd
import pytest

from tasks.config import FeatureConfig
from tasks.data.model_inputs import build_fit_inputs, item_content_features
from tasks.data.splits import split
from tasks.features import build_features


def events(n_users: int = 10, per_user: int = 10) -> pd.DataFrame:
    rows = []
    for u in range(n_users):
        for j in range(per_user):
            rows.append((f"u{u}", f"i{(u + j) % 15}", u * 100 + j))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "t"])
    frame["timestamp"] = pd.to_datetime(frame["t"], unit="D", utc=True)
    return frame


def test_temporal_split_cuts_global_time() -> None:
    s = split(events(), "temporal")
    assert (len(s.train), len(s.valid), len(s.test)) == (80, 10, 10)
    assert s.train["timestamp"].max() <= s.valid["timestamp"].min()
    assert s.valid["timestamp"].max() <= s.test["timestamp"].min()


def test_leave_last_out_per_user() -> None:
    s = split(events(), "leave-last-out")
    assert len(s.test) == len(s.valid) == 10
    for u, group in s.test.groupby("user_idx"):
        user_train = s.train[s.train.user_idx == u]
        assert group["timestamp"].iloc[0] > user_train["timestamp"].max()


def test_random_split_is_per_user_and_seeded() -> None:
    a, b = split(events(), "random", seed=1), split(events(), "random", seed=1)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert (a.train.groupby("user_idx").size() == 8).all()
    assert (a.test.groupby("user_idx").size() == 1).all()
    c = split(events(), "random", seed=2)
    assert not a.test.equals(c.test)


def test_targets_exclude_history() -> None:
    s = split(events(), "leave-last-out")
    users, relevant = s.target("test", ("train", "valid"))
    history = s.matrix("train", "valid")[users]
    assert relevant.multiply(history).nnz == 0
    with pytest.raises(ValueError, match="unknown protocol"):
        split(events(), "nope")


def test_early_stopping_split_is_carved_from_the_end_of_training() -> None:
    frame = events()
    frame["timestamp"] = pd.to_datetime(
        frame["t"] % 100 * 10 + frame["t"] // 100, unit="D", utc=True
    )  # every user active across the whole period
    features = build_features(frame, FeatureConfig(validation_days=10))
    inputs = build_fit_inputs(features, None, 20)
    train = features.train
    inner = train[train["timestamp"] <= train["timestamp"].max() - pd.Timedelta(days=20)]
    assert 0 < len(inner) < len(train)
    users, relevant = inputs.validation
    assert users.size and relevant.shape[0] == users.size
    assert relevant.multiply(inputs.train).nnz == 0  # only items new in the carve-out
    assert inputs.train.nnz == len(inner.drop_duplicates(["user_idx", "item_idx"]))
    assert [len(s) for s in inputs.sequences] == inputs.train.getnnz(axis=1).tolist()
    assert inputs.item_features is None


def test_item_content_features() -> None:
    from models.vocab import IdVocabulary

    items = IdVocabulary(["a", "b", "c"])
    frame = pd.DataFrame(
        {
            "item_id": ["b", "a"],
            "genres": ["X|Y", "Y"],
            "year": [2000, 1990],
            "title": ["Heat (1995)", "Heat Wave (1990)"],
        }
    )
    f = item_content_features(items, frame)
    assert f.shape[0] == 3
    np.testing.assert_array_equal(f[:, :2], [[0, 1], [1, 1], [0, 0]])  # X, Y
    np.testing.assert_allclose(f[:, 2], [0.0, 1.0, 0.5])  # year scaled; unknown -> 0.5
    heat = f[0, 3:] * f[1, 3:]
    assert heat.sum() == 1  # both titles share the token "heat"
