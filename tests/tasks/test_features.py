import pandas as pd
import pytest

from tasks.config import FeatureConfig
from tasks.errors import DataError
from tasks.features import build_features, load_features, save_features


def events(rows):
    return pd.DataFrame(
        {
            "user_id": pd.array([r[0] for r in rows], dtype="str"),
            "item_id": pd.array([r[1] for r in rows], dtype="str"),
            "timestamp": pd.to_datetime([r[2] for r in rows], utc=True),
            "value": [1.0] * len(rows),
        }
    )


FRAME = events(
    [
        ("b", "x", "2026-01-01"),
        ("a", "y", "2026-01-02"),
        ("a", "x", "2026-01-09"),
        ("c", "z", "2026-01-10"),
    ]
)


def test_vocabularies_are_sorted_and_cover_all_events() -> None:
    f = build_features(FRAME, FeatureConfig(validation_days=2))
    assert f.users.ids.tolist() == ["a", "b", "c"]
    assert f.items.ids.tolist() == ["x", "y", "z"]


def test_temporal_split_at_last_event_minus_validation_days() -> None:
    f = build_features(FRAME, FeatureConfig(validation_days=2))
    assert f.cutoff == pd.Timestamp("2026-01-08", tz="UTC")
    assert len(f.train) == 2 and len(f.valid) == 2
    train = f.matrix("train").toarray()
    assert train.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert f.matrix("all").sum() == 4


def test_input_not_mutated_and_round_trip(tmp_path) -> None:
    before = FRAME.copy()
    f = build_features(FRAME, FeatureConfig(validation_days=2))
    pd.testing.assert_frame_equal(FRAME, before)
    meta = save_features(f, tmp_path)
    assert meta["n_train"] == 2 and meta["n_users"] == 3
    g = load_features(tmp_path)
    assert g.users == f.users and g.items == f.items
    assert (g.matrix("all") != f.matrix("all")).nnz == 0


def test_no_training_history_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="lower features.validation_days"):
        build_features(FRAME, FeatureConfig(validation_days=30))
