"""Factor models ranked through an HNSW index above ``ann_min_items``: the same answers
as exact scoring on a clean problem, exclusions, padding, save/load, and nothing
changed below the width."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import ALS, BPR, load_recommender
from models.ann import (
    CANDIDATE_MARGIN,
    EXACT_SHARE,
    INDEX_FILE,
    ItemIndex,
    candidate_bytes,
    index_bytes,
)
from models.memory import DataShape, dense_bytes, score_users
from models.ranking import top_k, top_k_candidates

N_USERS, N_ITEMS, DIM = 40, 300, 8
RNG = np.random.default_rng(7)
# well-separated scores: Gaussian factors, no two items of a user within float noise
USER_FACTORS = RNG.normal(size=(N_USERS, DIM)).astype(np.float32)
ITEM_FACTORS = (RNG.normal(size=(N_ITEMS, DIM)) * RNG.uniform(0.2, 3.0, (N_ITEMS, 1))).astype(
    np.float32
)
TRAIN = sp.random(N_USERS, N_ITEMS, density=0.05, random_state=3, format="csr", dtype=np.float32)
TRAIN.data[:] = 1.0


def factor_model(tmp_path, ann_min_items: int, cls=ALS, **params):
    """A model with the factors above, loaded from a saved directory (the index, if any,
    is built on load)."""
    model = cls(factors=DIM, iterations=1, num_threads=1, ann_min_items=0, **params).fit(TRAIN)
    model.user_factors_ = USER_FACTORS if cls is ALS else np.hstack([USER_FACTORS, ONES])
    model.item_factors_ = ITEM_FACTORS if cls is ALS else np.hstack([ITEM_FACTORS, BIAS])
    model.params["ann_min_items"] = ann_min_items
    return load_recommender(model.save(tmp_path / f"{cls.name}-{ann_min_items}"))


ONES = np.ones((N_USERS, 1), dtype=np.float32)
BIAS = RNG.normal(size=(N_ITEMS, 1)).astype(np.float32)


def brute_force(users: np.ndarray, k: int, history: sp.csr_matrix) -> np.ndarray:
    """The exact top k by sorting every score, seen items last."""
    scores = USER_FACTORS[users] @ ITEM_FACTORS.T
    scores[history[users].toarray() > 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(scores, order, 1)), order, -1)


def test_the_graph_finds_the_exact_top_10_among_32_candidates_with_exact_scores() -> None:
    width = 32
    assert width * EXACT_SHARE < N_ITEMS  # searched in the graph, not the dense product
    items, scores = ItemIndex.build(ITEM_FACTORS, seed=42).search(
        USER_FACTORS, np.full(N_USERS, width)
    )
    dense = USER_FACTORS @ ITEM_FACTORS.T
    np.testing.assert_array_equal(items[:, :10], np.argsort(-dense, axis=1)[:, :10])
    np.testing.assert_allclose(scores, np.take_along_axis(dense, items, 1), rtol=1e-5)


def test_index_ranks_the_exact_top_k_on_a_clean_problem(tmp_path) -> None:
    model = factor_model(tmp_path, ann_min_items=100)
    assert model.retrieves
    widest = 10 + np.diff(TRAIN.indptr).max() + CANDIDATE_MARGIN
    assert 2 ** np.ceil(np.log2(widest)) * EXACT_SHARE < N_ITEMS  # from the graph
    users = np.arange(N_USERS)
    items, scores = model.recommend(users, 10)
    np.testing.assert_array_equal(items, brute_force(users, 10, TRAIN))
    np.testing.assert_allclose(scores, np.take_along_axis(model.score(users), items, 1), rtol=1e-5)


def test_retrieved_candidates_carry_exact_scores_best_first(tmp_path) -> None:
    model = factor_model(tmp_path, ann_min_items=100)
    users = np.array([3, 5])
    items, scores = model.candidates(users, 20)
    assert items.shape == (2, 32)  # 20 rounded up to a power of two
    dense = model.score(users)
    np.testing.assert_allclose(scores, np.take_along_axis(dense, items, 1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_array_equal(items[:, :20], top_k(dense, 20)[0])


def test_a_user_who_has_seen_nearly_everything_gets_the_rest_then_padding(tmp_path) -> None:
    model = factor_model(tmp_path, ann_min_items=100)
    history = sp.lil_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    history[0, 5:] = 1.0  # all but items 0-4
    history = history.tocsr()
    items, scores = model.recommend(np.array([0]), 10, history=history)
    dense = model.score(np.array([0]), history=history)  # ALS folds the history in
    np.testing.assert_array_equal(items, top_k(dense, 10, exclude=history[[0]])[0])
    assert sorted(items[0, :5]) == [0, 1, 2, 3, 4]
    assert (items[0, 5:] == -1).all() and np.isneginf(scores[0, 5:]).all()


def test_saved_and_loaded_model_keeps_its_graph_and_retrieves_the_same(tmp_path) -> None:
    model = factor_model(tmp_path, ann_min_items=100)
    saved = model.save(tmp_path / "again")
    assert (saved / INDEX_FILE).is_file()
    loaded = load_recommender(saved)
    assert loaded.retrieves
    users = np.arange(N_USERS)
    for got, want in zip(loaded.recommend(users, 10), model.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    again = loaded.save(tmp_path / "third") / INDEX_FILE
    assert again.read_bytes() == (saved / INDEX_FILE).read_bytes()


def test_the_same_vectors_and_seed_build_the_same_graph(tmp_path) -> None:
    a, b = (ItemIndex.build(ITEM_FACTORS, seed=42) for _ in range(2))
    a.save(tmp_path)
    first = (tmp_path / INDEX_FILE).read_bytes()
    b.save(tmp_path)
    assert (tmp_path / INDEX_FILE).read_bytes() == first


@pytest.mark.parametrize("ann_min_items", [0, N_ITEMS + 1])
def test_below_the_width_nothing_changes(tmp_path, ann_min_items: int) -> None:
    model = factor_model(tmp_path, ann_min_items=ann_min_items)
    assert not model.retrieves
    assert not (tmp_path / f"als-{ann_min_items}" / INDEX_FILE).exists()
    users = np.arange(N_USERS)
    for got, want in zip(
        model.recommend(users, 10), top_k(model.score(users), 10, exclude=TRAIN), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_bpr_correction_is_searched_as_one_more_column(tmp_path) -> None:
    exact = factor_model(tmp_path, ann_min_items=0, cls=BPR, popularity_correction=0.5)
    indexed = factor_model(tmp_path, ann_min_items=100, cls=BPR, popularity_correction=0.5)
    users = np.arange(N_USERS)
    want_items, want_scores = exact.recommend(users, 10)
    got_items, got_scores = indexed.recommend(users, 10)
    np.testing.assert_array_equal(got_items, want_items)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)


def test_top_k_of_candidates_excludes_pads_and_breaks_ties_by_item() -> None:
    items = np.array([[7, 2, 5, 9, -1], [4, 3, 1, 0, 6]])
    scores = np.array([[1.0, 1.0, 3.0, 0.5, -np.inf], [2.0, 2.0, 2.0, 2.0, 9.0]], np.float32)
    seen = sp.csr_matrix(([1.0, 1.0], ([0, 1], [5, 6])), shape=(2, 10))
    blocked = np.zeros(10, dtype=bool)
    blocked[0] = True
    got, top = top_k_candidates(items, scores, 4, exclude=seen, blocked=blocked)
    np.testing.assert_array_equal(got, [[2, 7, 9, -1], [1, 3, 4, -1]])
    np.testing.assert_array_equal(top[0, :3], [1.0, 1.0, 0.5])
    assert np.isneginf(top[:, 3]).all()


def test_memory_estimate_counts_the_graph_instead_of_a_dense_block() -> None:
    shape = DataShape(users=500_000, items=1_000_000, interactions=10_000_000)
    dense = ALS.memory_estimate(shape, ann_min_items=0)
    indexed = ALS.memory_estimate(shape)
    # dense: a block of scores within 256 MiB (67 users x 1M items); indexed: the graph of
    # the 32 factors and a block's candidates instead (the index saves time, not memory)
    block = dense_bytes(score_users(shape.items), shape.items)
    graph = index_bytes(shape.items, 32)
    assert dense.score_bytes >= block and dense.score_bytes < block + graph
    assert indexed.score_bytes >= graph + candidate_bytes(32)
    assert indexed.score_bytes < graph + candidate_bytes(32) + block
    small = DataShape(users=1000, items=5000, interactions=20_000)
    assert ALS.memory_estimate(small) == ALS.memory_estimate(small, ann_min_items=0)


def test_two_tower_ranks_through_its_item_vectors_above_the_width(tmp_path) -> None:
    from models import TwoTower

    params = {"embedding_dim": 8, "hidden_dims": [16], "epochs": 2, "batch_size": 64}
    model = TwoTower(**params, ann_min_items=100).fit(TRAIN)
    assert model.retrieves
    users = np.arange(N_USERS)
    items, scores = model.recommend(users, 5)
    dense = model.score(users)
    exact = top_k(dense, 5, exclude=TRAIN)[0]
    # the graph is approximate: most of the exact top 5, each with its exact score
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(items, exact, strict=True))
    assert hits / exact.size >= 0.9
    np.testing.assert_allclose(scores, np.take_along_axis(dense, items, 1), rtol=1e-4, atol=1e-6)
    assert not np.take_along_axis(TRAIN.toarray(), items, 1).any()
    loaded = load_recommender(model.save(tmp_path / "two_tower"))
    assert loaded.retrieves
    np.testing.assert_array_equal(loaded.recommend(users, 5)[0], items)
