"""Item-item similarity from co-occurrence: reasons for recommendations and similar items.

Similarity is the cosine between items' user vectors, shrunk towards zero for
items with few co-occurrences (``shrinkage``) and pruned to each item's
``neighbours`` strongest neighbours, so it stays sparse:

    sim(i, j) = c_ij / (sqrt(n_i * n_j) + shrinkage)

where c_ij counts users who interacted with both and n_i users who interacted
with i. A recommendation's reason names the item in the user's history that is
most similar to it ("because you watched Heat (1995)").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.ranking import top_k, top_k_entries
from tasks.data.parallel import available_cpus, in_order


def cooccurrence_similarity(
    interactions: sp.csr_matrix, neighbours: int = 50, shrinkage: float = 10.0
) -> sp.csr_matrix:
    """Sparse items x items similarity (zero diagonal), top ``neighbours`` per row."""
    co, counts = cooccurrence_counts(interactions)
    return similarity_from_counts(co, counts, neighbours, shrinkage)


def cooccurrence_counts(interactions: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(items x items co-occurrence counts, users per item)`` of a users x items matrix.

    Both add up over disjoint sets of users, so they can be summed shard by shard.
    """
    binary = (sp.csr_matrix(interactions) > 0).astype(np.float32)
    counts = np.asarray(binary.sum(axis=0)).ravel()
    return (binary.T @ binary).tocsr(), counts


def similarity_from_counts(
    co: sp.csr_matrix, counts: np.ndarray, neighbours: int = 50, shrinkage: float = 10.0
) -> sp.csr_matrix:
    """Shrunk cosine from co-occurrence counts, top ``neighbours`` per row."""
    co = sp.csr_matrix(co, copy=True)
    co.setdiag(0)
    co.eliminate_zeros()
    co = co.tocoo()
    values = co.data / (np.sqrt(counts[co.row] * counts[co.col]) + shrinkage)
    sim = sp.csr_matrix((values.astype(np.float32), (co.row, co.col)), shape=co.shape)
    return _prune_rows(sim, neighbours)


def similarity_in_passes(
    matrices: Callable[[], Iterable[sp.spmatrix]],
    n_items: int,
    neighbours: int = 50,
    shrinkage: float = 10.0,
    budget_bytes: int = 512 * 2**20,
    chunk_rows: int = 512,
) -> sp.csr_matrix:
    """``cooccurrence_similarity`` of the users x items matrices that ``matrices()`` yields
    (shards of disjoint users), in memory bounded by ``budget_bytes`` whatever the number
    of users and items, in time of the co-occurring pairs.

    A first pass counts each item's users and bounds the pairs of its row (the summed
    history lengths of its users). The items are cut into bands of rows whose bounds fit
    the budget (about 12 bytes a pair while counts are summed); each band takes one more
    pass over the shards, its counts held sparse in chunks of ``chunk_rows`` item rows,
    turned into similarities and pruned to ``neighbours`` per row before the next band.
    ``matrices`` is called once per pass.
    """
    counts = np.zeros(n_items, dtype=np.float64)
    bound = np.zeros(n_items, dtype=np.float64)
    for matrix in matrices():
        binary = (sp.csr_matrix(matrix) > 0).astype(np.float32)
        counts += np.asarray(binary.sum(axis=0)).ravel()
        bound += binary.T @ np.diff(binary.indptr).astype(np.float64)
    parts = []
    for lo, hi in _bands(bound, max(1, budget_bytes // 12)):
        parts += _band_similarity(
            matrices, lo, hi, counts, neighbours, shrinkage, chunk_rows, available_cpus()
        )
    if not parts:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    rows, cols, vals = (np.concatenate(x) for x in zip(*parts, strict=True))
    return sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_items, n_items))


def _bands(bound: np.ndarray, pairs: int) -> list[tuple[int, int]]:
    """Consecutive item ranges whose summed ``bound`` stays within ``pairs`` (an item over
    it alone is a band of its own)."""
    bands, lo, total = [], 0, 0.0
    for i, b in enumerate(bound.tolist()):
        if i > lo and total + b > pairs:
            bands.append((lo, i))
            lo, total = i, 0.0
        total += b
    if bound.size:
        bands.append((lo, bound.size))
    return bands


def _band_similarity(
    matrices: Callable[[], Iterable[sp.spmatrix]],
    lo: int,
    hi: int,
    counts: np.ndarray,
    neighbours: int,
    shrinkage: float,
    chunk_rows: int,
    threads: int = 1,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The pruned similarity rows of items ``lo`` to ``hi`` in one pass over the shards:
    ``(rows, columns, values)`` per chunk of ``chunk_rows`` item rows."""
    n_items = counts.size
    starts = range(lo, hi, chunk_rows)
    chunks: list[sp.csr_matrix | None] = [None] * len(starts)
    for matrix in matrices():
        binary = (sp.csr_matrix(matrix) > 0).astype(np.float32)
        columns = binary.T.tocsr()
        for j, start in enumerate(starts):
            part = columns[start : min(start + chunk_rows, hi)] @ binary
            before = chunks[j]
            chunks[j] = part if before is None else before + part

    def pruned(job: tuple[int, sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, chunk = job
        chunk.sum_duplicates()  # canonical: row-major order
        co = chunk.tocoo()
        keep = (co.col != co.row + start) & (co.data > 0)
        r, c, v = co.row[keep], co.col[keep], co.data[keep]
        values = v / (np.sqrt(counts[r + start] * counts[c]) + shrinkage)
        r, c, v, _ = top_k_entries(
            r, c, values.astype(np.float32), chunk.shape[0], min(neighbours, n_items)
        )
        return r + start, c, v

    jobs = [
        (start, chunk) for start, chunk in zip(starts, chunks, strict=True) if chunk is not None
    ]
    return list(in_order(pruned, jobs, min(threads, max(1, len(jobs)))))


def _prune_rows(matrix: sp.csr_matrix, keep: int, cells: int = 1 << 24) -> sp.csr_matrix:
    """Keep the ``keep`` largest entries of each row (rows taken densely, a block of
    about ``cells`` values at a time)."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    if lengths.size == 0 or lengths.max() <= keep:
        return matrix
    n_rows, n_cols = matrix.shape
    step = max(1, cells // max(n_cols, 1))
    parts = []
    for start in range(0, n_rows, step):
        block = matrix[start : start + step]
        dense = np.full(block.shape, -np.inf, dtype=np.float32)
        local = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        dense[local, block.indices] = block.data
        idx, vals = top_k(dense, keep)
        ok = idx >= 0
        rows = np.nonzero(ok)[0] + start
        parts.append((rows, idx[ok], vals[ok]))
    rows, cols, vals = (np.concatenate(x) for x in zip(*parts, strict=True))
    return sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=matrix.shape)


def supporting_items(
    similarity: sp.csr_matrix,
    history: sp.csr_matrix,
    recommended: np.ndarray,
    positive: sp.csr_matrix | None = None,
) -> np.ndarray:
    """For each (user row, recommended item): the history item most similar to it, or -1.

    ``history`` rows align with ``recommended`` rows (one per user); -1 entries of
    ``recommended`` (padding) get -1. ``positive`` (same shape as ``history``): the
    user's positive events (``tasks/data/positives.py``); only those are named, so a
    reason never cites an item the user rated low.
    """
    if positive is not None:
        history = (sp.csr_matrix(history) > 0).multiply(sp.csr_matrix(positive) > 0).tocsr()
    n_users, k = recommended.shape
    flat = recommended.ravel()
    valid = flat >= 0
    picks = sp.csr_matrix(
        (np.ones(int(valid.sum()), dtype=np.float32), (np.flatnonzero(valid), flat[valid])),
        shape=(flat.size, similarity.shape[0]),
    )
    rows_of_sim = (picks @ similarity).tocsr()  # one row per (user, rank): sim to every item
    owner = np.repeat(np.arange(n_users), k)
    user_history = (sp.csr_matrix(history) > 0).astype(np.float32)[owner]
    support = rows_of_sim.multiply(user_history).tocsr()
    return _row_argmax(support).reshape(n_users, k)


def _row_argmax(matrix: sp.csr_matrix) -> np.ndarray:
    """The column of each row's largest stored value (the first in storage order among
    equals, as ``argmax`` takes it), -1 for an empty row; stored values are positive.
    One vectorised pass, where ``csr_matrix.argmax(axis=1)`` loops over rows in Python."""
    lengths = np.diff(matrix.indptr)
    out = np.full(matrix.shape[0], -1, dtype=np.int64)
    rows = np.flatnonzero(lengths)
    if rows.size == 0:
        return out
    best = np.maximum.reduceat(matrix.data, matrix.indptr[rows])
    owner = np.repeat(np.arange(rows.size), lengths[rows])
    at_best = np.flatnonzero(matrix.data == best[owner])
    _, first = np.unique(owner[at_best], return_index=True)  # first in storage order
    out[rows] = matrix.indices[at_best[first]]
    return out


def reasons(
    support: np.ndarray, item_ids: np.ndarray, titles: dict[str, str] | None, verb: str = "watched"
) -> np.ndarray:
    """``"because you watched <title>"`` per supporting item; None where there is none."""
    out = np.full(support.shape, None, dtype=object)
    has = support >= 0
    names = item_ids[support[has]]
    if titles:
        names = np.array([titles.get(str(i), str(i)) for i in names], dtype=object)
    out[has] = np.char.add(f"because you {verb} ", names.astype(str)).astype(object)
    return out


def similar_items_table(similarity: sp.csr_matrix, item_ids: np.ndarray, k: int) -> pd.DataFrame:
    """``item_id, rank, similar_item_id, score``: each item's top-k most similar items."""
    if similarity.shape[0] == 0:
        return pd.DataFrame(columns=["item_id", "rank", "similar_item_id", "score"])
    entries = sp.csr_matrix(similarity, copy=True)
    entries.sum_duplicates()  # canonical: row-major order
    entries = entries.tocoo()
    positive = entries.data > 0
    r, c, scores, rank = top_k_entries(
        entries.row[positive],
        entries.col[positive],
        entries.data[positive].astype(np.float32),
        similarity.shape[0],
        k,
    )
    return pd.DataFrame(
        {
            "item_id": item_ids[r].astype(str),
            "rank": (rank + 1).astype(np.int64),
            "similar_item_id": item_ids[c].astype(str),
            "score": scores.astype(np.float64),
        }
    )
