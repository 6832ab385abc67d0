"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item-item weight matrix B with a zero diagonal, learned in closed form by
ridge regression of the binary user-item matrix X on itself:

    P = (X^T X + l2 * I)^-1,    B_ij = -P_ij / P_jj  (i != j),    B_jj = 0

and scores = history @ B. The inverse is dense (n_items x n_items): fine for a
few thousand items (2000 items: 16 MB, well under a second); 20,000 items take
about 5 GB and minutes on two cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import BaseRecommender, ModelSettings


def ease_weights(matrix: sp.csr_matrix, l2: float, block_users: int = 65_536) -> np.ndarray:
    """The EASE weight matrix B (float32, zero diagonal) of a users x items matrix.

    Memory: one dense float64 n_items x n_items matrix, worked on in place (the Gram
    matrix is accumulated from blocks of users, inverted through its Cholesky factor
    by LAPACK in place, then scaled), plus the float32 result; e.g. 20,000 items:
    3.2 GB + 1.6 GB.
    """
    from scipy.linalg import lapack

    binary = (sp.csr_matrix(matrix) > 0).astype(np.float64)
    n = binary.shape[1]
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, binary.shape[0], block_users):
        block = binary[start : start + block_users]
        part = (block.T @ block).tocoo()  # canonical: each (row, col) once
        gram[part.row, part.col] += part.data
    gram[np.diag_indices_from(gram)] += l2
    factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: X^T X + l2 I is not positive definite (info {info})")
    precision, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: inverting X^T X + l2 I failed (info {info})")
    step = 1024  # dpotri fills the upper triangle only: mirror it, a band at a time
    for i in range(0, n, step):
        j = min(i + step, n)
        band = precision[i:j, i:j]
        band[np.tril_indices(j - i, -1)] = band.T[np.tril_indices(j - i, -1)]
        precision[j:, i:j] = precision[i:j, j:].T
    diagonal = np.diag(precision).copy()
    precision /= -diagonal[None, :]
    np.fill_diagonal(precision, 0.0)
    # LAPACK hands back Fortran order; scoring multiplies by rows, so store C order
    return np.ascontiguousarray(precision, dtype=np.float32)


class EASESettings(ModelSettings):
    """``l2``: the paper's lambda, the L2 regularisation (> 0 keeps X^T X + l2 I invertible)."""

    l2: float = Field(500.0, gt=0)


class EASE(BaseRecommender):
    """Closed-form linear item-item model; ``l2`` is the paper's lambda."""

    name: ClassVar[str] = "ease"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "weights_")
    settings_class: ClassVar[type[ModelSettings]] = EASESettings

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.weights_ = ease_weights(matrix, self.params["l2"])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        binary = (history > 0).astype(np.float32)
        return np.asarray(binary @ self.weights_, dtype=np.float32)

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights_)

    def _load_state(self, directory: Path) -> None:
        self.weights_ = np.ascontiguousarray(np.load(directory / "weights.npy"))
