"""Full-ranking top-K metrics.

Every accuracy metric takes ``recommended`` (n_users x K item indices, best
first, -1 for padding) and ``relevant`` (a CSR matrix, n_users x n_items,
non-zero = held-out item the user interacted with) and averages over users with
at least one relevant item. Definitions (as in RecBole):

* Recall@K = hits in top K / number of relevant items
* NDCG@K   = DCG@K / ideal DCG@K, binary gains, log2(rank + 1) discount
* HR@K     = 1 if any of the top K is relevant, else 0
* MRR@K    = 1 / rank of the first relevant item in the top K (0 if none)
* MAP@K    = sum over relevant ranks r <= K of precision@r, / min(|relevant|, K)

Beyond accuracy, over the same users (padding ignored):

* catalog coverage = distinct recommended items / number of items in the catalog
* novelty          = mean self-information -log2(p_i) of the recommended items, with
  p_i = share of training users who interacted with item i (Zhou et al., PNAS 2010);
  an item no training user saw counts as seen by one
* average popularity = mean number of training users of the recommended items
  (RecBole's AveragePopularity)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean matrix: ``hits[u, r]`` is true when the item at rank r+1 is relevant."""
    relevant = sp.csr_matrix(relevant)
    if recommended.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"recommended has {recommended.shape[0]} rows, relevant has {relevant.shape[0]}; "
            "both must list the same users in the same order"
        )
    hits = np.zeros(recommended.shape, dtype=bool)
    for u in range(recommended.shape[0]):
        rel = relevant.indices[relevant.indptr[u] : relevant.indptr[u + 1]]
        if rel.size:
            hits[u] = np.isin(recommended[u], rel) & (recommended[u] >= 0)
    return hits


def _users_with_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    return np.asarray(np.diff(sp.csr_matrix(relevant).indptr) > 0)


def _per_user_mean(values: np.ndarray, relevant: sp.csr_matrix) -> float:
    mask = _users_with_relevant(relevant)
    return float(np.mean(values[mask])) if mask.any() else float("nan")


def recall_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    n_rel = np.maximum(np.diff(sp.csr_matrix(relevant).indptr), 1)
    return _per_user_mean(hits.sum(axis=1) / n_rel, relevant)


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, : len(discounts)] * discounts[: hits.shape[1]]).sum(axis=1)
    ideal_len = np.minimum(n_rel, k)
    idcg = np.cumsum(discounts)[np.maximum(ideal_len - 1, 0)]
    return _per_user_mean(dcg / idcg, relevant)


def hit_rate_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    return _per_user_mean(hits.any(axis=1).astype(float), relevant)


def mrr_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    first = np.argmax(hits, axis=1)
    return _per_user_mean(np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0), relevant)


def map_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr)
    ap = (precision * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return _per_user_mean(ap, relevant)


def catalog_coverage(recommended: np.ndarray, k: int, n_items: int) -> float:
    """Share of the ``n_items`` catalog that appears in at least one top-k list."""
    top = recommended[:, :k]
    return float(np.unique(top[top >= 0]).size / n_items)


def _valid_mean(values: np.ndarray, valid: np.ndarray) -> float:
    """Mean over users (rows with a valid item) of the mean over their valid items."""
    counts = valid.sum(axis=1)
    rows = counts > 0
    if not rows.any():
        return float("nan")
    return float(np.mean((values * valid).sum(axis=1)[rows] / counts[rows]))


def novelty_at_k(recommended: np.ndarray, k: int, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(item_users[i] / n_users) of the top-k items."""
    top = recommended[:, :k]
    valid = top >= 0
    share = np.maximum(np.asarray(item_users, dtype=float), 1.0) / n_users
    return _valid_mean(-np.log2(share[np.where(valid, top, 0)]), valid)


def average_popularity_at_k(recommended: np.ndarray, k: int, item_users: np.ndarray) -> float:
    """Mean number of training users of the top-k items."""
    top = recommended[:, :k]
    valid = top >= 0
    return _valid_mean(np.asarray(item_users, dtype=float)[np.where(valid, top, 0)], valid)


METRICS = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hit": hit_rate_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


def evaluate_rankings(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    k: int,
    train: sp.spmatrix | None = None,
    n_items: int | None = None,
) -> dict[str, float]:
    """Every metric for one model: ``{"recall@K", "ndcg@K", "hit@K", "mrr@K", "map@K",
    "coverage@K", "n_users"}``, plus ``"novelty@K"`` and ``"avg_popularity@K"`` when
    ``train`` (the users x items training matrix, in the same item indices) is given.

    The catalog size for coverage is ``n_items``, else ``train``'s, else ``relevant``'s
    number of columns.
    """
    out = {f"{name}@{k}": fn(recommended, relevant, k) for name, fn in METRICS.items()}
    users = _users_with_relevant(relevant)
    shown = recommended[users]
    if n_items is None:
        n_items = train.shape[1] if train is not None else relevant.shape[1]
    out[f"coverage@{k}"] = catalog_coverage(shown, k, n_items)
    if train is not None:
        item_users = np.asarray((sp.csr_matrix(train) > 0).sum(axis=0)).ravel()
        out[f"novelty@{k}"] = novelty_at_k(shown, k, item_users, train.shape[0])
        out[f"avg_popularity@{k}"] = average_popularity_at_k(shown, k, item_users)
    out["n_users"] = int(users.sum())
    return out
