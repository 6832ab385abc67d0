import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.metrics import evaluate_rankings, ndcg_at_k, recall_at_k
from models.ranking import top_k


def relevant(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_recall_hand_computed() -> None:
    rec = np.array([[1, 2, 3], [4, 5, 6]])
    rel = relevant([[2, 9], [7]])
    # user 0: 1 hit of 2 relevant; user 1: 0 of 1 -> mean(0.5, 0)
    assert recall_at_k(rec, rel, 3) == pytest.approx(0.25)


def test_ndcg_hand_computed() -> None:
    rec = np.array([[1, 2, 3], [7, 5, 6]])
    rel = relevant([[2, 9], [7]])
    user0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    user1 = 1.0
    assert ndcg_at_k(rec, rel, 3) == pytest.approx((user0 + user1) / 2)


def test_users_without_relevant_items_are_ignored_and_padding_never_hits() -> None:
    rec = np.array([[-1, -1], [3, -1]])
    rel = relevant([[], [3]])
    out = evaluate_rankings(rec, rel, 2)
    assert out["recall@2"] == 1.0 and out["ndcg@2"] == 1.0 and out["n_users"] == 1


def test_top_k_excludes_and_orders() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]])
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    items, top = top_k(scores, 2, exclude)
    assert items.tolist() == [[3, 2], [0, 3]]
    np.testing.assert_allclose(top, [[0.7, 0.5], [1.0, 0.3]])
    assert scores[0, 1] == 0.9  # input untouched
