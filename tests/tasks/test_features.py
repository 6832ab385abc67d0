import numpy as np
import pandas as pd
import pytest

from tasks.config import FeatureConfig
from tasks.data.snapshot import load_features, save_features
from tasks.errors import DataError
from tasks.features import build_features


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
    with pytest.raises(DataError, match=r"lower features.validation_days"):
        build_features(FRAME, FeatureConfig(validation_days=30))


def build_in_partitions(frame: pd.DataFrame, tmp_path, config: FeatureConfig) -> dict:
    from tasks.features import (
        encode_partition,
        finish_features,
        partition_ids,
        plan_features,
        write_vocabularies,
    )

    source = tmp_path / "validated.parquet"
    frame.to_parquet(source, index=False)
    plan = plan_features(str(source), str(tmp_path / "features"), config)
    parts = range(len(plan.partitions))
    vocabularies = write_vocabularies(plan, [partition_ids(plan, p) for p in parts])
    counts = [encode_partition(plan, p, vocabularies["holdout"]) for p in parts]
    return {"parts": len(parts), **finish_features(plan, vocabularies, counts).summary()}


def by_user(frame: pd.DataFrame) -> dict:
    """Each user's events in the snapshot's order (what sequence models read)."""
    cols = ["item_idx", "timestamp", "value"]
    return {u: g[cols].to_numpy().tolist() for u, g in frame.groupby("user_idx", sort=True)}


def test_partitions_give_the_in_memory_snapshot(tmp_path) -> None:
    from tasks.sources.demo import generate_demo

    interactions, _ = generate_demo(n_users=300, n_items=120, end="2026-01-01")
    config = FeatureConfig(validation_days=5, part_rows=2_000)
    whole = build_features(interactions, config)
    meta = build_in_partitions(interactions, tmp_path, config)
    assert meta["parts"] >= 3
    parts = load_features(meta["features_dir"])
    assert parts.users == whole.users and parts.items == whole.items
    assert parts.cutoff == whole.cutoff
    assert (meta["n_train"], meta["n_valid"]) == (len(whole.train), len(whole.valid))
    assert by_user(parts.train) == by_user(whole.train)
    assert by_user(parts.valid) == by_user(whole.valid)
    assert not (tmp_path / "features" / "_partitions").exists()


@pytest.mark.parametrize("days", [3, 400])  # 400: no carve-out, fitted on everything
def test_training_inputs_read_part_by_part_equal_the_in_memory_ones(tmp_path, days) -> None:
    from tasks.data.model_inputs import build_fit_inputs, fit_inputs_from_snapshot
    from tasks.sources.demo import generate_demo

    interactions, _ = generate_demo(n_users=300, n_items=120, end="2026-01-01")
    config = FeatureConfig(validation_days=5, part_rows=2_000)
    meta = build_in_partitions(interactions, tmp_path, config)
    assert meta["parts"] >= 3
    whole = build_fit_inputs(build_features(interactions, config), None, days)
    parts = fit_inputs_from_snapshot(meta["features_dir"], None, days)
    assert (parts.train != whole.train).nnz == 0 and parts.train.nnz == whole.train.nnz
    assert (whole.validation is None) == (days == 400) == (parts.validation is None)
    if whole.validation is not None:
        np.testing.assert_array_equal(parts.validation[0], whole.validation[0])
        assert (parts.validation[1] != whole.validation[1]).nnz == 0
    assert len(parts.sequences) == len(whole.sequences) == 300
    for mine, theirs in zip(parts.sequences, whole.sequences, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_holdout_read_part_by_part_equals_the_in_memory_one(tmp_path) -> None:
    from tasks.evaluate import holdout_from_features, holdout_from_snapshot
    from tasks.sources.demo import generate_demo

    interactions, _ = generate_demo(n_users=300, n_items=120, end="2026-01-01")
    config = FeatureConfig(validation_days=5, part_rows=2_000)
    meta = build_in_partitions(interactions, tmp_path, config)
    whole = holdout_from_features(build_features(interactions, config))
    parts = holdout_from_snapshot(meta["features_dir"])
    assert len(whole.relevant) > 0 and parts.users == whole.users
    for table in ("train", "relevant"):  # the same rows, in the same order per user
        mine, theirs = getattr(parts, table), getattr(whole, table)
        pd.testing.assert_frame_equal(
            mine.sort_values("user_idx", kind="stable").reset_index(drop=True),
            theirs.sort_values("user_idx", kind="stable").reset_index(drop=True),
        )


def test_partitions_check_training_history_too(tmp_path) -> None:
    with pytest.raises(DataError, match=r"lower features.validation_days"):
        build_in_partitions(FRAME, tmp_path, FeatureConfig(validation_days=30, part_rows=1))


# -- the hold-out sized by evidence ---------------------------------------------------------
LAST = pd.Timestamp("2026-03-01", tz="UTC")


def at(days_before: float, hours: int = 0) -> str:
    return (LAST - pd.Timedelta(days=days_before) + pd.Timedelta(hours=hours)).isoformat()


def quiet_then_busy(n: int) -> pd.DataFrame:
    """``n`` users with history 100 days back and one new item 20 days back, and one user
    active on the last day: the last 7 or 14 days hold one user, the last 28 days n + 1."""
    rows = [(f"u{i}", "old", at(100)) for i in range(n)]
    rows += [(f"u{i}", f"new{i}", at(20, i)) for i in range(n)]
    rows += [("z", "old", at(100)), ("z", "late", at(0))]
    return events(rows)


EVIDENCE = {"min_users": 20, "min_events": 20, "max_holdout_share": 0.6}


def test_a_holdout_too_small_is_widened_back_in_time() -> None:
    f = build_features(quiet_then_busy(30), FeatureConfig(validation_days=7, **EVIDENCE))
    h = f.holdout
    assert h["strategy"] == "window" and h["window_days"] == 28 and h["enough"]
    assert (h["users"], h["events"]) == (31, 31)  # exact, from the split
    assert f.cutoff == LAST - pd.Timedelta(days=28)
    assert (
        "7d: 1 users/1 events, 14d: 1 users/1 events, 28d: 31 users/31 events" in (h["description"])
    )
    # without a minimum of evidence the last validation_days are held out, as they are
    fixed = build_features(quiet_then_busy(30), FeatureConfig(validation_days=7))
    assert fixed.holdout["window_days"] == 7 and fixed.holdout["users"] == 1


def bursts(n: int, per_user: int = 5) -> pd.DataFrame:
    """Users active on one day each (a day apart): no window holds users with history."""
    return events([(f"u{i}", f"i{i}-{j}", at(n - i, j)) for i in range(n) for j in range(per_user)])


def test_each_active_users_latest_events_when_no_window_will_do(tmp_path) -> None:
    config = FeatureConfig(validation_days=7, **EVIDENCE)
    f = build_features(bursts(40), config)
    h = f.holdout
    assert h["strategy"] == "latest" and h["enough"], h["description"]
    # the users active lately: 7 days hold 7 of them, 14 days 14, 28 days 28 >= 20;
    # of each, the last of their 5 events
    assert "active in the last 28 days" in h["description"]
    assert (h["users"], h["events"]) == (28, 28)
    assert len(f.valid) == 28 and f.valid.groupby("user_idx").size().eq(1).all()
    last_of_user = pd.concat([f.train, f.valid]).groupby("user_idx")["timestamp"].max()
    assert (f.valid.set_index("user_idx")["timestamp"] == last_of_user[f.valid["user_idx"]]).all()
    meta = build_in_partitions(bursts(40), tmp_path, config.model_copy(update={"part_rows": 50}))
    assert meta["parts"] >= 3 and meta["holdout"]["strategy"] == "latest"
    assert (meta["holdout"]["users"], meta["holdout"]["events"]) == (28, 28)
    parts = load_features(meta["features_dir"])
    assert by_user(parts.valid) == by_user(f.valid)


def test_a_dataset_too_thin_to_decide_says_so_and_the_gate_keeps_the_champion() -> None:
    from tasks.gate import GateConfig, decide

    f = build_features(quiet_then_busy(5), FeatureConfig(validation_days=7, **EVIDENCE))
    h = f.holdout
    assert not h["enough"] and "too little evidence" in h["description"]
    assert (h["window_days"], h["users"]) == (28, 6)  # the widest evidence it could find
    n = max(h["users"], 1)
    scores = {"popularity": np.zeros(n), "ease": np.ones(n)}
    gate = GateConfig(min_users=20, min_events=20)
    kept = decide(scores, np.zeros(n), "ndcg@10", gate, n_events=h["events"])
    assert not kept.promote and kept.decision == "kept: too little evidence"
    assert "< evaluate.min_users=20" in kept.reason


def test_low_ratings_are_seen_but_neither_learned_nor_relevant(tmp_path) -> None:
    from tasks.evaluate import holdout_from_features, holdout_from_snapshot

    rated = events(
        [
            ("a", "x", "2026-01-01"),
            ("a", "y", "2026-01-02"),  # rated 2: seen, not a positive
            ("a", "z", "2026-01-09"),  # hold-out, rated 5
            ("a", "w", "2026-01-10"),  # hold-out, rated 1: not relevant
        ]
    ).assign(value=[5.0, 2.0, 5.0, 1.0], event_type="rating")
    f = build_features(rated, FeatureConfig(validation_days=2))
    items = f.items.ids
    assert items[f.train["item_idx"]].tolist() == ["x"]
    assert items[f.seen["item_idx"]].tolist() == ["y"]
    assert items[f.valid["item_idx"]].tolist() == ["z"]
    holdout = holdout_from_features(f)
    assert sorted(items[holdout.train["item_idx"]]) == ["x", "y"]  # excluded as seen
    assert items[holdout.relevant["item_idx"]].tolist() == ["z"]
    # the partitioned snapshot holds the same, and so does the hold-out read from it
    meta = build_in_partitions(rated, tmp_path, FeatureConfig(validation_days=2))
    assert (meta["n_train"], meta["n_valid"], meta["n_seen_not_positive"]) == (1, 1, 1)
    parts = holdout_from_snapshot(meta["features_dir"])
    assert sorted(items[parts.train["item_idx"]]) == ["x", "y"]
    # unrated data, or the rule "all": every event is a positive, as before
    implicit = build_features(rated.drop(columns="event_type"), FeatureConfig(validation_days=2))
    assert len(implicit.train) == 2 and len(implicit.valid) == 2 and implicit.seen.empty


def test_the_holdout_counts_only_positive_events_as_evidence() -> None:
    rated = quiet_then_busy(30).assign(event_type="rating", value=5.0)
    liked = build_features(rated, FeatureConfig(validation_days=7, **EVIDENCE)).holdout
    assert (liked["window_days"], liked["users"], liked["enough"]) == (28, 31, True)
    # the same events, but the 30 new items rated 2: they are no evidence of anything
    disliked = rated.assign(value=np.where(rated["item_id"].str.startswith("new"), 2.0, 5.0))
    h = build_features(disliked, FeatureConfig(validation_days=7, **EVIDENCE)).holdout
    assert not h["enough"] and h["users"] == 1 and "28d: 1 users/1 events" in h["description"]


def test_returning_users_hold_out_what_they_did_after_coming_back() -> None:
    rows = [("a", "x", at(30)), ("a", "y", at(30, 1)), ("a", "z", at(10)), ("a", "w", at(10, 2))]
    rows += [("b", "x", at(20)), ("b", "y", at(20, 3))]  # never came back: trains only
    config = FeatureConfig(holdout="returning", return_gap_days=1.0)
    f = build_features(events(rows), config)
    assert f.holdout["strategy"] == "returning"
    assert sorted(f.items.ids[f.valid["item_idx"]]) == ["w", "z"]
    assert (f.holdout["users"], f.holdout["events"]) == (1, 2)
