"""Social recommenders' shared parts, and the friends' items baseline (``social_pop``).

A social model reads the relations between users (``fit(..., social=S)``, see
:mod:`models.inputs`): ``S`` is users x users, row ``u`` holding the users ``u`` follows
or is friends with and their weights. It keeps the graph it was fitted with as
``social_`` (saved and loaded with the model), so scoring needs only the usual history
rows: a user with friends and no history is scored from the friends.

:class:`SocialPop` ("what your friends liked", the strong simple baseline):

    score(u, i) = social_weight * c / (c + n_u) * friends(u, i) / max_j friends(u, j)
                + own_weight * own(u, i) / max_j own(u, j)
                + popularity_weight * pop_i / max_j pop_j

    friends(u, i) = sum_f v(u, f) [f interacted with i] / sum_f v(u, f),
    v(u, f) = w(u, f) * (1 + overlap_weight * |items u and f share|)

The first part is the weighted share of u's friends who interacted with i, a friend
who shares more of u's items counting more, scaled so the user's best item scores 1;
it weighs more the shorter u's history (``n_u`` items; ``c`` is
``history_shrinkage``): a user without history is ranked by the friends first. The
second is a model of u's own history, item-kNN (:mod:`models.item_knn`) or EASE
(:mod:`models.ease`), ``own``, scaled alike; the
third, the item's training popularity, breaks ties and ranks something for a user
without history or friends. Every part is a sparse product or a broadcast: no
training. On Gowalla (``recpipe bench social``, validation users) the overlap and the
shrinkage each add to the plain share of friends, above all for the cold users; the
defaults (EASE as the own part, ``social_weight`` 0.4) are the setting chosen there on
validation among item-kNN and EASE with weights 0.2, 0.4 and 0.8 (validation NDCG@10
0.0521 with item-kNN; 0.0612, 0.0626, 0.0601 with EASE).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import BaseRecommender, ModelSettings
from models.ease import EASE, EASESettings
from models.item_knn import ItemKNN, ItemKNNSettings
from models.memory import FLOAT32, DataShape, MemoryEstimate, dense_bytes, score_users, summed


def row_normalized(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with each non-empty row divided by its sum (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


def scaled_rows(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its largest value when that is positive (in place)."""
    top = scores.max(axis=1, initial=0.0, keepdims=True)
    np.divide(scores, top, out=scores, where=top > 0)
    return scores


def friends_share(
    relations: sp.csr_matrix, binary: sp.csr_matrix, history: sp.csr_matrix, overlap: float
) -> np.ndarray:
    """Dense (rows x items): the weighted share of each row's friends who interacted
    with each item. ``relations`` holds the rows' relations (rows x users), ``binary``
    every user's binary items, ``history`` the rows' own items; a friend's weight is
    multiplied by 1 + ``overlap`` x the items they share with the row's history."""
    weights = sp.csr_matrix(relations, dtype=np.float32)
    if overlap > 0 and history.nnz:
        shared = weights.multiply(sp.csr_matrix(history > 0, dtype=np.float32) @ binary.T)
        weights = sp.csr_matrix(weights + np.float32(overlap) * shared.multiply(weights > 0))
    return np.asarray((row_normalized(weights) @ binary).toarray(), dtype=np.float32)


class SocialGraph:
    """Mixin of a model fitted with the relations: it keeps them as ``social_`` and
    saves and loads them beside its other state."""

    social_: sp.csr_matrix

    def _save_social(self, directory: Path) -> None:
        sp.save_npz(directory / "social.npz", self.social_)

    def _load_social(self, directory: Path) -> None:
        self.social_ = sp.load_npz(directory / "social.npz").tocsr()

    def friend_counts(self, users: np.ndarray) -> np.ndarray:
        """How many relations each of ``users`` has in the fitted graph."""
        return np.asarray(np.diff(self.social_.indptr)[np.asarray(users, dtype=np.int64)])


class SocialPopSettings(ModelSettings):
    """``social_weight``: the weight of the share of friends who interacted with an item,
    for a user without history; a user with n items gets ``history_shrinkage / (
    history_shrinkage + n)`` of it. ``overlap_weight``: a friend counts 1 + this times
    the items they share with the user. ``own_weight``: the weight of item-kNN over the
    user's own history, the model ``own`` (item_knn or ease, with its settings in the
    section of that name; own_weight 0 leaves it out);
    ``popularity_weight``: of the item's popularity, the tie-break and the answer for a
    user without history or friends."""

    social_weight: float = Field(0.4, ge=0)
    history_shrinkage: float = Field(10.0, gt=0)
    overlap_weight: float = Field(3.0, ge=0)
    own_weight: float = Field(1.0, ge=0)
    popularity_weight: float = Field(0.05, ge=0)
    own: Literal["item_knn", "ease"] = "ease"
    item_knn: ItemKNNSettings = ItemKNNSettings()
    ease: EASESettings = EASESettings()


class SocialPop(SocialGraph, BaseRecommender):
    """What a user's friends interacted with, weighted, blended with a model of the
    user's own history (item-kNN or EASE) and a little popularity."""

    name: ClassVar[str] = "social_pop"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "social_",
        "binary_",
        "own_",
        "popularity_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("social",)
    required_inputs: ClassVar[tuple[str, ...]] = ("social",)
    inputs: ClassVar[frozenset[str]] = frozenset({"social"})
    settings_class: ClassVar[type[ModelSettings]] = SocialPopSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """The own model's arrays (item-kNN's or EASE's ``memory_estimate``), the
        relations (a users x users CSR matrix), a binary copy of the interactions and the
        item popularity; scoring a block adds two dense block x items float32 arrays (the
        friends' share and the scaled own scores) to the own model's."""
        p = cls.settings(**params).model_dump()
        own_class = ItemKNN if p["own"] == "item_knn" else EASE
        knn = own_class.memory_estimate(shape, **p[p["own"]])
        graph = shape.relations_csr_bytes()
        block = dense_bytes(score_users(shape.items), shape.items)
        train = {
            "the own model's training arrays": knn.train_bytes,
            "the relations, CSR users x users": graph,
            "a binary copy of the training matrix, CSR": shape.csr_bytes(),
            "item popularity, 4 x items": shape.items * FLOAT32,
        }
        score = {
            "the own model's scoring arrays": knn.score_bytes,
            "the relations, CSR users x users": graph,
            "a binary copy of the training matrix, CSR": shape.csr_bytes(),
            "friends' share and scaled own scores of a block, 2 x 4 x block users x items": (
                2 * block
            ),
        }
        return summed("social_pop", train, score)

    def _fit(self, matrix: sp.csr_matrix, social: sp.csr_matrix) -> None:
        self.social_ = social
        self.binary_ = sp.csr_matrix((matrix > 0).astype(np.float32))
        counts = np.asarray(self.binary_.sum(axis=0), dtype=np.float32).ravel()
        self.popularity_ = counts / max(float(counts.max()), 1.0)
        own = self.params["own"]
        own_class = ItemKNN if own == "item_knn" else EASE
        self.own_ = own_class(**self.params[own]).fit(matrix)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        p = self.params
        scores = np.broadcast_to(
            np.float32(p["popularity_weight"]) * self.popularity_, (len(users), self.n_items_)
        ).copy()
        if p["social_weight"] > 0:
            friends = scaled_rows(
                friends_share(self.social_[users], self.binary_, history, p["overlap_weight"])
            )
            n = np.diff(sp.csr_matrix(history > 0).indptr).astype(np.float32)
            shrink = p["social_weight"] * p["history_shrinkage"] / (p["history_shrinkage"] + n)
            scores += shrink.astype(np.float32)[:, None] * friends
        if p["own_weight"] > 0:
            own = np.array(self.own_._score(users, history), dtype=np.float32)
            scores += np.float32(p["own_weight"]) * scaled_rows(own)
        return scores

    def _save_state(self, directory: Path) -> None:
        self._save_social(directory)
        self.own_.save(directory / "own")

    def _load_state(self, directory: Path) -> None:
        self._load_social(directory)
        own_class = ItemKNN if self.params["own"] == "item_knn" else EASE
        self.own_ = own_class.load(directory / "own")
        self.binary_ = sp.csr_matrix((self.train_matrix_ > 0).astype(np.float32))
        counts = np.asarray(self.binary_.sum(axis=0), dtype=np.float32).ravel()
        self.popularity_ = counts / max(float(counts.max()), 1.0)
