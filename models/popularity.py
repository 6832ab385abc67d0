"""Most-popular baselines: every user gets the items with the most interactions, of all
time (``popularity``) or lately (``recent_popularity``: a window and a decay by age)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.ages import decay
from models.base import BaseRecommender, ModelSettings
from models.memory import FLOAT32, DataShape, MemoryEstimate, summed
from models.metrics import ndcg_at_k
from models.ranking import columns_top_k


class PopularitySettings(ModelSettings):
    """The popularity baseline takes no settings."""


class Popularity(BaseRecommender):
    """Scores an item by how many distinct users interacted with it in training."""

    name: ClassVar[str] = "popularity"
    personalized: ClassVar[bool] = False
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "item_counts_")
    settings_class: ClassVar[type[ModelSettings]] = PopularitySettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """A float32 CSR copy of the interactions and a boolean one (1 + 4 bytes an
        interaction) to count them; int64 and float32 counts per item. Scoring
        broadcasts the counts: no new array."""
        cls.settings(**params)
        bool_csr = shape.interactions * 5 + (shape.users + 1) * 8
        train = {
            "CSR copies of the training matrix, CSR + 5 x interactions": (
                shape.csr_bytes() + bool_csr
            ),
            "item counts, 12 x items": shape.items * (8 + FLOAT32),
        }
        score = {"item counts, 4 x items": shape.items * FLOAT32}
        return summed("popularity", train, score)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.item_counts_ = np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).ravel()

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.item_counts_, (len(users), self.item_counts_.size))

    def shared_scores(self) -> np.ndarray:
        self._check_fitted()
        return self.item_counts_

    def shared_reason(self) -> str:
        return "popular overall"

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "item_counts.npy", self.item_counts_)

    def _load_state(self, directory: Path) -> None:
        self.item_counts_ = np.load(directory / "item_counts.npy")


class RecentPopularitySettings(ModelSettings):
    """``window_days``: only interactions younger than this many days count (None: all
    time). ``half_life_days``: an interaction this many days old counts half of one from
    the last day, decaying exponentially (None: no decay). Ages are measured from the
    newest event the model is fitted on (:mod:`models.ages`). ``half_lives``: with a
    validation target (the night's last days of training, the validation split in
    ``recpipe evaluate``), the half-life among these and ``half_life_days`` whose ranking
    has the best validation NDCG@``val_k`` (ties: ``half_life_days``, then the shorter);
    empty: ``half_life_days`` as set."""

    window_days: float | None = Field(None, gt=0)
    half_life_days: float | None = Field(30.0, gt=0)
    half_lives: list[Annotated[float, Field(gt=0)]] = Field([3.5, 7.0, 14.0, 30.0, 90.0])
    val_k: int = Field(10, ge=1)


class RecentPopularity(Popularity):
    """Scores an item by the distinct users who interacted with it lately: each user counts
    ``0.5 ** (age / half_life_days)`` for an interaction of ``age`` days inside the
    window. Without ages (data without time) every interaction is of age 0 and the model
    ranks as :class:`Popularity`."""

    name: ClassVar[str] = "recent_popularity"
    fit_inputs: ClassVar[tuple[str, ...]] = ("ages", "validation")
    refit_on_all: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = RecentPopularitySettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """The float32 CSR copy of the interactions, its ages laid on it (a CSR of the same
        pairs) and a float64 weight per interaction; float64 and float32 sums per item.
        Scoring broadcasts the sums: no new array."""
        cls.settings(**params)
        train = {
            "CSR copies of the training matrix and its ages, 2 x CSR": 2 * shape.csr_bytes(),
            "weights of the interactions, 8 x interactions": shape.interactions * 8,
            "item sums, 12 x items": shape.items * (8 + FLOAT32),
        }
        score = {"item sums, 4 x items": shape.items * FLOAT32}
        return summed("recent_popularity", train, score)

    def _fit(
        self,
        matrix: sp.csr_matrix,
        ages: sp.csr_matrix | None = None,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
    ) -> None:
        age = np.zeros(matrix.nnz) if ages is None else ages.data.astype(np.float64)
        self.half_life_ = self.params["half_life_days"]
        self.validation_ndcg_: dict[str, float] = {}
        if validation is not None and self.params["half_lives"]:
            given = [self.half_life_, *sorted(set(self.params["half_lives"]) - {self.half_life_})]
            users, relevant = validation
            history = matrix[users]
            for half_life in given:
                counts = self._counts(matrix, age, half_life)
                ranked = popular_top_k(counts, history, self.params["val_k"])
                self.validation_ndcg_[str(half_life)] = ndcg_at_k(
                    ranked, relevant, self.params["val_k"]
                )
            best = max(self.validation_ndcg_.values())
            self.half_life_ = next(h for h in given if self.validation_ndcg_[str(h)] == best)
        self.item_counts_ = self._counts(matrix, age, self.half_life_)

    def _counts(
        self, matrix: sp.csr_matrix, age: np.ndarray, half_life: float | None
    ) -> np.ndarray:
        weight = decay(age, half_life) * (matrix.data > 0)
        if self.params["window_days"] is not None:
            weight[age >= self.params["window_days"]] = 0.0
        sums = np.bincount(matrix.indices, weights=weight, minlength=matrix.shape[1])
        return sums.astype(np.float32)

    def refit_params(self) -> dict[str, Any]:
        """Settings that repeat this fit without a validation target: the half-life chosen."""
        return {**self.params, "half_life_days": self.half_life_, "half_lives": []}

    def _save_state(self, directory: Path) -> None:
        super()._save_state(directory)
        chosen = {"half_life_days": self.half_life_, "validation_ndcg": self.validation_ndcg_}
        (directory / "recent_popularity.json").write_text(json.dumps(chosen, sort_keys=True))

    def _load_state(self, directory: Path) -> None:
        super()._load_state(directory)
        path = directory / "recent_popularity.json"
        chosen = json.loads(path.read_text()) if path.exists() else {}
        self.half_life_ = chosen.get("half_life_days", self.params["half_life_days"])
        self.validation_ndcg_ = chosen.get("validation_ndcg", {})

    def shared_reason(self) -> str:
        window, half_life = self.params["window_days"], self.half_life_
        if window is not None:
            return f"popular in the last {window:g} days"
        if half_life is not None:
            return "popular lately"
        return "popular overall"


def popular_top_k(counts: np.ndarray, history: sp.csr_matrix, k: int) -> np.ndarray:
    """Each row of ``history`` ranked by ``counts`` without its own items: the top-k item
    indices (-1 where fewer), over the ``k`` + longest-history most counted items, a
    block of rows at a time."""
    history = sp.csr_matrix(history)
    many = min(counts.size, k + int(np.diff(history.indptr).max(initial=0)))
    if many == 0:
        return np.full((history.shape[0], k), -1, dtype=np.int64)
    items = np.sort(np.argpartition(-counts, many - 1)[:many])
    out = [
        columns_top_k(
            np.broadcast_to(counts[items], (rows.shape[0], many)), items, k, exclude=rows
        )[0]
        for rows in (history[start : start + 4096] for start in range(0, history.shape[0], 4096))
    ]
    return np.concatenate(out) if out else np.empty((0, k), np.int64)
