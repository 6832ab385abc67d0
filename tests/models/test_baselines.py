"""Known answers for the closed-form baselines (EASE, item-kNN)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.ease import EASE, ease_weights
from models.item_knn import ItemKNN, cosine_similarity

# Users x items: item 0 seen by users 0, 2; item 1 by users 0, 1; item 2 by user 1.
X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=float))


def test_ease_weights_hand_computed() -> None:
    # X^T X + I = [[3, 1, 0], [1, 3, 1], [0, 1, 2]]; its inverse is
    # P = [[5, -2, 1], [-2, 6, -3], [1, -3, 8]] / 13 and B_ij = -P_ij / P_jj.
    expected = np.array(
        [
            [0, 2 / 6, -1 / 8],
            [2 / 5, 0, 3 / 8],
            [-1 / 5, 3 / 6, 0],
        ]
    )
    np.testing.assert_allclose(ease_weights(X, l2=1.0), expected, rtol=1e-6)


def test_ease_scores_are_history_times_weights() -> None:
    model = EASE(l2=1.0).fit(X)
    scores = model.score(np.array([2]))  # user 2 saw item 0 only
    np.testing.assert_allclose(scores, [[0, 2 / 6, -1 / 8]], rtol=1e-6)  # row 0 of B
    items, _ = model.recommend(np.array([2]), 1)
    assert items.tolist() == [[1]]


def test_ease_rejects_non_positive_l2() -> None:
    with pytest.raises(ValueError, match="l2 must be > 0"):
        EASE(l2=0.0).fit(X)


# Columns: item 0 users {0, 1, 3}, item 1 users {0, 2, 3}, item 2 users {2, 3}.
Y = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=float))


def test_item_knn_shrunk_cosine_hand_computed() -> None:
    sim = cosine_similarity(Y, neighbors=2, shrinkage=1.0).toarray()
    s01 = 2 / (math.sqrt(3) * math.sqrt(3) + 1)  # 2 common users
    s02 = 1 / (math.sqrt(3) * math.sqrt(2) + 1)  # 1 common user
    s12 = 2 / (math.sqrt(3) * math.sqrt(2) + 1)  # 2 common users
    expected = np.array([[0, s01, s02], [s01, 0, s12], [s02, s12, 0]])
    np.testing.assert_allclose(sim, expected, rtol=1e-6)


def test_item_knn_keeps_top_neighbours_of_each_candidate_item_in_its_column() -> None:
    sim = cosine_similarity(Y, neighbors=1, shrinkage=1.0).toarray()
    # item 0: s01 = 0.5 > s02 ~ 0.29; item 1: s12 ~ 0.58 > s01; item 2: s12 > s02
    # column j holds item j's nearest item: N(0) = {1}, N(1) = {2}, N(2) = {1}
    assert (sim > 0).T.tolist() == [
        [False, True, False],
        [False, False, True],
        [False, True, False],
    ]


def test_item_knn_scores_an_item_from_its_own_neighbourhood() -> None:
    """With one neighbour, N(0) = {1}, N(1) = {2}, N(2) = {1}: a user who saw only item 0
    gets nothing (item 0 is in no neighbourhood, though item 1 is item 0's nearest); a user
    who saw only item 1 gets items 0 and 2, whose neighbourhoods hold item 1."""
    model = ItemKNN(neighbors=1, shrinkage=1.0).fit(Y)
    saw_item_0 = sp.csr_matrix(np.array([[1, 0, 0]] * 4, dtype=float))
    np.testing.assert_allclose(model.score(np.array([0]), history=saw_item_0), [[0, 0, 0]])
    saw_item_1 = sp.csr_matrix(np.array([[0, 1, 0]] * 4, dtype=float))
    s01 = 2 / (math.sqrt(3) * math.sqrt(3) + 1)
    s12 = 2 / (math.sqrt(3) * math.sqrt(2) + 1)
    np.testing.assert_allclose(
        model.score(np.array([0]), history=saw_item_1), [[s01, 0, s12]], rtol=1e-6
    )


def test_item_knn_scores_sum_similarities_of_history_items() -> None:
    model = ItemKNN(neighbors=2, shrinkage=1.0).fit(Y)
    sim = model.similarity_.toarray()
    scores = model.score(np.array([1]))  # user 1 saw item 0 only
    np.testing.assert_allclose(scores, sim[[0]], rtol=1e-6)
    history = sp.csr_matrix(np.array([[1, 0, 1]] * 4, dtype=float))
    np.testing.assert_allclose(
        model.score(np.array([0]), history=history), sim[[0]] + sim[[2]], rtol=1e-6
    )
