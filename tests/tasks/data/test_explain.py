import math

import numpy as np
import scipy.sparse as sp

from tasks.data.explain import (
    cooccurrence_similarity,
    reasons,
    similar_items_table,
    supporting_items,
)

# users x items: a,b co-occur twice; c,d once; a,d once
H = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=float))
IDS = np.array(["a", "b", "c", "d"])


def test_cosine_similarity_hand_computed() -> None:
    sim = cooccurrence_similarity(H, shrinkage=0).toarray()
    assert math.isclose(sim[0, 1], 2 / math.sqrt(3 * 2), rel_tol=1e-6)
    assert math.isclose(sim[2, 3], 1 / math.sqrt(1 * 2), rel_tol=1e-6)
    assert sim[0, 0] == 0 and sim[1, 2] == 0
    np.testing.assert_allclose(sim, sim.T)


def test_shrinkage_and_pruning() -> None:
    shrunk = cooccurrence_similarity(H, shrinkage=10).toarray()
    assert math.isclose(shrunk[0, 1], 2 / (math.sqrt(6) + 10), rel_tol=1e-6)
    pruned = cooccurrence_similarity(H, neighbours=1, shrinkage=0)
    assert (np.diff(pruned.indptr) <= 1).all()
    assert pruned[0].indices.tolist() == [1]  # a keeps its strongest neighbour, b


def test_supporting_item_is_the_most_similar_history_item() -> None:
    sim = cooccurrence_similarity(H, shrinkage=0)
    history = sp.csr_matrix(np.array([[1, 0, 1, 0]], dtype=float))  # saw a and c
    support = supporting_items(sim, history, np.array([[1, 3, -1]]))
    # b is supported by a; d by c (0.707) rather than a (0.408); padding gets -1
    assert support.tolist() == [[0, 2, -1]]
    text = reasons(support, IDS, {"a": "Alpha (1999)"})
    assert text.tolist() == [["because you watched Alpha (1999)", "because you watched c", None]]


def test_similar_items_table() -> None:
    table = similar_items_table(cooccurrence_similarity(H, shrinkage=0), IDS, 2)
    a = table[table.item_id == "a"].sort_values("rank")
    assert a["similar_item_id"].tolist() == ["b", "d"]
    assert (a["score"].diff().dropna() <= 0).all()
    assert set(table.columns) == {"item_id", "rank", "similar_item_id", "score"}


def test_pruning_keeps_each_rows_largest_entries_across_blocks() -> None:
    import numpy as np
    import scipy.sparse as sp

    from tasks.data.explain import _prune_rows

    matrix = sp.random(50, 40, density=0.5, format="csr", random_state=2).astype(np.float32)
    pruned = _prune_rows(matrix, 3, cells=100)  # blocks of 2 rows
    dense = matrix.toarray()
    for row in range(50):
        stored = np.flatnonzero(dense[row])
        best = stored[np.argsort(-dense[row, stored])[:3]]
        assert sorted(pruned[row].indices) == sorted(best)
        assert np.allclose(sorted(pruned[row].data), sorted(dense[row, best]))


def test_reasons_name_only_positively_rated_items() -> None:
    sim = cooccurrence_similarity(H, shrinkage=0)
    history = sp.csr_matrix(np.array([[1, 0, 1, 0]], dtype=float))  # saw a and c
    rated_low_c = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=float))  # only a is liked
    support = supporting_items(sim, history, np.array([[1, 3, -1]]), positive=rated_low_c)
    # d is now supported by a (c was rated low), b still by a
    assert support.tolist() == [[0, 0, -1]]
    nothing_liked = sp.csr_matrix((1, 4))
    assert supporting_items(sim, history, np.array([[1, 3]]), positive=nothing_liked).tolist() == [
        [-1, -1]
    ]


def test_row_argmax_is_scipys_argmax_without_the_row_loop() -> None:
    from tasks.data.explain import _row_argmax

    rng = np.random.default_rng(5)
    dense = rng.integers(0, 4, size=(200, 30)).astype(np.float32)  # ties and empty rows
    dense[::9] = 0
    matrix = sp.csr_matrix(dense)
    expected = np.asarray(matrix.argmax(axis=1)).ravel()
    expected[np.diff(matrix.indptr) == 0] = -1
    assert np.array_equal(_row_argmax(matrix), expected)
    shuffled = matrix.copy()  # storage order not by column: the first stored maximum
    for r in range(shuffled.shape[0]):
        lo, hi = shuffled.indptr[r], shuffled.indptr[r + 1]
        shuffled.indices[lo:hi] = shuffled.indices[lo:hi][::-1]
        shuffled.data[lo:hi] = shuffled.data[lo:hi][::-1]
    shuffled.has_sorted_indices = False
    expected = np.asarray(shuffled.argmax(axis=1)).ravel()
    expected[np.diff(shuffled.indptr) == 0] = -1
    assert np.array_equal(_row_argmax(shuffled), expected)
