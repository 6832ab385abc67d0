"""Full-ranking top-K metrics.

Every metric takes ``recommended`` (n_users x K item indices, best first, -1 for
padding) and ``relevant`` (a CSR matrix, n_users x n_items, non-zero = held-out
item the user interacted with) and averages over users with at least one
relevant item. Definitions (as in RecBole):

* Recall@K = hits in top K / number of relevant items
* NDCG@K   = DCG@K / ideal DCG@K, binary gains, log2(rank + 1) discount
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
    return np.diff(sp.csr_matrix(relevant).indptr) > 0


def recall_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr)
    mask = n_rel > 0
    if not mask.any():
        return float("nan")
    return float(np.mean(hits[mask].sum(axis=1) / n_rel[mask]))


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recommended[:, :k], relevant)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr)
    mask = n_rel > 0
    if not mask.any():
        return float("nan")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, : len(discounts)] * discounts[: hits.shape[1]]).sum(axis=1)
    ideal_len = np.minimum(n_rel, k)
    idcg = np.cumsum(discounts)[np.maximum(ideal_len - 1, 0)]
    return float(np.mean(dcg[mask] / idcg[mask]))


METRICS = {"recall": recall_at_k, "ndcg": ndcg_at_k}


def evaluate_rankings(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """``{"recall@K": ..., "ndcg@K": ..., "n_users": ...}`` for one model."""
    out = {f"{name}@{k}": fn(recommended, relevant, k) for name, fn in METRICS.items()}
    out["n_users"] = int(_users_with_relevant(relevant).sum())
    return out
