"""The relations input and the social models, on tiny graphs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import load_recommender, make_recommender
from models.inputs import check_social
from models.memory import DataShape
from models.social_gcn import propagation_matrix


def mutual(n_users: int, pairs: list[tuple[int, int]], weights: list[float] | None = None):
    rows = [a for a, b in pairs] + [b for a, b in pairs]
    cols = [b for a, b in pairs] + [a for a, b in pairs]
    values = (weights or [1.0] * len(pairs)) * 2
    return sp.csr_matrix((values, (rows, cols)), shape=(n_users, n_users))


# -- the input ------------------------------------------------------------------------
def test_check_social_returns_a_sorted_float32_csr() -> None:
    graph = sp.coo_matrix(([2.0, 1.0], ([0, 0], [2, 1])), shape=(3, 3))
    checked = check_social(graph, 3, "m")
    assert checked.dtype == np.float32 and sp.isspmatrix_csr(checked)
    assert checked.indices.tolist() == [1, 2] and checked.data.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (np.zeros((3, 3)), r"^m: social must be a scipy sparse users x users matrix, got ndarray"),
        (sp.csr_matrix((3, 4)), r"^m: social has shape \(3, 4\), expected \(3, 3\)"),
        (sp.csr_matrix((2, 2)), r"^m: social has shape \(2, 2\), expected \(3, 3\)"),
        (mutual(3, [(0, 1)], [-1.0]), r"^m: social holds negative weights \(min -1\)"),
        (mutual(3, [(0, 1)], [np.nan]), r"^m: social holds NaN or inf weights"),
        (sp.csr_matrix(np.diag([1.0, 0.0, 1.0])), r"^m: social has 2 self-loops"),
    ],
)
def test_check_social_says_what_is_wrong(graph, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_social(graph, 3, "m")


def test_fit_checks_the_relations_it_is_given() -> None:
    matrix = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match=r"^social_pop: social has shape \(2, 2\), expected"):
        make_recommender("social_pop").fit(matrix, social=sp.csr_matrix((2, 2)))


def test_models_that_do_not_read_the_relations_ignore_them() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=float))
    plain = make_recommender("item_knn").fit(matrix)
    given = make_recommender("item_knn").fit(matrix, social=mutual(3, [(0, 1)]))
    np.testing.assert_array_equal(plain.score(np.arange(3)), given.score(np.arange(3)))


# -- social_pop -----------------------------------------------------------------------
#: user 0 has friends 1 (weight 1) and 2 (weight 3); 3 has friend 1 and no history
INTERACTIONS = sp.csr_matrix(
    np.array([[0, 0, 0, 0, 1], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32)
)
FRIENDS = sp.csr_matrix(
    ([1.0, 3.0, 1.0, 3.0, 1.0, 1.0], ([0, 0, 1, 2, 3, 1], [1, 2, 0, 0, 1, 3])), shape=(4, 4)
)


ALONE = {"own_weight": 0.0, "popularity_weight": 0.0, "social_weight": 1.0}


def test_social_pop_scores_the_weighted_share_of_friends() -> None:
    model = make_recommender("social_pop", **ALONE, history_shrinkage=10.0)
    model.fit(INTERACTIONS, social=FRIENDS)
    # user 0: 1/4 of the weight on friend 1 (items 0, 1), 3/4 on friend 2 (items 1, 2);
    # the best item scores 1; one item of history: 10 / (10 + 1) of the social weight
    np.testing.assert_allclose(
        model.score(np.array([0]))[0], np.array([0.25, 1.0, 0.75, 0.0, 0.0]) * 10 / 11
    )
    # user 1 (two items): friends 0 (item 4) and 3 (nothing), weight 1 each
    np.testing.assert_allclose(
        model.score(np.array([1]))[0], np.array([0.0, 0.0, 0.0, 0.0, 1.0]) * 10 / 12
    )
    # user 3, no history: the whole weight
    np.testing.assert_allclose(model.score(np.array([3]))[0], [1.0, 1.0, 0.0, 0.0, 0.0])


def test_a_friend_who_shares_more_of_the_users_items_counts_more() -> None:
    interactions = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    friends = mutual(3, [(0, 1), (0, 2)])
    model = make_recommender("social_pop", **ALONE, history_shrinkage=1.0, overlap_weight=1.0)
    scores = model.fit(interactions, social=friends).score(np.array([0]))[0]
    # friend 1 shares item 0: weight 1 + 1 = 2; friend 2 shares nothing: 1. Shares 2/3,
    # 2/3, 1/3, scaled by the largest; one item of history: 1 / (1 + 1)
    np.testing.assert_allclose(scores, np.array([1.0, 1.0, 0.5]) / 2, rtol=1e-6)
    plain = make_recommender("social_pop", **ALONE, history_shrinkage=1.0, overlap_weight=0.0)
    np.testing.assert_allclose(
        plain.fit(interactions, social=friends).score(np.array([0]))[0], [0.5, 0.5, 0.5]
    )


def test_social_pop_adds_popularity_and_the_users_own_knn() -> None:
    model = make_recommender("social_pop", **{**ALONE, "popularity_weight": 0.5})
    model.fit(INTERACTIONS, social=FRIENDS)
    # item counts 1, 2, 1, 0, 1: scaled by the largest (2), times 0.5
    popularity = np.array([0.25, 0.5, 0.25, 0.0, 0.25])
    np.testing.assert_allclose(
        model.score(np.array([3]))[0], np.array([1.0, 1.0, 0.0, 0.0, 0.0]) + popularity
    )
    own = make_recommender(
        "social_pop",
        own="item_knn",
        social_weight=0.0,
        popularity_weight=0.0,
        item_knn={"shrinkage": 0.0},
    )
    own.fit(INTERACTIONS, social=FRIENDS)
    # user 2 saw items 1 and 2; item 0 co-occurs with item 1 only: scaled to 1 at most
    scores = own.score(np.array([2]))[0]
    assert scores.max() == pytest.approx(1.0) and scores[0] > 0 and scores[3] == 0


def test_a_friends_only_user_gets_their_friends_items() -> None:
    model = make_recommender("social_pop").fit(INTERACTIONS, social=FRIENDS)
    items, scores = model.recommend(np.array([3]), 2)
    assert sorted(items[0].tolist()) == [0, 1]  # friend 1's items
    assert np.all(scores[0] > model.params["popularity_weight"])  # the friends' part


def test_social_pop_round_trips_with_its_graph(tmp_path) -> None:
    model = make_recommender("social_pop").fit(INTERACTIONS, social=FRIENDS)
    model.save(tmp_path / "m")
    loaded = load_recommender(tmp_path / "m")
    assert (loaded.social_ != model.social_).nnz == 0
    np.testing.assert_array_equal(loaded.score(np.arange(4)), model.score(np.arange(4)))
    assert loaded.friend_counts(np.arange(4)).tolist() == [2, 2, 1, 1]


def test_social_memory_grows_with_the_relations() -> None:
    for name in ("social_pop", "social_gcn"):
        cls = make_recommender(name).__class__
        few = cls.memory_estimate(DataShape(5_000, 2_000, 100_000, relations=10_000))
        many = cls.memory_estimate(DataShape(5_000, 2_000, 100_000, relations=1_000_000))
        assert many.train_bytes > few.train_bytes and many.score_bytes > few.score_bytes


# -- social_gcn -----------------------------------------------------------------------
def test_propagation_matrix_is_the_normalised_joined_graph() -> None:
    interactions = sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=np.float32))
    follows = sp.csr_matrix(([1.0], ([1], [0])), shape=(2, 2))  # user 1 follows user 0
    a = propagation_matrix(interactions, follows, social_weight=2.0).toarray()
    # nodes: users 0, 1, items 0, 1; user 0's degree 1 + 2, user 1's 2, item 0's 1
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = 2 / np.sqrt(3 * 2)
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(3 * 1)
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    assert np.allclose(propagation_matrix(interactions, follows, 0.0).toarray()[:2, :2], 0)


def planted(n_per_side: int = 20, n_items: int = 20, seed: int = 0):
    """Two communities: users of side s (even/odd) see items of side s; friends are
    within a side. The last user of side 0 has friends and no history."""
    rng = np.random.default_rng(seed)
    n_users = 2 * n_per_side
    rows, cols = [], []
    for u in range(n_users - 2):  # the last two users (one per side) have no history
        for i in rng.choice(np.arange(u % 2, n_items, 2), size=4, replace=False):
            rows.append(u)
            cols.append(i)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    pairs = [(u, (u + 2 * step) % n_users) for u in range(n_users) for step in (1, 2, 3)]
    return matrix, mutual(n_users, pairs).maximum(0).sign()


GCN = {"embedding_dim": 16, "n_layers": 2, "epochs": 30, "batch_size": 32, "learning_rate": 3e-2}


def test_social_gcn_ranks_a_friends_only_users_community_first(tmp_path) -> None:
    matrix, friends = planted()
    model = make_recommender("social_gcn", **GCN).fit(matrix, social=friends)
    cold = np.array([matrix.shape[0] - 2, matrix.shape[0] - 1])  # sides 0 and 1
    assert np.diff(matrix[cold].indptr).tolist() == [0, 0]
    items, _ = model.recommend(cold, 5)
    # random ranking: half of the 5 on the user's side
    assert ((items % 2) == (cold[:, None] % 2)).mean() >= 0.9
    model.save(tmp_path / "m")
    loaded = load_recommender(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(cold), model.score(cold))
    assert (loaded.social_ != model.social_).nnz == 0


def test_social_gcn_uses_the_relations() -> None:
    """Without the friendships (weight 0) the friends-only user is placed at random; with
    them, on the friends' side."""
    matrix, friends = planted()
    cold = np.array([matrix.shape[0] - 2])
    alone = make_recommender("social_gcn", **GCN, social_weight=0.0)
    alone.fit(matrix, social=friends)
    with_friends = make_recommender("social_gcn", **GCN).fit(matrix, social=friends)
    side = np.arange(matrix.shape[1]) % 2 == 0

    def margin(model) -> float:
        scores = model.score(cold)[0]
        return float(scores[side].mean() - scores[~side].mean())

    assert margin(with_friends) > 0 and margin(with_friends) > 3 * abs(margin(alone))
