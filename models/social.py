"""Social recommenders' shared parts, and the friends' items baseline (``social_pop``).

A social model reads the relations between users (``fit(..., social=S)``, see
:mod:`models.inputs`): ``S`` is users x users, row ``u`` holding the users ``u`` follows
or is friends with and their weights. It keeps the graph it was fitted with as
``social_`` (saved and loaded with the model), so scoring needs only the usual history
rows: a user with friends and no history is scored from the friends.

:class:`SocialPop` ("what your friends liked", the strong simple baseline):

    score(u, i) = social_weight * sum_f w(u, f) / sum_f w(u, f) * [f interacted with i]
                + own_weight * knn(u, i) / max_j knn(u, j)
                + popularity_weight * n_i / max_j n_j

The first part is the weighted share of u's friends who interacted with i (in
[0, 1]); the second, item-kNN over u's own history (:mod:`models.item_knn`),
scaled so the user's best item scores 1; the third, the item's training
popularity scaled to [0, 1], breaks ties and ranks something for a user without
history or friends. Every part is a sparse product or a broadcast: no training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import BaseRecommender, ModelSettings
from models.item_knn import ItemKNN, cosine_similarity
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


def friends_share(social: sp.csr_matrix, binary: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Dense (users x items): the weighted share of each user's friends who interacted
    with each item (``social`` rows of ``users`` normalised to sum 1, times the friends'
    binary histories)."""
    weights = row_normalized(social[users])
    return np.asarray((weights @ binary).toarray(), dtype=np.float32)


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
        return np.diff(self.social_.indptr)[np.asarray(users, dtype=np.int64)]


class SocialPopSettings(ModelSettings):
    """``social_weight``: the weight of the share of friends who interacted with an item;
    ``own_weight``: of item-kNN over the user's own history (``neighbors``, ``shrinkage``
    as in item_knn; 0 leaves it out); ``popularity_weight``: of the item's popularity,
    the tie-break and the answer for a user without history or friends."""

    social_weight: float = Field(1.0, ge=0)
    own_weight: float = Field(1.0, ge=0)
    popularity_weight: float = Field(0.01, ge=0)
    neighbors: int = Field(200, ge=1)
    shrinkage: float = Field(10.0, ge=0)


class SocialPop(SocialGraph, BaseRecommender):
    """What a user's friends interacted with, weighted, blended with the user's own
    item-kNN and a little popularity."""

    name: ClassVar[str] = "social_pop"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "social_",
        "binary_",
        "similarity_",
        "popularity_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("social",)
    required_inputs: ClassVar[tuple[str, ...]] = ("social",)
    inputs: ClassVar[frozenset[str]] = frozenset({"social"})
    settings_class: ClassVar[type[ModelSettings]] = SocialPopSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Item-kNN's arrays (:meth:`models.item_knn.ItemKNN.memory_estimate`), the
        relations (a users x users CSR matrix), a binary copy of the interactions and the
        item popularity; scoring a block adds two dense block x items float32 arrays (the
        friends' share and the scaled kNN scores) to item-kNN's."""
        p = cls.settings(**params).model_dump()
        knn = ItemKNN.memory_estimate(
            shape, neighbors=p["neighbors"], shrinkage=p["shrinkage"]
        )
        graph = shape.relations_csr_bytes()
        block = dense_bytes(score_users(shape.items), shape.items)
        train = {
            "item-kNN's training arrays": knn.train_bytes,
            "the relations, CSR users x users": graph,
            "a binary copy of the training matrix, CSR": shape.csr_bytes(),
            "item popularity, 4 x items": shape.items * FLOAT32,
        }
        score = {
            "item-kNN's scoring arrays": knn.score_bytes,
            "the relations, CSR users x users": graph,
            "a binary copy of the training matrix, CSR": shape.csr_bytes(),
            "friends' share and scaled kNN scores of a block, 2 x 4 x block users x items": (
                2 * block
            ),
        }
        return summed("social_pop", train, score)

    def _fit(self, matrix: sp.csr_matrix, social: sp.csr_matrix) -> None:
        self.social_ = social
        self.binary_ = sp.csr_matrix((matrix > 0).astype(np.float32))
        counts = np.asarray(self.binary_.sum(axis=0), dtype=np.float32).ravel()
        self.popularity_ = counts / max(float(counts.max()), 1.0)
        self.similarity_ = (
            cosine_similarity(matrix, self.params["neighbors"], self.params["shrinkage"])
            if self.params["own_weight"] > 0
            else sp.csr_matrix((matrix.shape[1], matrix.shape[1]), dtype=np.float32)
        )

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        p = self.params
        scores = np.broadcast_to(
            np.float32(p["popularity_weight"]) * self.popularity_, (len(users), self.n_items_)
        ).copy()
        if p["social_weight"] > 0:
            scores += np.float32(p["social_weight"]) * friends_share(
                self.social_, self.binary_, users
            )
        if p["own_weight"] > 0:
            own = sp.csr_matrix((history > 0).astype(np.float32)) @ self.similarity_
            scores += np.float32(p["own_weight"]) * scaled_rows(
                np.asarray(own.toarray(), dtype=np.float32)
            )
        return scores

    def _save_state(self, directory: Path) -> None:
        self._save_social(directory)
        sp.save_npz(directory / "similarity.npz", self.similarity_)

    def _load_state(self, directory: Path) -> None:
        self._load_social(directory)
        self.similarity_ = sp.load_npz(directory / "similarity.npz").tocsr()
        self.binary_ = sp.csr_matrix((self.train_matrix_ > 0).astype(np.float32))
        counts = np.asarray(self.binary_.sum(axis=0), dtype=np.float32).ravel()
        self.popularity_ = counts / max(float(counts.max()), 1.0)
