"""The evaluation path gives a source's users table as ``user_content`` to the models
that read it (flows/bench/fitting.py, leaderboard.py, new_items.py)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import models
from flows.bench.leaderboard import run_leaderboard
from flows.bench.new_items import run_new_items_leaderboard
from models.base import BaseRecommender
from models.content import ContentScoring, ItemContent
from tasks.config import ContentConfig
from tasks.evaluation.catalogue import users_catalogue
from tests.tasks.test_new_items_split import catalogue, events


def users_table(n_users: int = 12) -> pd.DataFrame:
    """User u's side is the parity of the items they chose (events(): i % 2 == u % 2);
    zip and age tell nothing."""
    return pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(n_users)],
            "age": [20 + 3 * u for u in range(n_users)],
            "side": ["even" if u % 2 == 0 else "odd" for u in range(n_users)],
            "zip": [f"{10000 + 7 * u}" for u in range(n_users)],
        }
    )


class SideMatch(ContentScoring, BaseRecommender):
    """Ranks by the user's attribute alone: an item scores 1 when its genre is the one the
    training users of the same ``side`` chose most (history is not read at scoring)."""

    name: ClassVar[str] = "side_match"
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "taste_", "sides_")
    fit_inputs: ClassVar[tuple[str, ...]] = ("content", "user_content")
    required_inputs: ClassVar[tuple[str, ...]] = ("content", "user_content")
    inputs: ClassVar[frozenset[str]] = frozenset({"content"})

    def _fit(self, matrix: sp.csr_matrix, content: ItemContent, user_content: ItemContent):
        genres = np.asarray(content.values["genre"][: matrix.shape[1]])
        self.sides_ = np.asarray(user_content.values["side"][: matrix.shape[0]])
        self.taste_ = {}
        for side in np.unique(self.sides_):
            chosen = np.asarray(matrix[self.sides_ == side].sum(axis=0)).ravel()
            self.taste_[int(side)] = max(set(genres), key=lambda g: chosen[genres == g].sum())
        self.genres_ = genres

    def _tastes(self, users: np.ndarray) -> np.ndarray:
        return np.array([self.taste_[int(self.sides_[u])] for u in users])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return (self.genres_[None, :] == self._tastes(users)[:, None]).astype(np.float32)

    def score_content(self, users, history, content: ItemContent) -> np.ndarray:
        genres = content.values["genre"]
        return (genres[None, :] == self._tastes(np.asarray(users))[:, None]).astype(np.float32)


@pytest.fixture
def side_match(monkeypatch):
    monkeypatch.setitem(models.MODEL_CLASSES, "side_match", SideMatch)
    return "side_match"


def test_users_table_is_encoded_per_user_without_zip() -> None:
    users = users_catalogue(users_table(), ContentConfig())
    assert users is not None
    content = users.content(["u3", "u0", "nobody"])
    assert content.kinds == {"age": "numeric", "side": "category"}  # zip left out
    np.testing.assert_array_equal(content.masks["side"], [True, True, False])
    assert content.values["side"][0] != content.values["side"][1]  # odd, even
    assert content.values["age"][0] > content.values["age"][1]  # 29 and 20, z-scored
    assert content.values["age"][2] == 0.0
    assert users_catalogue(None, ContentConfig()) is None
    only_ids = pd.DataFrame({"user_id": ["a", "b"], "zip": ["1", "2"]})
    assert users_catalogue(only_ids, ContentConfig()) is None


def test_the_leaderboards_give_user_content_row_by_row(side_match) -> None:
    users = users_catalogue(users_table(), ContentConfig())
    frame = run_leaderboard(
        events(), None, "random", [side_match], k=3, catalogue=catalogue(), users=users
    )
    assert frame.loc[0, "test_ndcg@3"] == pytest.approx(1.0)
    new = run_new_items_leaderboard(
        events(), None, catalogue(), [side_match], k=3, seed=7, share=0.4, users=users
    ).set_index("model")
    assert new.loc[side_match, "test_ndcg@3"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs user_content"):
        run_leaderboard(events(), None, "random", [side_match], k=3, catalogue=catalogue())
