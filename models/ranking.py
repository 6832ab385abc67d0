"""Top-k selection with exclusion of seen items: written once, used by every model."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k(
    scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best items per row, best first.

    ``exclude`` is a CSR matrix aligned with ``scores``; its non-zero cells are
    never returned. Rows with fewer than k eligible items are padded with index
    -1 and score -inf. ``scores`` is not modified; the result is deterministic for a given input.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.array(scores, dtype=np.float32, copy=True)
    n_rows, n_items = scores.shape
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    kk = min(k, n_items)
    # Negate so that argpartition/argsort (ascending) put the best first; a stable
    # sort on the candidates breaks ties by item index.
    neg = -scores
    if kk < n_items:
        cand = np.argpartition(neg, kk - 1, axis=1)[:, :kk]
        cand.sort(axis=1)
    else:
        cand = np.broadcast_to(np.arange(n_items), (n_rows, n_items)).copy()
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    order = np.argsort(-cand_scores, axis=1, kind="stable")
    items = np.take_along_axis(cand, order, axis=1)
    top_scores = np.take_along_axis(cand_scores, order, axis=1)
    items = np.where(np.isfinite(top_scores), items, -1)
    if kk < k:
        pad = k - kk
        items = np.hstack([items, np.full((n_rows, pad), -1)])
        top_scores = np.hstack([top_scores, np.full((n_rows, pad), -np.inf, dtype=np.float32)])
    return items.astype(np.int64), top_scores
