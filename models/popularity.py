"""Most-popular baseline: every user gets the items with the most interactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from models.base import BaseRecommender, ModelSettings
from models.memory import FLOAT32, DataShape, MemoryEstimate, summed


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

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "item_counts.npy", self.item_counts_)

    def _load_state(self, directory: Path) -> None:
        self.item_counts_ = np.load(directory / "item_counts.npy")
