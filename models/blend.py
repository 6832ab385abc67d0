"""A personal model blended with recent popularity (``blend``), the weight chosen on
validation.

Two parts are fitted on the same interactions: a model of the user's own history,
``personal`` (EASE by default, or item-kNN, with its settings in the section of that
name), and recent popularity (:class:`models.popularity.RecentPopularity`: the distinct
users of an item, each counting ``0.5 ** (age / half_life_days)`` inside
``window_days``). A user's score for an item is

    score(u, i) = (1 - w) * personal(u, i) / max_j personal(u, j)
                + w * pop_i / max_j pop_j

where the personal maximum runs over the items the user has not interacted with (the
ones that can be recommended; all items when that maximum is not positive, and no
scaling at all for a user whose scores are nowhere positive), so the user's best
candidate scores 1 on both sides and ``w`` means the same for every user. ``w = 0``
ranks as the personal part, ``w = 1`` as recent popularity.

``w`` is chosen on the validation target given to ``fit`` (the training period's last
days in the night, the validation split in ``recpipe evaluate``): the candidate in
``weights`` with the best NDCG@``val_k``, ties to the smaller weight. Without a target it
is ``popularity_weight``. Popularity carries the users whose history says little (a
user without history is ranked by it alone) and the items that are rising now, which an
item-item model learned over all time does not see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import BaseRecommender, ModelSettings
from models.ease import EASE, EASESettings
from models.item_knn import ItemKNN, ItemKNNSettings
from models.memory import FLOAT32, DataShape, MemoryEstimate, dense_bytes, score_users, summed
from models.metrics import ndcg_at_k
from models.popularity import RecentPopularity
from models.ranking import sparse_top_k, top_k

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75)


def scaled_by_best_candidate(scores: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Each row of ``scores`` divided by its largest value over the items the row's
    ``history`` does not hold (over every item when that is not positive; a row whose
    scores are nowhere positive stays as it is). Works in place on a float32 array."""
    scores = np.asarray(scores, dtype=np.float32)
    if not scores.flags.writeable:
        scores = scores.copy()
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(history.indptr))
    seen = scores[rows, history.indices]
    scores[rows, history.indices] = -np.inf
    top = scores.max(axis=1, initial=-np.inf, keepdims=True)
    scores[rows, history.indices] = seen
    overall = scores.max(axis=1, initial=0.0, keepdims=True)
    top = np.where(top > 0, top, overall)
    np.divide(scores, top, out=scores, where=top > 0)
    return scores


def _row_max(data: np.ndarray, indptr: np.ndarray, empty: float) -> np.ndarray:
    """The largest of each CSR row's stored values (``empty`` for a row without any)."""
    out = np.full(len(indptr) - 1, empty, dtype=np.float64)
    filled = np.diff(indptr) > 0
    if data.size:
        out[filled] = np.maximum.reduceat(data, indptr[:-1][filled])
    return out


class BlendSettings(ModelSettings):
    """``personal``: the model of the user's own history, ``ease`` or ``item_knn``, with its
    settings in the section of that name. ``window_days`` and ``half_life_days``: recent
    popularity's (as :class:`models.popularity.RecentPopularitySettings`).
    ``popularity_weight``: the weight ``w`` of popularity without a validation target;
    ``weights``: the candidates tried on a validation target (NDCG@``val_k``).
    ``popular_candidates``: with a personal part whose scores are sparse (sparse EASE at
    width, item-kNN), a user is ranked over the items their personal part scores plus
    this many most popular items (and as many more as their history holds); exact
    whenever at least k of those popular items are left unseen, allowed and not scored
    below zero by the personal part."""

    personal: Literal["ease", "item_knn"] = "ease"
    ease: EASESettings = EASESettings(l2=300.0)
    item_knn: ItemKNNSettings = ItemKNNSettings()
    window_days: float | None = Field(None, gt=0)
    half_life_days: float | None = Field(30.0, gt=0)
    popularity_weight: float = Field(0.2, ge=0, le=1)
    weights: list[Annotated[float, Field(ge=0, le=1)]] = Field(list(DEFAULT_WEIGHTS), min_length=1)
    val_k: int = Field(10, ge=1)
    popular_candidates: int = Field(1000, ge=1)


class Blend(BaseRecommender):
    """A personal model (EASE or item-kNN) blended with recent popularity, each scaled to
    the user's best candidate, the popularity weight chosen on validation."""

    name: ClassVar[str] = "blend"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "personal_",
        "popularity_",
        "weight_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("validation", "ages")
    refit_on_all: ClassVar[bool] = True
    inputs: ClassVar[frozenset[str]] = frozenset()
    settings_class: ClassVar[type[ModelSettings]] = BlendSettings

    personal_: EASE | ItemKNN
    popularity_: np.ndarray
    weight_: float

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """The personal model's arrays (EASE's or item-kNN's ``memory_estimate``; EASE's
        training peak comes before anything else is held), recent popularity's counting
        and the scaled popularity; a block of users (validation while fitting, the night's
        scoring after) adds the personal scores, the blended scores and top-k's copy: 3 x
        4 x block users x items."""
        p = cls.settings(**params).model_dump()
        part_class = EASE if p["personal"] == "ease" else ItemKNN
        part = part_class.memory_estimate(shape, **p[p["personal"]])
        popularity = RecentPopularity.memory_estimate(
            shape, window_days=p["window_days"], half_life_days=p["half_life_days"]
        )
        block = 3 * dense_bytes(score_users(shape.items), shape.items)
        train = {
            "the personal model's training arrays": part.train_bytes,
            "the personal model's fitted arrays": part.score_bytes,
            "recent popularity's counting": popularity.train_bytes,
            "personal, blended and ranked scores of a validation block, "
            "3 x 4 x block users x items": block,
        }
        score = {
            "the personal model's scoring arrays": part.score_bytes,
            "scaled popularity, 4 x items": shape.items * FLOAT32,
            "personal, blended and ranked scores of a block, 3 x 4 x block users x items": block,
        }
        return summed("blend", train, score)

    @classmethod
    def scalable_params(cls, shape: DataShape, **params: Any) -> dict[str, Any] | None:
        """The personal part's scalable form (sparse EASE), when it has one."""
        p = cls.settings(**params).model_dump()
        part_class = EASE if p["personal"] == "ease" else ItemKNN
        scaled = part_class.scalable_params(shape, **p[p["personal"]])
        return None if scaled is None else {**params, p["personal"]: scaled}

    def _fit(
        self,
        matrix: sp.csr_matrix,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
        ages: sp.csr_matrix | None = None,
    ) -> None:
        p = self.params
        part_class = EASE if p["personal"] == "ease" else ItemKNN
        self.personal_ = part_class(**p[p["personal"]]).fit(matrix, ages=ages)
        recent = RecentPopularity(window_days=p["window_days"], half_life_days=p["half_life_days"])
        counts = recent.fit(matrix, ages=ages).item_counts_
        top = float(counts.max()) if counts.size else 0.0
        self.popularity_ = (counts / top if top > 0 else counts).astype(np.float32)
        self.weight_ = float(p["popularity_weight"])
        self.validation_ndcg_: dict[str, float] = {}
        if validation is not None:
            self.weight_ = self._choose_weight(matrix, validation)

    def _choose_weight(
        self, matrix: sp.csr_matrix, validation: tuple[np.ndarray, sp.csr_matrix]
    ) -> float:
        """The candidate weight with the best validation NDCG@``val_k`` (ties: the smaller),
        each validation user ranked from their training history, a block at a time."""
        users, relevant = validation
        k = self.params["val_k"]
        ranked: dict[float, list[np.ndarray]] = {w: [] for w in sorted(self.params["weights"])}
        sparse = not self.personal_.dense_scores
        step = 4096 if sparse else score_users(matrix.shape[1])
        for start in range(0, len(users), step):
            block = users[start : start + step]
            rows = matrix[block]
            if sparse:  # over the personal part's items and the popular ones
                candidates = list(ranked)
                blends = self._sparse_blended(block, rows, candidates)
                for weight, blended in zip(candidates, blends, strict=True):
                    ranked[weight].append(sparse_top_k(blended, k, exclude=rows)[0])
                continue
            personal = self._personal(block, rows)
            for weight, blocks in ranked.items():
                blended = self._blended(personal, weight)
                blocks.append(top_k(blended, k, exclude=rows, overwrite=True)[0])
        for weight, blocks in ranked.items():
            recommended = np.concatenate(blocks) if blocks else np.empty((0, k), np.int64)
            self.validation_ndcg_[str(weight)] = ndcg_at_k(recommended, relevant, k)
        best = max(self.validation_ndcg_.values())
        return min(float(w) for w, v in self.validation_ndcg_.items() if v == best)

    def _personal(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """The personal part's scores for ``history``, scaled to each user's best
        candidate."""
        scores = np.array(self.personal_._score(users, history), dtype=np.float32)
        return scaled_by_best_candidate(scores, sp.csr_matrix(history))

    def _blended(self, personal: np.ndarray, weight: float) -> np.ndarray:
        """``(1 - weight) * personal + weight * popularity``, a new float32 array."""
        blended: np.ndarray = personal * np.float32(1.0 - weight)
        blended += np.float32(weight) * self.popularity_
        return blended

    def _sparse_blended(
        self, users: np.ndarray, history: sp.csr_matrix, weights: list[float]
    ) -> list[sp.csr_matrix]:
        """A sparse personal part's blend for each of ``weights``, as sparse matrices over
        each user's entries: the items the personal part scores for them plus the
        ``popular_candidates`` most popular (and as many more as the longest history).
        Every other item's blend is ``w`` times a popularity no higher than those, and
        its personal score 0; an absent cell is ranked as 0 by
        :func:`models.ranking.sparse_top_k`, below every entry that scores above 0."""
        history = sp.csr_matrix(history)
        personal = self.personal_._score_sparse(users, history)
        if personal is None:
            raise TypeError(f"{self.personal_.name} gives dense scores: blend ranks it dense")
        personal = sp.csr_matrix(personal, dtype=np.float32)
        personal.sum_duplicates()
        n_rows, n_items = personal.shape
        longest = int(np.diff(history.indptr).max(initial=0))
        many = min(n_items, self.params["popular_candidates"] + longest)
        popular = np.sort(np.argpartition(-self.popularity_, many - 1)[:many])
        # the personal scores on the union of both patterns (explicit zeros kept: COO to
        # CSR sums duplicates and stores zeros, where CSR addition drops them)
        own = personal.tocoo()
        both = sp.coo_matrix(
            (
                np.r_[own.data, np.zeros(n_rows * many, np.float32)],
                (
                    np.r_[own.row, np.repeat(np.arange(n_rows), many)],
                    np.r_[own.col, np.tile(popular, n_rows)],
                ),
            ),
            shape=(n_rows, n_items),
        )
        union = both.tocsr()
        union.sort_indices()
        rows = np.repeat(np.arange(n_rows), np.diff(union.indptr))
        keys = rows * n_items + union.indices
        seen_rows = np.repeat(np.arange(n_rows), np.diff(history.indptr))
        seen = np.isin(keys, seen_rows * n_items + history.indices)
        # each row's best candidate: over its unseen entries, and 0 when an unseen item
        # is not among them; else (not positive) over every item, 0 included
        unseen_entries = np.bincount(rows[~seen], minlength=n_rows)
        zeros_outside = n_items - unseen_entries - np.diff(history.indptr) > 0
        top = _row_max(np.where(seen, -np.inf, union.data), union.indptr, -np.inf)
        top = np.where(zeros_outside, np.maximum(top, 0.0), top)
        overall = np.maximum(_row_max(union.data, union.indptr, -np.inf), 0.0)
        scale = np.where(top > 0, top, overall)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        scaled = union.data / scale[rows]
        popularity = self.popularity_[union.indices]
        out = []
        for weight in weights:
            data = (np.float32(1.0 - weight) * scaled + np.float32(weight) * popularity).astype(
                np.float32
            )
            out.append(sp.csr_matrix((data, union.indices, union.indptr), shape=union.shape))
        return out

    @property
    def dense_scores(self) -> bool:
        personal = getattr(self, "personal_", None)
        return personal is None or personal.dense_scores or self.weight_ >= 1.0

    def _score_sparse(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix | None:
        """With a sparse personal part: :meth:`_sparse_blended` at the chosen weight."""
        if self.dense_scores:
            return None
        return self._sparse_blended(users, history, [self.weight_])[0]

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        if self.weight_ >= 1.0:
            return np.broadcast_to(self.popularity_, (len(users), self.popularity_.size))
        return self._blended(self._personal(users, history), self.weight_)

    def refit_params(self) -> dict[str, Any]:
        """Settings that repeat this fit without a validation target: the weight it chose."""
        return {**self.params, "popularity_weight": self.weight_, "weights": [self.weight_]}

    def _save_state(self, directory: Path) -> None:
        self.personal_.save(directory / "personal")
        np.save(directory / "popularity.npy", self.popularity_)
        chosen = {"weight": self.weight_, "validation_ndcg": self.validation_ndcg_}
        (directory / "blend.json").write_text(json.dumps(chosen, indent=2, sort_keys=True))

    def _load_state(self, directory: Path) -> None:
        part_class = EASE if self.params["personal"] == "ease" else ItemKNN
        self.personal_ = part_class.load(directory / "personal")
        self.popularity_ = np.load(directory / "popularity.npy")
        chosen = json.loads((directory / "blend.json").read_text())
        self.weight_ = float(chosen["weight"])
        self.validation_ndcg_ = {str(w): float(v) for w, v in chosen["validation_ndcg"].items()}
