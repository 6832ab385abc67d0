"""Sparse scores ranked over their entries, and rows sharing their scores ranked once:
exactly the dense ranking."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import make_recommender
from models.ranking import sparse_top_k, top_k


def test_a_known_block() -> None:
    scores = sp.csr_matrix(np.array([[0.0, 3.0, -1.0, 3.0, 2.0], [0.0, 0.0, 0.0, -2.0, 1.0]]))
    seen = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    blocked = np.array([False, False, False, True, False])
    items, top = sparse_top_k(scores, 3, exclude=seen, blocked=blocked)
    # row 0: 3.0 at item 1, then the zero of item 0 (absent cells score 0), then -1
    assert items.tolist() == [[1, 0, 2], [4, 0, 1]]
    assert top[0].tolist() == [3.0, 0.0, -1.0]
    items, _ = sparse_top_k(scores, 6, exclude=seen, blocked=blocked)
    assert items[0].tolist() == [1, 0, 2, -1, -1, -1]  # padded like top_k


def test_random_blocks_rank_exactly_as_dense() -> None:
    # rows with fewer than k positive entries fill with zero cells, then negative ones,
    # and k may pass the catalog: every branch of the selection meets the dense one
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_rows, n_items = int(rng.integers(1, 10)), int(rng.integers(1, 30))
        scores = sp.random(n_rows, n_items, density=rng.random(), format="csr", rng=rng)
        scores.data = np.round((scores.data - 0.3) * 4) / 4  # ties, negatives, zeros
        seen = sp.random(n_rows, n_items, density=rng.random() / 2, format="csr", rng=rng)
        blocked = rng.random(n_items) < 0.2
        k = int(rng.integers(1, 35))
        dense = scores.toarray().astype(np.float32)
        dense[:, blocked] = -np.inf
        expected = top_k(dense, k, exclude=seen)
        got = sparse_top_k(scores, k, exclude=seen, blocked=blocked)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize(
    ("name", "params"),
    [("item_knn", {"neighbors": 3}), ("ease", {"form": "sparse", "neighbors": 4})],
)
def test_sparse_models_recommend_what_their_dense_scores_rank(name: str, params: dict) -> None:
    rng = np.random.default_rng(3)
    matrix = sp.random(40, 30, density=0.15, format="csr", rng=rng)
    model = make_recommender(name, **params).fit(matrix)
    users = np.arange(40)
    assert model.score_sparse(users) is not None
    items, top = model.recommend(users, k=8)
    expected = top_k(model.score(users), 8, exclude=matrix)
    np.testing.assert_array_equal(items, expected[0])
    np.testing.assert_allclose(top, expected[1])


def test_dense_models_have_no_sparse_scores() -> None:
    matrix = sp.random(20, 10, density=0.3, format="csr", random_state=0)
    assert make_recommender("ease", form="dense").fit(matrix).score_sparse(np.arange(3)) is None


def test_rows_that_share_their_scores_rank_exactly_as_copies() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n_rows, n_items = int(rng.integers(1, 8)), int(rng.integers(1, 30))
        row = (np.round(rng.normal(size=n_items) * 2) / 2).astype(np.float32)
        row[rng.random(n_items) < 0.15] = -np.inf
        seen = sp.random(n_rows, n_items, density=rng.random() * 0.7, format="csr", rng=rng)
        k = int(rng.integers(1, 12))
        shared = top_k(np.broadcast_to(row, (n_rows, n_items)), k, exclude=seen)
        copied = top_k(np.tile(row, (n_rows, 1)), k, exclude=seen)
        np.testing.assert_array_equal(shared[0], copied[0])
        np.testing.assert_array_equal(shared[1], copied[1])
