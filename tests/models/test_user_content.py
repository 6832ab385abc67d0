"""User attributes on the user side of the two-tower family (models/user_content.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import ContentTower, TwoTower, load_recommender
from models.content import ItemContent
from models.user_content import user_arrays, user_rows

N_ITEMS = 8  # items 0..3 are liked by group A, 4..7 by group B
N_TRAIN = 48  # users with one interaction each (their history minus it: empty)
N_COLD = 4  # users without any interaction: 2 of group A, then 2 of group B
N_USERS = N_TRAIN + N_COLD
SMALL = {
    "embedding_dim": 8,
    "hidden_dims": [16],
    "content_dim": 8,
    "epochs": 40,
    "batch_size": 16,
    "learning_rate": 3e-2,
    "logq_correction": False,
}


def groups() -> np.ndarray:
    """Each user's group: 0 (A) or 1 (B); the cold users are A, A, B, B."""
    return np.r_[np.arange(N_TRAIN) % 2, [0, 0, 1, 1]]


def interactions() -> sp.csr_matrix:
    """Training user u chose one item of their group (u % 2); the cold users chose none.
    Every history minus the item it predicts is empty: only the group tells users apart."""
    rows = np.arange(N_TRAIN)
    cols = (rows % 2) * 4 + (rows // 2) % 4
    data = np.ones(N_TRAIN, dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(N_USERS, N_ITEMS))


def user_content(n: int = N_USERS) -> ItemContent:
    """The group as a category (ids 2 and 3) and an age that tells nothing."""
    rng = np.random.default_rng(0)
    group = groups()[:n]
    return ItemContent(
        {"gender": "category", "age": "numeric"},
        {
            "gender": (group + 2).astype(np.int32),
            "age": rng.normal(size=n).astype(np.float32),
        },
        {"gender": np.ones(n, dtype=bool), "age": np.ones(n, dtype=bool)},
        {"gender": 4},
    )


def item_content() -> ItemContent:
    """Each item's group as a category, for the content tower."""
    group = (np.arange(N_ITEMS) >= 4).astype(np.int32)
    return ItemContent(
        {"kind": "category"},
        {"kind": group + 2},
        {"kind": np.ones(N_ITEMS, dtype=bool)},
        {"kind": 4},
    )


def group_precision(model: TwoTower, users: np.ndarray) -> float:
    """Share of each user's top 4 items that are of their group."""
    scores = model.score(users)
    top = np.argsort(-scores, axis=1)[:, :4]
    return float(((top >= 4) == groups()[users][:, None]).mean())


@pytest.fixture(scope="module")
def with_attributes() -> TwoTower:
    return TwoTower(**SMALL).fit(interactions(), user_content=user_content())


@pytest.mark.parametrize("name", ["two_tower", "content_tower"])
def test_users_without_history_are_ranked_by_their_attributes(name, with_attributes) -> None:
    cold = np.arange(N_TRAIN, N_USERS)
    if name == "two_tower":
        model = with_attributes
    else:
        model = ContentTower(**SMALL).fit(
            interactions(), content=item_content(), user_content=user_content()
        )
    assert group_precision(model, cold) == 1.0
    assert group_precision(model, np.arange(N_TRAIN)) == 1.0


def test_without_attributes_users_without_history_look_alike() -> None:
    """The same data without user content: every cold user gets the same ranking."""
    model = TwoTower(**SMALL).fit(interactions())
    scores = model.score(np.arange(N_TRAIN, N_USERS))
    np.testing.assert_allclose(scores, np.repeat(scores[:1], N_COLD, axis=0), rtol=1e-6)
    assert group_precision(model, np.arange(N_TRAIN, N_USERS)) == 0.5


def test_without_user_content_the_network_is_unchanged() -> None:
    """use_user_content=False with user content fits exactly as no user content at all;
    the user tower then reads the history alone."""
    params = {**SMALL, "epochs": 3}
    plain = TwoTower(**params).fit(interactions())
    ignoring = TwoTower(use_user_content=False, **params)
    ignoring.fit(interactions(), user_content=user_content())
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(plain.score(users), ignoring.score(users))
    assert not ignoring.user_content_.kinds
    tower = plain.network_.get_layer("user_tower")
    assert [t.name for t in tower.inputs] == ["history"]
    names = {layer.name for layer in tower.layers}
    assert "user_content_encoder" not in names and "bag_and_attributes" not in names


def test_user_content_round_trips_exactly(with_attributes, tmp_path) -> None:
    model = with_attributes
    assert model.user_content_.names == ["gender", "age"]
    directory = model.save(tmp_path / "m")
    assert (directory / "user_content" / "content.json").is_file()
    loaded = load_recommender(directory)
    assert isinstance(loaded, TwoTower)
    for name in model.user_content_.names:
        np.testing.assert_array_equal(
            loaded.user_content_.values[name], model.user_content_.values[name]
        )
        np.testing.assert_array_equal(
            loaded.user_content_.masks[name], model.user_content_.masks[name]
        )
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    history = interactions()[users]
    np.testing.assert_array_equal(
        model.query_vectors(users, history), loaded.query_vectors(users, history)
    )


def test_fewer_user_content_rows_than_users_is_refused() -> None:
    with pytest.raises(ValueError, match=r"user_content has 10 rows, expected at least 52"):
        TwoTower(**SMALL).fit(interactions(), user_content=user_content(10))


def test_a_user_beyond_the_kept_rows_gets_no_attributes() -> None:
    content = user_content(3)
    rows = user_rows(content, np.array([2, 3, 7, 0]))
    np.testing.assert_array_equal(rows.masks["gender"], [True, False, False, True])
    np.testing.assert_array_equal(rows.values["gender"], [2, 0, 0, 2])
    arrays = user_arrays(content, np.array([1, 5]))
    assert set(arrays) == {
        "user_content_gender",
        "user_content_gender_mask",
        "user_content_age",
        "user_content_age_mask",
    }
    np.testing.assert_array_equal(arrays["user_content_age_mask"], [1.0, 0.0])
    assert arrays["user_content_age"][1] == 0.0
