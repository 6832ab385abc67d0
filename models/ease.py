"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item-item weight matrix B with a zero diagonal, learned in closed form by
ridge regression of the binary user-item matrix X on itself:

    P = (X^T X + l2 * I)^-1,    B_ij = -P_ij / P_jj  (i != j),    B_jj = 0

and scores = history @ B. The inverse is dense (n_items x n_items): fine for a
few thousand items (2000 items: 16 MB, well under a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from models.base import BaseRecommender


def ease_weights(matrix: sp.csr_matrix, l2: float) -> np.ndarray:
    """The EASE weight matrix B (float32, zero diagonal) of a users x items matrix."""
    binary = (sp.csr_matrix(matrix) > 0).astype(np.float64)
    gram = (binary.T @ binary).toarray()
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


class EASE(BaseRecommender):
    """Closed-form linear item-item model; ``l2`` is the paper's lambda."""

    name: ClassVar[str] = "ease"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "weights_")

    def __init__(self, l2: float = 500.0) -> None:
        super().__init__(l2=l2)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        if self.params["l2"] <= 0:
            raise ValueError(
                f"ease: l2 must be > 0 (it keeps X^T X + l2 I invertible), got {self.params['l2']}"
            )
        self.weights_ = ease_weights(matrix, self.params["l2"])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        binary = (history > 0).astype(np.float32)
        return np.asarray(binary @ self.weights_, dtype=np.float32)

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights_)

    def _load_state(self, directory: Path) -> None:
        self.weights_ = np.load(directory / "weights.npy")
