"""Sparse approximate EASE: each item's column restricted to its nearest co-occurring items.

Dense EASE (models/ease.py) solves, for every item j, the ridge regression of column X_j
on all the other columns; its joint solution needs the dense inverse of X^T X + l2 I,
8 x items^2 bytes. Here column j is restricted to N(j), the ``neighbors`` items that
co-occur with j most (by cosine G_ij / sqrt(G_ii G_jj), or by the count G_ij), and the
restricted problem is solved exactly:

    (G[N, N] + l2 I) b = G[N, j],    B[N(j), j] = b,    B zero elsewhere.

With N(j) = every other item this is dense EASE exactly. Items are grouped by the size of
their neighbourhood (most tail items co-occur with few items) and solved as batches of
equal-sized systems, so the work is LAPACK-shaped. Scores stay ``history @ B``, now a
sparse product.

Memory (bytes), U users, I items, Z interactions, m = ``neighbors``, Q = nnz(X^T X) (the
co-occurring item pairs): the Gram matrix 8 Q (about twice that while scipy builds it),
the neighbour table 4 I m, the result 8 I m (twice while assembling), one batch of
systems (``batch_bytes``) and the dense Gram block of the ``core_items`` most popular
items (4 core^2). Time: one sparse product, one sort of the Gram's entries,
sum_j |N(j)|^2 lookups in the Gram matrix to fill the systems (the bulk) and
sum_j |N(j)|^3 / 3 flops of small solves; ``max_cells`` bounds sum_j |N(j)|^2 by
shrinking m on a wide catalog (:func:`neighbors_for`). Measured on 2 cores, 763,385 items
and 10M interactions: Gram matrix 21 s (167M co-occurring pairs), neighbour selection
111 s, systems at m = 128: 3.7 s per 1,000 items (1.7 ms of lookups and 1.6 ms of
solving each), which is why m shrinks there.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Similarity = Literal["cosine", "gram"]
BATCH_BYTES = 256 << 20
CORE_ITEMS = 8192
#: the cells of every neighbourhood system together (items x neighbours^2): each cell is
#: one lookup in the Gram matrix, the bulk of the fit (about 130 ns each on the reference
#: machine), so the neighbours shrink on a wider catalog to keep the fit bounded
MAX_SYSTEM_CELLS = 2_000_000_000
#: each item's row of the weights keeps at most this many (:func:`cap_rows`)
MAX_ROW_ENTRIES = 512
#: the fewest neighbours the width rule leaves an item
MIN_NEIGHBORS = 16


def cap_rows(weights: sp.csr_matrix, max_entries: int) -> sp.csr_matrix:
    """``weights`` with each row cut to its ``max_entries`` largest weights in magnitude
    (equal magnitudes: lowest column first); 0 keeps every row whole.

    Row i of B is what item i adds to the scores of the items it is a neighbour of. A
    popular item is a neighbour of a large share of the catalog (at 763,385 items, 44
    neighbours each: rows up to 71,807 weights, 108,292 per user's history on average),
    and scoring a user costs the summed length of their history's rows. The cut bounds
    that cost at ``max_entries`` per history item, dropping the smallest contributions."""
    from models.ranking import top_k_entries

    weights = sp.csr_matrix(weights)
    lengths = np.diff(weights.indptr)
    long = np.flatnonzero(lengths > max_entries) if max_entries > 0 else lengths[:0]
    if not long.size:
        return weights
    # the entries of the long rows, row by row: positions in data / indices
    spans = lengths[long]
    rows = np.repeat(np.arange(long.size), spans)
    entries = np.arange(rows.size) - np.repeat(np.cumsum(spans) - spans, spans)
    entries += np.repeat(weights.indptr[long], spans)
    _, kept, _, _ = top_k_entries(
        rows, entries, np.abs(weights.data[entries]), long.size, max_entries
    )
    keep = np.ones(weights.nnz, dtype=bool)
    keep[entries] = False
    keep[kept] = True
    row_of = np.repeat(np.arange(weights.shape[0]), lengths)
    indptr = np.zeros(weights.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=weights.shape[0]), out=indptr[1:])
    return sp.csr_matrix((weights.data[keep], weights.indices[keep], indptr), shape=weights.shape)


def neighbors_for(n_items: int, neighbors: int, max_cells: int = MAX_SYSTEM_CELLS) -> int:
    """Neighbours per item on a catalog of ``n_items``: ``neighbors``, fewer where
    ``n_items x neighbors^2`` would pass ``max_cells`` (never under ``MIN_NEIGHBORS``),
    and never more than the other items. 1,000,000 items: 44."""
    from math import isqrt

    fitting = max(MIN_NEIGHBORS, isqrt(max(max_cells, 1) // max(n_items, 1)))
    return max(1, min(neighbors, fitting, n_items - 1))


def gram_matrix(matrix: sp.spmatrix, weighted: bool = False) -> sp.csr_matrix:
    """X^T X of the binarised users x items matrix (with ``weighted``, of its values as
    they are): float32 CSR, sorted indices (float32 holds co-occurrence counts exactly up
    to 2^24 users per pair)."""
    binary = sp.csr_matrix(matrix, copy=True)
    binary.data = (binary.data if weighted else binary.data > 0).astype(np.float32)
    binary.eliminate_zeros()
    gram = sp.csr_matrix(binary.T.tocsr() @ binary)
    gram.sort_indices()
    return gram


def top_neighbors(
    gram: sp.csr_matrix, neighbors: int, similarity: Similarity, block_nnz: int = 20_000_000
) -> np.ndarray:
    """Per item, its ``neighbors`` most similar co-occurring items (never itself), best
    first, int32, padded with -1; ties go to the more popular item. Works through blocks
    of rows holding about ``block_nnz`` entries, so the sort stays small."""
    n = gram.shape[0]
    popularity = gram.diagonal().astype(np.float64)
    inv_root = 1.0 / np.sqrt(np.maximum(popularity, 1.0))
    result = np.full((n, neighbors), -1, dtype=np.int32)
    indptr = gram.indptr
    start = 0
    while start < n:
        stop = int(np.searchsorted(indptr, indptr[start] + block_nnz, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        lo, hi = indptr[start], indptr[stop]
        cols = gram.indices[lo:hi]
        rows = np.repeat(np.arange(start, stop, dtype=np.int32), np.diff(indptr[start : stop + 1]))
        score = gram.data[lo:hi].astype(np.float64)
        if similarity == "cosine":
            score *= inv_root[rows] * inv_root[cols]
        score[rows == cols] = -np.inf
        order = np.lexsort((-popularity[cols], -score, rows))
        rank = np.arange(hi - lo) - (indptr[rows[order]] - lo)
        keep = (rank < neighbors) & np.isfinite(score[order])
        kept = order[keep]
        result[rows[kept], rank[keep]] = cols[kept]
        start = stop
    return result


class _GramLookup:
    """Vectorised G[rows, cols]: a dense block for the ``core`` most popular items (where
    most neighbourhood pairs fall), a binary search in the CSR rows otherwise."""

    def __init__(self, gram: sp.csr_matrix, core: int) -> None:
        self.gram = gram
        core_ids = np.argsort(-gram.diagonal(), kind="stable")[: min(core, gram.shape[0])]
        self.pos = np.full(gram.shape[0], -1, dtype=np.int32)
        self.pos[core_ids] = np.arange(core_ids.size, dtype=np.int32)
        self.core = np.asarray(gram[core_ids][:, core_ids].toarray(), dtype=np.float32)

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        from scipy.sparse import _sparsetools

        in_rows, in_cols = self.pos[rows], self.pos[cols]
        inside = (in_rows >= 0) & (in_cols >= 0)
        out = np.empty(rows.size, dtype=np.float32)
        out[inside] = self.core[in_rows[inside], in_cols[inside]]
        rest = ~inside
        if rest.any():
            g = self.gram
            values = np.empty(int(rest.sum()), dtype=g.data.dtype)
            kind = g.indices.dtype
            _sparsetools.csr_sample_values(
                g.shape[0], g.shape[1], g.indptr, g.indices, g.data, values.size,
                rows[rest].astype(kind), cols[rest].astype(kind), values,
            )  # fmt: skip
            out[rest] = values
        return out


def _solve_group(gram: _GramLookup, items: np.ndarray, hood: np.ndarray, l2: float) -> np.ndarray:
    """Exact restricted EASE columns of ``items``, whose neighbourhoods fill ``hood``
    ((b, s), -1 for padding); (b, s) float64 weights, 0 on padding."""
    b, s = hood.shape
    valid = hood >= 0
    safe = np.where(valid, hood, 0)
    rows = np.broadcast_to(safe[:, :, None], (b, s, s)).ravel()
    cols = np.broadcast_to(safe[:, None, :], (b, s, s)).ravel()
    system = gram(rows, cols).astype(np.float64).reshape(b, s, s)
    system *= valid[:, :, None] & valid[:, None, :]
    diagonal = np.arange(s)
    system[:, diagonal, diagonal] += l2  # a padded slot solves to weight 0
    rhs = gram(safe.ravel(), np.repeat(items, s)).astype(np.float64).reshape(b, s)
    rhs *= valid
    return np.asarray(np.linalg.solve(system, rhs[:, :, None])[:, :, 0])


def sparse_ease_weights(
    matrix: sp.spmatrix,
    l2: float,
    neighbors: int = 128,
    similarity: Similarity = "cosine",
    batch_bytes: int = BATCH_BYTES,
    core_items: int = CORE_ITEMS,
    max_cells: int = MAX_SYSTEM_CELLS,
    weighted: bool = False,
) -> sp.csr_matrix:
    """Neighbourhood-restricted EASE weights: items x items float32 CSR with a zero
    diagonal and at most ``neighbors`` nonzeros per column (fewer on a catalog too wide
    for ``max_cells``: :func:`neighbors_for`); score with ``history @ B``. ``weighted``:
    learned from ``matrix``'s values as they are (interaction weights), not binarised."""
    from threadpoolctl import threadpool_limits

    gram = gram_matrix(matrix, weighted)
    n = gram.shape[0]
    neighbors = neighbors_for(n, neighbors, max_cells)
    hood = top_neighbors(gram, neighbors, similarity)
    sizes = (hood >= 0).sum(axis=1)
    # bucket items by neighbourhood size, rounded up to a power of two (at most m)
    widths = np.minimum(2 ** np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64), neighbors)
    lookup = _GramLookup(gram, core_items)
    # column j of B holds exactly hood[j, :sizes[j]]: build it in CSC form in place
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = hood[hood >= 0]
    data = np.zeros(indices.size, dtype=np.float32)
    # thousands of small LAPACK calls: one BLAS thread each beats oversubscribing
    with threadpool_limits(limits=1, user_api="blas"):
        for width in np.unique(widths[sizes > 0]):
            members = np.flatnonzero((widths == width) & (sizes > 0)).astype(np.int32)
            batch = max(1, int(batch_bytes // (8 * 3 * width * width)))
            for start in range(0, members.size, batch):
                items = members[start : start + batch]
                group = hood[items, :width]
                valid = group >= 0
                slots = indptr[items][:, None] + np.arange(width)[None, :]
                data[slots[valid]] = _solve_group(lookup, items, group, l2)[valid]
    del hood, lookup, gram
    weights = sp.csc_matrix((data, indices, indptr), shape=(n, n)).tocsr()
    weights.sort_indices()
    return weights
