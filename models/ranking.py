"""Top-k selection with exclusion of seen items: written once, used by every model."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k(
    scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None, overwrite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best items per row, best first.

    ``exclude`` is a CSR matrix aligned with ``scores``; its non-zero cells are
    never returned. Rows with fewer than k eligible items are padded with index
    -1 and score -inf. Equal scores are ranked by item index, lowest first.

    ``scores`` is not modified unless ``overwrite`` is true and it is a writeable
    float32 array: then excluded cells are set to -inf in place, which saves a
    copy of the whole block (batch scoring passes its own fresh score blocks).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    in_place = (
        overwrite
        and isinstance(scores, np.ndarray)
        and scores.dtype == np.float32
        and scores.flags.writeable
    )
    scores = scores if in_place else np.array(scores, dtype=np.float32, copy=True)
    n_rows, n_items = scores.shape
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    kk = min(k, n_items)
    # The k largest sit at the end after partitioning around position n - k.
    # Ties across that boundary are settled by item index (lowest first), and the
    # candidates are sorted by index so the stable sort below keeps that order.
    if kk < n_items:
        part = np.argpartition(scores, n_items - kk, axis=1)
        cand = part[:, n_items - kk :]
        threshold = np.take_along_axis(scores, part[:, n_items - kk : n_items - kk + 1], axis=1)
        tied_rows = np.flatnonzero((scores >= threshold).sum(axis=1) > kk)
        for r in tied_rows:
            above = np.flatnonzero(scores[r] > threshold[r, 0])
            level = np.flatnonzero(scores[r] == threshold[r, 0])[: kk - above.size]
            cand[r] = np.concatenate([above, level])
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
