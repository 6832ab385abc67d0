"""The sparse form of EASE: exact where every neighbour is kept, sparse and close where
few are, chosen by width, and planned in memory."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models.ease import EASE, ease_weights
from models.memory import DataShape
from models.sparse_ease import cap_rows, neighbors_for, sparse_ease_weights, top_neighbors


def _random_matrix(users: int = 60, items: int = 25, density: float = 0.2) -> sp.csr_matrix:
    rng = np.random.default_rng(3)
    return sp.csr_matrix((rng.random((users, items)) < density).astype(np.float32))


def test_all_neighbours_kept_is_dense_ease() -> None:
    matrix = _random_matrix(density=0.5)
    dense = ease_weights(matrix, l2=5.0)
    sparse = sparse_ease_weights(matrix, l2=5.0, neighbors=24).toarray()
    # every pair of these items co-occurs, so each column keeps all 24 other items
    assert np.allclose(sparse, dense, atol=1e-5)
    assert np.all(np.diag(sparse) == 0)


def test_each_column_keeps_at_most_its_neighbours() -> None:
    matrix = _random_matrix()
    weights = sparse_ease_weights(matrix, l2=5.0, neighbors=3).tocsc()
    assert np.diff(weights.indptr).max() <= 3
    assert weights.diagonal().sum() == 0


def test_a_row_keeps_its_largest_weights_in_magnitude_lowest_column_first_on_ties() -> None:
    weights = sp.csr_matrix(
        np.array(
            [
                [0.0, -5.0, 1.0, 3.0, -1.0, 2.0],  # five weights: cut to the largest three
                [0.0, 0.0, 0.5, 0.0, 0.0, 0.0],  # one: kept whole
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                [2.0, 0.0, -2.0, 2.0, 1.0, 0.0],  # equal magnitudes: lowest columns kept
            ],
            dtype=np.float32,
        )
    )
    capped = cap_rows(weights, 3).toarray()
    assert capped.tolist() == [
        [0.0, -5.0, 0.0, 3.0, 0.0, 2.0],
        [0.0, 0.0, 0.5, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [2.0, 0.0, -2.0, 2.0, 0.0, 0.0],
    ]
    assert np.array_equal(cap_rows(weights, 0).toarray(), weights.toarray())


def test_sparse_ease_rows_hold_at_most_max_row_entries() -> None:
    matrix = _random_matrix(density=0.5)
    whole = EASE(form="sparse", l2=5.0, neighbors=24, max_row_entries=0).fit(matrix)
    cut = EASE(form="sparse", l2=5.0, neighbors=24, max_row_entries=4).fit(matrix)
    assert np.diff(whole.weights_.indptr).max() == 24
    assert np.diff(cut.weights_.indptr).max() == 4
    kept = cut.weights_.toarray() != 0
    assert np.array_equal(cut.weights_.toarray()[kept], whole.weights_.toarray()[kept])


def test_a_wide_catalog_shrinks_the_neighbourhoods_to_the_cells_allowed() -> None:
    # 100 items x 20^2 cells allowed: 20 neighbours each, not 64
    assert neighbors_for(100, 64, max_cells=100 * 20**2) == 20
    assert neighbors_for(100, 64, max_cells=10**9) == 64
    assert neighbors_for(1_000_000, 128, max_cells=2 * 10**9) == 44
    assert neighbors_for(10**9, 128, max_cells=1) == 16  # never under the floor
    assert neighbors_for(5, 128) == 4  # never more than the other items
    # 400 items x 20^2 cells: 20 neighbours each where 64 were asked
    dense_enough = _random_matrix(users=300, items=400, density=0.3)
    weights = sparse_ease_weights(dense_enough, l2=5.0, neighbors=64, max_cells=400 * 20**2)
    assert np.diff(sp.csc_matrix(weights).indptr).max() == 20


def test_neighbours_rank_by_cosine_and_skip_items_never_seen_together() -> None:
    # item 0 co-occurs with 1 (twice) and 2 (once); item 3 with nothing
    matrix = sp.csr_matrix(
        np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    )
    from models.sparse_ease import gram_matrix

    hood = top_neighbors(gram_matrix(matrix), 2, "cosine")
    assert hood[0].tolist() == [1, 2]
    assert hood[3].tolist() == [-1, -1]


def test_auto_form_follows_the_width_and_saves_as_sparse(tmp_path) -> None:
    matrix = _random_matrix(density=0.5)
    narrow = EASE(l2=5.0, dense_max_items=100).fit(matrix)
    wide = EASE(l2=5.0, dense_max_items=10, neighbors=24).fit(matrix)
    assert isinstance(narrow.weights_, np.ndarray)
    assert sp.issparse(wide.weights_)
    users = np.arange(10)
    a_items, a_scores = narrow.recommend(users, 5)
    b_items, b_scores = wide.recommend(users, 5)
    assert np.array_equal(a_items, b_items)
    assert np.allclose(a_scores, b_scores, atol=1e-5)
    wide.save(tmp_path / "m")
    again = EASE.load(tmp_path / "m")
    assert sp.issparse(again.weights_)
    assert np.array_equal(again.recommend(users, 5)[0], b_items)


def test_memory_estimate_dense_grows_with_items_squared_and_sparse_does_not() -> None:
    narrow = DataShape(users=50_000, items=10_000, interactions=1_000_000)
    wide = DataShape(users=50_000, items=60_000, interactions=1_000_000)
    assert EASE.memory_estimate(narrow, form="dense").train_bytes >= 12 * 10_000**2
    dense_wide = EASE.memory_estimate(wide, form="dense")
    sparse_wide = EASE.memory_estimate(wide, form="sparse")
    assert dense_wide.train_bytes >= 12 * 60_000**2  # 40 GiB
    assert sparse_wide.peak_bytes < dense_wide.peak_bytes / 10
    # auto: already sparse at this width; dense by width below it, with a sparse form
    assert EASE.scalable_params(wide, l2=100.0) is None
    assert EASE.scalable_params(narrow, l2=100.0) == {"l2": 100.0, "form": "sparse"}
    assert EASE.scalable_params(narrow, form="sparse") is None


def test_unknown_form_is_refused() -> None:
    with pytest.raises(ValueError, match="form"):
        EASE(form="approximate")


def test_a_wide_dense_inverse_is_factored_on_one_blas_thread(monkeypatch) -> None:
    # OpenBLAS's two-thread Cholesky crashes on wide matrices: above SINGLE_THREAD_ITEMS
    # the factorisation runs on one thread, below it on the threads configured
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_info

    import models.ease as ease

    seen: list[int] = []
    factor = lapack.dpotrf

    def counted(*args, **kwargs):
        seen.append(min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return factor(*args, **kwargs)

    monkeypatch.setattr(lapack, "dpotrf", counted)
    matrix = _random_matrix(density=0.5)
    monkeypatch.setattr(ease, "SINGLE_THREAD_ITEMS", matrix.shape[1] - 1)
    wide = ease_weights(matrix, l2=5.0)
    monkeypatch.setattr(ease, "SINGLE_THREAD_ITEMS", matrix.shape[1])
    assert np.array_equal(ease_weights(matrix, l2=5.0), wide)
    assert seen[0] == 1
    assert seen[1] == min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
