"""The ``ages`` fit input: each training pair's age in days, from a feature set in memory
and from a snapshot read part by part."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.vocab import IdVocabulary
from tasks.data.model_inputs import build_fit_inputs, fit_inputs_from_snapshot
from tasks.data.snapshot import FeatureSet, save_features

START = pd.Timestamp("2026-01-01", tz="UTC")


def features(rows: list[tuple[int, int, float]]) -> FeatureSet:
    """A feature set of (user, item, day) training events over 3 users and 4 items."""
    users, items, days = zip(*rows, strict=True)
    train = pd.DataFrame(
        {
            "user_idx": np.array(users, dtype=np.int64),
            "item_idx": np.array(items, dtype=np.int64),
            "timestamp": [START + pd.Timedelta(days=d) for d in days],
            "value": 1.0,
        }
    )
    return FeatureSet(
        users=IdVocabulary(["a", "b", "c"]),
        items=IdVocabulary(["w", "x", "y", "z"]),
        train=train,
        valid=train.iloc[:0],
        cutoff=START + pd.Timedelta(days=max(days)),
    )


# user a: item w on days 0 and 9 (newest 9), item x on day 2; user b: item x on day 10,
# item y on day 4; user c: item z on day 10.5
EVENTS = [(0, 0, 0.0), (0, 0, 9.0), (0, 1, 2.0), (1, 1, 10.0), (1, 2, 4.0), (2, 3, 10.5)]


def test_ages_are_the_days_since_each_pairs_newest_event_on_one_clock() -> None:
    inputs = build_fit_inputs(features(EVENTS), None, 30, needs=("ages",))
    assert inputs.ages is not None
    assert inputs.ages.toarray().tolist() == [[1.5, 8.5, 0, 0], [0, 0.5, 6.5, 0], [0, 0, 0, 0]]
    # the training matrix's pairs, the newest one stored with age 0
    assert (inputs.ages.indptr.tolist(), inputs.ages.indices.tolist()) == (
        inputs.train.indptr.tolist(),
        inputs.train.indices.tolist(),
    )
    assert "ages" in inputs.kwargs()


def test_with_an_early_stopping_carve_out_ages_count_from_the_newest_event_fitted_on() -> None:
    # three days carved out: the fit keeps days up to 7.5 and the clock is day 4 (b, y)
    inputs = build_fit_inputs(features(EVENTS), None, 3, needs=("ages", "validation"))
    assert inputs.validation is not None
    assert inputs.ages is not None and inputs.train.nnz == inputs.ages.nnz == 3
    assert inputs.ages.toarray().tolist() == [[4, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_data_without_time_gives_ages_all_zero() -> None:
    undated = [(u, i, 0.0) for u, i, _ in EVENTS]  # every event stamped with its ingest date
    inputs = build_fit_inputs(features(undated), None, 7, needs=("ages",))
    assert inputs.ages is not None and inputs.ages.nnz == inputs.train.nnz
    assert not inputs.ages.data.any()


def test_ages_are_built_only_for_a_model_that_reads_them() -> None:
    inputs = build_fit_inputs(features(EVENTS), None, 30, needs=("sequences",))
    assert inputs.ages is None and "ages" not in inputs.kwargs()


def test_the_snapshot_read_part_by_part_gives_the_same_ages(tmp_path) -> None:
    whole = features(EVENTS)
    save_features(whole, tmp_path)
    (tmp_path / "train.parquet").unlink()
    parts = tmp_path / "train.parquet"
    parts.mkdir()
    for number, users in enumerate(([0], [1, 2])):  # one file per user partition
        frame = whole.train[whole.train["user_idx"].isin(users)]
        frame.to_parquet(parts / f"part-{number}.parquet", index=False)
    for days in (3, 30):
        needs = ("ages", "validation")
        read = fit_inputs_from_snapshot(tmp_path, None, days, needs)
        in_memory = build_fit_inputs(whole, None, days, needs)
        assert read.ages is not None and in_memory.ages is not None
        assert (read.ages != in_memory.ages).nnz == 0
        np.testing.assert_array_equal(read.ages.indices, in_memory.ages.indices)


def test_only_a_model_that_reads_the_target_is_fitted_without_its_days() -> None:
    # three days carved out (after day 7.5): b's item x (day 10) and c's z (day 10.5)
    carved = build_fit_inputs(features(EVENTS), None, 3, needs=("ages", "validation"))
    whole = build_fit_inputs(features(EVENTS), None, 3, needs=("ages",))
    assert carved.train.nnz == 3 and whole.train.nnz == 5
    assert whole.train[2, 3] == 1 and carved.train[2, 3] == 0
    assert whole.ages is not None and whole.ages[2, 3] == 0.0  # c's z is the newest


def test_a_blend_is_fitted_again_on_the_whole_period_with_the_weight_it_chose(tmp_path) -> None:
    from models import Blend
    from tasks.config import TrainConfig
    from tasks.train import refit_on_all, train_model

    save_features(features(EVENTS), tmp_path)
    config = TrainConfig.model_validate(
        {"models": ["blend"], "early_stopping_days": 3, "blend": {"weights": [0.0, 0.5]}}
    )
    carved = fit_inputs_from_snapshot(tmp_path, None, 3, Blend.fit_inputs)
    first, _ = train_model("blend", config, carved)
    assert first.train_matrix_.nnz == 3 and set(first.validation_ndcg_) == {"0.0", "0.5"}
    again, _ = refit_on_all(first, str(tmp_path), None, config, Blend.fit_inputs, 0.0)
    assert again.train_matrix_.nnz == 5 and again.weight_ == first.weight_
    assert again.validation_ndcg_ == first.validation_ndcg_
    assert again.popularity_[3] > 0  # z, seen only in the carved-out days, counts now
