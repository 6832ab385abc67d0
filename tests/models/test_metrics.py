import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.metrics import (
    average_popularity_at_k,
    catalog_coverage,
    evaluate_rankings,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty_at_k,
    recall_at_k,
)
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


# Three users, k=3: user 0 finds item 2 at rank 2, user 1 finds nothing, user 2 finds
# item 7 at rank 1 and item 9 at rank 3.
REC = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
REL = [[2, 9], [7], [7, 9]]


def test_hit_rate_hand_computed() -> None:
    assert hit_rate_at_k(REC, relevant(REL), 3) == pytest.approx(2 / 3)
    assert hit_rate_at_k(REC, relevant(REL), 1) == pytest.approx(1 / 3)


def test_mrr_hand_computed() -> None:
    assert mrr_at_k(REC, relevant(REL), 3) == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_map_hand_computed() -> None:
    # user 0: precision@2 = 1/2 over min(2, 3) relevant -> 1/4
    # user 2: (precision@1 + precision@3) / 2 = (1 + 2/3) / 2 = 5/6
    assert map_at_k(REC, relevant(REL), 3) == pytest.approx((1 / 4 + 0 + 5 / 6) / 3)
    # at k=1 the denominator is min(|relevant|, 1) = 1: user 2 -> 1
    assert map_at_k(REC, relevant(REL), 1) == pytest.approx(1 / 3)


def test_catalog_coverage_counts_distinct_items_and_ignores_padding() -> None:
    assert catalog_coverage(REC, 2, n_items=10) == pytest.approx(6 / 10)
    assert catalog_coverage(np.array([[1, -1], [1, 2]]), 2, n_items=4) == pytest.approx(2 / 4)


def test_novelty_and_average_popularity_hand_computed() -> None:
    item_users = np.array([4, 2, 1, 0])  # of 4 training users
    rec = np.array([[0, 1], [2, 3]])
    # self-information: item 0 -> 0, item 1 -> 1, item 2 -> 2, item 3 (unseen, counted as 1) -> 2
    assert novelty_at_k(rec, 2, item_users, 4) == pytest.approx(((0 + 1) / 2 + (2 + 2) / 2) / 2)
    assert average_popularity_at_k(rec, 2, item_users) == pytest.approx(((4 + 2) / 2 + 1 / 2) / 2)
    assert novelty_at_k(np.array([[1, -1]]), 2, item_users, 4) == pytest.approx(1.0)


def test_evaluate_rankings_reports_every_metric() -> None:
    train = sp.csr_matrix(np.eye(3, 10))  # items 0, 1, 2 seen once each, by 3 users
    out = evaluate_rankings(REC, relevant(REL), 3, train=train)
    assert set(out) == {
        "recall@3",
        "ndcg@3",
        "hit@3",
        "mrr@3",
        "map@3",
        "coverage@3",
        "novelty@3",
        "avg_popularity@3",
        "n_users",
    }
    assert out["recall@3"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert out["mrr@3"] == pytest.approx(0.5)
    assert out["coverage@3"] == pytest.approx(9 / 10)
    # items 1, 2 seen by 1 of 3 users, the rest by none (counted as 1): all log2(3)
    assert out["novelty@3"] == pytest.approx(np.log2(3))
    assert out["avg_popularity@3"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert "novelty@3" not in evaluate_rankings(REC, relevant(REL), 3)


def test_top_k_breaks_ties_by_item_index_and_can_work_in_place() -> None:
    scores = np.array([[0.5, 1.0, 1.0, 1.0, 1.0, 0.2]], dtype=np.float32)
    items, _ = top_k(scores, 2)
    assert items.tolist() == [[1, 2]]
    items, _ = top_k(
        scores, 3, exclude=sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0]])), overwrite=True
    )
    assert items.tolist() == [[2, 3, 4]]
    assert scores[0, 1] == -np.inf  # overwritten in place as asked
    frozen = np.broadcast_to(np.float32(1.0), (1, 4))
    assert top_k(frozen, 2, overwrite=True)[0].tolist() == [[0, 1]]  # read-only input: copied


def test_top_k_ties_in_many_rows_match_a_stable_sort() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(300, 40)).astype(np.float32)  # ties everywhere
    scores[::7, 5:] = -np.inf  # rows with fewer finite cells than k
    items, values = top_k(scores, 8)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :8]
    expected = np.take_along_axis(scores, order, axis=1)
    assert np.array_equal(values, expected)
    finite = np.isfinite(expected)
    assert np.array_equal(items[finite], order[finite])
    assert (items[~finite] == -1).all()


def test_top_k_narrowed_by_group_maxima_equals_partitioning_whole_rows() -> None:
    from models.ranking import GROUP, _candidates, _partitioned

    rng = np.random.default_rng(8)
    for trial in range(40):
        n, k = int(rng.integers(40 * GROUP, 90 * GROUP)), int(rng.integers(1, 12))
        if trial % 3 == 0:
            scores = rng.standard_normal((30, n)).astype(np.float32)
        else:  # ties everywhere, some rows mostly excluded, a short last group
            scores = rng.integers(0, 4, size=(30, n)).astype(np.float32)
            scores[::4, : n - 3 * GROUP] = -np.inf
        scores[0, : n - 2] = -np.inf  # fewer eligible items than k
        assert np.array_equal(_candidates(scores, k), _partitioned(scores, k)), trial
