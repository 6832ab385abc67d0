"""The blend of a personal model and recent popularity: its ends equal its parts, the
scaling has known answers, and validation picks the weight a constructed case favours."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import EASE, Blend, ItemKNN, RecentPopularity, load_recommender
from models.blend import scaled_by_best_candidate
from models.metrics import ndcg_at_k


def random_data(seed: int = 3) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """40 users x 15 items, about a third of the cells, with ages of 0-120 days."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((40, 15)) < 0.35).astype(np.float32)
    dense[:, 0] = 1.0  # every user has history
    matrix = sp.csr_matrix(dense)
    ages = matrix.copy()
    ages.data = rng.uniform(0.0, 120.0, size=matrix.nnz).astype(np.float32)
    return matrix, ages


def trend_case() -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Items 0 and 1 go together, long ago (users 0-9 have both, 200 days old); item 5 is
    today's hit (users 10-19 have it alone, age 0); users 25-29 had items 2 and 3 long ago.
    The validation users 20-24 had item 0 long ago: the personal model offers item 1,
    recent popularity item 5."""
    rows, cols, age = [], [], []
    for u in range(10):
        rows += [u, u]
        cols += [0, 1]
        age += [200.0, 200.0]
    for u in range(10, 20):
        rows.append(u)
        cols.append(5)
        age.append(0.0)
    for u in range(20, 25):
        rows.append(u)
        cols.append(0)
        age.append(200.0)
    for u in range(25, 30):
        rows += [u, u]
        cols += [2, 3]
        age += [200.0, 200.0]
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(30, 6))
    ages = sp.csr_matrix((age, (rows, cols)), shape=(30, 6))  # a pair it lacks: age 0
    return matrix, ages, np.arange(20, 25)


def target(users: np.ndarray, item: int, n_items: int = 6) -> sp.csr_matrix:
    """Each of ``users`` holds out ``item``."""
    n = len(users)
    return sp.csr_matrix((np.ones(n), (np.arange(n), np.full(n, item))), shape=(n, n_items))


def test_scaling_divides_by_the_best_candidate_known_answers() -> None:
    scores = np.array(
        [[4.0, 2.0, -1.0, 8.0], [-1.0, 2.0, -3.0, -2.0], [-1.0, -2.0, -3.0, -4.0]],
        dtype=np.float32,
    )
    history = sp.csr_matrix(np.array([[0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]]))
    scaled = scaled_by_best_candidate(scores.copy(), history)
    np.testing.assert_allclose(scaled[0], [1.0, 0.5, -0.25, 2.0])  # the seen 8 is not the best
    np.testing.assert_allclose(scaled[1], [-0.5, 1.0, -1.5, -1.0])  # no positive candidate
    np.testing.assert_allclose(scaled[2], scores[2])  # nowhere positive: as it is


def test_weight_zero_ranks_as_the_personal_part() -> None:
    matrix, ages = random_data()
    users = np.arange(40)
    for personal, part in (
        ("ease", EASE(l2=5.0, half_life_days=30.0)),
        ("item_knn", ItemKNN(neighbors=5, shrinkage=1.0)),
    ):
        blend = Blend(
            personal=personal,
            ease={"l2": 5.0, "half_life_days": 30.0},
            item_knn={"neighbors": 5, "shrinkage": 1.0},
            popularity_weight=0.0,
        ).fit(matrix, ages=ages)
        part.fit(matrix, ages=ages)
        np.testing.assert_array_equal(
            blend.recommend(users, 5)[0], part.recommend(users, 5)[0], err_msg=personal
        )


def test_weight_one_ranks_as_recent_popularity() -> None:
    matrix, ages = random_data()
    users = np.arange(40)
    blend = Blend(window_days=60.0, half_life_days=10.0, popularity_weight=1.0)
    blend.fit(matrix, ages=ages)
    recent = RecentPopularity(window_days=60.0, half_life_days=10.0).fit(matrix, ages=ages)
    np.testing.assert_array_equal(blend.recommend(users, 5)[0], recent.recommend(users, 5)[0])
    assert blend.popularity_.max() == pytest.approx(1.0)


def test_a_user_without_history_gets_recent_popularity() -> None:
    matrix, ages = random_data()
    blend = Blend(popularity_weight=0.2).fit(matrix, ages=ages)
    recent = RecentPopularity().fit(matrix, ages=ages)
    empty = sp.csr_matrix((40, 15), dtype=np.float32)
    np.testing.assert_array_equal(
        blend.recommend(np.array([0]), 5, history=empty)[0],
        recent.recommend(np.array([0]), 5, history=empty)[0],
    )


def test_without_validation_the_configured_weight_is_used() -> None:
    matrix, ages, _ = trend_case()
    blend = Blend(popularity_weight=0.35, half_life_days=7.0).fit(matrix, ages=ages)
    assert blend.weight_ == 0.35 and blend.validation_ndcg_ == {}


def test_validation_picks_popularity_when_the_users_follow_the_trend() -> None:
    matrix, ages, users = trend_case()
    blend = Blend(ease={"l2": 1.0}, half_life_days=7.0, popularity_weight=0.0)
    blend.fit(matrix, ages=ages, validation=(users, target(users, 5)))
    assert set(blend.validation_ndcg_) == {"0.0", "0.1", "0.2", "0.35", "0.5", "0.75"}
    assert blend.validation_ndcg_["0.0"] < 1.0  # the personal part offers item 1 first
    assert blend.weight_ > 0 and blend.validation_ndcg_[str(blend.weight_)] == 1.0
    # the smallest weight that puts the hit first: every smaller one scores less
    smaller = [v for w, v in blend.validation_ndcg_.items() if float(w) < blend.weight_]
    assert smaller and max(smaller) < 1.0
    assert blend.recommend(users, 1)[0].ravel().tolist() == [5] * 5


def test_validation_picks_the_personal_part_when_the_users_follow_their_history() -> None:
    matrix, ages, users = trend_case()
    blend = Blend(ease={"l2": 1.0}, half_life_days=7.0, popularity_weight=0.75)
    blend.fit(matrix, ages=ages, validation=(users, target(users, 1)))
    assert blend.weight_ == 0.0
    assert blend.validation_ndcg_["0.0"] == 1.0 > blend.validation_ndcg_["0.75"]
    assert blend.recommend(users, 1)[0].ravel().tolist() == [1] * 5


def test_refit_params_fix_the_chosen_weight() -> None:
    matrix, ages, users = trend_case()
    blend = Blend(ease={"l2": 1.0}, half_life_days=7.0)
    blend.fit(matrix, ages=ages, validation=(users, target(users, 1)))
    refit = Blend(**blend.refit_params()).fit(matrix, ages=ages)
    assert refit.weight_ == blend.weight_ == 0.0 and refit.params["weights"] == [0.0]


def test_save_load_round_trip_keeps_the_parts_and_the_weight(tmp_path) -> None:
    matrix, ages, users = trend_case()
    blend = Blend(personal="item_knn", item_knn={"neighbors": 3}, half_life_days=7.0)
    blend.fit(matrix, ages=ages, validation=(users, target(users, 5)))
    loaded = load_recommender(blend.save(tmp_path / "blend"))
    assert isinstance(loaded, Blend) and isinstance(loaded.personal_, ItemKNN)
    assert loaded.weight_ == blend.weight_ > 0
    assert loaded.validation_ndcg_ == blend.validation_ndcg_
    everyone = np.arange(30)
    a, b = blend.recommend(everyone, 3), loaded.recommend(everyone, 3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_a_sparse_personal_part_ranks_over_its_items_and_the_popular_ones() -> None:
    # 300 users x 400 items, about 8 a user; sparse EASE and item-kNN score few items
    # per user, and
    # popular_candidates = 20 keeps the columns well short of the catalog
    rng = np.random.default_rng(5)
    appeal = 1.0 / np.arange(1, 401) ** 0.8
    dense = (rng.random((300, 400)) < 0.02 * appeal / appeal.mean()).astype(np.float32)
    dense[:, 0] = 1.0
    matrix = sp.csr_matrix(dense)
    ages = matrix.copy()
    ages.data = rng.uniform(0.0, 90.0, size=matrix.nnz).astype(np.float32)
    users = np.arange(300)
    target = (rng.random((100, 400)) < 0.02) & (dense[:100] == 0)
    validation = (users[:100], sp.csr_matrix(target.astype(np.float32)))
    for personal in ("ease", "item_knn"):
        blend = Blend(
            personal=personal,
            ease={"l2": 20.0, "form": "sparse", "neighbors": 8},
            item_knn={"neighbors": 4},
            popularity_weight=0.3,
            weights=[0.3],
            popular_candidates=20,
        ).fit(matrix, ages=ages, validation=validation)
        assert not blend.dense_scores
        # one user at a time: the entries are that user's items and the popular ones
        widths = [blend.score_sparse(users[[u]]).nnz for u in users]
        assert max(widths) < 300, (personal, max(widths))
        got = np.vstack([blend.recommend(users[[u]], 10)[0] for u in users])
        exact = np.argsort(-np.where(dense > 0, -np.inf, blend.score(users)), axis=1)[:, :10]
        same = np.mean([set(a) == set(b) for a, b in zip(got, exact, strict=True)])
        assert same == 1.0, (personal, same)
        # validation ranked its users over the same entries: the NDCG of these lists
        ndcg = ndcg_at_k(got[:100], validation[1], 10)
        assert blend.validation_ndcg_ == {"0.3": pytest.approx(ndcg)}


def test_the_scalable_form_is_the_personal_parts() -> None:
    from models.memory import DataShape

    wide = DataShape(users=50_000, items=60_000, interactions=1_000_000)
    scaled = Blend.scalable_params(wide, ease={"form": "dense"}, popularity_weight=0.1)
    assert scaled is not None and scaled["ease"]["form"] == "sparse"
    assert scaled["popularity_weight"] == 0.1
    assert Blend.memory_estimate(wide, **scaled).peak_bytes < 4 * 2**30
    assert Blend.memory_estimate(wide, ease={"form": "dense"}).peak_bytes > 40 * 2**30
    assert Blend.scalable_params(wide) is None  # auto: sparse at this width already
    assert Blend.scalable_params(wide, personal="item_knn") is None  # no other form
