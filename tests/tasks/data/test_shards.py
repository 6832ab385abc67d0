"""User shards: every user's rows in exactly one shard, and scoring shard by shard gives the
same table as scoring everyone at once."""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import make_recommender
from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import build_catalog
from tasks.data.explain import cooccurrence_similarity, similarity_in_passes
from tasks.data.shards import read_shard, shard_count, shard_interactions, shard_of
from tasks.scoring.inputs import prepare_inputs, recent_popularity, shard_totals
from tasks.scoring.table import write_scores


def interactions(n_users: int = 60, n_items: int = 25, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-01-01", tz="UTC")
    for u in range(n_users):
        for i in rng.choice(n_items, size=rng.integers(1, 8), replace=False):
            rows.append(
                (
                    f"u{u:03d}",
                    f"i{i:03d}",
                    start + pd.Timedelta(hours=int(rng.integers(0, 24 * 60))),
                )
            )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # users interleaved


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = interactions()
    path = tmp_path / "interactions.parquet"
    frame.assign(value=1.0).to_parquet(path, index=False)
    return path, frame


def test_each_user_lands_in_exactly_one_shard(source, tmp_path: Path) -> None:
    path, frame = source
    shards = shard_interactions(path, tmp_path / "shards", rows_per_shard=50, batch_rows=37)
    assert len(shards.paths) == shard_count(len(frame), 50) == -(-len(frame) // 50)
    parts = [read_shard(p) for p in shards.paths]
    assert sum(len(p) for p in parts) == len(frame) == shards.rows
    owners = {}
    for s, part in enumerate(parts):
        assert list(part.columns) == ["user_id", "item_id", "timestamp"]  # "value" not read
        for user in part["user_id"].unique():
            assert owners.setdefault(user, s) == s
    assert len(owners) == frame["user_id"].nunique()
    expected = shard_of(frame["user_id"].to_numpy(), len(shards.paths))
    assert {u: s for u, s in zip(frame["user_id"], expected, strict=True)} == owners
    assert pd.Timestamp(shards.newest) == frame["timestamp"].max()
    together = pd.concat(parts).sort_values(["user_id", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        together, frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)
    )


def test_one_shard_is_the_source_itself(source, tmp_path: Path) -> None:
    path, frame = source
    shards = shard_interactions(path, tmp_path / "shards", rows_per_shard=10_000)
    assert shards.paths == [str(path)] and not (tmp_path / "shards").exists()
    assert len(read_shard(shards.paths[0])) == len(frame)
    assert pd.Timestamp(shards.newest) == frame["timestamp"].max()


def test_shard_of_is_stable_and_rows_per_shard_is_checked() -> None:
    ids = np.array(["u1", "u2", "u3", "u1"], dtype=object)
    assert (shard_of(ids, 7) == shard_of(ids.copy(), 7)).all() and shard_of(ids, 7)[0] == shard_of(
        ids, 7
    )[3]
    assert shard_count(0, 10) == 1
    with pytest.raises(ValueError, match="rows_per_shard"):
        shard_count(5, 0)


def test_sharded_scoring_equals_scoring_everyone_at_once(source, tmp_path: Path) -> None:
    path, frame = source
    users = IdVocabulary(frame["user_id"][frame["user_id"] < "u050"])  # u050.. unknown: cold
    items = IdVocabulary(frame["item_id"])
    known = frame[frame["user_id"].isin(users.ids)]
    matrix = prepare_inputs(known, users, items).model_history
    model = make_recommender("ease", l2=10.0).fit(matrix)
    catalog = build_catalog(items, None, {"i003"})
    config = ScoreConfig(k=4, batch_users=7, active_days=40, popular_days=20)
    run = {"run_id": "r", "run_date": date(2026, 3, 1), "model_version": "1"}
    sim = cooccurrence_similarity(prepare_inputs(frame, users, items).history)

    write_scores(
        model, users, items, catalog, frame, config, tmp_path / "all.parquet", run, similarity=sim
    )
    whole = pd.read_parquet(tmp_path / "all.parquet")

    shards = shard_interactions(path, tmp_path / "shards", rows_per_shard=40)
    assert len(shards.paths) > 2
    newest = shards.newest_timestamp
    parts = [read_shard(p) for p in shards.paths]
    popularity, shard_sim = shard_totals(shards.paths, items, newest, config)
    assert np.array_equal(
        popularity, sum(recent_popularity(p, items, newest, config.popular_days) for p in parts)
    )
    assert abs(shard_sim - sim).max() < 1e-6
    for neighbours in (50, 3):  # 25 items: kept whole, or pruned to 3 per row
        whole_sim = cooccurrence_similarity(prepare_inputs(frame, users, items).history, neighbours)
        banded = similarity_in_passes(  # bands of a few item rows: a pass over the shards each
            lambda: (prepare_inputs(part, users, items).history for part in parts),
            len(items),
            neighbours,
            budget_bytes=4 * len(items) * 3,
            chunk_rows=2,
        )
        assert ((banded > 0) != (whole_sim > 0)).nnz == 0  # the same neighbours
        assert abs(banded - whole_sim).max() < 1e-6  # counts summed in float64
    for s, part in enumerate(parts):
        write_scores(
            model,
            users,
            items,
            catalog,
            part,
            config,
            tmp_path / f"part-{s}.parquet",
            run,
            newest=newest,
            popularity=popularity,
            similarity=shard_sim,
        )
    sharded = pd.concat(pd.read_parquet(tmp_path / f"part-{s}.parquet") for s in range(len(parts)))
    key = ["user_id", "rank"]
    left = whole.sort_values(key).reset_index(drop=True)
    right = sharded.sort_values(key).reset_index(drop=True)
    assert {"personal", "cold_start"} <= set(left["strategy"])
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-5)
    assert left["user_id"].nunique() < frame["user_id"].nunique()  # active_days dropped some
