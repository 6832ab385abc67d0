"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item-item weight matrix B with a zero diagonal, learned in closed form by
ridge regression of the binary user-item matrix X on itself:

    P = (X^T X + l2 * I)^-1,    B_ij = -P_ij / P_jj  (i != j),    B_jj = 0

and scores = history @ B. The inverse is dense (n_items x n_items): fine for a
few thousand items (2000 items: 16 MB, well under a second); 20,000 items take
about 5 GB and minutes on two cores, 60,000 items 40 GB.

Above ``dense_max_items`` items (``form = "auto"``), or with ``form = "sparse"``, EASE
takes its sparse form (models/sparse_ease.py): each item's column restricted to its
``neighbors`` nearest co-occurring items and solved exactly there, memory proportional
to the pairs kept. Measured against the dense form on a per-user random 80/20 split
(l2 tuned for the dense form, 128 neighbours by cosine; ``recpipe bench ease-forms``):
MovieLens 100K NDCG@10 0.4451 against 0.4491 (-0.9%); Gowalla check-ins (32,077 venues)
0.0770 against 0.0779 (-1.2%, the dense figure from a one-off float32 inverse), fitted in
32 s and 0.7 GB instead of 541 s and 7.9 GB. Each item's row of the sparse weights keeps
its ``max_row_entries`` largest weights (:func:`models.sparse_ease.cap_rows`), which bounds
what scoring a user costs; at the default 512 neither figure changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.ages import decayed
from models.base import BaseRecommender, ModelSettings
from models.memory import (
    FLOAT32,
    FLOAT64,
    INDEX,
    DataShape,
    MemoryEstimate,
    cooccurring_pairs,
    score_users,
)
from models.sparse_ease import (
    BATCH_BYTES,
    CORE_ITEMS,
    MAX_ROW_ENTRIES,
    MAX_SYSTEM_CELLS,
    Similarity,
    cap_rows,
    neighbors_for,
    sparse_ease_weights,
)

#: bytes of the sparse product and its dense copy while one block of the Gram matrix's
#: columns is computed
GRAM_BLOCK_BYTES = 384 << 20
#: above this many items the dense inverse is factored on one BLAS thread (see ease_weights)
SINGLE_THREAD_ITEMS = 16_000


def ease_weights(matrix: sp.csr_matrix, l2: float, weighted: bool = False) -> np.ndarray:
    """The EASE weight matrix B (float32, zero diagonal) of a users x items matrix,
    binarised, or with ``weighted`` taken with its values as they are (each interaction's
    weight, e.g. its decay by age: X^T X sums the products of the weights).

    Memory: one dense float64 n_items x n_items matrix, worked on in place (the Gram
    matrix is filled a block of columns at a time, inverted through its Cholesky factor
    by LAPACK in place, then scaled), plus the float32 result and one block of columns
    (``GRAM_BLOCK_BYTES``); e.g. 20,000 items: 3.2 GB + 1.6 GB + 0.4 GB.
    """
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    if weighted:
        binary = sp.csr_matrix(matrix, dtype=np.float64)
    else:
        binary = (sp.csr_matrix(matrix) > 0).astype(np.float64)
    n = binary.shape[1]
    # Fortran order, which LAPACK works in: a C-order matrix would be copied first (n^2
    # float64 more). A block of columns costs at most 16 (sparse) + 8 (dense) bytes a cell.
    gram = np.zeros((n, n), dtype=np.float64, order="F")
    transposed = binary.T.tocsr()
    columns = binary.tocsc()
    step = max(1, GRAM_BLOCK_BYTES // (24 * max(n, 1)))
    for start in range(0, n, step):
        stop = min(start + step, n)
        gram[:, start:stop] = (transposed @ columns[:, start:stop]).toarray()
    gram[np.diag_indices_from(gram)] += l2
    # OpenBLAS's threaded Cholesky writes out of bounds on wide matrices with exactly two
    # threads (OpenMathLib/OpenBLAS#2562; here scipy's OpenBLAS 0.3.30 crashed at 26,000
    # and 32,077 items on two cores): one thread, above the width the crash was not seen
    with threadpool_limits(limits=1 if n > SINGLE_THREAD_ITEMS else None, user_api="blas"):
        factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(
                f"ease: X^T X + l2 I is not positive definite (info {info})"
            )
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
    """``l2``: the paper's lambda, the L2 regularisation (> 0 keeps X^T X + l2 I invertible).

    ``form``: ``dense`` (the exact inverse), ``sparse`` (each item's column restricted to
    its ``neighbors`` nearest co-occurring items, ranked by ``similarity``) or ``auto``:
    dense up to ``dense_max_items`` items, sparse above. The sparse form's systems hold
    items x neighbors^2 cells in all; above ``max_system_cells`` the neighbours per item
    shrink to fit (2e9 cells: 128 neighbours up to 122,070 items, 44 at 1M items).
    ``max_row_entries`` (sparse form): each item's row of the weights, what it adds to
    other items' scores, keeps its largest weights in magnitude, at most this many (0:
    all); scoring a user costs the summed length of their history's rows.

    ``half_life_days``: each training interaction is weighted by ``0.5 ** (age /
    half_life_days)`` (its age in days from the newest event fitted on, :mod:`models.ages`)
    in the matrix the weights are learned from; None: every interaction weighs 1. Scoring
    reads the user's history as given, unweighted."""

    l2: float = Field(500.0, gt=0)
    form: Literal["auto", "dense", "sparse"] = "auto"
    dense_max_items: int = Field(20_000, ge=1)
    neighbors: int = Field(128, ge=1)
    similarity: Similarity = "cosine"
    max_system_cells: int = Field(MAX_SYSTEM_CELLS, ge=1)
    max_row_entries: int = Field(MAX_ROW_ENTRIES, ge=0)
    half_life_days: float | None = Field(None, gt=0)


class EASE(BaseRecommender):
    """Closed-form linear item-item model; ``l2`` is the paper's lambda."""

    name: ClassVar[str] = "ease"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "weights_")
    fit_inputs: ClassVar[tuple[str, ...]] = ("ages",)
    settings_class: ClassVar[type[ModelSettings]] = EASESettings

    @staticmethod
    def form_for(n_items: int, params: dict[str, Any]) -> Literal["dense", "sparse"]:
        """The form ``params`` choose for a catalog of ``n_items`` items."""
        if params["form"] == "auto":
            return "dense" if n_items <= params["dense_max_items"] else "sparse"
        return "dense" if params["form"] == "dense" else "sparse"

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        p = cls.settings(**params).model_dump()
        n = shape.items
        # the binarised float64 CSR, CSC and transpose (and the decayed copy, with a half-life)
        matrix = (3 + (p["half_life_days"] is not None)) * shape.csr_bytes(FLOAT64)
        block = 2 * score_users(n) * n * FLOAT32  # a block of scores and its copy
        if cls.form_for(n, p) == "dense":
            return MemoryEstimate(
                train_bytes=matrix + (FLOAT64 + FLOAT32) * n * n + GRAM_BLOCK_BYTES,
                score_bytes=FLOAT32 * n * n + block,
                dominant=f"dense EASE: the item-item inverse, 12 x items^2 bytes ({n:,} items)",
            )
        m = neighbors_for(n, p["neighbors"], p["max_system_cells"])
        pairs = cooccurring_pairs(shape)
        weights = n * m * (FLOAT32 + INDEX)
        core = min(CORE_ITEMS, n)
        train = (
            matrix
            + 2 * pairs * (FLOAT32 + INDEX)  # the Gram matrix, twice while scipy builds it
            + n * m * INDEX  # the neighbour table
            + 2 * weights  # the result, twice while it is assembled
            + BATCH_BYTES
            + FLOAT32 * core * core
        )
        return MemoryEstimate(
            train_bytes=train,
            score_bytes=weights + block,
            dominant=(
                f"sparse EASE: the co-occurring pairs (at most {pairs:,}) and "
                f"{m} neighbours per item"
            ),
        )

    @classmethod
    def scalable_params(cls, shape: DataShape, **params: Any) -> dict[str, Any] | None:
        p = cls.settings(**params).model_dump()
        if cls.form_for(shape.items, p) == "sparse":
            return None
        return {**params, "form": "sparse"}

    def _fit(self, matrix: sp.csr_matrix, ages: sp.csr_matrix | None = None) -> None:
        p = self.params
        weighted = p["half_life_days"] is not None
        if weighted:
            matrix = decayed(matrix, ages, p["half_life_days"])
        if self.form_for(matrix.shape[1], p) == "dense":
            self.weights_: np.ndarray | sp.csr_matrix = ease_weights(matrix, p["l2"], weighted)
        else:
            weights = sparse_ease_weights(
                matrix,
                p["l2"],
                neighbors=p["neighbors"],
                similarity=p["similarity"],
                max_cells=p["max_system_cells"],
                weighted=weighted,
            )
            self.weights_ = cap_rows(weights, p["max_row_entries"])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        sparse = self._score_sparse(users, history)
        if sparse is not None:
            return np.asarray(sparse.toarray(), dtype=np.float32)
        binary = (history > 0).astype(np.float32)
        return np.asarray(binary @ self.weights_, dtype=np.float32)

    @property
    def dense_scores(self) -> bool:
        return not sp.issparse(self.weights_)

    def _score_sparse(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix | None:
        if not sp.issparse(self.weights_):
            return None
        binary = sp.csr_matrix((history > 0).astype(np.float32))
        return sp.csr_matrix(binary @ self.weights_)

    def _save_state(self, directory: Path) -> None:
        if sp.issparse(self.weights_):
            sp.save_npz(directory / "weights.npz", sp.csr_matrix(self.weights_))
        else:
            np.save(directory / "weights.npy", self.weights_)

    def _load_state(self, directory: Path) -> None:
        if (directory / "weights.npz").exists():
            self.weights_ = sp.csr_matrix(sp.load_npz(directory / "weights.npz"))
        else:
            self.weights_ = np.ascontiguousarray(np.load(directory / "weights.npy"))
