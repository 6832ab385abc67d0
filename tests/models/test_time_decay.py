"""Time-aware baselines on tiny data with known answers: recent popularity, and EASE and
item-kNN with each training interaction weighted by its age."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import make_recommender
from models.ages import ages_from_events, check_ages, decay


def interactions(rows: list[tuple[int, int, float]], shape: tuple[int, int]):
    """``(matrix, ages)`` of (user, item, day) events: the day counted from 0; ages are
    measured from the newest day."""
    users, items, days = (np.array(column) for column in zip(*rows, strict=True))
    matrix = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=shape)
    stamps = np.datetime64("2026-01-01", "ns") + (days * 86_400e9).astype("timedelta64[ns]")
    return matrix, ages_from_events(users, items, stamps, shape)


def test_ages_are_days_from_the_newest_event_and_keep_each_pairs_newest() -> None:
    _, ages = interactions([(0, 0, 1.0), (0, 0, 8.0), (1, 1, 0.0), (1, 0, 10.0)], (2, 2))
    assert ages.toarray().tolist() == [[2.0, 0.0], [0.0, 10.0]]
    assert ages.nnz == 3  # the newest pair is stored with age 0


def test_ages_are_laid_on_the_matrix_pairs_and_checked() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    given = sp.csr_matrix(([5.0, 2.0, 9.0], ([0, 1, 1], [1, 2, 0])), shape=(2, 3))
    laid = check_ages(given, matrix, "m")
    assert laid.indptr.tolist() == matrix.indptr.tolist()
    assert laid.indices.tolist() == matrix.indices.tolist()
    assert laid.data.tolist() == [0.0, 5.0, 0.0, 2.0]  # absent: 0; (1, 0) not a pair: dropped
    with pytest.raises(ValueError, match=r"^m: ages has shape \(2, 2\), expected"):
        check_ages(sp.csr_matrix((2, 2)), matrix, "m")
    with pytest.raises(ValueError, match=r"^m: ages must be finite and >= 0"):
        check_ages(sp.csr_matrix(([-1.0], ([0], [0])), shape=(2, 3)), matrix, "m")


def test_decay_halves_every_half_life() -> None:
    np.testing.assert_allclose(decay(np.array([0.0, 7.0, 14.0]), 7.0), [1.0, 0.5, 0.25])
    assert decay(np.array([3.0]), None).tolist() == [1.0]


# Item 0 is the all-time favourite: five users a hundred days ago. Item 1: three users in
# the last two days. Item 2: one user, sixty days ago. User 9 has seen nothing.
POPULAR = [(u, 0, 0.0) for u in range(5)] + [(u, 1, 98.0 + u % 2) for u in range(5, 8)]
POPULAR += [(8, 2, 40.0), (8, 3, 100.0)]


def test_recent_popularity_ranks_the_recently_popular_item_above_the_all_time_one() -> None:
    matrix, ages = interactions(POPULAR, (10, 4))
    plain = make_recommender("popularity").fit(matrix).recommend(np.array([9]), 2)[0]
    assert plain[0].tolist() == [0, 1]
    for settings in (
        {"half_life_days": 7.0},
        {"window_days": 30.0, "half_life_days": None},
        {"window_days": 7.0, "half_life_days": 30.0},
    ):
        model = make_recommender("recent_popularity", **settings).fit(matrix, ages=ages)
        assert model.recommend(np.array([9]), 2)[0][0].tolist()[0] == 1, settings


def test_recent_popularity_known_sums() -> None:
    matrix, ages = interactions(POPULAR, (10, 4))
    model = make_recommender("recent_popularity", window_days=70.0, half_life_days=50.0)
    counts = model.fit(matrix, ages=ages).item_counts_
    # the newest event is day 100 (item 3). Item 0: age 100, outside the window; item 1:
    # ages 1, 2, 1; item 2: age 60, inside the window, decayed; item 3: age 0
    expected = [0.0, 2 * 0.5 ** (1 / 50) + 0.5 ** (2 / 50), 0.5 ** (60 / 50), 1.0]
    np.testing.assert_allclose(counts, expected, rtol=1e-6)


def test_recent_popularity_without_decay_or_ages_is_popularity() -> None:
    matrix, ages = interactions(POPULAR, (10, 4))
    counts = make_recommender("popularity").fit(matrix).item_counts_
    everything = make_recommender("recent_popularity", window_days=None, half_life_days=None)
    np.testing.assert_array_equal(everything.fit(matrix, ages=ages).item_counts_, counts)
    no_time = make_recommender("recent_popularity", window_days=7.0, half_life_days=7.0)
    np.testing.assert_array_equal(no_time.fit(matrix).item_counts_, counts)


# Users 0-5 saw items 0 and 1 together a year ago; users 6-8 saw items 0 and 2 together
# this week; user 9 has item 0 only.
DRIFT = [(u, i, 0.0) for u in range(6) for i in (0, 1)]
DRIFT += [(u, i, 360.0 + u) for u in range(6, 9) for i in (0, 2)] + [(9, 0, 368.0), (0, 3, 0.0)]


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("ease", {"l2": 1.0, "form": "dense"}),
        ("ease", {"l2": 1.0, "form": "sparse", "neighbors": 3}),
        ("item_knn", {"neighbors": 3, "shrinkage": 0.0}),
    ],
)
def test_decay_moves_a_users_neighbours_to_the_recent_ones(name: str, settings: dict) -> None:
    matrix, ages = interactions(DRIFT, (10, 4))
    plain = make_recommender(name, **settings).fit(matrix, ages=ages)
    assert plain.recommend(np.array([9]), 1)[0][0, 0] == 1  # the old, larger co-occurrence
    decayed = make_recommender(name, half_life_days=30.0, **settings).fit(matrix, ages=ages)
    assert decayed.recommend(np.array([9]), 1)[0][0, 0] == 2  # the recent one


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("ease", {"l2": 1.0, "form": "dense"}),
        ("ease", {"l2": 1.0, "form": "sparse", "neighbors": 3}),
        ("item_knn", {"neighbors": 3, "shrinkage": 1.0}),
    ],
)
def test_a_huge_half_life_or_ages_all_zero_fit_the_plain_model(name: str, settings: dict) -> None:
    matrix, ages = interactions(DRIFT, (10, 4))
    users = np.arange(10)
    plain = make_recommender(name, **settings).fit(matrix).score(users)
    huge = make_recommender(name, half_life_days=1e9, **settings).fit(matrix, ages=ages)
    np.testing.assert_allclose(huge.score(users), plain, rtol=1e-5, atol=1e-6)
    no_time = sp.csr_matrix((np.zeros(matrix.nnz), matrix.indices, matrix.indptr), matrix.shape)
    zero = make_recommender(name, half_life_days=7.0, **settings).fit(matrix, ages=no_time)
    np.testing.assert_allclose(zero.score(users), plain, rtol=1e-6, atol=1e-7)


def test_a_decayed_model_saves_and_loads(tmp_path) -> None:
    from models import load_recommender

    matrix, ages = interactions(DRIFT, (10, 4))
    model = make_recommender("ease", l2=1.0, half_life_days=30.0).fit(matrix, ages=ages)
    loaded = load_recommender(model.save(tmp_path / "m"))
    assert loaded.params["half_life_days"] == 30.0
    np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))


def test_recent_popularity_chooses_its_half_life_on_validation() -> None:
    from models import RecentPopularity

    # item 0: 20 users, 40 days ago; item 1: 3 users, a day ago; users 23-25 saw item 2
    rows = [*range(20), 20, 21, 22, 23, 24, 25]
    cols = [0] * 20 + [1] * 3 + [2] * 3
    age = [40.0] * 20 + [1.0] * 3 + [5.0] * 3
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(26, 3))
    ages = sp.csr_matrix((np.array(age, np.float32), (rows, cols)), shape=(26, 3))
    # the validation users (23-25) chose item 1 next: what is popular lately
    target = sp.csr_matrix((np.ones(3, np.float32), ([0, 1, 2], [1, 1, 1])), shape=(3, 3))
    model = RecentPopularity(half_life_days=30.0, half_lives=[3.5, 90.0], val_k=1)
    model.fit(matrix, ages=ages, validation=(np.array([23, 24, 25]), target))
    assert model.half_life_ == 3.5
    assert model.validation_ndcg_ == {"30.0": 0.0, "3.5": 1.0, "90.0": 0.0}
    assert model.recommend(np.array([0]), 1)[0].tolist() == [[1]]
    assert model.refit_params()["half_life_days"] == 3.5
    assert model.refit_params()["half_lives"] == []
    # without a target, or without candidates, the half-life as set
    assert RecentPopularity(half_life_days=30.0).fit(matrix, ages=ages).half_life_ == 30.0
