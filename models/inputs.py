"""The optional inputs beside the interaction matrix, checked once, here.

``fit`` may receive, besides the users x items CSR matrix:

* ``sequences``: for every user index ``u`` (``len(sequences) == n_users``), the
  item indices ``u`` interacted with, oldest first (repeats allowed; an empty
  array for a user without events). :func:`sequences_from_events` builds it
  from (user, item, timestamp) columns.
* ``item_features``: a dense float matrix, one row per item index (content
  features: genres one-hot, scaled year, title token hashes, ...).
* ``validation``: ``(users, relevant)`` with ``users`` an int array of user
  indices and ``relevant`` a CSR matrix whose row ``r`` holds the held-out items
  of ``users[r]`` (the layout :func:`models.metrics.evaluate_rankings` takes).
* ``social``: the relations between users, a users x users CSR matrix over the
  same user indices as the interaction matrix: row ``u`` holds the users ``u``
  follows or trusts, with positive weights (1.0 for an unweighted edge). Mutual
  relations (friendships) are symmetric; a user is never related to themself.
  A user may have relations and no interactions (a new user with friends).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

ItemSequences = Sequence[np.ndarray]


def sequences_from_events(
    user_idx: np.ndarray, item_idx: np.ndarray, timestamp: np.ndarray, n_users: int
) -> list[np.ndarray]:
    """Each user's item indices in time order (ties keep the input order)."""
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    order = np.lexsort((np.asarray(timestamp), user_idx))  # by user, then by time (stable)
    users, items = user_idx[order], item_idx[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u] : bounds[u + 1]].copy() for u in range(n_users)]


def check_sequences(
    sequences: ItemSequences, n_users: int, n_items: int, who: str
) -> list[np.ndarray]:
    """``sequences`` as a list of int64 arrays, or a ValueError saying what is wrong."""
    if len(sequences) != n_users:
        raise ValueError(
            f"{who}: sequences has {len(sequences)} entries, expected one per user "
            f"({n_users}, the rows of the interaction matrix); give an empty array "
            "for a user without events"
        )
    out = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    flat = np.concatenate(out) if out else np.empty(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_items):
        raise ValueError(
            f"{who}: sequences hold item indices {flat.min()}..{flat.max()}, expected "
            f"0..{n_items - 1}; map items with the same vocabulary as the matrix"
        )
    return out


def sequences_to_csr(sequences: ItemSequences, n_items: int) -> sp.csr_matrix:
    """The users x items binary matrix of the items in each sequence."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    indices = (
        np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
        if len(sequences)
        else np.empty(0, dtype=np.int64)
    )
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    matrix = sp.csr_matrix(
        (np.ones(indices.size, dtype=np.float32), indices, indptr), shape=(len(lengths), n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def check_item_features(features: np.ndarray, n_items: int, who: str) -> np.ndarray:
    """``features`` as a float32 (n_items x d) matrix, or a ValueError."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != n_items:
        raise ValueError(
            f"{who}: item_features has shape {features.shape}, expected ({n_items}, d): "
            "one row per item index of the interaction matrix"
        )
    if not np.isfinite(features).all():
        raise ValueError(f"{who}: item_features holds NaN or inf; impute or drop those values")
    return features


def check_validation(
    validation: tuple[np.ndarray, sp.spmatrix], n_users: int, n_items: int, who: str
) -> tuple[np.ndarray, sp.csr_matrix]:
    """``(users, relevant)`` checked and normalised, or a ValueError."""
    try:
        users, relevant = validation
    except (TypeError, ValueError):
        raise ValueError(
            f"{who}: validation must be a pair (users, relevant), got {type(validation).__name__}"
        ) from None
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    relevant = sp.csr_matrix(relevant, copy=True)
    relevant.eliminate_zeros()  # an explicit zero is not a relevant item
    if relevant.shape != (len(users), n_items):
        raise ValueError(
            f"{who}: validation relevant matrix has shape {relevant.shape}, expected "
            f"({len(users)}, {n_items}): one row per validation user, one column per item"
        )
    if relevant.nnz == 0:
        raise ValueError(
            f"{who}: validation relevant matrix is empty; early stopping needs held-out "
            "items for at least one user (or pass validation=None)"
        )
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(
            f"{who}: validation users must be in 0..{n_users - 1}, got {users.min()}..{users.max()}"
        )
    return users, relevant


def check_social(matrix: sp.spmatrix, n_users: int, who: str) -> sp.csr_matrix:
    """``matrix`` as a float32 users x users CSR matrix with sorted, summed entries and
    no explicit zeros, or a ValueError saying what is wrong."""
    if not sp.issparse(matrix):
        raise ValueError(
            f"{who}: social must be a scipy sparse users x users matrix, got "
            f"{type(matrix).__name__}; build it with scipy.sparse.csr_matrix((weights, "
            "(users, friends)), shape=(n_users, n_users))"
        )
    social = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if social.shape != (n_users, n_users):
        raise ValueError(
            f"{who}: social has shape {social.shape}, expected ({n_users}, {n_users}): "
            "one row and one column per user of the interaction matrix, with the same "
            "user indices"
        )
    social.sum_duplicates()
    social.eliminate_zeros()
    if social.nnz and not np.isfinite(social.data).all():
        raise ValueError(f"{who}: social holds NaN or inf weights; drop or fix those edges")
    if social.nnz and social.data.min() < 0:
        raise ValueError(
            f"{who}: social holds negative weights (min {social.data.min():g}); relation "
            "weights must be positive (1.0 for an unweighted edge)"
        )
    loops = int(np.count_nonzero(social.diagonal()))
    if loops:
        raise ValueError(
            f"{who}: social has {loops} self-loops (a user related to themself); "
            "remove the diagonal"
        )
    social.sort_indices()
    return social
