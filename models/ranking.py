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
    if isinstance(scores, np.ndarray) and scores.ndim == 2 and scores.strides[0] == 0:
        return _shared_top_k(scores[0], scores.shape[0], k, exclude)
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
        cand = _candidates(scores, kk)
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


def _shared_top_k(
    row: np.ndarray, n_rows: int, k: int, exclude: sp.csr_matrix | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of ``n_rows`` rows that all hold the scores ``row`` (a broadcast, as
    popularity scores): the items are ordered once, and each row takes the first k of
    that order it may have, which only needs the first k + (its excluded items) of it."""
    row = np.asarray(row, dtype=np.float32)
    n_items = row.size
    kk = min(k, n_items)
    order = np.argsort(-row, kind="stable")  # equal scores: lowest index first
    seen = sp.csr_matrix(exclude) if exclude is not None else None
    most_seen = int(np.diff(seen.indptr).max()) if seen is not None and seen.nnz else 0
    head = order[: min(n_items, kk + most_seen)]
    eligible = np.broadcast_to(np.isfinite(row[head]), (n_rows, head.size)).copy()
    if seen is not None and most_seen:
        eligible &= ~(seen[:, head].toarray() > 0)
    place = np.cumsum(eligible, axis=1) - 1
    r, c = np.nonzero(eligible & (place < kk))
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    items[r, place[r, c]] = head[c]
    top[r, place[r, c]] = row[head[c]]
    return items, top


def top_k_candidates(
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` over each row's candidates instead of every item: ``items`` (rows x
    n item indices, -1 for none) with their ``scores``. ``exclude`` (a CSR matrix over the
    whole catalog, aligned with the rows) and ``blocked`` (a boolean mask over the catalog)
    name items never returned. The same selection as :func:`top_k` on the dense rows with
    every non-candidate at -inf: best first, equal scores by item index, padded with -1
    and -inf."""
    order = np.argsort(items, axis=1, kind="stable")  # equal scores: lowest item first
    items = np.take_along_axis(np.asarray(items, dtype=np.int64), order, axis=1)
    scores = np.take_along_axis(np.asarray(scores, dtype=np.float32), order, axis=1)
    drop = items < 0
    if blocked is not None:
        drop |= blocked[np.maximum(items, 0)]
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        width = max(exclude.shape[1], int(items.max(initial=0)) + 1)
        row_of = np.repeat(np.arange(exclude.shape[0], dtype=np.int64), np.diff(exclude.indptr))
        seen = row_of * width + exclude.indices
        drop |= np.isin(np.arange(items.shape[0])[:, None] * width + items, seen)
    scores[drop] = -np.inf
    position, top = top_k(scores, k, overwrite=True)
    chosen = np.take_along_axis(items, np.maximum(position, 0), axis=1)
    return np.where(position >= 0, chosen, -1), top


GROUP = 64  # items per group when candidates are narrowed by group maxima


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """The column indices of each row's k largest scores (ties: lowest index), ascending.

    Each row's groups of ``GROUP`` consecutive items are ranked by their best score
    first. Every item of the row's top k lies in a group whose best score reaches the
    k-th best group maximum (k groups hold k items at least that good), and so does every
    item tied with the k-th score; so when at most ``2k`` groups reach it, the selection
    is made among the items of the ``2k`` best groups only, a few percent of the row.
    Other rows (many groups tied, e.g. mostly excluded items) are partitioned whole."""
    n_rows, n_items = scores.shape
    n_groups, spare = divmod(n_items, GROUP)
    keep = 2 * k
    if n_groups <= 2 * keep:
        return _partitioned(scores, k)
    best = scores[:, : n_groups * GROUP].reshape(n_rows, n_groups, GROUP).max(axis=2)
    if spare:
        best = np.hstack([best, scores[:, n_groups * GROUP :].max(axis=1, keepdims=True)])
        n_groups += 1
    kth = np.partition(best, n_groups - k, axis=1)[:, n_groups - k : n_groups - k + 1]
    narrow = np.flatnonzero(((best >= kth).sum(axis=1) <= keep) & np.isfinite(kth[:, 0]))
    cand = np.empty((n_rows, k), dtype=np.int64)
    wide = np.setdiff1d(np.arange(n_rows), narrow, assume_unique=True)
    if wide.size:
        cand[wide] = _partitioned(scores[wide], k)
    if narrow.size:
        groups = np.argpartition(best[narrow], n_groups - keep, axis=1)[:, n_groups - keep :]
        groups.sort(axis=1)
        columns = (groups[:, :, None] * GROUP + np.arange(GROUP)).reshape(narrow.size, -1)
        inside = columns < n_items  # the last group may be short
        picked = scores[narrow[:, None], np.minimum(columns, n_items - 1)]  # cells only
        picked[~inside] = -np.inf
        positions = _partitioned(picked, k)
        cand[narrow] = np.take_along_axis(columns, positions, axis=1)
    return cand


def _partitioned(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`_candidates` by partitioning whole rows."""
    n_rows, n_items = scores.shape
    cand = np.empty((n_rows, k), dtype=np.int64)
    # a few rows at a time: argpartition's index array stays ~8 MB instead of 8 bytes a
    # cell of the block (fresh large allocations cost a page fault every 4 KB)
    step = max(1, (1 << 20) // n_items)
    for lo in range(0, n_rows, step):
        block = scores[lo : lo + step]
        part = np.argpartition(block, n_items - k, axis=1)
        found = part[:, n_items - k :]
        threshold = np.take_along_axis(block, part[:, n_items - k : n_items - k + 1], axis=1)
        tied = np.flatnonzero((block >= threshold).sum(axis=1) > k)
        if tied.size:  # more cells equal the k-th score than fit: lowest indices first
            found[tied] = _settle_ties(block[tied], threshold[tied], k)
        cand[lo : lo + step] = found
    cand.sort(axis=1)
    return cand


def _settle_ties(rows: np.ndarray, threshold: np.ndarray, k: int) -> np.ndarray:
    """The k best cells of each row, where cells equal to the row's k-th best score
    (``threshold``) outnumber the places left: every cell above it, then the equal ones
    of lowest index. Column indices, ascending within each row."""
    above = rows > threshold
    level = rows == threshold
    room = k - above.sum(axis=1, keepdims=True)
    keep = above | (level & (np.cumsum(level, axis=1) <= room))
    return np.nonzero(keep)[1].reshape(rows.shape[0], k)


def top_k_entries(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k largest entries of each row of a sparse matrix given by its coordinates, in
    row-major order (as ``np.nonzero`` and canonical CSR give them; values finite):
    ``(rows, cols, values, rank)`` ordered by row, then rank (0 = best).

    The same selection as :func:`top_k` on the dense rows with absent cells at -inf
    (equal values ranked by column, lowest first), in time of the entries, not the cells:
    rows are padded only to the next power of two of their length (selection slows down
    many times over on rows whose cells are mostly equal, such as mostly -inf).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lengths = np.bincount(rows, minlength=n_rows)
    position = np.arange(rows.size) - (np.cumsum(lengths) - lengths)[rows]
    bucket = np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int8)
    slot = np.empty(n_rows, dtype=np.int64)
    # the entries grouped by their row's bucket, in one stable (radix) sort of small keys
    by_bucket = np.argsort(bucket[rows], kind="stable")
    ends = np.cumsum(np.bincount(bucket[rows], minlength=64))
    column_type = np.int32 if cols.size == 0 or cols.max() < 2**31 else np.int64
    parts = []
    for b in np.unique(bucket[lengths > 0]):
        members = np.flatnonzero((bucket == b) & (lengths > 0))
        slot[members] = np.arange(members.size)
        sel = by_bucket[(ends[b - 1] if b > 0 else 0) : ends[b]]
        width = 1 << int(b)
        dense = np.full((members.size, width), -np.inf, dtype=np.float32)
        where = np.full((members.size, width), -1, dtype=column_type)
        at = (slot[rows[sel]], position[sel])
        dense[at] = values[sel]
        where[at] = cols[sel]
        idx, top = top_k(dense, k)
        r, rank = np.nonzero(idx >= 0)
        parts.append((members[r], where[r, idx[r, rank]].astype(np.int64), top[r, rank], rank))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    out_rows, out_cols, out_values, rank = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.lexsort((rank, out_rows))
    return out_rows[order], out_cols[order], out_values[order], rank[order]


def sparse_top_k(
    scores: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of the dense ``scores`` (absent cells score 0) with ``exclude``'s
    cells and the ``blocked`` items (bool per item) at -inf, in time of the entries.

    A row with at least k positive eligible entries has its top k among them, selected
    by :func:`top_k_entries` (equal scores: lowest index first, as :func:`top_k`). The
    other rows (their top k reaches the zero cells, or negative ones) are ranked dense,
    so the result is exactly :func:`top_k`'s on the dense block.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = sp.csr_matrix(scores, dtype=np.float32, copy=True)
    scores.sum_duplicates()
    n_rows, n_items = scores.shape
    eligible = scores.copy()
    eligible.data[eligible.data <= 0] = 0
    if blocked is not None and blocked.any():
        eligible.data[blocked[eligible.indices]] = 0
    if exclude is not None and exclude.nnz:
        seen = sp.csr_matrix(exclude, dtype=bool)
        eligible = eligible - eligible.multiply(seen)
    eligible = sp.csr_matrix(eligible)
    eligible.eliminate_zeros()
    eligible.sort_indices()
    kk = min(k, n_items)
    enough = np.diff(eligible.indptr) >= kk
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if enough.any():
        part = eligible[np.flatnonzero(enough)].tocoo()
        r, c, v, rank = top_k_entries(part.row, part.col, part.data, part.shape[0], kk)
        rows = np.flatnonzero(enough)[r]
        items[rows, rank] = c
        top[rows, rank] = v
    short = np.flatnonzero(~enough)
    if short.size:
        seen = sp.csr_matrix(exclude if exclude is not None else (n_rows, n_items), dtype=bool)
        open_items = np.flatnonzero(~blocked) if blocked is not None else None
        for u in short.tolist():
            lo, hi = scores.indptr[u], scores.indptr[u + 1]
            gone = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
            row = _short_row(
                scores.indices[lo:hi], scores.data[lo:hi], gone, blocked, open_items, n_items, k
            )
            items[u, : row[0].size], top[u, : row[0].size] = row
    return items, top


def _short_row(
    cols: np.ndarray,
    values: np.ndarray,
    gone: np.ndarray,
    blocked: np.ndarray | None,
    open_items: np.ndarray | None,
    n_items: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The dense top k of one sparse row with fewer than k positive eligible entries,
    without the dense row: its positive eligible entries best first, then the cells that
    score 0 (absent, or stored as 0) lowest index first, then the negative entries best
    first; ``gone`` (excluded items) and the ``blocked`` ones (``open_items``: the others,
    ascending) never appear."""
    eligible = ~np.isin(cols, gone)
    if blocked is not None:
        eligible &= ~blocked[cols]

    def ranked(keep: np.ndarray) -> np.ndarray:
        order = np.lexsort((cols[keep], -values[keep]))
        return np.flatnonzero(keep)[order]

    positive = ranked(eligible & (values > 0))
    need = k - positive.size
    taken = np.union1d(cols[values != 0], gone)  # never a zero cell
    # the first need items that score 0 lie among the first need + len(taken) open items
    width = need + taken.size
    pool = np.arange(min(width, n_items)) if open_items is None else open_items[:width]
    zeros = pool[~np.isin(pool, taken)][:need]
    negative = ranked(eligible & (values < 0))[: need - zeros.size]
    found = np.concatenate([cols[positive], zeros, cols[negative]]).astype(np.int64)
    top = np.concatenate([values[positive], np.zeros(zeros.size), values[negative]])
    return found, top.astype(np.float32)


def columns_top_k(
    scores: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of a block whose only finite scores are ``scores`` over the columns
    ``items`` (ascending; every other item -inf), ranked over those columns: the same
    lists, in time of the columns. ``exclude`` and ``blocked`` are over the whole catalog."""
    block = np.array(scores, dtype=np.float32, copy=True)
    if blocked is not None and blocked.any():
        block[:, blocked[items]] = -np.inf
    few = sp.csr_matrix(exclude)[:, items] if exclude is not None else None
    found, top = top_k(block, k, exclude=few, overwrite=True)
    return np.where(found >= 0, items[np.maximum(found, 0)], -1), top
